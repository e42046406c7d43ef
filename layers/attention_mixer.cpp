#include "layers/attention_mixer.h"

#include <cmath>

#include "experiments/causal_attention.h"
#include "layers/structured_mix.h"

namespace mixlab {

AttentionMixerImpl::AttentionMixerImpl(const MixerDims& dims) : dims_(dims), heads_(*this, dims) {}

torch::Tensor window_table(int64_t n, int64_t window) {
  const int64_t width = std::min(window, n);
  auto i = torch::arange(n, torch::kLong).unsqueeze(1);
  auto j = i - (width - 1) + torch::arange(width, torch::kLong).unsqueeze(0);
  return torch::where(j < 0, torch::full_like(j, -1), j);
}

torch::Tensor attend_indexed(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& positions) {
  const int64_t b = q.size(0), h = q.size(1), s = q.size(2), hd = q.size(3);
  auto flat = [&](const torch::Tensor& t) { return t.reshape({b * h, s, hd}); };
  auto scores =
      (flat(q).unsqueeze(2) * gather_positions(flat(k), positions)).sum(-1) / std::sqrt(double(hd));
  auto weights = masked_softmax(scores, positions);
  auto none = torch::empty({s, 0}, torch::kLong);
  auto y = structured_mix_sparse(flat(v), weights, positions, weights.narrow(2, 0, 0), none);
  return y.view({b, h, s, hd});
}

torch::Tensor AttentionMixerImpl::mix(const torch::Tensor& x, MixForm form) {
  auto qkv = heads_.split(x);
  if (form == MixForm::sparse)
    return heads_.merge(attend_indexed(qkv[0], qkv[1], qkv[2], window_table(x.size(1), x.size(1))));
  return heads_.merge(causal_attention(qkv[0], qkv[1], qkv[2]));
}

std::unique_ptr<MixerCache> AttentionMixerImpl::new_cache(int64_t) const {
  return std::make_unique<PositionCache>();
}

torch::Tensor attend_cached(const torch::Tensor& q, const PositionCache& cache,
                            const std::vector<int64_t>& positions) {
  auto [keys, values] = cache.gather(positions);  // (B, H, m, hd)
  auto scores = cached_scores(q, keys) / std::sqrt(double(q.size(-1)));
  return cached_weighted_sum(torch::softmax(scores, -1), values);
}

torch::Tensor AttentionMixerImpl::step(const torch::Tensor& x, MixerCache& base) {
  auto& cache = dynamic_cast<PositionCache&>(base);
  auto qkv = heads_.split_step(x);
  const int64_t t = cache.position++;
  cache.add(t, qkv[1], qkv[2]);
  std::vector<int64_t> positions(t + 1);
  for (int64_t p = 0; p <= t; ++p) positions[p] = p;
  return heads_.merge_step(attend_cached(qkv[0], cache, positions));
}

double AttentionMixerImpl::forward_flops_per_token() const {
  // Scores and weighted values over all S keys (the causal half is not subtracted).
  return heads_.flops_per_token() + 4 * double(dims_.seq_len) * double(dims_.d_model);
}

MixerBuilder parse_attention_mixer(const ConfigReader&, const MixerDims& dims) {
  return [dims] { return std::make_shared<AttentionMixerImpl>(dims); };
}

}  // namespace mixlab
