// The interface every feed-forward layer of the comparison implements.
//
// A layer maps (B, S, d) to (B, S, d) inside a pre-norm residual block. It must be causal:
// the output at position t of any sequence depends only on inputs at positions <= t (of
// any sequence: cross-example mixing at the same position is allowed, which is what MoT
// and Expert Choice do). Statistics are computed only when recording is on (logging steps)
// and stay on the device until the trainer reads them, so no step forces a host sync.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "experiments/config_reader.h"

namespace mixlab {

// What a layer may need to know about the model around it.
struct ModelDims {
  int64_t d_model = 0;
  int64_t batch_size = 0;  // training and evaluation batch (group sizes must divide it)
  int64_t seq_len = 0;
  int64_t n_layers = 0;
  int64_t layer_index = 0;
};

// Costs per token, counted by the layer from its own shapes (FLOPs = 2 x multiply-adds).
struct LayerCost {
  int64_t params_total = 0;   // every parameter of the layer
  int64_t params_active = 0;  // parameters whose compute one token pays for
  double forward_flops = 0;   // forward FLOPs per token
};

class FfnLayerImpl : public torch::nn::Module {
 public:
  ~FfnLayerImpl() override = default;

  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // The weighted auxiliary loss of the last forward, or an undefined tensor.
  virtual torch::Tensor aux_loss() const { return {}; }
  // Called by the trainer before each training step (learnable-temperature start, transition).
  virtual void on_step(int64_t /*step*/) {}
  // Evaluation modes the layer knows besides "mixed" (as trained); see set_eval_mode.
  virtual std::vector<std::string> eval_modes() const { return {"mixed"}; }
  virtual void set_eval_mode(const std::string& /*mode*/) {}
  // True where the layer needs an evaluation after training step `step` besides the
  // configured ones (transition tuning: the step before the switch).
  virtual bool wants_eval_at(int64_t /*step*/) const { return false; }
  virtual LayerCost cost() const = 0;

  void record_stats(bool on) { record_stats_ = on; }
  bool recording_stats() const { return record_stats_; }
  // The statistics of the last recorded forward: names, and a 1-D float tensor of the same
  // length on the layer's device (undefined if nothing was recorded).
  const std::vector<std::string>& stat_names() const { return stat_names_; }
  const torch::Tensor& stat_values() const { return stat_values_; }

 protected:
  // Stores scalar statistics; call only when recording_stats().
  void set_stats(std::vector<std::string> names, const std::vector<torch::Tensor>& values);

 private:
  bool record_stats_ = false;
  std::vector<std::string> stat_names_;
  torch::Tensor stat_values_;
};

using FfnLayer = std::shared_ptr<FfnLayerImpl>;
// A parsed, validated layer config: call it to build the layer (allocates the weights).
using FfnBuilder = std::function<FfnLayer()>;

// ---- helpers shared by the layers --------------------------------------------------------

// Entropy of `probs` along `dim`, divided by log(size along dim): 1 for uniform, 0 one-hot.
torch::Tensor normalized_entropy(const torch::Tensor& probs, int64_t dim);
// Coefficient of variation (std / mean, population std) of a 1-D tensor of loads.
torch::Tensor coefficient_of_variation(const torch::Tensor& loads);

// relu(x) as threshold(x, 0, 0): the same values and gradient (threshold_backward), but
// Debian's LibTorch 1.13 CPU build runs relu (clamp_min) about 10x slower than threshold,
// which at the CPU sweep sizes is a visible share of the step.
inline torch::Tensor fast_relu(const torch::Tensor& x) {
  return torch::threshold(x, 0.0, 0.0);
}

// Router logits x . router in (at least) float32 with autocast off: float64 inputs (the
// tests) stay float64, everything else is computed in float32.
torch::Tensor router_logits(const torch::Tensor& x, const torch::Tensor& router);

// Runs every expert on its own rows: inputs (E, n, d), w1 (E, d, f), w2 (E, f, d) ->
// (E, n, d) = W2_e relu(W1_e x) per expert, in the dtype of the inputs.
torch::Tensor run_experts(const torch::Tensor& inputs, const torch::Tensor& w1,
                          const torch::Tensor& w2);

// Reads the expert hidden size f: an integer, or "flop_matched". A layer whose experts run
// `expert_passes` times per `tokens` tokens (MoT: E per group of g; Switch: 1 per token;
// top-k: k per token; Expert Choice: E k per group) is flop matched with f = d_ff * tokens /
// expert_passes: its experts' FLOPs per token equal those of a dense layer of width d_ff.
int64_t read_expert_size(const ConfigReader& cfg, int64_t expert_passes, int64_t tokens);

// GPT-2 initialisation of a weight: N(0, 0.02), scaled down by sqrt(2 n_layers) for the
// projections that write into the residual stream.
void init_gpt2(torch::Tensor& weight, bool residual_projection, int64_t n_layers);

// Registers E experts' weights on `module` as "w1" (E, d, f) and "w2" (E, f, d), GPT-2
// initialised (w2 writes into the residual stream).
void register_expert_weights(torch::nn::Module& module, int64_t n_experts, int64_t d_model,
                             int64_t expert_size, int64_t n_layers, torch::Tensor& w1,
                             torch::Tensor& w2);

// Groups as the MoT paper forms them: the tokens at one position across g consecutive
// sequences, so no token sees a later position. (B, S, d) -> (G, S, g, d), a view; group G
// holds sequences G*g .. G*g+g-1. `layer` names the caller when g does not divide B.
torch::Tensor group_by_position(const torch::Tensor& x, int64_t group_size, const char* layer);
// The inverse: (G, S, g, d) -> (B, S, d).
torch::Tensor ungroup(const torch::Tensor& grouped);

// The keys every layer with experts requires: n_experts (a positive integer), and for the
// grouped layers group_size (a positive integer dividing train.batch_size).
int64_t read_n_experts(const ConfigReader& cfg);
int64_t read_group_size(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
