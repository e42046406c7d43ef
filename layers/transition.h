// Transition tuning (MoT paper, reference MoEChimera): train Mixture of Tokens, then from
// training step `switch_at_step` on continue as a Switch (top-1 token choice) layer on the
// same weights: the MoT experts W1, W2 become the Switch experts and the MoT controller
// (d x E) becomes the router, untransformed. Only the softmax changes: over the group per
// expert (MoT) becomes over the experts per token (Switch).
//
// Evaluation modes: "mixed" evaluates the layer as it currently trains (MoT before the
// switch, Switch after it), "discrete" MoT's discrete routing, "switch" the Switch layer on
// the current weights. The layer asks for an evaluation after step switch_at_step - 1, the
// last MoT step, so a run with eval modes ["mixed", "switch"] records the loss just before
// the switch (eval/loss there), just after it with no tuning (eval_switch/loss there) and
// after tuning (eval/loss at the end).
#pragma once

#include "layers/mot.h"
#include "layers/token_choice.h"

namespace mixlab {

struct TransitionOptions {
  MotOptions mot;
  TokenChoiceOptions switch_layer;  // n_experts and expert_size are the MoT's, k = 1
  int64_t switch_at_step = 0;       // the first training step run as Switch
};

class TransitionImpl : public FfnLayerImpl {
 public:
  TransitionImpl(const ModelDims& dims, const TransitionOptions& options);
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor aux_loss() const override { return aux_loss_; }
  void on_step(int64_t step) override;
  std::vector<std::string> eval_modes() const override { return {"mixed", "discrete", "switch"}; }
  void set_eval_mode(const std::string& mode) override;
  bool wants_eval_at(int64_t step) const override { return step == options_.switch_at_step - 1; }
  // The MoT phase's cost (the Switch phase has the same parameters and, flop matched with
  // g = E, the same expert FLOPs per token).
  LayerCost cost() const override { return mot->cost(); }

  bool switched() const { return switched_; }

  std::shared_ptr<MotImpl> mot;  // owns the weights of both phases

 private:
  TransitionOptions options_;
  bool switched_ = false;
  std::string eval_mode_ = "mixed";
  torch::Tensor aux_loss_;
};

// Config keys: type "transition", every mot key, switch_at_step (required, >= 1) and the
// switch keys capacity_factor (1.25), aux_loss_weight (0.01), z_loss (0).
FfnBuilder parse_transition(const ConfigReader& cfg, const ModelDims& dims);

}  // namespace mixlab
