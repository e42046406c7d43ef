#include "experiments/causal_attention.h"

#include <ATen/Parallel.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "layers/torch_compat.h"

namespace mixlab {

namespace {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using Map = Eigen::Map<RowMatrix<T>>;

// probs (B, H, S, S) and out (B, H, S, D) from contiguous q, k, v.
template <class T>
void attention_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       torch::Tensor& probs, torch::Tensor& out) {
  const int64_t bh = q.size(0) * q.size(1), s = q.size(2), d = q.size(3);
  const T scale = T(1) / std::sqrt(T(d));
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  T* pp = probs.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      ConstMap<T> Q(qp + i * s * d, s, d), K(kp + i * s * d, s, d), V(vp + i * s * d, s, d);
      Map<T> P(pp + i * s * s, s, s), O(op + i * s * d, s, d);
      P.noalias() = (Q * K.transpose()) * scale;
      for (int64_t r = 0; r < s; ++r) {
        // Row r attends to columns 0..r only.
        auto row = P.row(r).head(r + 1);
        const T m = row.maxCoeff();
        row = (row.array() - m).exp();
        row /= row.sum();
        P.row(r).tail(s - r - 1).setZero();
      }
      O.noalias() = P * V;
    }
  });
}

template <class T>
void attention_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& probs, const torch::Tensor& grad_out,
                        torch::Tensor& dq, torch::Tensor& dk, torch::Tensor& dv) {
  const int64_t bh = q.size(0) * q.size(1), s = q.size(2), d = q.size(3);
  const T scale = T(1) / std::sqrt(T(d));
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    RowMatrix<T> dP(s, s);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t o = i * s * d;
      ConstMap<T> Q(q.data_ptr<T>() + o, s, d), K(k.data_ptr<T>() + o, s, d),
          V(v.data_ptr<T>() + o, s, d), dO(grad_out.data_ptr<T>() + o, s, d);
      ConstMap<T> P(probs.data_ptr<T>() + i * s * s, s, s);
      Map<T> dQ(dq.data_ptr<T>() + o, s, d), dK(dk.data_ptr<T>() + o, s, d),
          dV(dv.data_ptr<T>() + o, s, d);
      dV.noalias() = P.transpose() * dO;
      dP.noalias() = dO * V.transpose();
      // Softmax backward per row: dS = P * (dP - sum_j dP_j P_j); masked entries have P = 0.
      for (int64_t r = 0; r < s; ++r) {
        const T dot = dP.row(r).dot(P.row(r));
        dP.row(r) = (P.row(r).array() * (dP.row(r).array() - dot)).matrix() * scale;
      }
      dQ.noalias() = dP * K;
      dK.noalias() = dP.transpose() * Q;
    }
  });
}

class CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in) {
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const int64_t s = q.size(2);
    auto probs = torch::empty({q.size(0), q.size(1), s, s}, q.options());
    auto out = torch::empty_like(q);
    if (q.scalar_type() == torch::kDouble)
      attention_forward<double>(q, k, v, probs, out);
    else
      attention_forward<float>(q, k, v, probs, out);
    ctx->save_for_backward({q, k, v, probs});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto grad_out = grads[0].contiguous();
    auto dq = torch::empty_like(saved[0]), dk = torch::empty_like(saved[1]),
         dv = torch::empty_like(saved[2]);
    if (grad_out.scalar_type() == torch::kDouble)
      attention_backward<double>(saved[0], saved[1], saved[2], saved[3], grad_out, dq, dk, dv);
    else
      attention_backward<float>(saved[0], saved[1], saved[2], saved[3], grad_out, dq, dk, dv);
    return {dq, dk, dv};
  }
};

}  // namespace

torch::Tensor causal_attention_cpu_kernel(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v) {
  TORCH_CHECK(q.device().is_cpu() && q.dim() == 4, "CPU attention kernel: (B, H, S, D) on CPU");
  TORCH_CHECK(q.scalar_type() == torch::kFloat || q.scalar_type() == torch::kDouble,
              "CPU attention kernel: float32 or float64");
  return CausalAttentionFunction::apply(q, k, v);
}

torch::Tensor causal_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                         const torch::Tensor& v) {
  const int64_t s = q.size(-2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  auto future =
      torch::ones({s, s}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v) {
  if (compat::has_fused_attention()) return compat::fused_causal_attention(q, k, v);
  if (q.device().is_cpu() &&
      (q.scalar_type() == torch::kFloat || q.scalar_type() == torch::kDouble))
    return causal_attention_cpu_kernel(q, k, v);
  return causal_attention_reference(q, k, v);
}

}  // namespace mixlab
