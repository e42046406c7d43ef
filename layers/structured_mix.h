// Y = (I - B)^-1 A V, the computation every token mixer reduces to, in its two forms.
//
// Shapes: G independent groups (batch x heads, or batch x channels for a per-channel
// recurrence), n positions, D channels per group.
//   dense:  A and B as (G, n, n) matrices (A lower-, B strictly lower-triangular); one
//           unit lower-triangular solve (linalg_solve_triangular, unitriangular=true) of
//           (I - B) Y = A V. O(n^2 D): for short sequences, where it is a few big kernels.
//   sparse: the nonzeros only, on index tables shared by the groups: row i of A has the
//           coefficients a_w[g, i, k] at columns a_idx[i, k], row i of B b_w[g, i, k] at
//           b_idx[i, k] (< i); -1 marks an unused slot. Forward substitution
//           y_i = sum_k a_w v_(a_idx) + sum_k b_w y_(b_idx), O(n (KA + KB) D), with its own
//           backward (a backward substitution over the same tables) on the CPU;
//           elsewhere (CUDA) the same substitution in tensor operations, one position at a
//           time. Both forms compute in float64 for float64 inputs, else in float32.
#pragma once

#include <torch/torch.h>

namespace mixlab {

torch::Tensor structured_mix_dense(const torch::Tensor& v, const torch::Tensor& a,
                                   const torch::Tensor& b);

torch::Tensor structured_mix_sparse(const torch::Tensor& v, const torch::Tensor& a_w,
                                    const torch::Tensor& a_idx, const torch::Tensor& b_w,
                                    const torch::Tensor& b_idx);

// The sparse form in tensor operations, one position at a time, autograd through them: any
// device (CUDA uses it), slow (O(n) small operations).
torch::Tensor structured_mix_sparse_by_operations(const torch::Tensor& v, const torch::Tensor& a_w,
                                                  const torch::Tensor& a_idx,
                                                  const torch::Tensor& b_w,
                                                  const torch::Tensor& b_idx);

// Rows of x (G, n, D) at the positions idx (n, K) -> (G, n, K, D); slots marked -1 read row 0
// (callers mask them).
torch::Tensor gather_positions(const torch::Tensor& x, const torch::Tensor& idx);

// Softmax over the last dim of scores (G, n, K) with slots where `idx` (n, K) is -1 excluded.
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& idx);

// An (n, n) bool mask, true at (i, idx[i, k]) for every used slot.
torch::Tensor index_mask(const torch::Tensor& idx, int64_t n);

}  // namespace mixlab
