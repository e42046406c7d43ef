// The token-mixing paper's synthetic recall tasks: multi-query associative recall (MQAR),
// copy, and multi-hop variable resolution.
//
// An example is a token sequence of length seq_len and a target per position (the next token
// the model must predict there, or kIgnoreTarget where nothing is asked). Examples are pure
// functions of a 64-bit example seed, so training batches follow (run seed, step) exactly as the
// text corpora's windows do, and the evaluation set is a fixed list drawn from its own seed.
// No LibTorch here: the generators are plain C++ and tested against hand-built examples.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "experiments/config_reader.h"

namespace mixlab {

constexpr int64_t kIgnoreTarget = -100;  // as PyTorch's cross_entropy ignore_index

// The generators' version, recorded as the data fingerprint of a synthetic run (its data has no
// files to hash): bump it when any generator's output changes, so runs recorded with the old
// examples are never reused or resumed as runs of the new ones.
constexpr const char* kRecallTasksVersion = "recall_tasks v1";

struct TaskExample {
  std::vector<int64_t> tokens;   // seq_len inputs
  std::vector<int64_t> targets;  // seq_len: the next token to predict, or kIgnoreTarget
  std::vector<int32_t> hops;     // seq_len: multihop's hop count at a query target, else 0
};

// The `data` keys of `data.corpus: "synthetic"`.
struct RecallTaskConfig {
  std::string task;  // mqar | copy | multihop
  // mqar (Zoology's multiquery_ar)
  int64_t vocab_size = 8192;
  int64_t num_kv_pairs = 8;
  double power_a = 0.01;
  bool random_non_queries = true;
  // copy
  int64_t alphabet = 26;
  int64_t min_len = 10, max_len = 20;
  // multihop
  int64_t chains = 4, hops = 4, variables = 32, values = 16;
  // the evaluation set
  int64_t eval_examples = 3000;
  int64_t eval_seed = 1000003;
};

// Reads the task keys of a data section (`task` and its own keys) and checks that the task
// fits the model's sequence length; ConfigError names the key and the limit.
RecallTaskConfig parse_recall_task(const ConfigReader& data, int64_t seq_len);

// The vocabulary a task's tokens come from.
int64_t recall_task_vocab_size(const RecallTaskConfig& task);

// One example of the task, from its example seed.
TaskExample recall_task_example(const RecallTaskConfig& task, int64_t seq_len, uint64_t seed);

// The seed of training example `index` of the batch of `step` of a run with seed `run_seed`;
// `redraw` counts the draws rejected for being in the evaluation set.
uint64_t training_example_seed(int64_t run_seed, int64_t step, int64_t index, int64_t redraw = 0);

// Hash of an example's tokens and targets (FNV-1a/64): what "the same example" means.
uint64_t example_hash(const TaskExample& example);

// MQAR as Zoology builds it, from given draws (tests hand-build examples through this).
// keys[i] -> values[i]; the query of pair i is placed 2 * gaps[i] tokens after the
// key-value block; filler stays 0.
TaskExample mqar_example(const std::vector<int64_t>& keys, const std::vector<int64_t>& values,
                         const std::vector<int64_t>& gaps, int64_t seq_len);

// Copy: `text` (symbols 0..alphabet-1), the separator, `text` again; targets the second copy
// and the end token. Token ids: 0 pad, 1 separator, 2 end, 3 + symbol.
TaskExample copy_example(const std::vector<int64_t>& text, int64_t seq_len);
constexpr int64_t kCopyPad = 0, kCopySeparator = 1, kCopyEnd = 2, kCopyFirstSymbol = 3;

// Multi-hop: statements "a = b" (3 tokens) in the given order, then a query "x ?" per chain
// whose target (at "?") is the chain's value. Token ids: 0 pad, 1 "=", 2 "?",
// 3 + variable, 3 + variables + value.
struct MultihopChain {
  std::vector<int64_t>
      variables;  // deepest last: variables[0] = value, variables[k] = variables[k-1]
  int64_t value = 0;
};
// `order` lists chain indices, one entry per statement, in the order statements appear (each
// chain's statements appear in its own order: the link to the value first).
TaskExample multihop_example(const std::vector<MultihopChain>& chains,
                             const std::vector<int64_t>& order, int64_t variables, int64_t seq_len);
constexpr int64_t kHopPad = 0, kHopAssign = 1, kHopQuery = 2, kHopFirstVariable = 3;

// The evaluation set and the training examples kept apart from it: a training draw whose hash
// is in the evaluation set is redrawn (deterministically), so no evaluation example is ever
// trained on, whatever the task's size.
class RecallTaskData {
 public:
  RecallTaskData(RecallTaskConfig task, int64_t seq_len);
  const RecallTaskConfig& task() const { return task_; }
  int64_t seq_len() const { return seq_len_; }
  const std::vector<TaskExample>& eval_set() const { return eval_; }
  TaskExample training_example(int64_t run_seed, int64_t step, int64_t index) const;

 private:
  RecallTaskConfig task_;
  int64_t seq_len_;
  std::vector<TaskExample> eval_;
  std::unordered_set<uint64_t> eval_hashes_;
};

}  // namespace mixlab
