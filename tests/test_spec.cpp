// Sweep spec expansion and the JSON config reader.
#include <doctest/doctest.h>

#include <filesystem>
#include <limits>

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
  SweepSpec set = parse_spec(example_spec(), "spec.json", {"train.steps=3", "ffn.d_ff=48"});
  for (const auto& r : set.runs) CHECK(r.config["train"]["steps"] == 3);
  CHECK(set.runs[0].config["ffn"]["d_ff"] == 48);       // dense has a d_ff
  CHECK(set.runs[3].config["ffn"].count("d_ff") == 0);  // the MoT variants do not
  CHECK(plain.spec_hash() != set.spec_hash());
  CHECK(plain.spec_hash() == parse_spec(example_spec(), "other.json").spec_hash());
}

namespace {
// The error parse_spec reports, as "key = value: message", or "no error".
std::string spec_error(const Json& spec, const std::vector<std::string>& overrides = {}) {
  try {
    parse_spec(spec, "s.json", overrides);
  } catch (const ConfigError& e) {
    CHECK(e.file() == "s.json");
    return e.key() + " = " + e.value() + ": " + e.message();
  }
  return "no error";
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}
}  // namespace

TEST_CASE("two variants that resolve to the same config are refused, naming both") {
  Json spec = example_spec();
  spec["variants"][1]["ffn.temperature"] = 1.0;  // 1.0 is the base's temperature
  spec["variants"].push_back({{"name", "base again"}});
  spec.erase("grid");
  const std::string error = spec_error(spec);
  CHECK(starts_with(error, "variants = \"T=0.3\" and \"base again\": resolve to the same"));

  // An override that makes two variants equal is refused too, and says so.
  spec = example_spec();
  spec.erase("grid");
  spec["variants"][2]["ffn.temperature"] = 0.5;
  CHECK(spec_error(spec) == "no error");
  CHECK(starts_with(spec_error(spec, {"ffn.temperature=2"}),
                    "variants = \"T=0.3\" and \"learned\": resolve to the same config (after "
                    "the --set overrides)"));
}

TEST_CASE("a variant name and a grid point that print alike are refused") {
  // Variant "m" gets the grid (it has ffn.group_size); the dense variant named like m's grid
  // point does not: two configs under one label would be averaged as one variant.
  Json spec = Json::parse(R"({
    "name": "t", "base": {"ffn": {"type": "mot", "group_size": 4}},
    "variants": [{"name": "m"}, {"name": "m group_size=2", "ffn": {"type": "dense"}}],
    "grid": {"ffn.group_size": [2, 8]}})");
  CHECK(starts_with(spec_error(spec), "variants = \"m group_size=2\": labels two different"));
  spec["variants"][1]["name"] = "dense";
  CHECK(spec_error(spec) == "no error");
}

TEST_CASE("repeated seeds and repeated grid values are refused, naming the key") {
  Json spec = example_spec();
  spec["seeds"] = Json::array({0, 1, 0});
  CHECK(spec_error(spec) == "seeds = [0,1,0]: repeats the seed 0");
  spec = example_spec();
  spec["grid"]["ffn.group_size"] = Json::array({2, 8, 2.0});  // 2.0 is the config 2
  CHECK(spec_error(spec) == "grid.ffn.group_size = [2,8,2.0]: repeats the value 2");
}

TEST_CASE("a seed set anywhere but seeds, or beyond int64, is refused naming the key") {
  Json spec = example_spec();
  spec["variants"][1]["seed"] = 7;
  CHECK(starts_with(spec_error(spec), "variants[1].seed = 7: a run's seed is set by the spec's"));
  spec = example_spec();
  spec["grid"]["seed"] = Json::array({5, 6});
  CHECK(starts_with(spec_error(spec), "grid.seed = [5,6]: a run's seed"));
  spec = example_spec();
  spec["base"]["seed"] = 3;
  CHECK(starts_with(spec_error(spec), "base.seed = 3: a run's seed"));
  CHECK(starts_with(spec_error(example_spec(), {"seed=4"}), "--set seed = 4: a run's seed"));

  // 2^64 - 1 parses as an unsigned integer; as int64 it would wrap to -1.
  spec = example_spec();
  spec["seeds"] = Json::parse("[0, 18446744073709551615]");
  CHECK(spec_error(spec) ==
        "seeds = [0,18446744073709551615]: 18446744073709551615 is beyond the integer range (at "
        "most 9223372036854775807)");
  spec["seeds"] = Json::parse("[-3, 9223372036854775807]");  // the extremes that fit are fine
  SweepSpec s = parse_spec(spec, "s.json");
  CHECK(s.runs[1].seed == std::numeric_limits<int64_t>::max());
  CHECK(s.runs[0].config["seed"] == -3);

  // Every integer key of a config: beyond int64 is refused, not wrapped.
  Json config = Json::parse(R"({"steps": 18446744073709551615, "ok": 5})");
  ConfigReader reader(config, "train");
  CHECK(reader.get_int("ok") == 5);
  try {
    reader.get_int("steps");
    FAIL("2^64 - 1 read as an int64");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "train.steps");
    CHECK(e.message().find("beyond the integer range") != std::string::npos);
  }
}

TEST_CASE("variant names with control characters are refused") {
  // Two names that differ only after a NUL print alike and would be averaged as one variant.
  Json spec = example_spec();
  spec["variants"][1]["name"] = std::string("T\0a", 3);
  spec["variants"][2]["name"] = std::string("T\0b", 3);
  CHECK(starts_with(spec_error(spec),
                    "variants[1].name = \"T\\u0000a\": must not contain "
                    "control characters"));
  spec = example_spec();
  spec["variants"][0]["name"] = "dense\tbig";
  CHECK(starts_with(spec_error(spec), "variants[0].name"));
  spec["variants"][0]["name"] = "dense big (d_ff=64), T=1";  // printable: fine
  CHECK(spec_error(spec) == "no error");
}

TEST_CASE("a relative data.path is relative to the spec's folder, --set's to the working folder") {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "specs/sub");
  Json spec = example_spec();
  spec["base"]["data"] = {{"corpus", "text"}, {"path", "../corpus"}};
  spec["variants"][0]["data.path"] = "/abs/text";  // absolute paths stay as they are
  testing::write_text(dir / "specs/sub/s.json", spec.dump());
  SweepSpec s = load_spec(dir / "specs/sub/s.json");
  CHECK(s.runs[0].config["data"]["path"] == "/abs/text");
  CHECK(s.runs[3].config["data"]["path"] == (dir.path() / "specs/corpus").string());

  SweepSpec set = load_spec(dir / "specs/sub/s.json", {"data.path=here/c.txt"});
  CHECK(set.runs[3].config["data"]["path"] ==
        (std::filesystem::current_path() / "here/c.txt").string());
}

TEST_CASE("deeply nested JSON is refused before it is parsed") {
  std::string deep(64, '[');
  deep += std::string(64, ']');
  CHECK(parse_json_text(deep, "x.json").is_array());  // the limit itself is fine
  CHECK_FALSE(nests_too_deep("{\"a\": \"" + std::string(1000, '[') + "\"}"));  // in a string
  try {
    parse_json_text("{\"a\":\n" + std::string(65, '[') + std::string(65, ']') + "}", "x.json");
    FAIL("65 levels accepted");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "x.json: JSON nested deeper than 64 levels at line 2");
  }

  // What crashed: 100000 levels, whose error message dumped the value recursively.
  testing::TempDir dir;
  testing::write_text(dir / "deep.json", std::string(100000, '[') + std::string(100000, ']'));
  try {
    load_spec(dir / "deep.json");
    FAIL("deep spec accepted");
  } catch (const ConfigError& e) {
    CHECK(e.file() == dir / "deep.json");
    CHECK(e.message().find("nested deeper than 64 levels at line 1") != std::string::npos);
  }
  try {
    parse_spec(example_spec(), "s.json", {"train.steps=" + std::string(100000, '[')});
    FAIL("deep --set accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "--set train.steps");
    CHECK(e.value().size() < 100);
  }
}

TEST_CASE("a number beyond a double is bad input naming the file, not an exception") {
  // Found by the fuzzer (tests/fuzz_corpus/regress_number_overflow.json): nlohmann throws
  // out_of_range, not parse_error, for 1e310, which the CLI reported as a failure (exit 1).
  try {
    parse_json_text(R"({"name": "x", "base": {"a": 1e310}})", "x.json");
    FAIL("1e310 parsed");
  } catch (const ConfigError& e) {
    CHECK(e.file() == "x.json");
    CHECK(e.message().find("number overflow") != std::string::npos);
  }
}

TEST_CASE("a spec larger than 16 MiB, a device or a folder is refused naming the file") {
  auto message_of = [](const std::string& file) -> std::string {
    try {
      load_spec(file);
    } catch (const ConfigError& e) {
      CHECK(e.file() == file);
      return e.message();
    }
    return "no error";
  };
  CHECK(message_of("/dev/zero") == "is larger than 16 MiB: not a spec or config");
  testing::TempDir dir;
  CHECK(message_of(dir.path().string()) == "is a folder, not a JSON file");
  // Just over the cap, in a regular file: refused; the same text under it is parsed.
  std::string big = "{\"name\": \"" + std::string(kMaxJsonBytes, 'x') + "\"}";
  testing::write_text(dir / "big.json", big);
  CHECK(message_of(dir / "big.json") == "is larger than 16 MiB: not a spec or config");
  big = "{\"name\": \"x\", \"description\": \"" + std::string(kMaxJsonBytes - 100, 'x') +
        "\", \"base\": {}}";
  testing::write_text(dir / "under.json", big);
  CHECK(load_spec(dir / "under.json").runs.size() == 1);
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
