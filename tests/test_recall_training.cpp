// Training on the recall tasks (data.corpus "synthetic"): the config keys, bad input on the real
// binary, batches by (seed, step), the scores against hand-computed cases, an exact resume,
// and a tiny attention model that learns MQAR.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "experiments/corpus.h"
#include "experiments/task_data.h"
#include "experiments/trainer.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;

namespace {

namespace fs = std::filesystem;
const std::string kSweep = MIXLAB_SWEEP_BIN;

// A tiny attention model on a synthetic task; `data` is merged over the data section.
Json synthetic_config(const Json& data, const Json& train = Json::object()) {
  Json config = {{"model", {{"d_model", 64}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", 32}}},
                 {"ffn", {{"type", "dense"}, {"d_ff", 128}}},
                 {"data", {{"corpus", "synthetic"}, {"task", "mqar"}}},
                 {"train",
                  {{"steps", 8},
                   {"batch_size", 16},
                   {"lr", 3e-3},
                   {"log_every", 4},
                   {"checkpoint_every", 0},
                   {"warmup_frac", 0.1},
                   {"weight_decay", 0.0}}},
                 {"eval", {{"every", 0}}},
                 {"seed", 0}};
  config["data"].update(data);
  config["train"].update(train);
  return config;
}

struct Recorder : TrainHooks {
  std::vector<std::tuple<int64_t, std::string, double>> logged;
  RunFacts facts;
  std::vector<double> passes;
  int64_t stop_after_polls = -1, polls = 0;
  void on_start(const RunFacts& f) override { facts = f; }
  void on_log(int64_t step, const Metrics& m, double, double p) override {
    for (const auto& [k, v] : m) logged.emplace_back(step, k, v);
    passes.push_back(p);
  }
  bool stop_requested() override { return stop_after_polls >= 0 && ++polls > stop_after_polls; }
  double value(int64_t step, const std::string& key) const {
    for (const auto& [s, k, v] : logged)
      if (s == step && k == key) return v;
    return NAN;
  }
};

double metric(const std::vector<std::pair<std::string, double>>& metrics, const std::string& key) {
  for (const auto& [k, v] : metrics)
    if (k == key) return v;
  return NAN;
}

}  // namespace

TEST_CASE("data.corpus synthetic: the task keys, the vocabulary, and no tokenizer or path") {
  RunConfig r = parse_run_config(
      synthetic_config({{"task", "copy"}, {"alphabet", 10}, {"max_len", 12}}), "c.json");
  CHECK(r.data.task.task == "copy");
  CHECK(r.data.task.alphabet == 10);
  CHECK(r.data.task.max_len == 12);
  CHECK(r.model.vocab_size == kCopyFirstSymbol + 10);
  r = parse_run_config(synthetic_config({{"vocab_size", 100}}), "c.json");
  CHECK(r.model.vocab_size == 100);
  // Given, the key is in the canonical config: another vocabulary is another run.
  CHECK(r.hash != parse_run_config(synthetic_config({{"vocab_size", 101}}), "c.json").hash);

  auto refusal = [](const Json& data) {
    try {
      parse_run_config(synthetic_config(data), "c.json");
    } catch (const ConfigError& e) {
      return e.key() + ": " + e.message();
    }
    return std::string("no error");
  };
  CHECK(refusal({{"tokenizer", "bytes"}}).rfind("data.tokenizer: has no meaning", 0) == 0);
  CHECK(refusal({{"path", "x"}}).rfind("data.path: has no meaning", 0) == 0);
  CHECK(refusal({{"alphabet", 4}}).rfind("data.alphabet: unknown key", 0) == 0);
  CHECK(refusal({{"corpus", "synthetc"}}).find("\"synthetic\"") != std::string::npos);

  // The data of a synthetic run is named by the generators' version, from no file.
  CorpusIdentity id = corpus_identity(r.data);
  CHECK(id.fingerprint == "recall_tasks v1 (generated)");
  CHECK(id.location == "synthetic");
}

TEST_CASE("a recall task that does not fit: exit 2, one line naming the key and the limit") {
  struct Case {
    Json data;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{{"num_kv_pairs", 9}}, "data.num_kv_pairs = 9: must be at most model.seq_len / 4 (8)"},
      {{{"vocab_size", 32}}, "data.vocab_size = 32: must be greater than model.seq_len (32)"},
      {{{"task", "recall"}}, "data.task = \"recall\": must be \"mqar\", \"copy\" or \"multihop\""},
      {{{"task", "copy"}, {"max_len", 16}},
       "data.max_len = 16: must be at most (model.seq_len - 1) / 2 (15)"},
      {{{"task", "multihop"}, {"hops", 3}}, "data.hops = 3: 3 x chains x hops + 2 x chains = 44"},
      {{{"tokenizer", "bytes"}}, "data.tokenizer = \"bytes\": has no meaning"},
  };
  for (const auto& c : cases) {
    testing::TempDir dir;
    Json spec = {{"name", "bad"},
                 {"base", synthetic_config(c.data)},
                 {"variants", {{{"name", "attention"}}}},
                 {"seeds", {0}}};
    spec["base"].erase("seed");
    testing::write_text(dir / "spec.json", spec.dump());
    auto r = run_command("cd " + dir.path().string() + " && " + kSweep +
                         " run spec.json --db results/r.db --threads 1");
    INFO(c.needle);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(r.output.find("error: spec.json: ") != std::string::npos);
    CHECK(r.output.find(c.needle) != std::string::npos);
    // Nothing written: no database, no results folder, no checkpoints.
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir.path()))
      left.push_back(entry.path().filename().string());
    CHECK(left == std::vector<std::string>{"spec.json"});
  }
}

TEST_CASE("synthetic batches follow (seed, step) and hold the training examples") {
  RunConfig r = parse_run_config(synthetic_config({{"eval_examples", 50}}), "c.json");
  TaskData a(r.data.task, 32, 4, /*run_seed=*/7, torch::kCPU);
  TaskData b(r.data.task, 32, 4, /*run_seed=*/7, torch::kCPU);
  TaskData other_seed(r.data.task, 32, 4, /*run_seed=*/8, torch::kCPU);
  Batch first = a.batch(5), again = b.batch(5), next = a.batch(6), other = other_seed.batch(5);
  CHECK(first.inputs.sizes() == torch::IntArrayRef{4, 32});
  CHECK(torch::equal(first.inputs, again.inputs));
  CHECK(torch::equal(first.targets, again.targets));
  CHECK_FALSE(torch::equal(first.inputs, next.inputs));
  CHECK_FALSE(torch::equal(first.inputs, other.inputs));
  // Row i is training example i of the step, as recall_tasks.h draws it.
  RecallTaskData data(r.data.task, 32);
  for (int64_t i = 0; i < 4; ++i) {
    TaskExample e = data.training_example(7, 5, i);
    CHECK(torch::equal(first.inputs[i], torch::tensor(e.tokens, torch::kLong)));
    CHECK(torch::equal(first.targets[i], torch::tensor(e.targets, torch::kLong)));
  }
}

TEST_CASE("task scores: loss, accuracy, exact match and accuracy per hop, by hand") {
  // Two examples of 3 positions, vocabulary 3. Targets (-100: not asked):
  //   example 0: [2, -100, 0]   argmax [2, 1, 1] -> position 0 right, position 2 wrong
  //   example 1: [-100, 1, 1]   argmax [0, 1, 1] -> both right
  auto logits = torch::tensor({0.1, 0.2, 3.0, 0.0, 5.0, 0.0, 0.3, 0.9, 0.2,  //
                               2.0, 1.0, 0.0, 0.5, 1.5, 0.0, -1.0, 2.0, 1.0},
                              torch::kDouble)
                    .view({2, 3, 3});
  auto targets = torch::tensor({2, -100, 0, -100, 1, 1}, torch::kLong).view({2, 3});
  auto hops = torch::tensor({1, 0, 2, 0, 2, 1}, torch::kLong).view({2, 3});
  // Float64 reference: -log softmax(logits)[target], summed over the four asked positions.
  auto nll = [&](int b, int s, int t) {
    double z = 0;
    for (int v = 0; v < 3; ++v) z += std::exp(logits[b][s][v].item<double>());
    return std::log(z) - logits[b][s][t].item<double>();
  };
  const double loss = (nll(0, 0, 2) + nll(0, 2, 0) + nll(1, 1, 1) + nll(1, 2, 1)) / 4;

  TaskScores copy("copy", 0, torch::kCPU);
  copy.add(logits, targets, hops);
  auto m = copy.metrics("eval");
  CHECK(metric(m, "eval/loss") == doctest::Approx(loss).epsilon(1e-6));
  CHECK(metric(m, "eval/accuracy") == doctest::Approx(3.0 / 4));
  CHECK(metric(m, "eval/exact_match") == doctest::Approx(1.0 / 2));
  CHECK(m.size() == 3);

  // Added in two halves, the same numbers (sums, not means of batch means).
  TaskScores hop("multihop", 2, torch::kCPU);
  using torch::indexing::Slice;
  hop.add(logits.index({Slice(0, 1)}), targets.index({Slice(0, 1)}), hops.index({Slice(0, 1)}));
  hop.add(logits.index({Slice(1, 2)}), targets.index({Slice(1, 2)}), hops.index({Slice(1, 2)}));
  m = hop.metrics("eval_discrete");
  CHECK(metric(m, "eval_discrete/loss") == doctest::Approx(loss).epsilon(1e-6));
  CHECK(metric(m, "eval_discrete/accuracy") == doctest::Approx(3.0 / 4));
  // Hop 1: (0,0) right, (1,2) right; hop 2: (0,2) wrong, (1,1) right.
  CHECK(metric(m, "eval_discrete/accuracy_hop1") == doctest::Approx(1.0));
  CHECK(metric(m, "eval_discrete/accuracy_hop2") == doctest::Approx(0.5));
  CHECK(std::isnan(metric(m, "eval_discrete/exact_match")));
}

TEST_CASE("a synthetic run resumed from its checkpoint equals the uninterrupted run") {
  testing::TempDir dir;
  Json train = {{"steps", 12}, {"log_every", 4}, {"checkpoint_every", 4}};
  RunConfig config = parse_run_config(
      synthetic_config({{"task", "multihop"}, {"chains", 2}, {"hops", 3}, {"eval_examples", 64}},
                       train),
      "c.json");
  Recorder whole;
  TrainResult full = train_run(config, {}, whole);
  REQUIRE(full.finished);
  CHECK(whole.facts.train_tokens == 0);
  for (double p : whole.passes) CHECK(p == 0.0);
  CHECK(whole.facts.corpus.find("synthetic multihop") != std::string::npos);

  TrainOptions options;
  options.checkpoint_path = dir / "run.pt";
  Recorder first;
  first.stop_after_polls = 6;  // stops before step 7: the last checkpoint is step 4's
  REQUIRE_FALSE(train_run(config, options, first).finished);
  Recorder second;
  TrainResult resumed = train_run(config, options, second);
  REQUIRE(resumed.finished);
  for (const char* key : {"train/loss", "eval/loss", "eval/accuracy", "eval/accuracy_hop3"}) {
    INFO(key);
    CHECK(second.value(12, key) == whole.value(12, key));
    CHECK(std::isfinite(whole.value(12, key)));
  }
}

TEST_CASE("a tiny attention model learns mqar to over 90% accuracy") {
  // Calibrated on the 2-core machine: 1700 steps at a constant lr of 1e-3 reach 0.955 (seed 0)
  // and 0.950 (seed 1; not run here, to keep the test near 30 s at one thread). The model sits
  // at about 0.27 (it knows the 4 values in context but not which key they belong to) until
  // an induction head forms, between steps 700 and 1300 at this size; a higher lr (3e-3)
  // stayed on that plateau for 1500 steps. CPU training is deterministic, so this seed either
  // always passes or never does.
  RunConfig config = parse_run_config(
      synthetic_config({{"vocab_size", 64}, {"num_kv_pairs", 4}, {"eval_examples", 500}},
                       {{"steps", 1700},
                        {"batch_size", 32},
                        {"lr", 1e-3},
                        {"schedule", "constant"},
                        {"log_every", 100}}),
      "c.json");
  Recorder hooks;
  const auto start = std::chrono::steady_clock::now();
  TrainResult r = train_run(config, {}, hooks);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("eval/accuracy " << metric(r.last_eval, "eval/accuracy") << " after " << seconds << " s");
  // Untrained, it answers one of 32 values at random.
  CHECK(hooks.value(0, "eval/accuracy") < 0.1);
  CHECK(metric(r.last_eval, "eval/accuracy") > 0.9);
  CHECK(metric(r.last_eval, "eval/loss") < 1.0);  // uniform over 64 tokens: 4.16
}
