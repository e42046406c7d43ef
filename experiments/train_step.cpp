#include "experiments/train_step.h"

#include "layers/torch_compat.h"

namespace mixlab {

namespace {

// AdamW with weight decay on matrices only (not on biases, LayerNorm gains, temperatures), or,
// with train.decay "all", on every parameter as the 2024 paper's runs did.
std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& params,
                                                    const TrainConfig& train) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : params)
    (p.dim() >= 2 || train.decay == "all" ? decay : no_decay).push_back(p);
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(train.lr).betas({train.beta1, train.beta2}).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(train.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(train.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

// Clips the global gradient norm without a host sync; returns the norm before clipping.
torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  auto norms = at::_foreach_norm(grads);
  auto total = torch::stack(norms).to(torch::kFloat).norm();
  if (max_norm > 0) {
    auto scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
  }
  return total;
}

}  // namespace

TrainStep::TrainStep(Gpt model, const TrainConfig& train, const torch::Device& device)
    : model_(std::move(model)), train_(train), device_(device) {
  params_ = model_->parameters();
  optimizer_ = make_optimizer(params_, train_);
  reset_sums();
}

void TrainStep::reset_sums() {
  auto zero = torch::zeros({}, torch::TensorOptions().device(device_));
  loss_sum = zero.clone();
  aux_sum = zero.clone();
  norm_sum = zero.clone();
}

void TrainStep::set_sums(double loss, double aux, double norm) {
  reset_sums();
  loss_sum += loss;
  aux_sum += aux;
  norm_sum += norm;
}

void TrainStep::run(const torch::Tensor& inputs, const torch::Tensor& targets, double lr) {
  set_learning_rate(*optimizer_, lr);
  torch::Tensor loss, aux;
  {
    compat::AutocastGuard autocast(device_, train_.precision == "bf16");
    loss = model_->loss(inputs, targets);
    aux = model_->aux_loss();
  }
  optimizer_->zero_grad();
  (aux.defined() ? loss + aux : loss).backward();
  norm_sum += clip_gradients(params_, train_.grad_clip);
  optimizer_->step();
  loss_sum += loss.detach();
  if (aux.defined()) {
    aux_sum += aux.detach();
    saw_aux_loss = true;
  }
}

}  // namespace mixlab
