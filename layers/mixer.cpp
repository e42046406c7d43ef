#include "layers/mixer.h"

#include <algorithm>

#include "layers/ffn_layer.h"

namespace mixlab {

HeadProjections::HeadProjections(torch::nn::Module& module, const MixerDims& dims)
    : n_heads(dims.n_heads), d_model(dims.d_model) {
  qkv = module.register_module("qkv", torch::nn::Linear(dims.d_model, 3 * dims.d_model));
  proj = module.register_module("proj", torch::nn::Linear(dims.d_model, dims.d_model));
  init_gpt2(qkv->weight, false, dims.n_layers);
  init_gpt2(proj->weight, true, dims.n_layers);
  torch::NoGradGuard no_grad;
  qkv->bias.zero_();
  proj->bias.zero_();
}

std::vector<torch::Tensor> HeadProjections::split(const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), h = n_heads;
  auto qkv_heads = qkv(x).view({b, s, 3, h, d_model / h}).permute({2, 0, 3, 1, 4});
  return {qkv_heads[0], qkv_heads[1], qkv_heads[2]};  // each (B, H, S, hd)
}

std::vector<torch::Tensor> HeadProjections::split_step(const torch::Tensor& x) {
  auto qkv_heads = qkv(x).view({x.size(0), 3, n_heads, d_model / n_heads});
  return {qkv_heads.select(1, 0), qkv_heads.select(1, 1), qkv_heads.select(1, 2)};
}

torch::Tensor HeadProjections::merge(const torch::Tensor& y) {
  return proj(y.transpose(1, 2).reshape({y.size(0), y.size(2), d_model}));
}

torch::Tensor HeadProjections::merge_step(const torch::Tensor& y) {
  return proj(y.reshape({y.size(0), d_model}));
}

double HeadProjections::flops_per_token() const {
  const double d = double(d_model);
  return 2 * d * 3 * d + 2 * d * d;
}

void PositionCache::add(int64_t position, const torch::Tensor& key, const torch::Tensor& value) {
  TORCH_CHECK(!holds(position), "position ", position, " is already cached");
  if (!keys_.defined()) {
    const auto shape = key.sizes();
    keys_ = torch::empty({shape[0], shape[1], 16, shape[2]}, key.options());
    values_ = torch::empty({shape[0], shape[1], 16, shape[2]}, value.options());
    for (int64_t s = 15; s >= 0; --s) free_slots_.push_back(s);
  }
  if (free_slots_.empty()) {
    const int64_t capacity = keys_.size(2);
    keys_ = torch::cat({keys_, torch::empty_like(keys_)}, 2);
    values_ = torch::cat({values_, torch::empty_like(values_)}, 2);
    for (int64_t s = 2 * capacity - 1; s >= capacity; --s) free_slots_.push_back(s);
  }
  const int64_t slot = free_slots_.back();
  free_slots_.pop_back();
  slot_of_[position] = slot;
  keys_.select(2, slot).copy_(key);
  values_.select(2, slot).copy_(value);
}

void PositionCache::evict(int64_t position) {
  auto it = slot_of_.find(position);
  TORCH_CHECK(it != slot_of_.end(), "position ", position, " is not cached");
  free_slots_.push_back(it->second);
  slot_of_.erase(it);
  ++evictions_;
}

void PositionCache::retain(const std::vector<int64_t>& positions) {
  std::vector<int64_t> drop;
  for (const auto& [position, slot] : slot_of_)
    if (std::find(positions.begin(), positions.end(), position) == positions.end())
      drop.push_back(position);
  for (int64_t p : drop) evict(p);
}

std::pair<torch::Tensor, torch::Tensor> PositionCache::gather(
    const std::vector<int64_t>& positions) const {
  // Nothing evicted and positions 0..m-1 (attention, the dense recurrence): slot p holds
  // position p, and a view does, without copying the whole cache every token.
  bool leading = evictions_ == 0;
  for (size_t i = 0; leading && i < positions.size(); ++i) leading = positions[i] == int64_t(i);
  if (leading) {
    const int64_t m = int64_t(positions.size());
    return {keys_.narrow(2, 0, m), values_.narrow(2, 0, m)};
  }
  std::vector<int64_t> slots;
  slots.reserve(positions.size());
  for (int64_t p : positions) {
    auto it = slot_of_.find(p);
    TORCH_CHECK(it != slot_of_.end(), "position ", p, " was evicted from the cache");
    slots.push_back(it->second);
  }
  auto index = torch::tensor(slots, torch::kLong).to(keys_.device());
  return {keys_.index_select(2, index), values_.index_select(2, index)};
}

std::vector<int64_t> PositionCache::held_positions() const {
  std::vector<int64_t> out;
  for (const auto& [position, slot] : slot_of_) out.push_back(position);
  std::sort(out.begin(), out.end());
  return out;
}

torch::Tensor cached_scores(const torch::Tensor& q, const torch::Tensor& keys) {
  const int64_t b = keys.size(0), h = keys.size(1), m = keys.size(2), hd = keys.size(3);
  return torch::bmm(keys.reshape({b * h, m, hd}), q.reshape({b * h, hd, 1})).view({b, h, m});
}

torch::Tensor cached_weighted_sum(const torch::Tensor& weights, const torch::Tensor& values) {
  const int64_t b = values.size(0), h = values.size(1), m = values.size(2), hd = values.size(3);
  return torch::bmm(weights.reshape({b * h, 1, m}), values.reshape({b * h, m, hd}))
      .view({b, h, hd});
}

}  // namespace mixlab
