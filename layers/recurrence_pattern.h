// Which earlier outputs a recurrence mixer reads: its pattern of offsets, and the
// cache-efficient variant that bounds what decoding must keep.
//
// A translation-invariant pattern is a strictly increasing f: position i (0-based) reads the
// outputs at i - f(m) for every m with f(m) <= i:
//   kth (order k): f(m) = m + 1 for m < k        (the k previous outputs)
//   pow2:          f(m) = 2^m                     (1, 2, 4, 8, ...)
//   square_plus_one: f(m) = m^2 + 1               (1, 2, 5, 10, 17, ...)
//   dense:         f(m) = m + 1                   (every earlier output)
// Cache-efficient (pow2 and square_plus_one; notes on the paper, section 2.5): with 1-based
// positions, token i reads S_i = { a_m ceil((i - f(m)) / a_m) : f(m) < i }, a_0 = 1,
// a_(m+1) = a_m ceil((f(m+1) - f(m)) / a_m): each ideal position i - f(m) is rounded up onto
// a lattice of step a_m. Then S_(i+1) is a subset of S_i and {i}, so after each token the
// cache holds only S_(i+1): O(log n) positions for pow2, O(sqrt n) for square_plus_one.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab {

class RecurrencePattern {
 public:
  enum class Kind { kth, pow2, square_plus_one, dense };

  RecurrencePattern(Kind kind, int64_t order, bool cache_efficient);

  Kind kind() const { return kind_; }
  bool cache_efficient() const { return cache_efficient_; }
  std::string name() const;  // "pow2", "kth(3)", "square_plus_one, cache-efficient", ...

  // f(m), m = 0, 1, ...: every offset not above `max_offset`, increasing.
  std::vector<int64_t> offsets(int64_t max_offset) const;
  // The earlier positions (0-based) position t reads, increasing.
  std::vector<int64_t> predecessors(int64_t t) const;
  // The training table for a sequence of n: (n, K) int64, row t = predecessors(t) padded
  // with -1, K the most any position has.
  torch::Tensor predecessor_table(int64_t n) const;
  // The positions a decoder must still hold after producing position t (all earlier ones
  // when the pattern can reach arbitrarily far back).
  std::vector<int64_t> retained_after(int64_t t) const;
  // Whether retained_after(t) is every position <= t (nothing is ever evicted).
  bool keeps_everything() const;

 private:
  Kind kind_;
  int64_t order_;
  bool cache_efficient_;
};

// The notes' closed form, 1-based: S_i for offsets f (increasing, f(0) >= 1) and lattice steps
// a (see lattice_steps); positions in [1, i - 1], increasing, without repeats.
std::vector<int64_t> cache_efficient_set(const std::vector<int64_t>& f,
                                         const std::vector<int64_t>& a, int64_t i);
// a_0 = 1, a_(m+1) = a_m ceil((f(m+1) - f(m)) / a_m), one per offset.
std::vector<int64_t> lattice_steps(const std::vector<int64_t>& f);

}  // namespace mixlab
