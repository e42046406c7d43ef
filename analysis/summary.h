// The end-of-sweep table: final eval loss mean +- std per variant, with the costs that make
// the comparison fair (parameters, FLOPs per token) and the wall-clock.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "results/store.h"

namespace mixlab {

struct VariantSummary {
  std::string variant;
  int64_t runs = 0, finished = 0, failed = 0;
  int64_t n = 0;  // finished runs with an eval loss
  double eval_loss_mean = 0, eval_loss_std = 0;
  std::optional<double> eval_discrete_mean;
  double params_total = 0, params_active = 0, flops_per_token = 0;
  double wall_s_mean = 0;
  double passes = 0;  // mean over the finished runs (NaN when none has finished)
};

// Variants in expansion order.
std::vector<VariantSummary> summarize_sweep(Store& store, const std::string& sweep);

// A fixed-width text table, for the terminal.
std::string format_summary(const std::string& sweep, const std::vector<VariantSummary>& rows);

}  // namespace mixlab
