#include "sweeps/validate.h"

#include <set>

#include "experiments/corpus.h"

namespace mixlab {

std::vector<RunConfig> validate_spec(const SweepSpec& spec) {
  std::vector<RunConfig> out;
  std::set<std::string> corpora_checked;
  for (const auto& planned : spec.runs) {
    try {
      RunConfig config = parse_run_config(planned.config, "");
      const std::string corpus_key = canonical_dump(config.json.at("data"));
      if (corpora_checked.insert(corpus_key).second) check_corpus_available(config.data);
      out.push_back(std::move(config));
    } catch (const ConfigError& e) {
      throw ConfigError(spec.file, e.key(), e.value(),
                        e.message() + " (in run \"" + planned.name + "\")");
    }
  }
  return out;
}

}  // namespace mixlab
