#include "layers/recurrence_pattern.h"

#include <algorithm>

namespace mixlab {

RecurrencePattern::RecurrencePattern(Kind kind, int64_t order, bool cache_efficient)
    : kind_(kind), order_(order), cache_efficient_(cache_efficient) {
  TORCH_CHECK(kind != Kind::kth || order >= 1, "kth pattern: order must be >= 1");
  TORCH_CHECK(!cache_efficient || kind == Kind::pow2 || kind == Kind::square_plus_one,
              "cache_efficient needs the pow2 or square_plus_one pattern");
}

std::string RecurrencePattern::name() const {
  std::string out;
  switch (kind_) {
    case Kind::kth:
      out = "kth(" + std::to_string(order_) + ")";
      break;
    case Kind::pow2:
      out = "pow2";
      break;
    case Kind::square_plus_one:
      out = "square_plus_one";
      break;
    case Kind::dense:
      out = "dense";
      break;
  }
  return cache_efficient_ ? out + ", cache-efficient" : out;
}

std::vector<int64_t> RecurrencePattern::offsets(int64_t max_offset) const {
  std::vector<int64_t> out;
  for (int64_t m = 0;; ++m) {
    int64_t f = 0;
    switch (kind_) {
      case Kind::kth:
        if (m >= order_) return out;
        f = m + 1;
        break;
      case Kind::pow2:
        f = int64_t(1) << m;
        break;
      case Kind::square_plus_one:
        f = m * m + 1;
        break;
      case Kind::dense:
        f = m + 1;
        break;
    }
    if (f > max_offset) return out;
    out.push_back(f);
  }
}

std::vector<int64_t> lattice_steps(const std::vector<int64_t>& f) {
  std::vector<int64_t> a;
  for (size_t m = 0; m < f.size(); ++m) {
    if (m == 0) {
      a.push_back(1);
    } else {
      const int64_t gap = f[m] - f[m - 1];
      a.push_back(a.back() * ((gap + a.back() - 1) / a.back()));
    }
  }
  return a;
}

std::vector<int64_t> cache_efficient_set(const std::vector<int64_t>& f,
                                         const std::vector<int64_t>& a, int64_t i) {
  std::vector<int64_t> out;
  for (size_t m = 0; m < f.size() && f[m] < i; ++m) {
    const int64_t ideal = i - f[m];  // >= 1
    out.push_back(a[m] * ((ideal + a[m] - 1) / a[m]));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<int64_t> RecurrencePattern::predecessors(int64_t t) const {
  const auto f = offsets(t);  // f(m) <= t: position t - f(m) >= 0
  std::vector<int64_t> out;
  if (cache_efficient_) {
    // 0-based t is the notes' 1-based token t + 1.
    for (int64_t s : cache_efficient_set(f, lattice_steps(f), t + 1)) out.push_back(s - 1);
    return out;
  }
  for (auto it = f.rbegin(); it != f.rend(); ++it) out.push_back(t - *it);
  return out;
}

torch::Tensor RecurrencePattern::predecessor_table(int64_t n) const {
  std::vector<std::vector<int64_t>> rows;
  size_t width = 0;
  for (int64_t t = 0; t < n; ++t) {
    rows.push_back(predecessors(t));
    width = std::max(width, rows.back().size());
  }
  auto table = torch::full({n, int64_t(width)}, int64_t(-1), torch::kLong);
  auto acc = table.accessor<int64_t, 2>();
  for (int64_t t = 0; t < n; ++t)
    for (size_t k = 0; k < rows[t].size(); ++k) acc[t][k] = rows[t][k];
  return table;
}

bool RecurrencePattern::keeps_everything() const {
  return !cache_efficient_ && kind_ != Kind::kth;
}

std::vector<int64_t> RecurrencePattern::retained_after(int64_t t) const {
  std::vector<int64_t> out;
  if (cache_efficient_) return predecessors(t + 1);  // later sets only add newer positions
  const int64_t first = kind_ == Kind::kth ? std::max<int64_t>(0, t - order_ + 1) : 0;
  for (int64_t p = first; p <= t; ++p) out.push_back(p);
  return out;
}

}  // namespace mixlab
