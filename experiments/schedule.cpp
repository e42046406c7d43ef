#include "experiments/schedule.h"

#include <algorithm>
#include <cmath>

namespace mixlab {

int64_t warmup_steps(const TrainConfig& train) {
  return static_cast<int64_t>(std::ceil(train.warmup_frac * double(train.steps) - 1e-9));
}

double learning_rate(const TrainConfig& train, int64_t step) {
  const int64_t warmup = warmup_steps(train);
  if (step <= warmup) return train.lr * double(step) / double(warmup);
  if (train.schedule == "constant" || train.steps == warmup) return train.lr;
  const double p = std::min(1.0, double(step - warmup) / double(train.steps - warmup));
  const double f = train.final_lr_frac;
  if (train.schedule == "linear") return train.lr * (1.0 - (1.0 - f) * p);
  return train.lr * (f + (1.0 - f) * 0.5 * (1.0 + std::cos(M_PI * p)));
}

}  // namespace mixlab
