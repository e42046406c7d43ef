// Token-choice Mixture of Experts: Switch (top-1, Fedus et al. 2021) and top-k (GShard,
// Lepikhin et al. 2020; Mixtral), as in the reference code's TokenChoiceFF.
//
// Router softmax over the E experts in float32: p_t = softmax(x_t . W_r). Each token t goes
// to its k most probable experts; expert e keeps at most C = ceil(capacity_factor * k * N / E)
// of the N = B S tokens of the batch, the rest are dropped (their output from that expert is
// 0: the token passes through the residual only).
//
// Capacity priority is position-major: all tokens at position 0 (and, within a position, all
// first choices before second choices, then sequence order), then position 1, and so on.
// Whether a token at position t is dropped therefore depends only on tokens at positions
// <= t, so the layer stays causal. (The reference's first-come order over the flattened
// (batch, seq) tokens would let a late position of sequence 0 take the slot of an early
// position of sequence 1: the future of one sequence would change the past of another.)
// The price: an overflowing expert drops the batch's latest positions first.
//
// Output: y_t = sum over kept choices e of gate_{t,e} W2_e relu(W1_e x_t). Switch (k = 1)
// uses the router probability p_{t,e} as the gate; for k >= 2 the gates are the top-k
// probabilities renormalised to sum to 1 (GShard top-2, Mixtral), computed before dropping.
//
// Auxiliary load-balancing loss alpha E sum_e f_e P_e (f_e: share of the N k (token, choice)
// assignments sent to e, before capacity, which for Switch is the share of tokens whose top
// choice is e; P_e: mean router probability), alpha at perfect balance; optional router
// z-loss beta mean_t(logsumexp(logits_t)^2).
#pragma once

#include "layers/ffn_layer.h"

namespace mixlab {

struct TokenChoiceOptions {
  int64_t n_experts = 0;
  int64_t expert_size = 0;
  int64_t k = 1;  // experts per token
  double capacity_factor = 1.25;
  double aux_loss_weight = 0.01;  // alpha
  double z_loss_weight = 0.0;     // beta
  // f_e of the load-balancing loss counts every (token, choice) assignment ("all_choices") or
  // only each token's top choice ("top_choice", top_k's definition before 2026-12). Equal for
  // k = 1. An explicit config key, so runs trained under either definition keep their identity.
  bool balance_all_choices = true;
};

// The result of one token-choice forward pass.
struct TokenChoiceOutput {
  torch::Tensor y;                      // (B, S, d)
  torch::Tensor aux_loss;               // weighted load-balancing loss (+ z-loss), 0-d
  std::vector<std::string> stat_names;  // filled only when statistics were asked for
  std::vector<torch::Tensor> stat_values;
};

// Expert capacity C for n_tokens tokens.
int64_t token_choice_capacity(const TokenChoiceOptions& options, int64_t n_tokens);

// The token-choice layer on given weights (shared with transition tuning, whose router is
// the MoT controller): x (B, S, d), router (d, E), w1 (E, d, f), w2 (E, f, d).
TokenChoiceOutput token_choice_forward(const torch::Tensor& x, const torch::Tensor& router,
                                       const torch::Tensor& w1, const torch::Tensor& w2,
                                       const TokenChoiceOptions& options, bool record_stats);

// Parameters and FLOPs per token of a token-choice layer of these shapes.
LayerCost token_choice_cost(int64_t d_model, const TokenChoiceOptions& options);

class TokenChoiceImpl : public FfnLayerImpl {
 public:
  TokenChoiceImpl(const ModelDims& dims, const TokenChoiceOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor aux_loss() const override { return aux_loss_; }
  LayerCost cost() const override { return token_choice_cost(dims_.d_model, options_); }
  const TokenChoiceOptions& options() const { return options_; }

  torch::Tensor router;  // (d, E), float32
  torch::Tensor w1;      // (E, d, f)
  torch::Tensor w2;      // (E, f, d)

 private:
  ModelDims dims_;
  TokenChoiceOptions options_;
  torch::Tensor aux_loss_;
};

// Reads capacity_factor (default 1.25), aux_loss_weight (default 0.01) and z_loss (default 0)
// into `options` (shared with the transition layer).
void read_token_choice_keys(const ConfigReader& cfg, TokenChoiceOptions& options);

// Config keys, type "switch": n_experts, expert_size (integer or "flop_matched": f = d_ff),
// d_ff, capacity_factor, aux_loss_weight, z_loss.
FfnBuilder parse_switch(const ConfigReader& cfg, const ModelDims& dims);
// Type "top_k": the switch keys plus k (default 2, at most n_experts); "flop_matched":
// f = d_ff / k.
FfnBuilder parse_top_k(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
