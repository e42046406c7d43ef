// Mixture of Tokens (Antoniak et al., arXiv 2310.15961), as in the reference code
// (llm-random ContinuousMoeBaseClass, sparsity_dim = 0).
//
// Groups are g tokens at the same position in g consecutive sequences of the batch, so no
// token ever sees another position (the layer stays causal). Per group and expert e:
//   w_{i,e} = softmax over the group i of (x_i . c_e) / T      (controller c: d x E, fp32)
//   m_e = sum_i w_{i,e} x_i,   o_e = W2_e relu(W1_e m_e),   y_i = sum_e w_{i,e} o_e
// The temperature is fixed, or learnable as T = exp(tau) (one scalar per layer).
// Evaluation mode "discrete" replaces the weights by the one-hot argmax over the group, per
// expert: no token content crosses examples (Expert Choice with k = 1).
#pragma once

#include "layers/ffn_layer.h"

namespace mixlab {

// Far below it the controller's logits / T overflow float32 and the run diverges with a NaN
// loss that reads like a learning-rate problem (measured: 1e-30 at step 2 at d_model 64, while
// 1e-20 and 1e-4 train); 1e-4 is already an argmax for any logit gap above 1e-3. Validation
// refuses a fixed or initial temperature below it; a run whose learned temperature falls below
// it names the temperature when it diverges.
constexpr double kMinTemperature = 1e-4;

struct MotOptions {
  int64_t n_experts = 0;
  int64_t group_size = 0;
  int64_t expert_size = 0;
  double temperature = 1.0;  // fixed T, or T0 = exp(tau_0) when learnable
  bool learnable_temperature = false;
  int64_t learn_temperature_from_step = 0;
};

class MotImpl : public FfnLayerImpl {
 public:
  MotImpl(const ModelDims& dims, const MotOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  void on_step(int64_t step) override;
  std::vector<std::string> eval_modes() const override { return {"mixed", "discrete"}; }
  void set_eval_mode(const std::string& mode) override { discrete_ = mode == "discrete"; }
  LayerCost cost() const override;

  // The current temperature as a 0-d tensor (a view of exp(tau) when learnable).
  torch::Tensor temperature() const;
  // Merge/emit weights for x of shape (G, S, g, d): (G, S, g, E), softmax over g.
  torch::Tensor token_weights(const torch::Tensor& grouped) const;

  torch::Tensor controller;       // (d, E), kept in float32
  torch::Tensor w1;               // (E, d, f)
  torch::Tensor w2;               // (E, f, d)
  torch::Tensor log_temperature;  // () when learnable

 private:
  // Group size 1: the softmax over one token is 1, so the layer is one FFN of width E*f.
  torch::Tensor forward_groups_of_one(const torch::Tensor& x);

  ModelDims dims_;
  MotOptions options_;
  bool temperature_learning_ = false;
  bool discrete_ = false;
};

// Config keys: type "mot", n_experts, group_size, expert_size (integer or "flop_matched",
// which needs d_ff), d_ff, temperature (a positive number or "learnable"),
// initial_temperature (for "learnable", default 1), learn_temperature_from_step (default 0).
FfnBuilder parse_mot(const ConfigReader& cfg, const ModelDims& dims);
// The options behind parse_mot (shared with the transition layer, which has the same keys).
MotOptions read_mot_options(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
