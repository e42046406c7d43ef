#include "analysis/stats.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace mixlab {

MeanStd mean_std(const std::vector<double>& values) {
  std::vector<double> finite;
  for (double v : values)
    if (!std::isnan(v)) finite.push_back(v);
  MeanStd out;
  out.n = int(finite.size());
  if (finite.empty()) {
    out.mean = out.std = NAN;
    return out;
  }
  Eigen::Map<const Eigen::ArrayXd> x(finite.data(), Eigen::Index(finite.size()));
  out.mean = x.mean();
  out.std = out.n > 1 ? std::sqrt((x - out.mean).square().sum() / double(out.n - 1)) : 0.0;
  return out;
}

std::optional<double> first_reach_below(const std::vector<double>& xs,
                                        const std::vector<double>& ys, double target) {
  const size_t n = std::min(xs.size(), ys.size());
  if (n == 0) return std::nullopt;
  Eigen::Map<const Eigen::ArrayXd> x(xs.data(), Eigen::Index(n));
  Eigen::Map<const Eigen::ArrayXd> y(ys.data(), Eigen::Index(n));
  if (y(0) <= target) return x(0);
  for (Eigen::Index i = 1; i < Eigen::Index(n); ++i) {
    if (std::isnan(y(i)) || std::isnan(y(i - 1))) continue;
    if (y(i) <= target) {
      // y(i-1) > target >= y(i): the crossing lies inside this segment.
      const double t = (y(i - 1) - target) / (y(i - 1) - y(i));
      return x(i - 1) + t * (x(i) - x(i - 1));
    }
  }
  return std::nullopt;
}

double interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  const size_t n = std::min(xs.size(), ys.size());
  if (n == 0) return NAN;
  if (x <= xs.front()) return ys.front();
  if (x >= xs[n - 1]) return ys[n - 1];
  const size_t hi = size_t(std::upper_bound(xs.begin(), xs.begin() + long(n), x) - xs.begin());
  const size_t lo = hi - 1;
  const double t = (x - xs[lo]) / (xs[hi] - xs[lo]);
  return ys[lo] + t * (ys[hi] - ys[lo]);
}

}  // namespace mixlab
