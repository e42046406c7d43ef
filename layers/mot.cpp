#include "layers/mot.h"

#include <cmath>

#include "layers/torch_compat.h"

namespace mixlab {

MotImpl::MotImpl(const ModelDims& dims, const MotOptions& options)
    : dims_(dims), options_(options) {
  const int64_t d = dims.d_model, e = options.n_experts, f = options.expert_size;
  controller = register_parameter("controller", torch::empty({d, e}));
  init_gpt2(controller, false, dims.n_layers);
  register_expert_weights(*this, e, d, f, dims.n_layers, w1, w2);
  if (options.learnable_temperature) {
    log_temperature = register_parameter(
        "log_temperature", torch::full({}, std::log(options.temperature), torch::kFloat));
    temperature_learning_ = options.learn_temperature_from_step <= 0;
  }
}

void MotImpl::on_step(int64_t step) {
  if (options_.learnable_temperature)
    temperature_learning_ = step >= options_.learn_temperature_from_step;
}

torch::Tensor MotImpl::temperature() const {
  if (!options_.learnable_temperature)
    return torch::full({}, options_.temperature, controller.options());
  // Before learn_temperature_from_step the temperature is used but receives no gradient.
  return temperature_learning_ ? log_temperature.exp() : log_temperature.detach().exp();
}

torch::Tensor MotImpl::token_weights(const torch::Tensor& grouped) const {
  compat::AutocastOff fp32;  // the controller and its softmax run in (at least) float32
  auto input = grouped.scalar_type() == torch::kDouble ? grouped : grouped.to(torch::kFloat);
  auto logits = torch::matmul(input, controller);  // (G, S, g, E)
  return torch::softmax(logits / temperature(), /*dim=*/2);
}

torch::Tensor MotImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const int64_t g = options_.group_size, e = options_.n_experts, groups = b / g;
  auto grouped = group_by_position(x, g, "MoT");  // (G, S, g, d)
  if (g == 1) return forward_groups_of_one(x);
  auto weights = token_weights(grouped);  // (G, S, g, E), float32
  if (discrete_) {
    auto pick = weights.argmax(/*dim=*/2, /*keepdim=*/true);
    weights = torch::zeros_like(weights).scatter_(2, pick, 1.0);
  }
  auto w = weights.to(x.scalar_type());
  auto mixed = torch::matmul(w.transpose(-1, -2), grouped);  // (G, S, E, d)
  // All experts at once: (E, G*S, d) x (E, d, f) -> (E, G*S, f) -> (E, G*S, d).
  auto per_expert = mixed.reshape({groups * s, e, d}).transpose(0, 1);
  auto hidden = fast_relu(torch::bmm(per_expert, w1.to(x.scalar_type())));
  auto out = torch::bmm(hidden, w2.to(x.scalar_type()));
  auto out_grouped = out.transpose(0, 1).reshape({groups, s, e, d});
  auto y = torch::matmul(w, out_grouped);  // (G, S, g, d)

  if (recording_stats()) {
    torch::NoGradGuard no_grad;
    auto received = weights.sum(/*dim=*/3).reshape({-1});  // total weight per token
    set_stats({"entropy", "temperature", "token_weight_cv", "dropped_frac"},
              {normalized_entropy(weights, 2), temperature(), coefficient_of_variation(received),
               torch::zeros({}, weights.options())});
  }
  return ungroup(y);
}

// A group of one token: its softmax over the group is exactly 1 (exp(0) / exp(0)), in mixed
// and discrete mode alike, so every expert reads the token itself and y = sum_e W2_e relu(W1_e
// x): one FFN of width E*f. Computed that way it costs what dense costs; the general path
// would materialise E copies of every token (at E = 128, 32x the dense activations). The
// controller and temperature get no gradient here, where the general path gives them exact
// zeros; the one difference is that AdamW then does not decay the (unused) controller.
torch::Tensor MotImpl::forward_groups_of_one(const torch::Tensor& x) {
  const int64_t d = x.size(2), e = options_.n_experts, f = options_.expert_size;
  auto w1_wide = w1.to(x.scalar_type()).permute({1, 0, 2}).reshape({d, e * f});
  auto w2_wide = w2.to(x.scalar_type()).reshape({e * f, d});
  auto y = torch::matmul(fast_relu(torch::matmul(x, w1_wide)), w2_wide);
  if (recording_stats()) {
    torch::NoGradGuard no_grad;
    set_stats({"entropy", "temperature", "token_weight_cv", "dropped_frac"},
              {torch::zeros({}, controller.options()), temperature(),
               torch::zeros({}, controller.options()), torch::zeros({}, controller.options())});
  }
  return y;
}

LayerCost MotImpl::cost() const {
  const double d = double(dims_.d_model), e = double(options_.n_experts),
               f = double(options_.expert_size), g = double(options_.group_size);
  const int64_t expert_params = 2 * options_.n_experts * dims_.d_model * options_.expert_size;
  const int64_t controller_params = dims_.d_model * options_.n_experts;
  LayerCost c;
  c.params_total = expert_params + controller_params + (options_.learnable_temperature ? 1 : 0);
  // Each expert runs once per group of g tokens: a token pays for 1/g of the experts.
  c.params_active = expert_params / options_.group_size + controller_params;
  // Controller logits, merge, experts (per token: E/g expert passes), emit. Groups of one
  // token compute only the experts (forward_groups_of_one).
  c.forward_flops = options_.group_size == 1
                        ? 4 * e * d * f
                        : 2 * d * e + 2 * e * d + 4 * e * d * f / g + 2 * e * d;
  return c;
}

MotOptions read_mot_options(const ConfigReader& cfg, const ModelDims& dims) {
  MotOptions o;
  o.n_experts = read_n_experts(cfg);
  o.group_size = read_group_size(cfg, dims);
  o.expert_size = read_expert_size(cfg, o.n_experts, o.group_size);
  if (cfg.has("temperature") && cfg.raw("temperature").is_string()) {
    if (cfg.get_string("temperature") != "learnable")
      cfg.fail("temperature", "must be a positive number or \"learnable\"");
    o.learnable_temperature = true;
    o.temperature = cfg.get_positive_double("initial_temperature", 1.0);
    o.learn_temperature_from_step = cfg.get_int("learn_temperature_from_step", 0);
    if (o.learn_temperature_from_step < 0) cfg.fail("learn_temperature_from_step", "must be >= 0");
  } else {
    o.temperature = cfg.get_positive_double("temperature", 1.0);
  }
  return o;
}

FfnBuilder parse_mot(const ConfigReader& cfg, const ModelDims& dims) {
  const MotOptions o = read_mot_options(cfg, dims);
  return [dims, o] { return std::make_shared<MotImpl>(dims, o); };
}

}  // namespace mixlab
