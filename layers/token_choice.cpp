#include "layers/token_choice.h"

#include <algorithm>
#include <cmath>

namespace mixlab {

int64_t token_choice_capacity(const TokenChoiceOptions& options, int64_t n_tokens) {
  // The small tolerance keeps exact products (1.25 * 1 * 64 / 16 = 5) from rounding up.
  const double c = std::ceil(options.capacity_factor * double(options.k) * double(n_tokens) /
                                 double(options.n_experts) -
                             1e-9);
  // No expert can receive a token twice, so more than N slots are never needed.
  return std::clamp<int64_t>(int64_t(c), 1, n_tokens);
}

TokenChoiceOutput token_choice_forward(const torch::Tensor& x, const torch::Tensor& router,
                                       const torch::Tensor& w1, const torch::Tensor& w2,
                                       const TokenChoiceOptions& options, bool record_stats) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const int64_t e = options.n_experts, k = options.k, n = b * s, assignments = n * k;
  const auto index_options = torch::TensorOptions().dtype(torch::kLong).device(x.device());

  // Tokens in position-major order: token index = position * B + sequence.
  auto tokens = x.transpose(0, 1).reshape({n, d});
  auto logits = router_logits(tokens, router);  // (N, E), float32 (float64 in the tests)
  auto probs = torch::softmax(logits, /*dim=*/1);
  auto [top_probs, top_experts] = probs.topk(k, /*dim=*/1);  // (N, k), most probable first
  auto gates = k > 1 ? top_probs / top_probs.sum(1, /*keepdim=*/true) : top_probs;

  // Assignments (token, choice) in priority order (position, choice rank, sequence): what a
  // token at position t keeps depends only on the tokens at positions <= t (causality).
  auto priority_order = [&](const torch::Tensor& per_choice) {  // (N, k) -> (S k B)
    return per_choice.reshape({s, b, k}).permute({0, 2, 1}).reshape({assignments});
  };
  auto expert_of = priority_order(top_experts);
  auto gate_of = priority_order(gates);
  auto token_of = priority_order(torch::arange(n, index_options).unsqueeze(1).expand({n, k}));

  // Place of each assignment in its expert's queue: the number of earlier assignments to the
  // same expert, from a stable sort by expert (no per-token loop, no host sync).
  auto [sorted_expert, sort_order] = torch::sort(expert_of, /*stable=*/true, 0, false);
  auto load =
      torch::zeros({e}, index_options).scatter_add_(0, expert_of, torch::ones_like(expert_of));
  auto queue_start = load.cumsum(0) - load;
  auto rank_sorted =
      torch::arange(assignments, index_options) - queue_start.index_select(0, sorted_expert);
  auto queue_place = torch::empty_like(rank_sorted).scatter_(0, sort_order, rank_sorted);
  const int64_t capacity = token_choice_capacity(options, n);
  auto kept = queue_place < capacity;

  // Dispatch into a dense (E, C, d) buffer and run all experts with one bmm each. Dropped
  // assignments are added into one extra row that no expert reads.
  auto slot = expert_of * capacity + queue_place;
  auto slot_in = torch::where(kept, slot, torch::full_like(slot, e * capacity));
  auto buffer = torch::zeros({e * capacity + 1, d}, tokens.options())
                    .index_add(0, slot_in, tokens.index_select(0, token_of));
  auto expert_out = run_experts(buffer.narrow(0, 0, e * capacity).view({e, capacity, d}), w1, w2)
                        .reshape({e * capacity, d});
  // Combine: a dropped assignment reads slot 0 with weight 0.
  auto weight = (gate_of * kept.to(gate_of.scalar_type())).to(x.scalar_type());
  auto contribution =
      expert_out.index_select(0, torch::where(kept, slot, torch::zeros_like(slot))) *
      weight.unsqueeze(1);
  auto y = torch::zeros({n, d}, tokens.options()).index_add(0, token_of, contribution);

  TokenChoiceOutput out;
  out.y = y.view({s, b, d}).transpose(0, 1);
  // Load balancing: f_e the share of the N k assignments (token, choice) sent to e before
  // capacity (Switch: the top choice), P_e the mean probability. Counting every choice, not
  // only the first, balances what capacity is applied to: with the top choice alone, top-2's
  // second choices may pile onto a few experts unpenalised.
  auto assigned_frac =
      options.balance_all_choices
          ? load.to(probs.scalar_type()) / double(assignments)
          : torch::zeros({e}, probs.options())
                    .scatter_add_(0, top_experts.select(1, 0), torch::ones({n}, probs.options())) /
                double(n);
  out.aux_loss = options.aux_loss_weight * double(e) * (assigned_frac * probs.mean(0)).sum();
  if (options.z_loss_weight > 0)
    out.aux_loss = out.aux_loss + options.z_loss_weight * torch::logsumexp(logits, 1).pow(2).mean();

  if (record_stats) {
    torch::NoGradGuard no_grad;
    auto load_f = load.to(torch::kFloat);  // assignments per expert, before capacity
    out.stat_names = {"entropy", "load_cv", "max_load", "dropped_frac"};
    out.stat_values = {normalized_entropy(probs, 1), coefficient_of_variation(load_f),
                       load_f.max() / load_f.mean(), 1.0 - kept.to(torch::kFloat).mean()};
  }
  return out;
}

LayerCost token_choice_cost(int64_t d_model, const TokenChoiceOptions& o) {
  const int64_t expert_params = 2 * o.n_experts * d_model * o.expert_size;
  const int64_t router_params = d_model * o.n_experts;
  LayerCost c;
  c.params_total = expert_params + router_params;
  // A token pays for its k experts and the router.
  c.params_active = 2 * o.k * d_model * o.expert_size + router_params;
  // Router logits and k expert passes; the padding slots of the capacity buffer (up to
  // capacity_factor x) are not counted, as in the Switch paper.
  c.forward_flops = 2.0 * double(d_model) * double(o.n_experts) +
                    4.0 * double(o.k) * double(d_model) * double(o.expert_size);
  return c;
}

TokenChoiceImpl::TokenChoiceImpl(const ModelDims& dims, const TokenChoiceOptions& options)
    : dims_(dims), options_(options) {
  const int64_t d = dims.d_model, e = options.n_experts, f = options.expert_size;
  router = register_parameter("router", torch::empty({d, e}));
  init_gpt2(router, false, dims.n_layers);
  register_expert_weights(*this, e, d, f, dims.n_layers, w1, w2);
}

torch::Tensor TokenChoiceImpl::forward(const torch::Tensor& x) {
  auto out = token_choice_forward(x, router, w1, w2, options_, recording_stats());
  aux_loss_ = out.aux_loss;
  if (recording_stats()) set_stats(out.stat_names, out.stat_values);
  return out.y;
}

void read_token_choice_keys(const ConfigReader& cfg, TokenChoiceOptions& o) {
  o.capacity_factor = cfg.get_positive_double("capacity_factor", 1.25);
  o.aux_loss_weight = cfg.get_double("aux_loss_weight", 0.01);
  if (o.aux_loss_weight < 0) cfg.fail("aux_loss_weight", "must be >= 0");
  o.z_loss_weight = cfg.get_double("z_loss", 0.0);
  if (o.z_loss_weight < 0) cfg.fail("z_loss", "must be >= 0");
}

namespace {

TokenChoiceOptions read_experts(const ConfigReader& cfg) {
  TokenChoiceOptions o;
  o.n_experts = read_n_experts(cfg);
  read_token_choice_keys(cfg, o);
  return o;
}

}  // namespace

FfnBuilder parse_switch(const ConfigReader& cfg, const ModelDims& dims) {
  TokenChoiceOptions o = read_experts(cfg);
  o.k = 1;
  o.expert_size = read_expert_size(cfg, /*expert_passes=*/1, /*tokens=*/1);
  return [dims, o] { return std::make_shared<TokenChoiceImpl>(dims, o); };
}

FfnBuilder parse_top_k(const ConfigReader& cfg, const ModelDims& dims) {
  TokenChoiceOptions o = read_experts(cfg);
  o.k = cfg.get_positive_int("k", 2);
  if (o.k > o.n_experts)
    cfg.fail("k", "must be at most n_experts (" + std::to_string(o.n_experts) + ")");
  o.expert_size = read_expert_size(cfg, /*expert_passes=*/o.k, /*tokens=*/1);
  const std::string balance = cfg.get_string("balance", "all_choices");
  if (balance != "all_choices" && balance != "top_choice")
    cfg.fail("balance", "must be \"all_choices\" or \"top_choice\"");
  o.balance_all_choices = balance == "all_choices";
  return [dims, o] { return std::make_shared<TokenChoiceImpl>(dims, o); };
}

}  // namespace mixlab
