#include "experiments/init.h"

#include <cmath>
#include <functional>
#include <stdexcept>

namespace mixlab {

int64_t reference_fan_in(const torch::Tensor& weight, WeightKind kind) {
  switch (kind) {
    case WeightKind::embedding:
      return 1;  // the reference: "fan_in=1 is also default in pytorch"
    case WeightKind::linear:
      return weight.size(-1);
    case WeightKind::x_times_w:
      return weight.size(-2);
  }
  return 1;
}

void truncated_normal_(torch::Tensor& weight, double std, double low, double high) {
  torch::NoGradGuard no_grad;
  // Uniform on [Phi(low / std), Phi(high / std)], mapped back through the inverse normal CDF:
  // exact truncation, no rejection loop (the method of torch.nn.init.trunc_normal_).
  auto cdf = [](double z) { return 0.5 * (1.0 + std::erf(z / std::sqrt(2.0))); };
  const double lo = cdf(low / std), hi = cdf(high / std);
  auto u = torch::empty_like(weight, weight.options().dtype(torch::kDouble)).uniform_(lo, hi);
  auto z = torch::erfinv(u * 2.0 - 1.0) * std::sqrt(2.0) * std;
  weight.copy_(z.clamp(low, high));
}

namespace {

// Draws one weight of kind `kind` in place.
using DrawFn = std::function<void(torch::Tensor&, WeightKind)>;

void init_module(torch::nn::Module& module, const DrawFn& draw) {
  torch::NoGradGuard no_grad;
  if (auto* linear = module.as<torch::nn::Linear>()) {
    draw(linear->weight, WeightKind::linear);
    if (linear->bias.defined()) linear->bias.zero_();
  } else if (module.as<torch::nn::LayerNorm>() == nullptr) {
    for (auto& p : module.named_parameters(/*recurse=*/false))
      if (p.value().dim() >= 2) draw(p.value(), WeightKind::x_times_w);
  }
  for (auto& child : module.children()) init_module(*child, draw);
}

// The model's own parameters are embeddings; its children are walked by init_module.
void init_model(torch::nn::Module& model, const DrawFn& draw) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters(/*recurse=*/false))
    if (p.value().dim() >= 2) draw(p.value(), WeightKind::embedding);
  for (auto& child : model.children()) init_module(*child, draw);
}

}  // namespace

void init_reference(torch::nn::Module& model, double scale) {
  init_model(model, [scale](torch::Tensor& weight, WeightKind kind) {
    const double std = std::sqrt(scale / double(reference_fan_in(weight, kind)));
    truncated_normal_(weight, std, -2.0 * scale, 2.0 * scale);
  });
}

void init_fan_in(torch::nn::Module& model, double scale) {
  init_model(model, [scale](torch::Tensor& weight, WeightKind kind) {
    const double std = std::sqrt(scale / double(reference_fan_in(weight, kind)));
    if (kind == WeightKind::embedding)
      weight.normal_(0.0, std);
    else
      weight.uniform_(-std * std::sqrt(3.0), std * std::sqrt(3.0));  // variance bound^2 / 3
  });
}

void apply_init_scheme(torch::nn::Module& model, const std::string& name, double scale) {
  if (name == "gpt2") return;  // the layers' constructors already drew GPT-2 weights
  if (name == "reference") return init_reference(model, scale > 0 ? scale : kReferenceInitScale);
  if (name == "fan_in") return init_fan_in(model, scale > 0 ? scale : kFanInInitScale);
  throw std::invalid_argument("unknown model.init scheme \"" + name + "\"");
}

}  // namespace mixlab
