// The paper's tables, drawn from the results database.
//
// A table is a small model (columns, rows of cells, notes) built from a sweep's runs and
// rendered separately to Markdown, CSV or LaTeX, so every table has every format and the
// numbers are computed once. Seed statistics are mean +- sample std over the finished runs
// of a variant (analysis/stats.h).
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analysis/stats.h"
#include "experiments/config_reader.h"
#include "results/store.h"

namespace mixlab {

struct Cell {
  enum class Kind { empty, text, number };
  // A number may be only a bound on the true value (a speed-up computed with seeds that never
  // reached the target counted at their last evaluation): every format shows the sign, so a
  // bound never reads as a plain value.
  enum class Bound { none, less_than, more_than };
  Kind kind = Kind::empty;
  std::string text;
  double mean = NAN;
  double std = NAN;  // NaN: a single value, no spread to show
  int n = 0;         // seeds behind a statistic (0 for a plain value)
  int decimals = 4;
  Bound bound = Bound::none;

  static Cell empty() { return {}; }
  static Cell of_text(std::string text);
  static Cell of_value(double value, int decimals);  // NaN renders as "-"
  static Cell of_stat(const MeanStd& stat, int decimals);
  // The true value is below (less_than) or above (more_than) `value`; NaN renders as "-".
  static Cell of_bound(Bound bound, double value, int decimals);
  bool has_std() const { return kind == Kind::number && !std::isnan(std); }
  // "<" or ">" for a bound, "" otherwise.
  const char* bound_sign() const;
};

// A cell as people read it, without escaping: "1.4500 ± 0.0707", "< 1.04", "not reached", ""
// (what the Markdown table shows; for renderers of other formats).
std::string cell_text(const Cell& cell);

struct Table {
  std::string name;   // summary, speedup, temperature, costs, transition
  std::string title;  // one line, names the sweep
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> notes;  // how the numbers were computed, what is missing
};

enum class TableFormat { markdown, csv, latex };
// "md", "csv", "latex"; nullopt for anything else.
std::optional<TableFormat> parse_table_format(const std::string& name);

// Markdown: a pipe table with "mean ± std" cells and the notes as a list below.
// CSV: a header row and one line per row; a column holding seed statistics becomes two,
//      "NAME" (the mean) and "NAME std"; numbers with 17 significant digits (they read back
//      exactly); a bound is the number prefixed by "<" or ">" (so it never parses as a plain
//      value); no notes.
// LaTeX: a booktabs tabular inside a table with the title as caption, the notes below it.
std::string render_table(const Table& table, TableFormat format);

// Everything a table needs about one sweep, read once: its variants in expansion order,
// their runs, parsed configs, and metric series (cached).
class SweepData {
 public:
  struct Variant {
    std::string name;
    std::string ffn_type;          // from the first run's config; "" if absent
    std::vector<RunRow> runs;      // every run of the variant
    std::vector<RunRow> finished;  // the ones the statistics use
    std::vector<Json> configs;     // parallel to `finished`
  };

  SweepData(Store& store, std::string sweep);

  const std::string& sweep() const { return sweep_; }
  const std::vector<Variant>& variants() const { return variants_; }
  // The dense baseline: the first variant whose config has ffn.type == "dense".
  const Variant* dense() const;

  const std::vector<MetricPoint>& series(int64_t run_id, const std::string& key);
  // The last non-NaN value of `key` for each finished run (NaN where the run has none).
  std::vector<double> finals(const Variant& variant, const std::string& key);
  // Layer indices i with a layer{i}/<stat> metric in any finished run, ascending.
  std::vector<int> layers_with(const std::string& stat);
  // The sweep's spec as recorded by `sweep run` (an empty object if it cannot be read).
  const Json& spec() const { return spec_; }

 private:
  Store& store_;
  std::string sweep_;
  std::vector<Variant> variants_;
  std::map<std::pair<int64_t, std::string>, std::vector<MetricPoint>> cache_;
  std::map<int64_t, std::vector<std::string>> keys_;
  Json spec_ = Json::object();
};

// Step and wall-clock at which one run first reaches `target` on its eval/loss curve
// (linear interpolation between evaluations; wall-clock interpolated on the same segment).
struct Reach {
  std::optional<double> step, wall_s;
};
Reach reach_target(const std::vector<MetricPoint>& eval_loss, double target);

// The tables. Each names the sweep in its title and explains itself in its notes.
Table summary_table(SweepData& data);      // final eval loss and perplexity
Table speedup_table(SweepData& data);      // steps / wall-clock to dense's final loss
Table temperature_table(SweepData& data);  // per-layer entropy and log T at the end
Table costs_table(SweepData& data);        // parameters, FLOPs, passes, time per step
Table transition_table(SweepData& data);   // loss before / after the MoT -> Switch switch
// Final eval loss laid out over a two-key grid of the spec (rows: the first key, columns: the
// second, keys in the spec's sorted order), one block of rows per layer type; variants outside
// the grid (the dense baseline) in the notes. No rows unless the spec's grid has two keys.
Table grid_table(SweepData& data);

const std::vector<std::string>& table_names();  // in report order
// One table by name, or every table that has rows for "all" (temperature and transition
// are left out when the sweep has no such runs). Throws ConfigError for an unknown name.
std::vector<Table> build_tables(Store& store, const std::string& sweep, const std::string& name);

}  // namespace mixlab
