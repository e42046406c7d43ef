// libFuzzer target: the sweep-spec parser and expander (sweeps/spec.cpp over
// experiments/config_reader.cpp) on arbitrary bytes. It reaches every check of a spec (names,
// seeds, variants, grid, --set overrides, duplicate configs, data paths, JSON nesting depth) and
// of the config reader; not parse_run_config or validate_spec's checks of a run (model, ffn,
// data, train and eval keys; corpus, memory, temperature), which need LibTorch (the layers'
// builders), so they are tested in tests/test_spec.cpp and on the real binary instead.
//
// Input: optional `--set` overrides, one per line, then a line "%%", then the spec's JSON text
// (without a "%%" line the whole input is the spec). What counts as a bug:
//   - a crash, a sanitizer report (ASan, UBSan), or a hang;
//   - an exception other than ConfigError out of parse_spec: the CLI would report it as a
//     failure while running (exit 1) with an unhelpful message instead of naming the key;
//   - an unstable identity: a run's canonical config must survive dump -> parse -> canonicalise
//     unchanged, and hash the same, or a resumed sweep would not find its own runs.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sweeps/spec.h"

using mixlab::ConfigError;
using mixlab::Json;

namespace {
[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "fuzz_spec: %s\n", what.c_str());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  if (auto split = text.find("%%\n"); split != std::string::npos) {
    std::string head = text.substr(0, split);
    text = text.substr(split + 3);
    size_t start = 0;
    while (start < head.size() && overrides.size() < 8) {
      size_t end = head.find('\n', start);
      if (end == std::string::npos) end = head.size();
      overrides.push_back(head.substr(start, end - start));
      start = end + 1;
    }
  }
  try {
    // As read_json_file parses a spec file: malformed or too deeply nested text is a
    // ConfigError naming the file.
    const Json spec = mixlab::parse_json_text(text, "fuzz.json");
    mixlab::SweepSpec parsed = mixlab::parse_spec(spec, "fuzz.json", overrides);
    (void)parsed.spec_hash();
    for (const auto& run : parsed.runs) {
      const std::string dump = mixlab::canonical_dump(run.config);
      const Json again = mixlab::canonicalize(Json::parse(dump));
      if (again.dump() != dump) bug("canonical form not stable: " + dump + " vs " + again.dump());
      if (mixlab::content_hash(again) != mixlab::content_hash(run.config))
        bug("hash not stable for " + dump);
    }
  } catch (const ConfigError& e) {
    // Bad input, reported as such: the message names the file.
    if (std::string(e.what()).rfind("fuzz.json: ", 0) != 0)
      bug(std::string("error does not name the file: ") + e.what());
  } catch (const std::exception& e) {
    bug(std::string("not a ConfigError: ") + e.what());
  }
  return 0;
}
