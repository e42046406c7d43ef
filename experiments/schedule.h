// The learning-rate schedule: linear warm-up, then cosine (or linear) decay to a final
// fraction of the peak, or constant.
#pragma once

#include <cstdint>

#include "experiments/run_config.h"

namespace mixlab {

// Warm-up length in steps: ceil(warmup_frac * steps).
int64_t warmup_steps(const TrainConfig& train);

// The learning rate of optimizer update `step` (1-based: the first update is step 1).
//   step <= W:  lr * step / W
//   after:      p = (step - W) / (steps - W);  cosine: lr * (f + (1 - f) (1 + cos(pi p)) / 2)
//                                              linear: lr * (1 - (1 - f) p)
double learning_rate(const TrainConfig& train, int64_t step);

}  // namespace mixlab
