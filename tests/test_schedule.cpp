// The learning-rate schedule against its closed form.
#include <doctest/doctest.h>

#include <cmath>

#include "experiments/schedule.h"

using namespace mixlab;

TEST_CASE("linear warm-up, then cosine to the final fraction") {
  TrainConfig t;
  t.steps = 100;
  t.lr = 1e-3;
  t.warmup_frac = 0.1;
  t.final_lr_frac = 0.1;
  t.schedule = "cosine";
  CHECK(warmup_steps(t) == 10);
  CHECK(learning_rate(t, 1) == doctest::Approx(1e-4));
  CHECK(learning_rate(t, 5) == doctest::Approx(5e-4));
  CHECK(learning_rate(t, 10) == doctest::Approx(1e-3));
  // Halfway through the decay: cos(pi/2) = 0, so lr = (f + (1 - f) / 2) peak.
  CHECK(learning_rate(t, 55) == doctest::Approx(1e-3 * 0.55));
  CHECK(learning_rate(t, 100) == doctest::Approx(1e-4));
  // A third of the way: cos(pi/3) = 1/2, so lr = (0.1 + 0.9 * 0.75) peak.
  CHECK(learning_rate(t, 40) == doctest::Approx(1e-3 * 0.775));
  for (int64_t s = 11; s <= 100; ++s) CHECK(learning_rate(t, s) <= learning_rate(t, s - 1) + 1e-15);
}

TEST_CASE("warm-up rounds up, linear and constant decay") {
  TrainConfig t;
  t.steps = 1000;
  t.lr = 2.0;
  t.warmup_frac = 0.0015;  // 1.5 steps -> 2
  CHECK(warmup_steps(t) == 2);
  CHECK(learning_rate(t, 1) == doctest::Approx(1.0));
  t.schedule = "linear";
  t.final_lr_frac = 0.5;
  CHECK(learning_rate(t, 1000) == doctest::Approx(1.0));
  CHECK(learning_rate(t, 501) == doctest::Approx(2.0 * (1 - 0.5 * 499.0 / 998.0)));
  t.schedule = "constant";
  CHECK(learning_rate(t, 700) == doctest::Approx(2.0));
  t.warmup_frac = 0;
  CHECK(warmup_steps(t) == 0);
  CHECK(learning_rate(t, 1) == doctest::Approx(2.0));
}
