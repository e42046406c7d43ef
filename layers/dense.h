// The dense feed-forward baseline: y = W2 relu(W1 x), hidden size d_ff, no biases.
#pragma once

#include "layers/ffn_layer.h"

namespace mixlab {

class DenseFfnImpl : public FfnLayerImpl {
 public:
  DenseFfnImpl(const ModelDims& dims, int64_t d_ff);
  torch::Tensor forward(const torch::Tensor& x) override;
  LayerCost cost() const override;

  torch::Tensor w1;  // (d_model, d_ff)
  torch::Tensor w2;  // (d_ff, d_model)

 private:
  int64_t d_model_, d_ff_;
};

// Config keys: type "dense", d_ff (default 4 d_model).
FfnBuilder parse_dense(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
