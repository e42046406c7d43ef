#include "layers/diagonal_ssm.h"

#include "layers/ffn_layer.h"
#include "layers/structured_mix.h"

namespace mixlab {

namespace {

struct SsmState : MixerCache {
  torch::Tensor previous;  // y_(t-1), (B, d); undefined before the first token
  int64_t entries() const override { return previous.defined() ? 1 : 0; }
};

}  // namespace

DiagonalSsmImpl::DiagonalSsmImpl(const MixerDims& dims) : dims_(dims) {
  const int64_t d = dims.d_model;
  value_ = register_module("value", torch::nn::Linear(d, d));
  gate_ = register_module("gate", torch::nn::Linear(d, d));
  proj_ = register_module("proj", torch::nn::Linear(d, d));
  init_gpt2(value_->weight, false, dims.n_layers);
  init_gpt2(gate_->weight, false, dims.n_layers);
  init_gpt2(proj_->weight, true, dims.n_layers);
  torch::NoGradGuard no_grad;
  value_->bias.zero_();
  proj_->bias.zero_();
  // Gate biases spread over [0, 4]: a fresh layer's channels remember from about 2 to about
  // 50 tokens (a = 0.5 .. 0.98), rather than all forgetting at one rate.
  gate_->bias.copy_(torch::linspace(0, 4, d));
}

torch::Tensor DiagonalSsmImpl::mix(const torch::Tensor& x, MixForm form) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  // Channels become groups: (B, S, d) -> (B d, S, 1).
  auto per_channel = [&](const torch::Tensor& t) {
    return t.permute({0, 2, 1}).reshape({b * d, s, 1});
  };
  auto a = per_channel(torch::sigmoid(gate_(x)));
  auto v = per_channel(value_(x));
  torch::Tensor y;
  if (form == MixForm::dense) {
    auto a_flat = a.squeeze(-1);
    y = structured_mix_dense(v, torch::diag_embed(1 - a_flat),
                             torch::diag_embed(a_flat.narrow(1, 1, s - 1), /*offset=*/-1));
  } else {
    auto self = torch::arange(s, torch::kLong).unsqueeze(1);
    y = structured_mix_sparse(v, 1 - a, self, a, self - 1);  // position 0 has no predecessor
  }
  return proj_(y.view({b, d, s}).permute({0, 2, 1}));
}

std::unique_ptr<MixerCache> DiagonalSsmImpl::new_cache(int64_t) const {
  return std::make_unique<SsmState>();
}

torch::Tensor DiagonalSsmImpl::step(const torch::Tensor& x, MixerCache& base) {
  auto& state = dynamic_cast<SsmState&>(base);
  auto a = torch::sigmoid(gate_(x));
  auto y = (1 - a) * value_(x);
  if (state.previous.defined()) y = y + a * state.previous;
  state.previous = y;
  ++state.position;
  return proj_(y);
}

double DiagonalSsmImpl::forward_flops_per_token() const {
  const double d = double(dims_.d_model);
  return 3 * 2 * d * d + 4 * d;  // value, gate, output; the recurrence's 2 products per channel
}

MixerBuilder parse_diagonal_ssm(const ConfigReader&, const MixerDims& dims) {
  return [dims] { return std::make_shared<DiagonalSsmImpl>(dims); };
}

}  // namespace mixlab
