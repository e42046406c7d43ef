// A SPEC argument as users type it: a file path, or the name of a bundled spec
// (`sweep run temperature_sweep.json` from any folder). Bundled specs are the checkout's
// sweeps/ when sweep runs from its build tree, <prefix>/share/mixlab/sweeps when installed
// (experiments/install_layout.h).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace mixlab {

struct FoundSpec {
  std::string path;  // the file to read
  std::string note;  // one line for the user when the file is not simply the one typed; or ""
};

// The bundled specs (*.json), sorted by name; empty when the folder is missing.
std::vector<std::filesystem::path> bundled_specs();

// An existing file (not a folder) wins: noted when a bare name (no folder) shadows a bundled
// spec of the same name. Otherwise a bare name, with or without ".json", names a bundled spec.
// Anything else throws ConfigError (exit 2) naming the argument and listing the bundled specs.
FoundSpec find_spec(const std::string& argument);

// find_spec, printing its note: what every command taking a SPEC argument calls.
std::string resolve_spec_argument(const std::string& argument);

}  // namespace mixlab
