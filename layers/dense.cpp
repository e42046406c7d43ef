#include "layers/dense.h"

namespace mixlab {

DenseFfnImpl::DenseFfnImpl(const ModelDims& dims, int64_t d_ff)
    : d_model_(dims.d_model), d_ff_(d_ff) {
  w1 = register_parameter("w1", torch::empty({d_model_, d_ff_}));
  w2 = register_parameter("w2", torch::empty({d_ff_, d_model_}));
  init_gpt2(w1, false, dims.n_layers);
  init_gpt2(w2, true, dims.n_layers);
}

torch::Tensor DenseFfnImpl::forward(const torch::Tensor& x) {
  return torch::matmul(fast_relu(torch::matmul(x, w1)), w2);
}

LayerCost DenseFfnImpl::cost() const {
  LayerCost c;
  c.params_total = c.params_active = 2 * d_model_ * d_ff_;
  c.forward_flops = 4.0 * double(d_model_) * double(d_ff_);
  return c;
}

FfnBuilder parse_dense(const ConfigReader& cfg, const ModelDims& dims) {
  const int64_t d_ff = cfg.get_positive_int("d_ff", 4 * dims.d_model);
  return [dims, d_ff] { return std::make_shared<DenseFfnImpl>(dims, d_ff); };
}

}  // namespace mixlab
