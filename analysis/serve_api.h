// The JSON endpoints of `sweep serve`, computed from the results database with the same code as
// the command line (report tables, plot curves, status progress), so the page and the CLI
// cannot disagree. Nothing here writes: the caller hands in a read-only store, and every value
// from the URL reaches SQLite only as a bound parameter.
//
//   /api/sweeps                               every sweep with its progress (as `sweep status`)
//   /api/sweep?name=S                         one sweep: progress, runs, variants with their
//                                             colours (as `sweep plot`), metric keys
//   /api/report?sweep=S[&table=T]             the tables of `sweep report S --table T` (T: all)
//   /api/curves?sweep=S&metric=K[&x=X]        curves of a key or glob (as `sweep plot`), X:
//                                             step (default), wall or tokens
//   /api/run?id=N                             one run: config, status, error, attempts, metrics
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "experiments/config_reader.h"
#include "results/store.h"

namespace mixlab {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct ApiResponse {
  int status = 200;  // 200; 400 bad parameter; 404 unknown endpoint, sweep, run or metric
  Json body;         // the answer, or {"error": "one line"}
};

// Longest parameter value accepted (a sweep name, a metric glob): longer is a 400.
constexpr size_t kMaxApiParamBytes = 512;

// Answers GET `path` (starting with /api/) with `params` (decoded query parameters, in order)
// from `store`; `now` (unix seconds) is for the time left.
ApiResponse answer_api(Store& store, const std::string& path, const QueryParams& params,
                       double now);

}  // namespace mixlab
