// Sweep spec expansion and the JSON config reader.
#include <doctest/doctest.h>

#include "sweeps/spec.h"
#include "test_helpers.h"

using namespace mixlab;

namespace {
Json example_spec() {
  return Json::parse(R"({
    "name": "t",
    "base": {"model": {"d_model": 16}, "ffn": {"type": "mot", "group_size": 4, "temperature": 1.0},
             "train": {"steps": 10}},
    "variants": [{"name": "dense", "ffn": {"type": "dense", "d_ff": 64}},
                 {"name": "T=0.3", "ffn.temperature": 0.3},
                 {"name": "learned", "ffn.temperature": "learnable"}],
    "grid": {"ffn.group_size": [2, 8]},
    "seeds": [0, 1, 2]
  })");
}
}  // namespace

TEST_CASE("variants x grid x seeds, the grid only where its key exists") {
  SweepSpec s = parse_spec(example_spec(), "spec.json");
  // dense has no ffn.group_size: 1 point; the two MoT variants: 2 points each. x 3 seeds.
  REQUIRE(s.runs.size() == (1 + 2 + 2) * 3);
  CHECK(s.runs[0].variant == "dense");
  CHECK(s.runs[0].name == "dense seed=0");
  CHECK(s.runs[0].config["ffn"] == Json::parse(R"({"type": "dense", "d_ff": 64})"));
  CHECK(s.runs[3].variant == "T=0.3 group_size=2");
  CHECK(s.runs[3].config["ffn"]["temperature"] == 0.3);
  CHECK(s.runs[3].config["ffn"]["group_size"] == 2);
  CHECK(s.runs[3].config["model"]["d_model"] == 16);
  CHECK(s.runs[5].seed == 2);
  CHECK(s.runs[5].config["seed"] == 2);
  CHECK(s.runs.back().variant == "learned group_size=8");
  CHECK(s.runs.back().config["ffn"]["temperature"] == "learnable");
  std::set<std::string> names;
  for (const auto& r : s.runs) names.insert(r.name);
  CHECK(names.size() == s.runs.size());
}

TEST_CASE("--set overrides apply last, and change the spec hash") {
  SweepSpec plain = parse_spec(example_spec(), "spec.json");
  SweepSpec set = parse_spec(example_spec(), "spec.json", {"train.steps=3", "ffn.temperature=2"});
  for (const auto& r : set.runs) CHECK(r.config["train"]["steps"] == 3);
  CHECK(set.runs[0].config["ffn"].count("temperature") == 0);  // dense has no temperature
  CHECK(set.runs[3].config["ffn"]["temperature"] == 2);
  CHECK(plain.spec_hash() != set.spec_hash());
  CHECK(plain.spec_hash() == parse_spec(example_spec(), "other.json").spec_hash());
}

TEST_CASE("configs that resolve to the same JSON are one run") {
  Json spec = example_spec();
  spec["variants"][1]["ffn.temperature"] = 1.0;  // same as base
  spec["variants"].push_back({{"name", "base again"}});
  spec.erase("grid");
  SweepSpec s = parse_spec(spec, "spec.json");
  CHECK(s.runs.size() == 3 * 3);  // dense, T=1 (== base again), learned
}

TEST_CASE("canonical configs: 1.0 and 1 hash the same, key order does not matter") {
  CHECK(content_hash(Json::parse(R"({"a": 1.0, "b": {"c": 2}})")) ==
        content_hash(Json::parse(R"({"b": {"c": 2}, "a": 1})")));
  CHECK(content_hash(Json::parse(R"({"a": 1.5})")) != content_hash(Json::parse(R"({"a": 1})")));
}

TEST_CASE("bad specs name the file, the key and the value") {
  auto error_of = [](const Json& spec) -> std::string {
    try {
      parse_spec(spec, "s.json");
    } catch (const ConfigError& e) {
      CHECK(e.file() == "s.json");
      return e.key() + " = " + e.value();
    }
    return "no error";
  };
  Json s = example_spec();
  s["seeds"] = Json::array({0, "one"});
  CHECK(error_of(s) == "seeds = [0,\"one\"]");
  s = example_spec();
  s["grid"]["ffn.group_size"] = 4;
  CHECK(error_of(s) == "grid.ffn.group_size = 4");
  s = example_spec();
  s["name"] = "has space";
  CHECK(error_of(s) == "name = \"has space\"");
  s = example_spec();
  s["variant"] = Json::array();  // typo of "variants"
  CHECK(error_of(s).rfind("variant", 0) == 0);
  s = example_spec();
  s["variants"][2]["name"] = "T=0.3";
  CHECK(error_of(s) == "variants[2].name = \"T=0.3\"");

  testing::TempDir dir;
  testing::write_text(dir / "broken.json", "{\"name\": \"x\",\n  \"base\": {,}\n}");
  try {
    load_spec(dir / "broken.json");
    FAIL("malformed JSON accepted");
  } catch (const ConfigError& e) {
    CHECK(e.file() == dir / "broken.json");
    CHECK(std::string(e.what()).find("line 2") != std::string::npos);
  }
}
