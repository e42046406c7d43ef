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

void register_expert_weights(torch::nn::Module& module, int64_t n_experts, int64_t d_model,
                             int64_t expert_size, int64_t n_layers, torch::Tensor& w1,
                             torch::Tensor& w2) {
  w1 = module.register_parameter("w1", torch::empty({n_experts, d_model, expert_size}));
  w2 = module.register_parameter("w2", torch::empty({n_experts, expert_size, d_model}));
  init_gpt2(w1, false, n_layers);
  init_gpt2(w2, true, n_layers);
}

torch::Tensor group_by_position(const torch::Tensor& x, int64_t group_size, const char* layer) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), g = group_size;
  TORCH_CHECK(b % g == 0, layer, ": batch ", b, " is not divisible by group_size ", g);
  return x.view({b / g, g, s, d}).transpose(1, 2);
}

torch::Tensor ungroup(const torch::Tensor& grouped) {
  const int64_t groups = grouped.size(0), s = grouped.size(1), g = grouped.size(2);
  return grouped.transpose(1, 2).reshape({groups * g, s, grouped.size(3)});
}

int64_t read_n_experts(const ConfigReader& cfg) {
  if (!cfg.has("n_experts")) cfg.fail("n_experts", "required: a positive integer");
  return cfg.get_positive_int("n_experts", 0);
}

int64_t read_group_size(const ConfigReader& cfg, const ModelDims& dims) {
  if (!cfg.has("group_size")) cfg.fail("group_size", "required: a positive integer");
  const int64_t g = cfg.get_positive_int("group_size", 0);
  if (dims.batch_size % g != 0)
    cfg.fail("group_size", "must divide train.batch_size (" + std::to_string(dims.batch_size) +
                               "): groups are tokens at one position across g sequences");
  return g;
}

}  // namespace mixlab
