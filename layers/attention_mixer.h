// The default mixer: causal multi-head softmax attention, A = softmax(q k^T / sqrt(d_h)) over
// every position <= i, B = 0. Exactly the block's original attention (the same parameters,
// names "qkv" and "proj", initialisation and kernels), so configs without a `mixer` key
// train as before.
#pragma once

#include "experiments/config_reader.h"
#include "layers/mixer.h"

namespace mixlab {

class AttentionMixerImpl : public TokenMixerImpl {
 public:
  explicit AttentionMixerImpl(const MixerDims& dims);
  // dense: the causal attention kernel (experiments/causal_attention.h); sparse: the
  // coefficients of every earlier position through the sparse substitution (B = 0), which
  // only the tests use.
  torch::Tensor mix(const torch::Tensor& x, MixForm form) override;
  std::unique_ptr<MixerCache> new_cache(int64_t batch) const override;
  torch::Tensor step(const torch::Tensor& x, MixerCache& cache) override;
  double forward_flops_per_token() const override;

 private:
  MixerDims dims_;
  HeadProjections heads_;
};

// Softmax attention over a window table: q, k, v (B, H, S, hd), positions (S, K) with -1 for
// unused slots -> (B, H, S, hd); the sparse form of attention and local attention.
torch::Tensor attend_indexed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& positions);
// Row i: i - w + 1, ..., i (those >= 0), padded with -1: (n, min(w, n)).
torch::Tensor window_table(int64_t n, int64_t window);
// One decoding step of softmax attention over cached `positions`: q (B, H, hd) -> (B, H, hd).
torch::Tensor attend_cached(const torch::Tensor& q, const PositionCache& cache,
                            const std::vector<int64_t>& positions);

// Config keys: type "attention" (no others).
MixerBuilder parse_attention_mixer(const ConfigReader& cfg, const MixerDims& dims);

}  // namespace mixlab
