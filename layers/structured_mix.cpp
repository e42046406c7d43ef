#include "layers/structured_mix.h"

#include <ATen/Parallel.h>

#include <limits>

namespace mixlab {

namespace {

// Raw views of one call's tensors: v, y (G, n, D); weights (G, n, K); tables (n, K).
template <class T>
struct Problem {
  int64_t groups, n, d, ka, kb;
  const T *v, *aw, *bw;
  const int64_t *ai, *bi;
};

template <class T>
Problem<T> problem(const torch::Tensor& v, const torch::Tensor& a_w, const torch::Tensor& a_idx,
                   const torch::Tensor& b_w, const torch::Tensor& b_idx) {
  return {v.size(0),
          v.size(1),
          v.size(2),
          a_w.size(2),
          b_w.size(2),
          v.data_ptr<T>(),
          a_w.data_ptr<T>(),
          b_w.data_ptr<T>(),
          a_idx.data_ptr<int64_t>(),
          b_idx.data_ptr<int64_t>()};
}

template <class T>
void substitute_forward(const Problem<T>& p, T* y) {
  at::parallel_for(0, p.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const T* v = p.v + g * p.n * p.d;
      T* yg = y + g * p.n * p.d;
      for (int64_t i = 0; i < p.n; ++i) {
        T* yi = yg + i * p.d;
        for (int64_t c = 0; c < p.d; ++c) yi[c] = 0;
        for (int64_t k = 0; k < p.ka; ++k) {
          const int64_t j = p.ai[i * p.ka + k];
          if (j < 0) continue;
          const T w = p.aw[(g * p.n + i) * p.ka + k];
          const T* vj = v + j * p.d;
          for (int64_t c = 0; c < p.d; ++c) yi[c] += w * vj[c];
        }
        for (int64_t k = 0; k < p.kb; ++k) {
          const int64_t j = p.bi[i * p.kb + k];
          if (j < 0) continue;
          const T w = p.bw[(g * p.n + i) * p.kb + k];
          const T* yj = yg + j * p.d;
          for (int64_t c = 0; c < p.d; ++c) yi[c] += w * yj[c];
        }
      }
    }
  });
}

// The adjoint r = (I - B)^-T dY by backward substitution, then the gradients of every input.
template <class T>
void substitute_backward(const Problem<T>& p, const T* y, const T* grad_y, T* dv, T* daw, T* dbw) {
  at::parallel_for(0, p.groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> r(p.n * p.d);
    for (int64_t g = begin; g < end; ++g) {
      const T* v = p.v + g * p.n * p.d;
      const T* yg = y + g * p.n * p.d;
      T* dvg = dv + g * p.n * p.d;
      std::copy(grad_y + g * p.n * p.d, grad_y + (g + 1) * p.n * p.d, r.begin());
      std::fill(dvg, dvg + p.n * p.d, T(0));
      for (int64_t i = p.n - 1; i >= 0; --i) {
        const T* ri = r.data() + i * p.d;  // complete: every later row has added to it
        for (int64_t k = 0; k < p.kb; ++k) {
          const int64_t j = p.bi[i * p.kb + k];
          T& grad_w = dbw[(g * p.n + i) * p.kb + k];
          grad_w = 0;
          if (j < 0) continue;
          const T w = p.bw[(g * p.n + i) * p.kb + k];
          const T* yj = yg + j * p.d;
          T* rj = r.data() + j * p.d;
          for (int64_t c = 0; c < p.d; ++c) {
            grad_w += ri[c] * yj[c];
            rj[c] += w * ri[c];
          }
        }
        for (int64_t k = 0; k < p.ka; ++k) {
          const int64_t j = p.ai[i * p.ka + k];
          T& grad_w = daw[(g * p.n + i) * p.ka + k];
          grad_w = 0;
          if (j < 0) continue;
          const T w = p.aw[(g * p.n + i) * p.ka + k];
          const T* vj = v + j * p.d;
          T* dvj = dvg + j * p.d;
          for (int64_t c = 0; c < p.d; ++c) {
            grad_w += ri[c] * vj[c];
            dvj[c] += w * ri[c];
          }
        }
      }
    }
  });
}

class SparseMixFunction : public torch::autograd::Function<SparseMixFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& v_in,
                               const torch::Tensor& aw_in, const torch::Tensor& bw_in,
                               const torch::Tensor& a_idx_in, const torch::Tensor& b_idx_in) {
    auto v = v_in.contiguous(), a_w = aw_in.contiguous(), b_w = bw_in.contiguous();
    auto a_idx = a_idx_in.contiguous(), b_idx = b_idx_in.contiguous();
    auto y = torch::empty_like(v);
    if (v.scalar_type() == torch::kDouble)
      substitute_forward(problem<double>(v, a_w, a_idx, b_w, b_idx), y.data_ptr<double>());
    else
      substitute_forward(problem<float>(v, a_w, a_idx, b_w, b_idx), y.data_ptr<float>());
    ctx->save_for_backward({v, a_w, b_w, a_idx, b_idx, y});
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto s = ctx->get_saved_variables();
    const auto &v = s[0], &a_w = s[1], &b_w = s[2], &a_idx = s[3], &b_idx = s[4], &y = s[5];
    auto grad_y = grads[0].contiguous();
    auto dv = torch::empty_like(v), daw = torch::empty_like(a_w), dbw = torch::empty_like(b_w);
    if (v.scalar_type() == torch::kDouble)
      substitute_backward(problem<double>(v, a_w, a_idx, b_w, b_idx), y.data_ptr<double>(),
                          grad_y.data_ptr<double>(), dv.data_ptr<double>(), daw.data_ptr<double>(),
                          dbw.data_ptr<double>());
    else
      substitute_backward(problem<float>(v, a_w, a_idx, b_w, b_idx), y.data_ptr<float>(),
                          grad_y.data_ptr<float>(), dv.data_ptr<float>(), daw.data_ptr<float>(),
                          dbw.data_ptr<float>());
    return {dv, daw, dbw, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor structured_mix_sparse_by_operations(const torch::Tensor& v, const torch::Tensor& a_w,
                                                  const torch::Tensor& a_idx,
                                                  const torch::Tensor& b_w,
                                                  const torch::Tensor& b_idx) {
  auto used = [&](const torch::Tensor& w, const torch::Tensor& idx) {
    return w * (idx >= 0).to(w.device()).to(w.scalar_type());
  };
  auto aw = used(a_w, a_idx), bw = used(b_w, b_idx);
  auto a_cpu = a_idx.cpu(), b_cpu = b_idx.cpu();
  std::vector<torch::Tensor> ys;
  for (int64_t i = 0; i < v.size(1); ++i) {
    auto rows = a_cpu[i].clamp_min(0).to(v.device());
    auto y = (aw.select(1, i).unsqueeze(-1) * v.index_select(1, rows)).sum(1);
    for (int64_t k = 0; k < b_idx.size(1); ++k) {
      const int64_t j = b_cpu[i][k].item<int64_t>();
      if (j >= 0) y = y + bw.select(1, i).select(1, k).unsqueeze(-1) * ys[j];
    }
    ys.push_back(y);
  }
  return torch::stack(ys, 1);
}

namespace {
// float64 stays float64; everything else (bf16 from autocast) is solved in float32: the
// triangular solvers have no reduced-precision kernels, and errors would compound along the
// substitution.
torch::ScalarType solve_dtype(const torch::Tensor& v) {
  return v.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}
}  // namespace

torch::Tensor structured_mix_dense(const torch::Tensor& v, const torch::Tensor& a,
                                   const torch::Tensor& b) {
  const auto dtype = solve_dtype(v);
  auto av = torch::matmul(a.to(dtype), v.to(dtype));
  if (!b.defined()) return av;
  // unitriangular: the solver takes the diagonal as 1 and reads only the strictly lower part,
  // which of (I - B) is -B.
  return torch::linalg_solve_triangular(-b.to(dtype), av, /*upper=*/false, /*left=*/true,
                                        /*unitriangular=*/true);
}

torch::Tensor structured_mix_sparse(const torch::Tensor& v, const torch::Tensor& a_w,
                                    const torch::Tensor& a_idx, const torch::Tensor& b_w,
                                    const torch::Tensor& b_idx) {
  TORCH_CHECK(v.dim() == 3, "sparse mix: v is (G, n, D)");
  TORCH_CHECK(a_w.size(0) == v.size(0) && a_w.size(1) == v.size(1) && a_idx.size(0) == v.size(1) &&
                  a_idx.size(1) == a_w.size(2),
              "sparse mix: A's weights (G, n, K) and table (n, K) must match v");
  TORCH_CHECK(b_w.size(0) == v.size(0) && b_w.size(1) == v.size(1) && b_idx.size(0) == v.size(1) &&
                  b_idx.size(1) == b_w.size(2),
              "sparse mix: B's weights (G, n, K) and table (n, K) must match v");
  if (!v.device().is_cpu()) return structured_mix_sparse_by_operations(v, a_w, a_idx, b_w, b_idx);
  const auto dtype = solve_dtype(v);
  return SparseMixFunction::apply(v.to(dtype), a_w.to(dtype), b_w.to(dtype), a_idx.to(torch::kLong),
                                  b_idx.to(torch::kLong));
}

torch::Tensor gather_positions(const torch::Tensor& x, const torch::Tensor& idx) {
  const int64_t n = idx.size(0), k = idx.size(1);
  auto flat = idx.clamp_min(0).reshape({-1}).to(x.device());
  return x.index_select(1, flat).view({x.size(0), n, k, x.size(2)});
}

torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& idx) {
  auto unused = (idx < 0).to(scores.device());
  return torch::softmax(scores.masked_fill(unused, -std::numeric_limits<double>::infinity()), -1);
}

torch::Tensor index_mask(const torch::Tensor& idx, int64_t n) {
  auto mask = torch::zeros({n, n + 1}, torch::kBool);
  // Unused slots (-1) land in the extra last column, which is dropped.
  auto columns = torch::where(idx < 0, torch::full_like(idx, n), idx);
  mask.scatter_(1, columns, true);
  return mask.narrow(1, 0, n);
}

}  // namespace mixlab
