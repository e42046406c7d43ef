// Local (sliding-window) attention: softmax(q k^T / sqrt(d_h)) over the `window` positions
// (i - window, i], B = 0. Decoding keeps the last `window` keys and values: O(w) time and
// cache per token.
#pragma once

#include "experiments/config_reader.h"
#include "layers/mixer.h"

namespace mixlab {

class LocalAttentionImpl : public TokenMixerImpl {
 public:
  LocalAttentionImpl(const MixerDims& dims, int64_t window);
  // dense: the (S x S) scores with the band mask; sparse: the window's scores only.
  torch::Tensor mix(const torch::Tensor& x, MixForm form) override;
  std::unique_ptr<MixerCache> new_cache(int64_t batch) const override;
  torch::Tensor step(const torch::Tensor& x, MixerCache& cache) override;
  double forward_flops_per_token() const override;

 private:
  MixerDims dims_;
  int64_t window_;
  HeadProjections heads_;
};

// Config keys: type "local_attention", window (required, >= 1).
MixerBuilder parse_local_attention(const ConfigReader& cfg, const MixerDims& dims);

}  // namespace mixlab
