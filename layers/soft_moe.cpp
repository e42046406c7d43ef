#include "layers/soft_moe.h"

#include <cmath>

namespace mixlab {

SoftMoeImpl::SoftMoeImpl(const ModelDims& dims, const SoftMoeOptions& options)
    : dims_(dims), options_(options) {
  const int64_t d = dims.d_model, e = options.n_experts, f = options.expert_size;
  phi = register_parameter("phi", torch::empty({d, e * options.slots_per_expert}));
  init_gpt2(phi, false, dims.n_layers);
  register_expert_weights(*this, e, d, f, dims.n_layers, w1, w2);
}

torch::Tensor SoftMoeImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const int64_t g = options_.group_size, e = options_.n_experts, p = options_.slots_per_expert;
  const int64_t groups = b / g, slots = e * p;
  auto grouped = group_by_position(x, g, "soft_moe");                   // (G, S, g, d)
  auto logits = router_logits(grouped, phi);                            // (G, S, g, E p)
  auto dispatch = torch::softmax(logits, 2).to(x.scalar_type());        // over the group's tokens
  auto combine = torch::softmax(logits, 3).to(x.scalar_type());         // over all slots
  auto slot_inputs = torch::matmul(dispatch.transpose(2, 3), grouped);  // (G, S, E p, d)
  // Slot s = e p + j goes to expert e: (E, G S p, d).
  auto per_expert = slot_inputs.reshape({groups * s, e, p, d}).transpose(0, 1).reshape({e, -1, d});
  auto slot_outputs = run_experts(per_expert, w1, w2)
                          .reshape({e, groups * s, p, d})
                          .transpose(0, 1)
                          .reshape({groups, s, slots, d});
  auto y = torch::matmul(combine, slot_outputs);  // (G, S, g, d)

  if (recording_stats()) {
    torch::NoGradGuard no_grad;
    // entropy: of each token's combine weights over the E p slots (1: the token's output is
    // an even blend of all slots). dispatch_entropy: of each slot's weights over the group
    // (the MoT entropy). token_weight_cv: CV over tokens of the total dispatch weight a token
    // sends into slots (0: every token contributes equally).
    auto sent = dispatch.sum(3).reshape({-1});
    set_stats({"entropy", "dispatch_entropy", "token_weight_cv", "dropped_frac"},
              {normalized_entropy(combine, 3), normalized_entropy(dispatch, 2),
               coefficient_of_variation(sent), torch::zeros({}, x.options())});
  }
  return ungroup(y);
}

LayerCost SoftMoeImpl::cost() const {
  const double d = double(dims_.d_model),
               slots = double(options_.n_experts * options_.slots_per_expert),
               f = double(options_.expert_size), g = double(options_.group_size);
  const int64_t expert_params = 2 * options_.n_experts * dims_.d_model * options_.expert_size;
  const int64_t phi_params = dims_.d_model * options_.n_experts * options_.slots_per_expert;
  LayerCost c;
  c.params_total = expert_params + phi_params;
  // Each group of g tokens runs E p expert passes (one per slot).
  c.params_active = int64_t(std::llround(2.0 * slots / g * d * f)) + phi_params;
  // Logits, dispatch, experts, combine.
  c.forward_flops = 2 * d * slots + 2 * slots * d + 4 * slots * d * f / g + 2 * slots * d;
  return c;
}

FfnBuilder parse_soft_moe(const ConfigReader& cfg, const ModelDims& dims) {
  SoftMoeOptions o;
  o.n_experts = read_n_experts(cfg);
  o.slots_per_expert = cfg.get_positive_int("slots_per_expert", 1);
  o.group_size = read_group_size(cfg, dims);
  o.expert_size = read_expert_size(cfg, /*expert_passes=*/o.n_experts * o.slots_per_expert,
                                   /*tokens=*/o.group_size);
  return [dims, o] { return std::make_shared<SoftMoeImpl>(dims, o); };
}

}  // namespace mixlab
