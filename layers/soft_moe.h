// Soft MoE (Puigcerver et al. 2023), grouped across sequences so that it stays causal.
//
// The paper mixes all tokens of a sequence (or image), which in a decoder would leak the
// future. Here, like MoT, a group is g tokens at the same position in g consecutive
// sequences. With E experts of p slots each and phi (d x E p, float32), per group:
//   logits L_{i,s} = x_i . phi_s
//   dispatch D_{i,s} = softmax over the group's tokens i of L_{i,s}     (per slot s)
//   combine  C_{i,s} = softmax over all E p slots s of L_{i,s}          (per token i)
//   slot input  x~_s = sum_i D_{i,s} x_i;  slot output  y~_s = W2_e relu(W1_e x~_s), e = s / p
//   y_i = sum_s C_{i,s} y~_s
// Without the paper's L2 normalisation of x and phi (a large-scale stabiliser; at this size
// the layer is the plain formula). MoT is the same with one slot per expert and the dispatch
// weights reused for combining instead of a softmax over slots.
#pragma once

#include "layers/ffn_layer.h"

namespace mixlab {

struct SoftMoeOptions {
  int64_t n_experts = 0;
  int64_t slots_per_expert = 1;
  int64_t group_size = 0;
  int64_t expert_size = 0;
};

class SoftMoeImpl : public FfnLayerImpl {
 public:
  SoftMoeImpl(const ModelDims& dims, const SoftMoeOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  LayerCost cost() const override;

  torch::Tensor phi;  // (d, E p), float32; slot s belongs to expert s / p
  torch::Tensor w1;   // (E, d, f)
  torch::Tensor w2;   // (E, f, d)

 private:
  ModelDims dims_;
  SoftMoeOptions options_;
};

// Config keys: type "soft_moe", n_experts, slots_per_expert (default 1), group_size (must
// divide train.batch_size), expert_size (integer or "flop_matched": f = d_ff g / (E p)), d_ff.
FfnBuilder parse_soft_moe(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
