// The database as two CSV files, for pandas, R or a spreadsheet.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "results/store.h"

namespace mixlab {

// One RFC 4180 field: quoted (inner quotes doubled) when it holds a comma, quote or newline.
std::string csv_field(const std::string& text);

struct ExportCounts {
  int64_t runs = 0, metrics = 0;
};

// Writes DIR/runs.csv (one row per run of each sweep) and DIR/metrics.csv (every metric
// point, labelled with sweep, variant and seed) for the named sweeps, creating DIR.
// Numbers are written with 17 significant digits so they read back exactly; NULL is empty.
ExportCounts export_csv(Store& store, const std::vector<std::string>& sweeps,
                        const std::string& dir);

}  // namespace mixlab
