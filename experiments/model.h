// The decoder-only Transformer every layer is compared in (GPT-2 style).
//
// Token and learned position embeddings (N(0, 0.02)), n_layers pre-LayerNorm blocks of
// the configured token mixer (causal multi-head attention unless `mixer` says otherwise)
// and the configured feed-forward layer, a final LayerNorm and an output head tied to the
// token embedding. The 2024 paper's choices are config keys: the FFN in some blocks only
// (model.ffn_blocks, a dense FFN in the others), no final LayerNorm (model.final_norm) and an
// untied head without bias (model.tied_head, parameter "head.weight").
#pragma once

#include <torch/torch.h>

#include <vector>

#include "experiments/run_config.h"
#include "layers/ffn_layer.h"

namespace mixlab {

class BlockImpl : public torch::nn::Module {
 public:
  // The mixer is registered as "attention" when it is the default attention (the parameter
  // names of every earlier checkpoint), as "mixer" otherwise.
  BlockImpl(const ModelConfig& config, TokenMixer mixer, FfnLayer ffn);
  torch::Tensor forward(const torch::Tensor& x);
  const FfnLayer& ffn() const { return ffn_; }
  const TokenMixer& mixer() const { return mixer_; }

 private:
  torch::nn::LayerNorm ln_attention_{nullptr}, ln_ffn_{nullptr};
  TokenMixer mixer_;
  FfnLayer ffn_;
};
TORCH_MODULE(Block);

struct ModelCost {
  int64_t params_total = 0;
  int64_t params_active = 0;           // per token
  double forward_flops_per_token = 0;  // matmuls, the mixer at full sequence length
  double train_flops_per_token() const { return 3 * forward_flops_per_token; }
};

class GptImpl : public torch::nn::Module {
 public:
  GptImpl(const ModelConfig& config, const FfnBuilder& ffn);
  // tokens (B, S) int64 -> logits (B, S, vocab)
  torch::Tensor forward(const torch::Tensor& tokens);
  // Mean cross-entropy of next-token prediction.
  torch::Tensor loss(const torch::Tensor& tokens, const torch::Tensor& targets);
  // Sum of the feed-forward layers' auxiliary losses of the last forward (undefined if none).
  torch::Tensor aux_loss() const;

  const std::vector<FfnLayer>& ffn_layers() const { return ffn_layers_; }
  // Whether an evaluation mode means something for this model: "mixed" always, another mode
  // ("discrete", "switch") when one of its FFN layers has it.
  bool knows_eval_mode(const std::string& mode) const;
  ModelCost cost() const;
  const ModelConfig& config() const { return config_; }

 private:
  ModelConfig config_;
  torch::Tensor wte_, wpe_;
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_final_{nullptr};  // empty with model.final_norm false
  torch::nn::Linear head_{nullptr};         // set with model.tied_head false
  std::vector<FfnLayer> ffn_layers_;
};
TORCH_MODULE(Gpt);

}  // namespace mixlab
