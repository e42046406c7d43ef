// Sweep specs: parsing and expansion into one resolved config per run.
//
// runs = variants x grid x seeds. A variant's keys are dotted paths that replace values
// of the base config; a grid key (and a --set override) applies to every run whose config
// has that key, or to all runs if none has it (so a group-size grid skips dense variants).
// Pure JSON: nothing here knows about layers or LibTorch (see validate.h for that).
#pragma once

#include <string>
#include <vector>

#include "experiments/config_reader.h"

namespace mixlab {

struct PlannedConfig {
  std::string name;     // variant label plus seed, unique in the sweep
  std::string variant;  // variant name plus grid point: the group of mean +- std
  Json config;          // resolved config, with "seed"
  int64_t seed = 0;
};

struct SweepSpec {
  std::string file;  // where it came from, for error messages
  std::string name;
  std::string description;
  Json spec;                           // as read
  std::vector<std::string> overrides;  // --set key=value, in order
  std::vector<PlannedConfig> runs;     // expanded; no two alike
  // Hash of the spec and its overrides: a changed spec gets a changed hash.
  std::string spec_hash() const;
  Json spec_with_overrides() const;
};

// Parses "key=value": value as JSON when it parses, else as a string.
std::pair<std::string, Json> parse_override(const std::string& text);

// Makes a relative `data.path` of `config` absolute, relative to the folder of
// `relative_to_file` (a spec or run config file; "" for the working folder).
void resolve_data_path(Json& config, const std::string& relative_to_file);

// Throws ConfigError (with the file named) on any problem: among them a seed set anywhere but
// "seeds" (or beyond int64), a repeated seed or grid value, a variant name with a control
// character, and two variants (or grid points) that resolve to the same config.
SweepSpec parse_spec(const Json& spec, const std::string& file,
                     const std::vector<std::string>& overrides = {});
SweepSpec load_spec(const std::string& file, const std::vector<std::string>& overrides = {});

}  // namespace mixlab
