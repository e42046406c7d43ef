// A report table (analysis/report.h) as JSON, for `sweep serve`: the same cells the Markdown,
// CSV and LaTeX renderers print, with the numbers at full precision and as the Markdown shows
// them, so a page and the command line show the same figures.
#pragma once

#include "analysis/report.h"
#include "experiments/config_reader.h"

namespace mixlab {

// {"name", "title", "columns": [...], "notes": [...], "rows": [[cell, ...], ...]} where a cell
// is {"kind": "empty"}, {"kind": "text", "text"} or {"kind": "number", "mean", "std" (null
// for a single value), "n" (seeds; 0 for a plain value), "decimals", "bound" ("<" or ">" when
// the number is only a bound, else null), "text" (cell_text: "2.1595 ± 0.0550", "< 1.04")}.
Json table_json(const Table& table);

}  // namespace mixlab
