// The structured recurrence mixer: each output reads its own value and the earlier *outputs*
// its pattern names (layers/recurrence_pattern.h). Per head, with P_i the pattern's earlier
// positions of i,
//   w_i = softmax over {i} and P_i of q_i . k_j / sqrt(d_h),
//   y_i = w_ii v_i + sum over j in P_i of w_ij y_j,
// so A = diag(w_ii) and B holds w_ij, j in P_i. The weights are convex, so y stays within the
// range of the values. (The paper leaves A and B's parameterisation open; this is the
// definition here.) Decoding keeps, per cached position, its key and its output.
#pragma once

#include <map>

#include "experiments/config_reader.h"
#include "layers/mixer.h"
#include "layers/recurrence_pattern.h"

namespace mixlab {

class RecurrenceImpl : public TokenMixerImpl {
 public:
  RecurrenceImpl(const MixerDims& dims, RecurrencePattern pattern);
  // dense: masked (S x S) softmax and a unit lower-triangular solve; sparse: the pattern's
  // scores only and forward substitution, O(S |P|). automatic: dense for the dense pattern,
  // sparse otherwise.
  torch::Tensor mix(const torch::Tensor& x, MixForm form) override;
  std::unique_ptr<MixerCache> new_cache(int64_t batch) const override;
  torch::Tensor step(const torch::Tensor& x, MixerCache& cache) override;
  double forward_flops_per_token() const override;
  const RecurrencePattern& pattern() const { return pattern_; }

 private:
  const torch::Tensor& table(int64_t n);

  MixerDims dims_;
  RecurrencePattern pattern_;
  HeadProjections heads_;
  std::map<int64_t, torch::Tensor> tables_;  // predecessor tables by sequence length
};

// Config keys: type "recurrence", pattern ("kth", "pow2", "square_plus_one", "dense";
// required), order (kth only, required, >= 1), cache_efficient (pow2 and square_plus_one,
// default false).
MixerBuilder parse_recurrence(const ConfigReader& cfg, const MixerDims& dims);

}  // namespace mixlab
