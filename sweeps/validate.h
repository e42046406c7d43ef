// Checks every run of an expanded spec before anything is written: configs parse, layers
// accept their shapes, the corpus is present. Errors name the spec file and the run.
#pragma once

#include <vector>

#include "experiments/run_config.h"
#include "sweeps/spec.h"

namespace mixlab {

std::vector<RunConfig> validate_spec(const SweepSpec& spec);

}  // namespace mixlab
