// sweep specs: the bundled specs a run can name (sweeps/spec_lookup.h), with what each runs.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <sstream>

#include "experiments/config_reader.h"
#include "experiments/install_layout.h"
#include "sweeps/commands.h"
#include "sweeps/spec.h"
#include "sweeps/spec_lookup.h"

namespace mixlab {

namespace {
// Up to and including the first ". ": specs open with a sentence saying what they compare.
std::string first_sentence(const std::string& text) {
  const auto end = text.find(". ");
  return end == std::string::npos ? text : text.substr(0, end + 1);
}

std::string wrapped(const std::string& text, size_t width, const std::string& indent) {
  std::istringstream words(text);
  std::string word, line, out;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

int list_specs(bool full) {
  const auto specs = bundled_specs();
  if (specs.empty()) {
    std::cout << fmt::format("no bundled specs in {}\n", bundled_specs_dir().string());
    return 0;
  }
  std::cout << fmt::format("bundled specs in {} (run one by name: sweep run NAME.json)\n",
                           bundled_specs_dir().string());
  std::cout << fmt::format("{:<30} {:>5}  {}\n", "spec", "runs", "description");
  int status = 0;
  for (const auto& path : specs) {
    const std::string file = path.filename().string();
    try {
      const SweepSpec spec = load_spec(path.string());
      if (full) {
        std::cout << fmt::format("{:<30} {:>5}\n", file, spec.runs.size())
                  << wrapped(spec.description, 90, "    ");
      } else {
        std::cout << fmt::format("{:<30} {:>5}  {}\n", file, spec.runs.size(),
                                 first_sentence(spec.description));
      }
    } catch (const ConfigError& e) {
      std::cout << fmt::format("{:<30} {:>5}  invalid: {}\n", file, "?", e.what());
      status = 2;
    }
  }
  return status;
}
}  // namespace

std::vector<Command> add_specs_commands(CLI::App& app) {
  auto full = std::make_shared<bool>(false);
  auto* specs = app.add_subcommand(
      "specs", "list the bundled sweep specs (run one by name) with their run counts");
  specs->add_flag("--full", *full, "print each spec's whole description");
  return {{specs, [=] { return list_specs(*full); }}};
}

}  // namespace mixlab
