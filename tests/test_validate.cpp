// What validation knows before training: a window must fit in each split of the corpus, the
// model must fit in memory, a temperature must not overflow the softmax; and spec files that
// are too deep or too large are refused by the real binary (exit 2, the file named, no crash).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "experiments/model.h"
#include "experiments/trainer.h"
#include "sweeps/validate.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;

namespace {

const std::string kSweep = MIXLAB_SWEEP_BIN;
namespace fs = std::filesystem;

// One dense run on the text corpus `corpus`, with `changes` (dotted keys) applied.
Json run_config(const std::string& corpus, const Json& changes = Json::object()) {
  Json config = Json::parse(R"({
    "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16},
    "ffn": {"type": "dense", "d_ff": 32},
    "data": {"corpus": "text"},
    "train": {"steps": 4, "batch_size": 8, "log_every": 2, "checkpoint_every": 0},
    "eval": {"every": 0, "batches": 1},
    "seed": 0
  })");
  config["data"]["path"] = corpus;
  for (auto it = changes.begin(); it != changes.end(); ++it) set_path(config, it.key(), it.value());
  return config;
}

// The error of check_run_feasible, as "key = value: message", or "no error".
std::string feasibility_error(const Json& config) {
  try {
    check_run_feasible(parse_run_config(config, "c.json"));
  } catch (const ConfigError& e) {
    return e.key() + " = " + e.value() + ": " + e.message();
  }
  return "no error";
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("a window longer than a split of the corpus is refused, naming model.seq_len") {
  testing::TempDir dir;
  fs::create_directories(dir / "text");
  // Sorted by name, a.txt is the validation split (every 20th file from the first): 40 bytes.
  testing::write_text(dir / "text/a.txt", std::string(39, 'v') + "\n");
  testing::write_text(dir / "text/b.txt", std::string(5000, 't') + "\n");
  CHECK(feasibility_error(run_config(dir / "text")) == "no error");  // 17 tokens fit in 41
  const std::string error = feasibility_error(run_config(dir / "text", {{"model.seq_len", 64}}));
  CHECK(starts_with(error,
                    "model.seq_len = 64: a window of model.seq_len + 1 = 65 tokens does "
                    "not fit in the validation split of " +
                        (dir / "text") + " (41 tokens)"));

  // On the real binary: exit 2 before anything is written.
  Json spec = {{"name", "window"}, {"base", run_config(dir / "text", {{"model.seq_len", 64}})}};
  spec["base"].erase("seed");
  testing::write_text(dir / "spec.json", spec.dump());
  auto r = run_command(kSweep + " run " + (dir / "spec.json") + " --db " + (dir / "r/r.db"));
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(r.output.find("spec.json: model.seq_len = 64: a window") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "r/r.db"));
}

TEST_CASE("sizes that cannot be allocated are refused, naming the key that makes them large") {
  testing::TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  CHECK(starts_with(feasibility_error(run_config(corpus, {{"model.d_model", 1 << 22}})),
                    "model.d_model = 4.1943e+06: the run needs at least "));
  CHECK(starts_with(feasibility_error(run_config(corpus, {{"train.batch_size", 1e9}})),
                    "train.batch_size = 1e+09: the run needs at least "));
  CHECK(starts_with(feasibility_error(run_config(corpus, {{"model.n_layers", 100000000}})),
                    "model.n_layers = 1e+08: "));
  CHECK(starts_with(
      feasibility_error(run_config(
          corpus,
          {{"ffn",
            {{"type", "mot"}, {"n_experts", 4096}, {"group_size", 4}, {"expert_size", 1 << 24}}}})),
      "ffn.expert_size = 1.67772e+07: "));
  // The message says how much and what this machine has.
  CHECK(feasibility_error(run_config(corpus, {{"model.d_model", 1 << 22}}))
            .find("this machine has") != std::string::npos);
}

TEST_CASE("the memory bound is the hand-computed sum and below what the model holds") {
  testing::TempDir dir;
  const RunConfig config = parse_run_config(run_config(testing::write_text_corpus(dir)), "");
  // d 16, 1 layer, S 16, V 256, batch 8, dense d_ff 32; 16 bytes a parameter, 4 an activation.
  const double params = (256 + 16) * 16 + 4 * 16 * 16 + 2 * 16 * 32;
  const double activations = 8 * 16 * (5 * 16 + 2 * 256);
  CHECK(training_memory_lower_bound(config) == 16 * params + 4 * activations);
  // A lower bound: the parameters it counts are at most the model's.
  torch::NoGradGuard no_grad;
  Gpt model(config.model, config.ffn);
  CHECK(params <= double(model->cost().params_total));
}

TEST_CASE("a temperature below the minimum is refused, the minimum itself trains") {
  testing::TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  const Json mot = {{"type", "mot"},
                    {"n_experts", 4},
                    {"group_size", 4},
                    {"d_ff", 32},
                    {"expert_size", "flop_matched"}};
  Json tiny = mot;
  tiny["temperature"] = 1e-30;
  CHECK(starts_with(feasibility_error(run_config(corpus, {{"ffn", tiny}})),
                    "ffn.temperature = 1e-30: must be at least 0.0001"));
  Json learned = mot;
  learned["temperature"] = "learnable";
  learned["initial_temperature"] = 1e-9;
  CHECK(starts_with(feasibility_error(run_config(corpus, {{"ffn", learned}})),
                    "ffn.initial_temperature = 1e-09: must be at least 0.0001"));

  Json at_minimum = mot;
  at_minimum["temperature"] = kMinTemperature;
  const Json config = run_config(corpus, {{"ffn", at_minimum}, {"train.steps", 20}});
  CHECK(feasibility_error(config) == "no error");
  testing::write_text(dir / "min_t.json", config.dump());
  auto r = run_command(kSweep + " train " + (dir / "min_t.json") + " --no-db --threads 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto at = r.output.find("eval/loss ");
  REQUIRE(at != std::string::npos);
  const double loss = std::stod(r.output.substr(at + 10));
  CHECK(std::isfinite(loss));
  CHECK(loss < 6);  // not diverged: a fresh model's loss is log 256 = 5.55
}

TEST_CASE("what the temperature bound prevents: 1e-30 diverges at the default model size") {
  // Trained without validation: the NaN loss names the temperature.
  testing::TempDir dir;
  Json config = run_config(testing::write_text_corpus(dir), {{"model.d_model", 64},
                                                             {"model.n_layers", 2},
                                                             {"model.seq_len", 64},
                                                             {"train.batch_size", 32},
                                                             {"train.steps", 4}});
  config["ffn"] = {{"type", "mot"},
                   {"n_experts", 16},
                   {"group_size", 16},
                   {"d_ff", 256},
                   {"expert_size", "flop_matched"},
                   {"temperature", 1e-30}};
  TrainHooks no_hooks;
  TrainOptions options;
  options.device = torch::kCPU;
  try {
    train_run(parse_run_config(config, ""), options, no_hooks);
    FAIL("T = 1e-30 trained without diverging: the bound's reason is gone");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("nan") != std::string::npos);
    // The run's error names the real cause, not only the learning rate.
    CHECK(std::string(e.what()).find("layer 0's controller temperature is 1e-30") !=
          std::string::npos);
  }
}

TEST_CASE("a spec or config that is too deep or too large: exit 2, the file named, no crash") {
  testing::TempDir dir;
  testing::write_text(dir / "deep.json", std::string(200000, '[') + std::string(200000, ']'));
  for (const std::string command : {"run", "train"}) {
    auto deep =
        run_command(kSweep + " " + command + " " + (dir / "deep.json") + " --db " + (dir / "r.db"));
    INFO(command << ": " << deep.output);
    CHECK(deep.status == 2);
    CHECK(deep.output.find("error: " + (dir / "deep.json") +
                           ": JSON nested deeper than 64 levels at line 1") != std::string::npos);
    auto zero = run_command(kSweep + " " + command + " /dev/zero --db " + (dir / "r.db"));
    INFO(zero.output);
    CHECK(zero.status == 2);
    CHECK(zero.output.find("error: /dev/zero: is larger than 16 MiB") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir / "r.db"));
}
