#include "layers/local_attention.h"

#include <cmath>
#include <limits>

#include "layers/attention_mixer.h"
#include "layers/structured_mix.h"

namespace mixlab {

LocalAttentionImpl::LocalAttentionImpl(const MixerDims& dims, int64_t window)
    : dims_(dims), window_(window), heads_(*this, dims) {}

torch::Tensor LocalAttentionImpl::mix(const torch::Tensor& x, MixForm form) {
  auto qkv = heads_.split(x);
  const int64_t s = x.size(1);
  auto table = window_table(s, window_);
  // The sparse form pays off once the window is a small part of the sequence.
  if (form == MixForm::sparse || (form == MixForm::automatic && 4 * window_ < s))
    return heads_.merge(attend_indexed(qkv[0], qkv[1], qkv[2], table));
  auto scores =
      torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) / std::sqrt(double(qkv[0].size(-1)));
  auto outside = index_mask(table, s).logical_not().to(x.device());
  auto weights =
      torch::softmax(scores.masked_fill(outside, -std::numeric_limits<double>::infinity()), -1);
  return heads_.merge(torch::matmul(weights, qkv[2]));
}

std::unique_ptr<MixerCache> LocalAttentionImpl::new_cache(int64_t) const {
  return std::make_unique<PositionCache>();
}

torch::Tensor LocalAttentionImpl::step(const torch::Tensor& x, MixerCache& base) {
  auto& cache = dynamic_cast<PositionCache&>(base);
  auto qkv = heads_.split_step(x);
  const int64_t t = cache.position++;
  if (cache.holds(t - window_)) cache.evict(t - window_);
  cache.add(t, qkv[1], qkv[2]);
  std::vector<int64_t> positions;
  for (int64_t p = std::max<int64_t>(0, t - window_ + 1); p <= t; ++p) positions.push_back(p);
  return heads_.merge_step(attend_cached(qkv[0], cache, positions));
}

double LocalAttentionImpl::forward_flops_per_token() const {
  return heads_.flops_per_token() +
         4 * double(std::min(window_, dims_.seq_len)) * double(dims_.d_model);
}

MixerBuilder parse_local_attention(const ConfigReader& cfg, const MixerDims& dims) {
  if (!cfg.has("window")) cfg.fail("window", "required for local_attention (a positive integer)");
  const int64_t window = cfg.get_positive_int("window", 0);
  return [dims, window] { return std::make_shared<LocalAttentionImpl>(dims, window); };
}

}  // namespace mixlab
