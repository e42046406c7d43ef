// The recall tasks (data.corpus "synthetic") as the trainer sees them: training batches drawn
// from (run seed, step) and the evaluation on the task's fixed evaluation set.
//
// Training and evaluation losses count target positions alone (the others carry kIgnoreTarget,
// PyTorch's ignore_index). The evaluation records, per mode ("eval", "eval_discrete", ...):
//   {prefix}/loss            cross-entropy summed over every target position of the set, divided
//                            by their number (not a mean of batch means: the last batch is short)
//   {prefix}/accuracy        the share of target positions where argmax(logits) == target
//   {prefix}/exact_match     copy: the share of examples with every target position right
//   {prefix}/accuracy_hop{h} multihop: accuracy over the queries of chains of h links
// The examples come from experiments/recall_tasks.h; this file only batches and scores them.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "experiments/corpus.h"  // Batch
#include "experiments/model.h"
#include "experiments/recall_tasks.h"

namespace mixlab {

// examples[begin, end) stacked: inputs the tokens, targets the targets, both (n, S) int64.
Batch task_batch(const std::vector<TaskExample>& examples, size_t begin, size_t end);

// What one evaluation adds up, kept on the device until metrics() (one host sync per
// evaluation, not per batch).
class TaskScores {
 public:
  // `max_hops`: the largest hop count a target can carry (0 for tasks without hops).
  TaskScores(std::string task, int64_t max_hops, torch::Device device);
  // logits (B, S, V); targets (B, S) with kIgnoreTarget off the targets; hops (B, S) int64.
  void add(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& hops);
  std::vector<std::pair<std::string, double>> metrics(const std::string& prefix) const;

 private:
  std::string task_;
  torch::Tensor loss_sum_, correct_, targets_, exact_, examples_, hop_correct_, hop_total_;
};

class TaskData {
 public:
  // The evaluation set is generated here (eval_examples of them) and moved to `device` in
  // batches of `batch_size`.
  TaskData(const RecallTaskConfig& task, int64_t seq_len, int64_t batch_size, int64_t run_seed,
           torch::Device device);
  // "synthetic mqar (generated): 3000 evaluation examples of 64 tokens"
  std::string description() const;
  // The training batch of `step`, on the CPU: example i is training_example(seed, step, i).
  Batch batch(int64_t step) const;
  // The evaluation set scored per mode (as evaluate() in trainer.h: modes no layer knows are
  // skipped), under bf16 autocast when `autocast` (the run's training precision); the model is
  // left in training mode with its layers in "mixed".
  std::vector<std::pair<std::string, double>> evaluate(Gpt& model,
                                                       const std::vector<std::string>& modes,
                                                       bool autocast = false) const;

 private:
  RecallTaskData data_;
  int64_t batch_size_, run_seed_;
  torch::Device device_;
  struct EvalBatch {
    torch::Tensor inputs, targets, hops;
  };
  std::vector<EvalBatch> eval_;
};

}  // namespace mixlab
