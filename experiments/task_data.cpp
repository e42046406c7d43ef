#include "experiments/task_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "layers/torch_compat.h"

namespace mixlab {

namespace {

// One int64 (n, S) tensor from a field of examples[begin, end).
torch::Tensor stack(const std::vector<TaskExample>& examples, size_t begin, size_t end,
                    const std::function<std::vector<int64_t>(const TaskExample&)>& field) {
  const auto seq_len = static_cast<int64_t>(examples.at(begin).tokens.size());
  std::vector<int64_t> flat;
  flat.reserve((end - begin) * static_cast<size_t>(seq_len));
  for (size_t i = begin; i < end; ++i) {
    const auto values = field(examples[i]);
    flat.insert(flat.end(), values.begin(), values.end());
  }
  return torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(end - begin), seq_len});
}

}  // namespace

Batch task_batch(const std::vector<TaskExample>& examples, size_t begin, size_t end) {
  return {stack(examples, begin, end, [](const TaskExample& e) { return e.tokens; }),
          stack(examples, begin, end, [](const TaskExample& e) { return e.targets; })};
}

TaskScores::TaskScores(std::string task, int64_t max_hops, torch::Device device)
    : task_(std::move(task)) {
  auto count = torch::TensorOptions().dtype(torch::kLong).device(device);
  loss_sum_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  correct_ = torch::zeros({}, count);
  targets_ = torch::zeros({}, count);
  exact_ = torch::zeros({}, count);
  examples_ = torch::zeros({}, count);
  hop_correct_ = torch::zeros({max_hops + 1}, count);
  hop_total_ = torch::zeros({max_hops + 1}, count);
}

void TaskScores::add(const torch::Tensor& logits, const torch::Tensor& targets,
                     const torch::Tensor& hops) {
  namespace F = torch::nn::functional;
  // Summed, not averaged: the set's loss is the sum over all its target positions divided by
  // their number, whatever the batches hold.
  loss_sum_ += F::cross_entropy(
                   logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), targets.reshape({-1}),
                   F::CrossEntropyFuncOptions().ignore_index(kIgnoreTarget).reduction(torch::kSum))
                   .detach();
  const auto asked = targets != kIgnoreTarget;
  const auto right = (logits.argmax(-1) == targets) & asked;
  correct_ += right.sum();
  targets_ += asked.sum();
  const auto has_targets = asked.sum(1) > 0;
  const auto wrong = (asked & right.logical_not()).sum(1);
  exact_ += (has_targets & (wrong == 0)).sum();
  examples_ += has_targets.sum();
  const int64_t bins = hop_total_.size(0);
  if (bins > 1) {
    hop_total_ += torch::bincount(hops.masked_select(asked), {}, bins);
    hop_correct_ += torch::bincount(hops.masked_select(right), {}, bins);
  }
}

std::vector<std::pair<std::string, double>> TaskScores::metrics(const std::string& prefix) const {
  auto ratio = [](const torch::Tensor& a, const torch::Tensor& b) {
    const double d = b.item<double>();
    return d > 0 ? a.item<double>() / d : std::nan("");
  };
  std::vector<std::pair<std::string, double>> out = {
      {prefix + "/loss", ratio(loss_sum_, targets_)},
      {prefix + "/accuracy", ratio(correct_, targets_)},
  };
  if (task_ == "copy") out.emplace_back(prefix + "/exact_match", ratio(exact_, examples_));
  const auto total = hop_total_.to(torch::kCPU), correct = hop_correct_.to(torch::kCPU);
  for (int64_t h = 1; h < total.size(0); ++h)
    if (total[h].item<int64_t>() > 0)
      out.emplace_back(fmt::format("{}/accuracy_hop{}", prefix, h), ratio(correct[h], total[h]));
  return out;
}

TaskData::TaskData(const RecallTaskConfig& task, int64_t seq_len, int64_t batch_size,
                   int64_t run_seed, torch::Device device)
    : data_(task, seq_len), batch_size_(batch_size), run_seed_(run_seed), device_(device) {
  const auto& set = data_.eval_set();
  for (size_t begin = 0; begin < set.size(); begin += static_cast<size_t>(batch_size_)) {
    const size_t end = std::min(set.size(), begin + static_cast<size_t>(batch_size_));
    Batch b = task_batch(set, begin, end);
    auto hops = stack(set, begin, end, [](const TaskExample& e) {
      return std::vector<int64_t>(e.hops.begin(), e.hops.end());
    });
    eval_.push_back({b.inputs.to(device_), b.targets.to(device_), hops.to(device_)});
  }
}

std::string TaskData::description() const {
  return fmt::format("synthetic {} ({}, generated): {} evaluation examples of {} tokens",
                     data_.task().task, kRecallTasksVersion, data_.eval_set().size(),
                     data_.seq_len());
}

Batch TaskData::batch(int64_t step) const {
  std::vector<TaskExample> examples;
  examples.reserve(static_cast<size_t>(batch_size_));
  for (int64_t i = 0; i < batch_size_; ++i)
    examples.push_back(data_.training_example(run_seed_, step, i));
  return task_batch(examples, 0, examples.size());
}

std::vector<std::pair<std::string, double>> TaskData::evaluate(
    Gpt& model, const std::vector<std::string>& modes, bool autocast) const {
  std::vector<std::pair<std::string, double>> out;
  torch::NoGradGuard no_grad;
  compat::AutocastGuard autocast_guard(device_, autocast);
  model->eval();
  const int64_t max_hops = data_.task().task == "multihop" ? data_.task().hops : 0;
  for (const auto& mode : modes) {
    if (!model->knows_eval_mode(mode)) continue;
    for (const auto& layer : model->ffn_layers()) layer->set_eval_mode(mode);
    TaskScores scores(data_.task().task, max_hops, device_);
    for (const auto& b : eval_) scores.add(model->forward(b.inputs), b.targets, b.hops);
    const auto metrics = scores.metrics(mode == "mixed" ? "eval" : "eval_" + mode);
    out.insert(out.end(), metrics.begin(), metrics.end());
  }
  for (const auto& layer : model->ffn_layers()) layer->set_eval_mode("mixed");
  model->train();
  return out;
}

}  // namespace mixlab
