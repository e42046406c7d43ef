#include "analysis/summary.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cmath>
#include <map>

namespace mixlab {

namespace {
std::string si(double v) {
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 4) v /= 1000, ++u;
  return fmt::format(u == 0 ? "{:.0f}{}" : "{:.3g}{}", v, units[u]);
}
}  // namespace

std::vector<VariantSummary> summarize_sweep(Store& store, const std::string& sweep) {
  std::vector<VariantSummary> rows;
  std::map<std::string, size_t> index;
  std::map<std::string, std::vector<double>> losses, discrete, walls, passes;
  for (const RunRow& run : store.sweep_runs(sweep)) {
    auto [it, added] = index.emplace(run.variant, rows.size());
    if (added) rows.push_back(VariantSummary{run.variant});
    VariantSummary& row = rows[it->second];
    ++row.runs;
    row.failed += run.status == "failed";
    if (run.params_total) row.params_total = double(*run.params_total);
    if (run.params_active) row.params_active = double(*run.params_active);
    if (run.flops_per_token) row.flops_per_token = *run.flops_per_token;
    if (run.status != "finished") continue;
    ++row.finished;
    if (run.passes) passes[run.variant].push_back(*run.passes);
    auto last = [&](const std::string& key) -> std::optional<double> {
      auto series = store.metric_series(run.run_id, key);
      if (series.empty() || std::isnan(series.back().value)) return std::nullopt;
      return series.back().value;
    };
    if (auto v = last("eval/loss")) losses[run.variant].push_back(*v);
    if (auto v = last("eval_discrete/loss")) discrete[run.variant].push_back(*v);
    if (auto v = last("time/wall_s")) walls[run.variant].push_back(*v);
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? NAN : s / double(v.size());
  };
  for (auto& row : rows) {
    const auto& l = losses[row.variant];
    row.n = int64_t(l.size());
    row.eval_loss_mean = mean(l);
    double ss = 0;
    for (double x : l) ss += (x - row.eval_loss_mean) * (x - row.eval_loss_mean);
    row.eval_loss_std = l.size() > 1 ? std::sqrt(ss / double(l.size() - 1)) : 0.0;
    if (!discrete[row.variant].empty()) row.eval_discrete_mean = mean(discrete[row.variant]);
    row.wall_s_mean = mean(walls[row.variant]);
    row.passes = mean(passes[row.variant]);
  }
  return rows;
}

std::string format_summary(const std::string& sweep, const std::vector<VariantSummary>& rows) {
  size_t width = 7;
  for (const auto& r : rows) width = std::max(width, r.variant.size());
  std::string out =
      fmt::format("sweep {}: final eval loss, mean +- sample std over seeds\n", sweep);
  out += fmt::format("{:<{}}  {:>5}  {:>17}  {:>9}  {:>7}  {:>7}  {:>9}  {:>7}  {:>6}\n", "variant",
                     width, "runs", "eval/loss", "discrete", "params", "active", "FLOP/tok",
                     "wall s", "passes");
  for (const auto& r : rows) {
    std::string loss =
        r.n == 0 ? "-" : fmt::format("{:.4f} +- {:.4f}", r.eval_loss_mean, r.eval_loss_std);
    std::string disc = r.eval_discrete_mean ? fmt::format("{:.4f}", *r.eval_discrete_mean) : "-";
    std::string runs = fmt::format("{}/{}", r.finished, r.runs);
    out += fmt::format(
        "{:<{}}  {:>5}  {:>17}  {:>9}  {:>7}  {:>7}  {:>9}  {:>7}  {:>6}\n", r.variant, width, runs,
        loss, disc, si(r.params_total), si(r.params_active), si(r.flops_per_token),
        std::isnan(r.wall_s_mean) ? std::string("-") : fmt::format("{:.1f}", r.wall_s_mean),
        std::isnan(r.passes) ? std::string("-") : fmt::format("{:.3f}", r.passes));
  }
  return out;
}

}  // namespace mixlab
