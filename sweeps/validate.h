// Checks every run of an expanded spec before anything is written: configs parse, layers
// accept their shapes, the corpus is present and holds a window, the model fits in memory.
// Errors name the spec file and the run.
#pragma once

#include <vector>

#include "experiments/run_config.h"
#include "layers/mot.h"  // kMinTemperature
#include "sweeps/spec.h"

namespace mixlab {

std::vector<RunConfig> validate_spec(const SweepSpec& spec);

// What a parsed config needs of this machine and its data, which parsing alone cannot know
// (used by validate_spec and by `sweep train`); throws ConfigError naming the key:
// - the corpus is there, and each split is longer than one window (model.seq_len + 1 tokens);
// - a lower bound of the memory the run needs (parameters with their gradients and AdamW
//   state, activations of one batch) is within the machine's physical memory; the key named
//   is the size that, put back to an ordinary value, would lower the bound most;
// - a fixed or initial MoT temperature is at least kMinTemperature.
void check_run_feasible(const RunConfig& config);

// A lower bound, in bytes, of the host memory a run of `config` needs to train.
double training_memory_lower_bound(const RunConfig& config);

}  // namespace mixlab
