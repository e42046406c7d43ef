// A diagonal state-space mixer, the first-order gated recurrence: per channel
//   y_t = a_t y_(t-1) + (1 - a_t) v_t,   a_t = sigmoid(x_t W_a + b),
// i.e. A = diag(1 - a), B = diag(a) one below the diagonal, per channel. Its coefficients
// depend on the input through the gate, not on queries and keys, so it has a value
// projection "value", a gate "gate" (W_a, b) and the output projection "proj" (the head
// count does not matter to a per-channel recurrence). Decoding keeps y_(t-1): O(1).
#pragma once

#include "experiments/config_reader.h"
#include "layers/mixer.h"

namespace mixlab {

class DiagonalSsmImpl : public TokenMixerImpl {
 public:
  explicit DiagonalSsmImpl(const MixerDims& dims);
  // dense: one (S x S) bidiagonal solve per channel; sparse: the scan, O(S) per channel.
  torch::Tensor mix(const torch::Tensor& x, MixForm form) override;
  std::unique_ptr<MixerCache> new_cache(int64_t batch) const override;
  torch::Tensor step(const torch::Tensor& x, MixerCache& cache) override;
  double forward_flops_per_token() const override;

 private:
  MixerDims dims_;
  torch::nn::Linear value_{nullptr}, gate_{nullptr}, proj_{nullptr};
};

// Config keys: type "diagonal_ssm" (no others).
MixerBuilder parse_diagonal_ssm(const ConfigReader& cfg, const MixerDims& dims);

}  // namespace mixlab
