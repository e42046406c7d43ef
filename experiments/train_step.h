// One optimizer update of the model: forward, auxiliary losses, backward, gradient clipping,
// AdamW. Shared by the trainer and the benchmarks, so what is timed is what is trained.
//
// Losses, auxiliary losses and gradient norms are summed into device scalars: a step never
// waits for the device; the trainer reads the sums at logging steps.
//
// Precision "bf16" runs the forward pass under bf16 autocast on the step's device, CPU
// included (the benchmarks and tests use that); the trainer passes "fp32" for CPU runs unless
// train.autocast_cpu (run_config.h, autocast_on).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "experiments/model.h"
#include "experiments/run_config.h"

namespace mixlab {

class TrainStep {
 public:
  TrainStep(Gpt model, const TrainConfig& train, const torch::Device& device);

  // One update at learning rate `lr` on (inputs, targets), both (B, S) on the device.
  void run(const torch::Tensor& inputs, const torch::Tensor& targets, double lr);

  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  // Running sums since the last reset, on the device.
  torch::Tensor loss_sum, aux_sum, norm_sum;
  bool saw_aux_loss = false;
  void reset_sums();
  void set_sums(double loss, double aux, double norm);

 private:
  Gpt model_;
  TrainConfig train_;
  torch::Device device_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace mixlab
