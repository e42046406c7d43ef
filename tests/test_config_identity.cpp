// A run's identity is the hash of its config. When a layer's default changes meaning
// (expert_choice's output LayerNorm, top_k's balance loss), the default is written into the
// config, so a run recorded under the old meaning is never reused, resumed or averaged as one
// of the new.
#include <doctest/doctest.h>

#include "experiments/run_config.h"
#include "sweeps/spec.h"

using namespace mixlab;

namespace {

Json run_config_with(const Json& ffn) {
  return {{"model", {{"d_model", 16}}}, {"ffn", ffn},
          {"data", Json::object()},     {"train", {{"steps", 4}}},
          {"eval", Json::object()},     {"seed", 0}};
}

const Json kExpertChoice = {
    {"type", "expert_choice"}, {"n_experts", 4}, {"group_size", 4}, {"expert_size", 8}};
const Json kTopK = {{"type", "top_k"}, {"n_experts", 4}, {"k", 2}, {"expert_size", 8}};

}  // namespace

TEST_CASE("changed defaults are written out: runs recorded before the change keep their identity") {
  for (const auto& [ffn, key, value] : {std::tuple{kExpertChoice, "output_norm", Json(true)},
                                        std::tuple{kTopK, "balance", Json("all_choices")}}) {
    CAPTURE(ffn);
    const Json recorded_before = run_config_with(ffn);
    // The hash such a config had when it was recorded, before the key existed.
    const std::string old_hash = content_hash(canonicalize(recorded_before));
    RunConfig now = parse_run_config(recorded_before, "c.json");
    CHECK(now.json["ffn"][key] == value);
    CHECK(now.hash != old_hash);

    Json explicit_default = recorded_before;
    explicit_default["ffn"][key] = value;
    CHECK(parse_run_config(explicit_default, "c.json").hash == now.hash);
  }
  // Layers whose defaults did not change keep their hashes.
  const Json dense = run_config_with({{"type", "dense"}});
  CHECK(parse_run_config(dense, "c.json").hash == content_hash(canonicalize(dense)));
}

TEST_CASE("changed defaults: a spec's runs and `sweep train` of the same config agree") {
  Json spec = {{"name", "t"},
               {"base", run_config_with({{"type", "dense"}})},
               {"variants",
                {{{"name", "ec"}, {"ffn", kExpertChoice}},
                 {{"name", "top2"}, {"ffn", kTopK}},
                 {{"name", "dense"}, {"ffn", {{"type", "dense"}}}}}},
               {"seeds", {0}}};
  spec["base"].erase("seed");
  SweepSpec s = parse_spec(spec, "spec.json");
  REQUIRE(s.runs.size() == 3);
  CHECK(s.runs[0].config["ffn"]["output_norm"] == true);
  CHECK(s.runs[1].config["ffn"]["balance"] == "all_choices");
  CHECK_FALSE(s.runs[2].config["ffn"].contains("output_norm"));
  for (const auto& run : s.runs) {
    Json raw = run.config;
    raw["ffn"].erase("output_norm");
    raw["ffn"].erase("balance");
    CHECK(parse_run_config(raw, "c.json").hash == content_hash(run.config));
  }
}

TEST_CASE("changed defaults: a variant spelling out the default is the same config, refused") {
  Json spec = {{"name", "t"},
               {"base", run_config_with({{"type", "dense"}})},
               {"variants",
                {{{"name", "ec"}, {"ffn", kExpertChoice}},
                 {{"name", "ec normed"}, {"ffn", kExpertChoice}, {"ffn.output_norm", true}}}},
               {"seeds", {0}}};
  spec["base"].erase("seed");
  try {
    parse_spec(spec, "spec.json");
    FAIL("two variants of one config were accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "variants");
    CHECK(std::string(e.what()).find("resolve to the same config") != std::string::npos);
  }
}
