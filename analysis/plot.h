// Figures: a metric against step, wall-clock or tokens for every variant of a sweep, drawn
// by gnuplot from a data file and a script written next to the image (FILE.dat, FILE.gp),
// so both can be inspected and the figure redrawn by hand: cd DIR && gnuplot FILE.gp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "results/store.h"

namespace mixlab {

struct PlotOptions {
  std::string sweep;
  std::string metric;           // a key, or a glob such as layer*/entropy (one panel per key)
  std::string x = "step";       // step | wall | tokens
  std::string out;              // FILE.png or FILE.svg
  std::string band = "minmax";  // minmax | std | none: the band around the mean over seeds
};

struct PlotFiles {
  std::string data, script, image;  // paths as given (relative to the working directory)
  std::vector<std::string> keys;    // the metric keys drawn, one panel each
};

// One point of a variant's curve: the statistics over the seeds that logged this step.
struct CurvePoint {
  double x = 0;
  int64_t step = 0;
  int n = 0;
  double mean = 0, std = 0, min = 0, max = 0;
};

// One variant's curve for one metric key: its points, and how many seeds logged the key.
struct CurveSeries {
  std::string key, variant;
  size_t variant_index = 0;  // position of the variant in the sweep's expansion order
  int seeds = 0;
  std::vector<CurvePoint> points;
};

// The curves of every (key, variant) pair that has points, keys in the order given, variants in
// expansion order. Runs of every status count (a running sweep can be watched); x is "step",
// "wall" (time/wall_s averaged over the seeds at a step) or "tokens" (step x batch x sequence).
std::vector<CurveSeries> sweep_curves(Store& store, const std::string& sweep,
                                      const std::vector<std::string>& keys, const std::string& x);

// How the i-th variant of a sweep is drawn, the same in every panel, figure and page: one of
// 20 distinct colours ("#rrggbb"), and past them the colours again with a dashed line
// (dash 1 is solid, 2, 3, ... ever longer gaps).
struct VariantStyle {
  std::string colour;
  int dash = 1;
};
VariantStyle variant_style(size_t variant_index);

// Every key of the sweep's runs that `pattern` matches (fnmatch; a plain key matches itself),
// layer numbers in numeric order.
std::vector<std::string> matching_keys(Store& store, const std::string& sweep,
                                       const std::string& pattern);

// Writes FILE.dat and FILE.gp for `options`. Throws ConfigError for a bad option, an unknown
// sweep or a metric that matches nothing.
PlotFiles write_plot_files(Store& store, const PlotOptions& options);

// The executable's full path if it is on PATH.
std::optional<std::string> find_on_path(const std::string& program);

// Runs gnuplot on the script (in its folder). Throws std::runtime_error with one line if
// gnuplot is missing or fails.
void run_gnuplot(const PlotFiles& files);

}  // namespace mixlab
