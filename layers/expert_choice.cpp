#include "layers/expert_choice.h"

#include <cmath>

namespace mixlab {

ExpertChoiceImpl::ExpertChoiceImpl(const ModelDims& dims, const ExpertChoiceOptions& options)
    : dims_(dims), options_(options) {
  const int64_t d = dims.d_model, e = options.n_experts, f = options.expert_size;
  router = register_parameter("router", torch::empty({d, e}));
  init_gpt2(router, false, dims.n_layers);
  register_expert_weights(*this, e, d, f, dims.n_layers, w1, w2);
  if (options.output_norm)
    output_norm =
        register_module("output_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
}

torch::Tensor ExpertChoiceImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const int64_t g = options_.group_size, e = options_.n_experts, k = options_.k;
  const int64_t groups = b / g, picks = e * k;
  auto grouped = group_by_position(x, g, "expert_choice");                 // (G, S, g, d)
  auto probs = torch::softmax(router_logits(grouped, router), /*dim=*/3);  // (G, S, g, E)
  // Each expert takes its k most probable tokens of the group.
  auto [chosen_prob, chosen_token] = probs.transpose(2, 3).topk(k, /*dim=*/3);  // (G, S, E, k)
  auto token_index = chosen_token.reshape({groups, s, picks});
  auto gather_index = token_index.unsqueeze(3).expand({groups, s, picks, d});
  auto selected = grouped.gather(2, gather_index);  // (G, S, E k, d)
  // All experts at once: (E, G S k, d).
  auto per_expert = selected.reshape({groups * s, e, k, d}).transpose(0, 1).reshape({e, -1, d});
  auto out = run_experts(per_expert, w1, w2)
                 .reshape({e, groups * s, k, d})
                 .transpose(0, 1)
                 .reshape({groups, s, picks, d});
  if (options_.scale_by_probability)
    out = out * chosen_prob.reshape({groups, s, picks, 1}).to(x.scalar_type());
  auto y = torch::zeros_like(grouped).scatter_add(2, gather_index,
                                                  out.to(x.scalar_type()));  // (G, S, g, d)

  if (recording_stats()) {
    torch::NoGradGuard no_grad;
    // Load: tokens whose most probable expert is e (what token choice would send there);
    // Expert Choice itself always fills k slots per expert.
    auto top_choice = probs.argmax(3).reshape({-1});
    auto load = torch::zeros({e}, probs.options())
                    .scatter_add_(0, top_choice, torch::ones_like(top_choice, probs.options()));
    auto times_chosen =
        torch::zeros({groups, s, g}, probs.options())
            .scatter_add_(2, token_index, torch::ones_like(token_index, probs.options()));
    set_stats({"entropy", "load_cv", "max_load", "dropped_frac"},
              {normalized_entropy(probs, 3), coefficient_of_variation(load),
               load.max() / load.mean(), (times_chosen == 0).to(torch::kFloat).mean()});
  }
  auto output = ungroup(y);
  return options_.output_norm ? output_norm(output) : output;
}

LayerCost ExpertChoiceImpl::cost() const {
  const double d = double(dims_.d_model), e = double(options_.n_experts),
               f = double(options_.expert_size), g = double(options_.group_size),
               k = double(options_.k);
  const int64_t expert_params = 2 * options_.n_experts * dims_.d_model * options_.expert_size;
  const int64_t router_params = dims_.d_model * options_.n_experts;
  const int64_t norm_params = options_.output_norm ? 2 * dims_.d_model : 0;  // gain, shift
  LayerCost c;
  c.params_total = expert_params + router_params + norm_params;
  // Per group of g tokens the experts run E k times: a token pays for E k / g expert passes.
  c.params_active = int64_t(std::llround(2.0 * e * k / g * d * f)) + router_params + norm_params;
  c.forward_flops = 2 * d * e + 4 * (e * k / g) * d * f;
  return c;
}

FfnBuilder parse_expert_choice(const ConfigReader& cfg, const ModelDims& dims) {
  ExpertChoiceOptions o;
  o.n_experts = read_n_experts(cfg);
  o.group_size = read_group_size(cfg, dims);
  const double capacity_factor = cfg.get_positive_double("capacity_factor", 1.0);
  const double k = capacity_factor * double(o.group_size) / double(o.n_experts);
  if (std::fabs(k - std::round(k)) > 1e-9 || std::round(k) < 1)
    cfg.fail("capacity_factor", "k = capacity_factor * group_size / n_experts = " +
                                    std::to_string(k) + " must be a positive integer");
  o.k = int64_t(std::llround(k));
  if (o.k > o.group_size)
    cfg.fail("capacity_factor", "k = capacity_factor * group_size / n_experts = " +
                                    std::to_string(o.k) + " exceeds group_size");
  o.expert_size = read_expert_size(cfg, /*expert_passes=*/o.n_experts * o.k,
                                   /*tokens=*/o.group_size);
  o.output_norm = cfg.get_bool("output_norm", true);
  return [dims, o] { return std::make_shared<ExpertChoiceImpl>(dims, o); };
}

}  // namespace mixlab
