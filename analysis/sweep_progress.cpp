#include "analysis/sweep_progress.h"

#include <algorithm>

#include "experiments/config_reader.h"

namespace mixlab {

bool SweepProgress::active() const {
  return per_status.count("pending") > 0 || per_status.count("running") > 0;
}

SweepProgress sweep_progress(Store& store, const std::string& sweep, double now) {
  SweepProgress p;
  p.sweep = sweep;
  p.runs = store.sweep_runs(sweep);
  double first_start = now;
  for (const auto& run : p.runs) {
    ++p.per_status[run.status];
    const Json config = Json::parse(run.config_json, nullptr, false);
    // The default of experiments/run_config when the config does not say.
    double steps = 1000;
    if (const Json* v = config.is_object() ? find_path(config, "train.steps") : nullptr)
      if (v->is_number()) steps = v->get<double>();
    p.total_steps += steps;
    p.done_steps += run.status == "finished" ? steps : double(run.last_step.value_or(0));
    if (run.started_at) first_start = std::min(first_start, *run.started_at);
  }
  p.fraction = p.total_steps > 0 ? p.done_steps / p.total_steps : 0;
  if (p.per_status.count("running") && p.fraction > 0 && p.fraction < 1)
    p.seconds_left = (now - first_start) * (1 - p.fraction) / p.fraction;
  return p;
}

}  // namespace mixlab
