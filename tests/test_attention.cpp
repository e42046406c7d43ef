// The CPU causal attention kernel against the plain composition, values and gradients.
#include <doctest/doctest.h>

#include "experiments/causal_attention.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::max_abs_diff;

TEST_CASE("CPU attention kernel equals matmul-mask-softmax-matmul, forward and backward") {
  torch::manual_seed(11);
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const double tol = dtype == torch::kDouble ? 1e-12 : 1e-5;
    auto opts = torch::TensorOptions().dtype(dtype);
    // A non-contiguous q, as the model passes it (a permuted view of the qkv projection).
    auto qkv = torch::randn({3, 2, 7, 3, 5}, opts).permute({0, 1, 3, 2, 4});
    auto q = qkv[0].clone().requires_grad_(true), k = qkv[1].clone().requires_grad_(true),
         v = qkv[2].clone().requires_grad_(true);
    auto upstream = torch::randn({2, 3, 7, 5}, opts);
    auto ours = causal_attention_cpu_kernel(q.transpose(2, 3).transpose(2, 3), k, v);
    (ours * upstream).sum().backward();
    auto gq = q.grad().clone(), gk = k.grad().clone(), gv = v.grad().clone();
    q.grad().zero_();
    k.grad().zero_();
    v.grad().zero_();
    auto reference = causal_attention_reference(q, k, v);
    (reference * upstream).sum().backward();
    CHECK(max_abs_diff(ours, reference) < tol);
    CHECK(max_abs_diff(gq, q.grad()) < tol);
    CHECK(max_abs_diff(gk, k.grad()) < tol);
    CHECK(max_abs_diff(gv, v.grad()) < tol);
    // The first position attends to itself only.
    CHECK(max_abs_diff(ours.select(2, 0), v.select(2, 0)) < tol);
  }
}
