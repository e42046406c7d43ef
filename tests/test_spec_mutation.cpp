// Fixed-seed mutation fuzzing of whole specs through everything `sweep run` checks before it
// writes: parse_spec, then validate_spec (parse_run_config of every run: the model, ffn, mixer,
// data, train and eval keys, and the run's feasibility). The libFuzzer target (fuzz/) covers the
// spec parser byte by byte but cannot reach these, which need LibTorch; this test can.
//
// Each case starts from a bundled spec or a fuzz seed and rewrites a few keys of the base, a
// variant or the grid with hostile values (zero, negative, huge, fractional, the wrong type,
// names of other layers). A bug is any exception other than ConfigError, or a ConfigError whose
// message does not name the spec file: `sweep run` would report either as a failure while
// running (exit 1) instead of bad input (exit 2) naming the key.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "sweeps/spec.h"
#include "sweeps/validate.h"

using namespace mixlab;

namespace {

const std::vector<std::pair<std::string, std::vector<std::string>>> kKeys = {
    {"model", {"d_model", "n_layers", "n_heads", "seq_len", "init"}},
    {"ffn",
     {"type", "d_ff", "n_experts", "group_size", "expert_size", "temperature",
      "initial_temperature", "learn_temperature_from_step", "capacity_factor", "k",
      "aux_loss_weight", "z_loss", "slots_per_expert", "switch_at_step", "output_norm", "balance"}},
    {"mixer", {"type", "window", "order", "pattern", "cache_efficient"}},
    {"data", {"corpus", "tokenizer", "path"}},
    {"train",
     {"steps", "batch_size", "lr", "warmup_frac", "schedule", "final_lr_frac", "weight_decay",
      "grad_clip", "beta1", "beta2", "log_every", "checkpoint_every", "precision"}},
    {"eval", {"every", "batches", "modes"}},
};

std::vector<Json> hostile_values() {
  return {0,
          1,
          2,
          3,
          7,
          16,
          -1,
          0.5,
          1e-30,
          1e20,
          1e308,
          -1e308,
          std::numeric_limits<int64_t>::max(),
          std::numeric_limits<int64_t>::min(),
          "",
          "x",
          "flop_matched",
          "learnable",
          "dense",
          "mot",
          "switch",
          "top_k",
          "expert_choice",
          "soft_moe",
          "transition",
          "attention",
          "local_attention",
          "diagonal_ssm",
          "recurrence",
          "pow2",
          "square_plus_one",
          "kth",
          true,
          false,
          nullptr,
          Json::array(),
          Json::object(),
          Json::array({"mixed", "discrete", "switch"})};
}

// One rewrite: a key of a section of the base or of one variant set to a hostile value, or
// removed; or a grid axis over two hostile values.
void mutate(Json& spec, std::mt19937_64& rng, const std::vector<Json>& values) {
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const auto& [section, keys] = kKeys[pick(kKeys.size())];
  const std::string& key = keys[pick(keys.size())];
  const Json& value = values[pick(values.size())];
  switch (pick(4)) {
    case 0: {  // the base
      if (!spec["base"].is_object()) spec["base"] = Json::object();
      Json& s = spec["base"][section];
      if (!s.is_object()) s = Json::object();
      s[key] = value;
      break;
    }
    case 1: {  // a variant, by dotted key
      if (!spec["variants"].is_array() || spec["variants"].empty())
        spec["variants"] = Json::array({{{"name", "v"}}});
      spec["variants"][pick(spec["variants"].size())][section + "." + key] = value;
      break;
    }
    case 2:  // a grid axis
      spec["grid"] = {{section + "." + key, Json::array({value, values[pick(values.size())]})}};
      break;
    default:  // a key of the base removed
      if (spec["base"].is_object() && spec["base"][section].is_object())
        spec["base"][section].erase(key);
  }
}

std::vector<Json> seed_specs() {
  namespace fs = std::filesystem;
  std::vector<Json> seeds;
  for (const char* dir : {"sweeps", "tests/fuzz_corpus"})
    for (const auto& entry : fs::directory_iterator(fs::path(MIXLAB_SOURCE_DIR) / dir)) {
      if (entry.path().extension() != ".json") continue;
      try {
        Json spec = read_json_file(entry.path().string());
        if (spec.is_object()) seeds.push_back(std::move(spec));
      } catch (const ConfigError&) {  // a seed meant to be malformed
      }
    }
  std::sort(seeds.begin(), seeds.end(), [](const Json& a, const Json& b) {
    return a.dump() < b.dump();  // the directory's order is not fixed: the cases must be
  });
  return seeds;
}

}  // namespace

TEST_CASE("mutated specs through validate_spec: bad input is a ConfigError naming the file") {
  const auto seeds = seed_specs();
  REQUIRE(seeds.size() >= 5);
  const auto values = hostile_values();
  std::mt19937_64 rng(20261201);  // fixed: a failure reproduces
  int valid = 0, refused_in_runs = 0, refused_in_spec = 0;
  for (int i = 0; i < 1500; ++i) {
    Json spec = seeds[size_t(i) % seeds.size()];
    spec["seeds"] = Json::array({0});  // keep expansions small
    const int rewrites = 1 + i % 3;
    for (int r = 0; r < rewrites; ++r) mutate(spec, rng, values);
    CAPTURE(spec.dump());
    bool parsed = false;
    try {
      SweepSpec s = parse_spec(spec, "mut.json");
      parsed = true;
      validate_spec(s);
      ++valid;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      CHECK_MESSAGE(what.rfind("mut.json: ", 0) == 0, "does not name the file: " << what);
      CHECK_MESSAGE(what.find('\n') == std::string::npos, "not one line: " << what);
      ++(parsed ? refused_in_runs : refused_in_spec);
    } catch (const std::exception& e) {
      FAIL("not a ConfigError: " << e.what());
    }
  }
  MESSAGE(valid << " valid, " << refused_in_runs << " refused by the run checks, "
                << refused_in_spec << " by the spec parser");
  // The mutations reach the run checks, and not only as failures.
  CHECK(refused_in_runs > 300);
  CHECK(valid > 50);
}
