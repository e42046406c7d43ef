#include "sweeps/spec_lookup.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <iostream>

#include "experiments/config_reader.h"
#include "experiments/install_layout.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {
bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}

std::string bundled_names() {
  std::vector<std::string> names;
  for (const auto& spec : bundled_specs()) names.push_back(spec.filename().string());
  if (names.empty()) return fmt::format("none found in {}", bundled_specs_dir().string());
  return fmt::format("bundled specs in {}: {}", bundled_specs_dir().string(),
                     fmt::join(names, ", "));
}
}  // namespace

std::vector<fs::path> bundled_specs() {
  std::vector<fs::path> specs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(bundled_specs_dir(), ec))
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      specs.push_back(entry.path());
  std::sort(specs.begin(), specs.end());
  return specs;
}

FoundSpec find_spec(const std::string& argument) {
  const fs::path typed(argument);
  // Only a bare name can mean a bundled spec: a path with a folder means that file.
  const bool bare_name = !argument.empty() && !typed.has_parent_path();
  fs::path bundled;
  if (bare_name) {
    for (const fs::path& name : {typed, fs::path(argument + ".json")}) {
      if (name.extension() != ".json") continue;
      std::error_code ec;
      if (fs::is_regular_file(bundled_specs_dir() / name, ec)) {
        bundled = bundled_specs_dir() / name;
        break;
      }
    }
  }
  std::error_code ec;
  // A folder is not a spec file: a bundled spec of its name is (else read_json_file says so).
  const bool local_file = fs::exists(typed, ec) && !fs::is_directory(typed, ec);
  if (local_file || (bundled.empty() && fs::exists(typed, ec))) {
    FoundSpec found{argument, ""};
    if (!bundled.empty() && !same_file(typed, bundled))
      found.note =
          fmt::format("spec: using the local file {}, not the bundled spec {} of the same name",
                      fs::absolute(typed).lexically_normal().string(), bundled.string());
    return found;
  }
  if (!bundled.empty()) return {bundled.string(), fmt::format("spec: {}", bundled.string())};
  throw ConfigError(
      argument, "", "",
      fmt::format("no such file, and no bundled spec of that name ({})", bundled_names()));
}

std::string resolve_spec_argument(const std::string& argument) {
  FoundSpec found = find_spec(argument);
  if (!found.note.empty()) std::cout << found.note << std::endl;
  return found.path;
}

}  // namespace mixlab
