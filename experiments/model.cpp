#include "experiments/model.h"

#include <algorithm>

#include "experiments/init.h"
#include "layers/attention_mixer.h"

namespace mixlab {

BlockImpl::BlockImpl(const ModelConfig& config, TokenMixer mixer, FfnLayer ffn)
    : mixer_(std::move(mixer)), ffn_(std::move(ffn)) {
  ln_attention_ = register_module(
      "ln_attention", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  const bool attention = dynamic_cast<AttentionMixerImpl*>(mixer_.get()) != nullptr;
  register_module(attention ? "attention" : "mixer", mixer_);
  ln_ffn_ = register_module("ln_ffn",
                            torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  register_module("ffn", ffn_);
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto h = x + mixer_->forward(ln_attention_(x));
  return h + ffn_->forward(ln_ffn_(h));
}

GptImpl::GptImpl(const ModelConfig& config, const FfnBuilder& ffn) : config_(config) {
  wte_ = register_parameter("wte", torch::empty({config.vocab_size, config.d_model}));
  wpe_ = register_parameter("wpe", torch::empty({config.seq_len, config.d_model}));
  init_gpt2(wte_, false, config.n_layers);
  init_gpt2(wpe_, false, config.n_layers);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  const MixerDims mixer_dims{config.d_model, config.n_heads, config.seq_len, config.n_layers};
  for (int64_t i = 0; i < config.n_layers; ++i) {
    ffn_layers_.push_back(config.has_configured_ffn(i) ? ffn() : config.dense_ffn());
    // Built after the layer, as the attention always was: the same random draws in the same
    // order, so a default model is initialised exactly as before.
    TokenMixer mixer =
        config.mixer ? config.mixer() : std::make_shared<AttentionMixerImpl>(mixer_dims);
    blocks_->push_back(Block(config, std::move(mixer), ffn_layers_.back()));
  }
  if (config.final_norm)
    ln_final_ = register_module(
        "ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  if (!config.tied_head) {
    // Built last, so every other weight is drawn as in a tied model.
    head_ = register_module(
        "head",
        torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.vocab_size).bias(false)));
    init_gpt2(head_->weight, false, config.n_layers);
  }
  // "gpt2": the constructors already did it
  apply_init_scheme(*this, config.init, config.init_scale);
}

torch::Tensor GptImpl::forward(const torch::Tensor& tokens) {
  const int64_t s = tokens.size(1);
  TORCH_CHECK(s <= config_.seq_len, "sequence of ", s, " tokens exceeds model.seq_len");
  using torch::indexing::Slice;
  auto x = wte_.index_select(0, tokens.reshape({-1})).view({tokens.size(0), s, config_.d_model}) +
           wpe_.index({Slice(0, s)});
  for (const auto& block : *blocks_) x = block->as<BlockImpl>()->forward(x);
  if (!ln_final_.is_empty()) x = ln_final_(x);
  return head_.is_empty() ? torch::matmul(x, wte_.t()) : head_(x);  // tied: output = embedding
}

torch::Tensor GptImpl::loss(const torch::Tensor& tokens, const torch::Tensor& targets) {
  auto logits = forward(tokens);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}));
}

bool GptImpl::knows_eval_mode(const std::string& mode) const {
  if (mode == "mixed") return true;
  for (const auto& layer : ffn_layers_) {
    const auto modes = layer->eval_modes();
    if (std::find(modes.begin(), modes.end(), mode) != modes.end()) return true;
  }
  return false;
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
  int64_t other_params = 0;
  for (const auto& p : parameters()) other_params += p.numel();
  int64_t ffn_total = 0, ffn_active = 0;
  double flops = 2 * double(config_.d_model) * double(config_.vocab_size);  // output head
  for (const auto& module : *blocks_) {
    const auto& block = *module->as<BlockImpl>();
    LayerCost lc = block.ffn()->cost();
    ffn_total += lc.params_total;
    ffn_active += lc.params_active;
    flops += lc.forward_flops;
    flops += block.mixer()->forward_flops_per_token();
  }
  other_params -= ffn_total;
  c.params_total = other_params + ffn_total;
  c.params_active = other_params + ffn_active;
  c.forward_flops_per_token = flops;
  return c;
}

}  // namespace mixlab
