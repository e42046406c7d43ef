#include "experiments/model.h"

#include "experiments/causal_attention.h"
#include "experiments/init.h"

namespace mixlab {

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelConfig& config)
    : n_heads_(config.n_heads) {
  qkv_ = register_module("qkv", torch::nn::Linear(config.d_model, 3 * config.d_model));
  proj_ = register_module("proj", torch::nn::Linear(config.d_model, config.d_model));
  init_gpt2(qkv_->weight, false, config.n_layers);
  init_gpt2(proj_->weight, true, config.n_layers);
  torch::NoGradGuard no_grad;
  qkv_->bias.zero_();
  proj_->bias.zero_();
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), h = n_heads_;
  auto qkv = qkv_(x).view({b, s, 3, h, d / h}).permute({2, 0, 3, 1, 4});  // (3, B, H, S, hd)
  auto y = causal_attention(qkv[0], qkv[1], qkv[2]);                      // (B, H, S, hd)
  return proj_(y.transpose(1, 2).reshape({b, s, d}));
}

BlockImpl::BlockImpl(const ModelConfig& config, FfnLayer ffn) : ffn_(std::move(ffn)) {
  ln_attention_ = register_module(
      "ln_attention", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  attention_ = register_module("attention", CausalSelfAttention(config));
  ln_ffn_ = register_module("ln_ffn",
                            torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  register_module("ffn", ffn_);
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto h = x + attention_(ln_attention_(x));
  return h + ffn_->forward(ln_ffn_(h));
}

GptImpl::GptImpl(const ModelConfig& config, const FfnBuilder& ffn) : config_(config) {
  wte_ = register_parameter("wte", torch::empty({config.vocab_size, config.d_model}));
  wpe_ = register_parameter("wpe", torch::empty({config.seq_len, config.d_model}));
  init_gpt2(wte_, false, config.n_layers);
  init_gpt2(wpe_, false, config.n_layers);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layers; ++i) {
    ffn_layers_.push_back(ffn());
    blocks_->push_back(Block(config, ffn_layers_.back()));
  }
  ln_final_ = register_module("ln_final",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  apply_init_scheme(*this, config.init);  // "gpt2": the constructors already did it
}

torch::Tensor GptImpl::forward(const torch::Tensor& tokens) {
  const int64_t s = tokens.size(1);
  TORCH_CHECK(s <= config_.seq_len, "sequence of ", s, " tokens exceeds model.seq_len");
  using torch::indexing::Slice;
  auto x = wte_.index_select(0, tokens.reshape({-1})).view({tokens.size(0), s, config_.d_model}) +
           wpe_.index({Slice(0, s)});
  for (const auto& block : *blocks_) x = block->as<BlockImpl>()->forward(x);
  return torch::matmul(ln_final_(x), wte_.t());  // tied output embedding
}

torch::Tensor GptImpl::loss(const torch::Tensor& tokens, const torch::Tensor& targets) {
  auto logits = forward(tokens);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}));
}

torch::Tensor GptImpl::aux_loss() const {
  torch::Tensor total;
  for (const auto& layer : ffn_layers_) {
    auto a = layer->aux_loss();
    if (a.defined()) total = total.defined() ? total + a : a;
  }
  return total;
}

ModelCost GptImpl::cost() const {
  ModelCost c;
  const double d = double(config_.d_model), s = double(config_.seq_len);
  int64_t other_params = 0;
  for (const auto& p : parameters()) other_params += p.numel();
  int64_t ffn_total = 0, ffn_active = 0;
  double flops = 2 * d * double(config_.vocab_size);  // output head
  for (const auto& layer : ffn_layers_) {
    LayerCost lc = layer->cost();
    ffn_total += lc.params_total;
    ffn_active += lc.params_active;
    flops += lc.forward_flops;
    flops += 2 * d * 3 * d + 2 * d * d  // qkv and output projections
             + 4 * s * d;               // scores and weighted values over S keys
  }
  other_params -= ffn_total;
  c.params_total = other_params + ffn_total;
  c.params_active = other_params + ffn_active;
  c.forward_flops_per_token = flops;
  return c;
}

}  // namespace mixlab
