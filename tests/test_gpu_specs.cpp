// The specs in sweeps/gpu/ (the paper's tables at the GPU pilot's and at GPT-Medium scale) and
// sweeps/mot_scan/ (the documented search for MoT's regime) are files users run as they are:
// each must parse, expand, and give run configs that validate on this CPU machine, without the
// english corpus being here (CI has none) and without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "experiments/run_config.h"
#include "sweeps/spec.h"
#include "sweeps/validate.h"

using namespace mixlab;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> specs_in(const std::string& folder) {
  std::vector<fs::path> specs;
  for (const auto& entry : fs::directory_iterator(fs::path(MIXLAB_SOURCE_DIR) / folder))
    if (entry.path().extension() == ".json") specs.push_back(entry.path());
  std::sort(specs.begin(), specs.end());
  return specs;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every run of the spec parses as a run config; returns them.
std::vector<RunConfig> run_configs(const SweepSpec& spec) {
  std::vector<RunConfig> out;
  for (const auto& run : spec.runs) {
    INFO(run.name);
    try {
      out.push_back(parse_run_config(run.config, spec.file));
    } catch (const ConfigError& e) {
      FAIL(e.what());
    }
  }
  return out;
}

}  // namespace

TEST_CASE("sweeps/gpu: every spec validates, fits one 80 GB GPU, and states its time and data") {
  const auto specs = specs_in("sweeps/gpu");
  REQUIRE(specs.size() >= 6);
  for (const auto& path : specs) {
    INFO(path.filename().string());
    const SweepSpec spec = load_spec(path.string());
    REQUIRE(!spec.runs.empty());
    // The description says what a user needs before spending GPU time on it.
    CHECK(contains(spec.description, "H100"));
    CHECK(contains(spec.description, "estimate"));
    CHECK(contains(spec.description, "--device cuda"));
    CHECK(contains(spec.description, "pass"));
    bool dense = false;
    for (const RunConfig& config : run_configs(spec)) {
      CHECK(config.data.corpus == "english");
      CHECK(config.data.tokenizer == "sentencepiece");
      CHECK(config.model.vocab_size == 16384);
      CHECK(config.model.seq_len == 256);
      // The harness's own lower bound of the memory a run needs (weights, gradients, AdamW
      // state, one batch's activations) is within an H100's 80 GB.
      CHECK(training_memory_lower_bound(config) < 80.0 * (1ull << 30));
      dense = dense || config.ffn_json.value("type", "") == "dense";
      const bool medium = contains(path.filename().string(), "medium");
      CHECK(config.model.d_model == (medium ? 512 : 256));
      CHECK(config.model.n_layers == (medium ? 8 : 4));
      CHECK(config.train.batch_size == (medium ? 256 : 32));
      if (medium) {
        // The 2024 paper's choices (../shared/research/mot_training_configs.md).
        CHECK(config.model.n_heads == 8);
        CHECK_FALSE(config.model.final_norm);
        CHECK_FALSE(config.model.tied_head);
        CHECK(config.model.init == "reference");
        CHECK(config.train.beta2 == 0.999);
        CHECK(config.train.decay == "all");
        CHECK(config.train.grad_clip == 0.5);
        CHECK(config.train.lr == 7e-4);
        // MoT in the upper half: blocks 4-7 of 8.
        CHECK(config.model.ffn_in_block ==
              std::vector<bool>{false, false, false, false, true, true, true, true});
      }
    }
    CHECK(dense);  // every table compares against a dense baseline
  }
}

TEST_CASE("sweeps/mot_scan and sweeps/mot_advantage.json: every run config validates") {
  auto specs = specs_in("sweeps/mot_scan");
  REQUIRE(!specs.empty());
  specs.push_back(fs::path(MIXLAB_SOURCE_DIR) / "sweeps/mot_advantage.json");
  for (const auto& path : specs) {
    INFO(path.filename().string());
    const SweepSpec spec = load_spec(path.string());
    REQUIRE(!spec.runs.empty());
    CHECK(run_configs(spec).size() == spec.runs.size());
  }
}
