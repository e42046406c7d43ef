// Expert Choice routing (Zhou et al. 2022), grouped as in the MoT paper's baseline
// (llm-random ExpertChoiceFF with group_granular_moe_by_batch).
//
// Groups are g tokens at the same position in g consecutive sequences (the MoT grouping:
// x.view(B/g, g, S, d)); grouping within a sequence would leak the future. Per token, the
// router gives p_i = softmax over the E experts of x_i . W_r (float32). In every group each
// expert e takes the k = capacity_factor * g / E tokens with the highest p_{i,e} and
// y_i = sum over the experts e that took i of p_{i,e} W2_e relu(W1_e x_i). A token taken by
// no expert gets 0 (residual only). No auxiliary loss.
//
// Output LayerNorm (`output_norm`, on by default): the reference applies a LayerNorm (learned
// gain and shift over d) to the layer's output, `layer_norm_in_expert_choice: true` in every
// paper config, so the baseline is that layer. A token no expert took then gets the shift
// (0 at initialisation). It is not counted in the FLOPs (no matrix product, like the model's
// own LayerNorms); its 2 d parameters are.
#pragma once

#include "layers/ffn_layer.h"

namespace mixlab {

struct ExpertChoiceOptions {
  int64_t n_experts = 0;
  int64_t group_size = 0;
  int64_t expert_size = 0;
  int64_t k = 1;  // tokens per expert per group = capacity_factor * g / E
  // Multiply each expert output by the router probability (the definition). Not a config
  // key: off only in the test that compares with MoT's discrete mode, which has no gate.
  bool scale_by_probability = true;
  bool output_norm = true;  // LayerNorm on the output, as the reference
};

class ExpertChoiceImpl : public FfnLayerImpl {
 public:
  ExpertChoiceImpl(const ModelDims& dims, const ExpertChoiceOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  LayerCost cost() const override;

  torch::Tensor router;                       // (d, E), float32
  torch::Tensor w1;                           // (E, d, f)
  torch::Tensor w2;                           // (E, f, d)
  torch::nn::LayerNorm output_norm{nullptr};  // set when options.output_norm

 private:
  ModelDims dims_;
  ExpertChoiceOptions options_;
};

// Config keys: type "expert_choice", n_experts, group_size (must divide train.batch_size),
// capacity_factor (default 1; k = capacity_factor g / E must be a positive integer <= g),
// expert_size (integer or "flop_matched": f = d_ff g / (E k) = d_ff / capacity_factor), d_ff,
// output_norm (default true).
FfnBuilder parse_expert_choice(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
