// The interface every token mixer implements: the part of a block that moves information
// between positions of a sequence (attention and its structured relatives).
//
// Every mixer is causal and of the form Y = (I - B)^-1 A V per head (A lower-triangular,
// B strictly lower-triangular; "Trading Complexity for Expressivity Through Structured
// Generalized Linear Token Mixing", ICML 2026). It has two ways to run:
//   - training, parallel over the sequence: forward(x) on (batch, seq, d_model);
//   - decoding, one token at a time: step(x_t, cache) with an explicit cache object holding
//     what the mixer keeps of the past. Feeding a sequence token by token through step gives
//     the same outputs as forward on the whole sequence.
// A mixer is a sibling of a feed-forward layer: one file pair each in layers/, built from
// its JSON config by layers/registry.cpp.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace mixlab {

// What a mixer needs to know about the model around it.
struct MixerDims {
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t seq_len = 0;  // the training length: FLOPs per token are counted at it
  int64_t n_layers = 0;
};

// How training computes Y = (I - B)^-1 A V. `dense`: the masked (S x S) coefficient matrices
// and a unit lower-triangular solve (cheap at small S); `sparse`: only the coefficients of
// the pattern's positions, forward substitution over them (O(S |P|)); `automatic`: the
// mixer's choice for the length at hand. Both give the same values and gradients.
enum class MixForm { automatic, dense, sparse };

// What a mixer keeps of the past while decoding. `position` is the number of tokens seen.
class MixerCache {
 public:
  virtual ~MixerCache() = default;
  // The past positions (or states) held per sequence and head: what the cache's memory
  // grows with.
  virtual int64_t entries() const = 0;
  int64_t position = 0;
};

class TokenMixerImpl : public torch::nn::Module {
 public:
  ~TokenMixerImpl() override = default;

  // (B, S, d) -> (B, S, d), causal.
  torch::Tensor forward(const torch::Tensor& x) { return mix(x, MixForm::automatic); }
  virtual torch::Tensor mix(const torch::Tensor& x, MixForm form) = 0;

  // An empty cache for decoding `batch` sequences from position 0.
  virtual std::unique_ptr<MixerCache> new_cache(int64_t batch) const = 0;
  // One token of each sequence: x (B, d) at position cache.position -> (B, d); advances the
  // cache by one position.
  virtual torch::Tensor step(const torch::Tensor& x, MixerCache& cache) = 0;

  // Forward FLOPs per token (2 x multiply-adds) at the training length, projections
  // included; as for attention, the mixing is counted at the full length.
  virtual double forward_flops_per_token() const = 0;
};

using TokenMixer = std::shared_ptr<TokenMixerImpl>;
// A parsed, validated mixer config: call it to build the mixer (allocates the weights).
using MixerBuilder = std::function<TokenMixer()>;

// ---- shared by the mixers ------------------------------------------------------------------

// The q, k, v and output projections of a multi-head mixer, registered on `module` as "qkv"
// (d -> 3d, with bias) and "proj" (d -> d, with bias) exactly as the original attention
// block had them, so its parameter names, order and initialisation (GPT-2; proj writes into
// the residual stream; zero biases) are unchanged.
struct HeadProjections {
  HeadProjections(torch::nn::Module& module, const MixerDims& dims);
  // x (B, S, d) -> q, k, v each (B, H, S, d/H).
  std::vector<torch::Tensor> split(const torch::Tensor& x);
  // One token x (B, d) -> q, k, v each (B, H, d/H).
  std::vector<torch::Tensor> split_step(const torch::Tensor& x);
  // y (B, H, S, d/H) -> (B, S, d) through the output projection.
  torch::Tensor merge(const torch::Tensor& y);
  // y (B, H, d/H) -> (B, d) through the output projection.
  torch::Tensor merge_step(const torch::Tensor& y);
  // 2 d 3d + 2 d d: the projections' forward FLOPs per token.
  double flops_per_token() const;

  int64_t n_heads, d_model;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};

// Per-position decoding state shared by the attention-like mixers: for each cached position
// a key and a value (attention: v; recurrences: the output y), each (B, H, d/H), in slots
// of preallocated buffers that grow by doubling. Positions leave when the mixer no longer
// needs them, so entries() is the cache a mixer really keeps.
class PositionCache : public MixerCache {
 public:
  int64_t entries() const override { return int64_t(slot_of_.size()); }
  bool holds(int64_t position) const { return slot_of_.count(position) != 0; }
  void add(int64_t position, const torch::Tensor& key, const torch::Tensor& value);
  void evict(int64_t position);
  // Keeps only `positions` (each must be held).
  void retain(const std::vector<int64_t>& positions);
  // Keys and values of `positions` (each held), in that order: each (B, H, m, d/H).
  std::pair<torch::Tensor, torch::Tensor> gather(const std::vector<int64_t>& positions) const;
  std::vector<int64_t> held_positions() const;

 private:
  torch::Tensor keys_, values_;  // (B, H, capacity, d/H)
  std::unordered_map<int64_t, int64_t> slot_of_;
  std::vector<int64_t> free_slots_;  // taken from the back: slots fill 0, 1, 2, ...
  int64_t evictions_ = 0;
};

// Reading a cache in one decoding step, by batched products over (batch x head) on strided
// views of the cache's buffers (torch::matmul would first copy a 4-D view whole):
// q (B, H, hd) . keys (B, H, m, hd) -> (B, H, m), and weights (B, H, m) x values
// (B, H, m, hd) -> (B, H, hd).
torch::Tensor cached_scores(const torch::Tensor& q, const torch::Tensor& keys);
torch::Tensor cached_weighted_sum(const torch::Tensor& weights, const torch::Tensor& values);

}  // namespace mixlab
