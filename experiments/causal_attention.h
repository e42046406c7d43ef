// Causal scaled-dot-product attention over (B, H, S, head_dim), by the fastest route at hand:
// LibTorch 2.x's fused kernels; on LibTorch 1.13's CPU, a kernel of our own.
//
// Why our own on 1.13: its CPU attention is matmul-softmax-matmul through bmm, which on an
// OpenBLAS build loops over every (batch, head) with a select and a tiny GEMM, thousands of
// dispatcher calls per step; at the tiny shapes of CPU sweeps those dominate the step. The
// kernel here does one (batch, head) per task with Eigen, forward and backward, in one call.
#pragma once

#include <torch/torch.h>

namespace mixlab {

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v);

// The CPU kernel itself (float32 or float64, any LibTorch), exposed for tests.
torch::Tensor causal_attention_cpu_kernel(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v);
// The plain composition (matmul, mask, softmax, matmul): the reference.
torch::Tensor causal_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                         const torch::Tensor& v);

}  // namespace mixlab
