// Statistics over seeds and curve interpolation for the report tables (Eigen, no LibTorch).
#pragma once

#include <optional>
#include <vector>

namespace mixlab {

// Mean and sample standard deviation (n - 1) of a set of per-seed values. NaN values are
// left out: a seed that never produced the number does not count. n == 0 gives NaN mean;
// n == 1 gives std 0 (one seed has no spread to show, and NaN would hide the mean).
struct MeanStd {
  double mean = 0, std = 0;
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// The first x at which a curve y(x), linear between its points (x increasing), comes down
// to `target` or below. nullopt if it never does. A curve that starts at or below the
// target reaches it at its first x.
std::optional<double> first_reach_below(const std::vector<double>& xs,
                                        const std::vector<double>& ys, double target);

// y at x on the piecewise linear curve through (xs, ys), xs increasing; clamped to the
// end values outside [xs.front(), xs.back()]. NaN for an empty curve.
double interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x);

}  // namespace mixlab
