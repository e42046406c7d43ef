// How far a sweep has come: runs per status, the fraction of its training steps done and an
// estimate of the time left. `sweep status` prints it; `sweep serve` shows it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "results/store.h"

namespace mixlab {

struct SweepProgress {
  std::string sweep;
  std::vector<RunRow> runs;               // in expansion order
  std::map<std::string, int> per_status;  // status -> runs (only statuses that occur)
  double done_steps = 0, total_steps = 0;
  double fraction = 0;                 // done_steps / total_steps (0 without steps)
  std::optional<double> seconds_left;  // only while a run is running and 0 < fraction < 1
  // A run is pending or running: the sweep may still change.
  bool active() const;
};

// Steps of a finished run count in full, of any other run up to its last logged step; the
// time left extrapolates the time since the first run started at the rate so far.
SweepProgress sweep_progress(Store& store, const std::string& sweep, double now);

}  // namespace mixlab
