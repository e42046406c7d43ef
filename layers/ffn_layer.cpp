#include "layers/ffn_layer.h"

#include <cmath>

#include "layers/torch_compat.h"

namespace mixlab {

void FfnLayerImpl::set_stats(std::vector<std::string> names,
                             const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;
  flat.reserve(values.size());
  for (const auto& v : values) flat.push_back(v.detach().to(torch::kFloat).reshape({1}));
  stat_names_ = std::move(names);
  stat_values_ = torch::cat(flat);
}

torch::Tensor normalized_entropy(const torch::Tensor& probs, int64_t dim) {
  const int64_t n = probs.size(dim);
  if (n <= 1) return torch::zeros({}, probs.options().dtype(torch::kFloat));
  auto p = probs.to(torch::kFloat);
  auto h = -(p * torch::log(p.clamp_min(1e-30))).sum(dim);
  return h.mean() / std::log(double(n));
}

torch::Tensor coefficient_of_variation(const torch::Tensor& loads) {
  auto l = loads.to(torch::kFloat);
  auto mean = l.mean();
  return (l - mean).pow(2).mean().sqrt() / mean.clamp_min(1e-12);
}

torch::Tensor router_logits(const torch::Tensor& x, const torch::Tensor& router) {
  compat::AutocastOff fp32;
  auto input = x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat);
  return torch::matmul(input, router.to(input.scalar_type()));
}

torch::Tensor run_experts(const torch::Tensor& inputs, const torch::Tensor& w1,
                          const torch::Tensor& w2) {
  auto hidden = fast_relu(torch::bmm(inputs, w1.to(inputs.scalar_type())));
  return torch::bmm(hidden, w2.to(inputs.scalar_type()));
}

int64_t read_expert_size(const ConfigReader& cfg, int64_t expert_passes, int64_t tokens) {
  if (!cfg.has("expert_size")) cfg.fail("expert_size", "required: an integer or \"flop_matched\"");
  const Json& v = cfg.raw("expert_size");
  if (v.is_string()) {
    if (v.get<std::string>() != "flop_matched")
      cfg.fail("expert_size", "must be a positive integer or \"flop_matched\"");
    int64_t d_ff = cfg.get_positive_int("d_ff", 0);
    if ((d_ff * tokens) % expert_passes != 0)
      cfg.fail("d_ff", "flop_matched sets expert_size = d_ff * " + std::to_string(tokens) + " / " +
                           std::to_string(expert_passes) + " (expert passes per " +
                           std::to_string(tokens) + " tokens), which must be an integer");
    return d_ff * tokens / expert_passes;
  }
  int64_t f = cfg.get_int("expert_size");
  if (f <= 0) cfg.fail("expert_size", "must be a positive integer or \"flop_matched\"");
  if (cfg.has("d_ff")) cfg.get_int("d_ff");  // allowed, informational when f is explicit
  return f;
}

void init_gpt2(torch::Tensor& weight, bool residual_projection, int64_t n_layers) {
  torch::NoGradGuard no_grad;
  double std = 0.02;
  if (residual_projection) std /= std::sqrt(2.0 * double(n_layers));
  weight.normal_(0.0, std);
}

}  // namespace mixlab
