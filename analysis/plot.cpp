#include "analysis/plot.h"

#include <fmt/format.h>
#include <fnmatch.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "analysis/stats.h"
#include "experiments/config_reader.h"

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// "layer2/entropy" before "layer10/entropy": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit((unsigned char)a[i]) && std::isdigit((unsigned char)b[j])) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit((unsigned char)a[i2])) ++i2;
      while (j2 < b.size() && std::isdigit((unsigned char)b[j2])) ++j2;
      const long long x = std::stoll(a.substr(i, i2 - i)), y = std::stoll(b.substr(j, j2 - j));
      if (x != y) return x < y;
      i = i2, j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// A string inside a gnuplot double-quoted string.
std::string gp_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A word inside a POSIX shell command line.
std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// The y-axis label: the key with its unit.
std::string y_label(const std::string& key) {
  auto ends_with = [&](const std::string& suffix) {
    return key.size() >= suffix.size() &&
           key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("/loss") || ends_with("aux_loss")) return key + " (nats/token)";
  if (ends_with("/ppl")) return key + " (perplexity)";
  if (ends_with("step_ms")) return key + " (ms)";
  if (ends_with("wall_s")) return key + " (s)";
  if (ends_with("tokens_per_s")) return key + " (tokens/s)";
  if (ends_with("/entropy")) return key + " (normalised, 0 to 1)";
  if (ends_with("/temperature")) return key + " (T)";
  if (ends_with("/lr")) return key + " (learning rate)";
  if (ends_with("_cv")) return key + " (coefficient of variation)";
  if (ends_with("max_load")) return key + " (max / mean tokens per expert)";
  if (ends_with("dropped_frac")) return key + " (fraction of tokens)";
  return key;
}

// One colour per variant: matplotlib's tab10, then ten darker ones (tab20b's dark rows and
// black), so a 13-variant grid such as the scaling sweep repeats no colour. Past 20 variants
// the colours repeat with a dashed line.
const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                          "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
                          "#000000", "#393b79", "#637939", "#8c6d31", "#843c39",
                          "#7b4173", "#5254a3", "#8ca252", "#bd9e39", "#ad494a"};
const size_t kColourCount = sizeof kColours / sizeof *kColours;

int64_t config_int(const Json& config, const char* path, int64_t fallback) {
  const Json* v = find_path(config, path);
  return v && v->is_number() ? v->get<int64_t>() : fallback;
}

}  // namespace

VariantStyle variant_style(size_t variant_index) {
  return {kColours[variant_index % kColourCount], int(1 + variant_index / kColourCount)};
}

std::vector<std::string> matching_keys(Store& store, const std::string& sweep,
                                       const std::string& pattern) {
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT DISTINCT m.key FROM metrics m JOIN sweep_runs sr USING (run_id) "
      "JOIN sweeps s USING (sweep_id) WHERE s.name = ?1";
  if (sqlite3_prepare_v2(store.handle(), sql, -1, &stmt, nullptr) != SQLITE_OK)
    throw std::runtime_error(std::string("plot: ") + sqlite3_errmsg(store.handle()));
  sqlite3_bind_text(stmt, 1, sweep.c_str(), -1, SQLITE_TRANSIENT);
  std::vector<std::string> keys;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::string key = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    if (fnmatch(pattern.c_str(), key.c_str(), 0) == 0) keys.push_back(key);
  }
  sqlite3_finalize(stmt);
  std::sort(keys.begin(), keys.end(), natural_less);
  return keys;
}

std::vector<CurveSeries> sweep_curves(Store& store, const std::string& sweep,
                                      const std::vector<std::string>& keys, const std::string& x) {
  // Runs grouped by variant in expansion order; every run with points counts (a plot of a
  // sweep still running is useful), and each point says how many seeds it has.
  std::vector<std::string> variants;
  std::map<std::string, std::vector<RunRow>> runs_of;
  for (const RunRow& run : store.sweep_runs(sweep)) {
    if (!runs_of.count(run.variant)) variants.push_back(run.variant);
    runs_of[run.variant].push_back(run);
  }

  std::vector<CurveSeries> all;
  for (const auto& key : keys) {
    for (size_t v = 0; v < variants.size(); ++v) {
      CurveSeries s;
      s.key = key;
      s.variant = variants[v];
      s.variant_index = v;
      struct Acc {
        std::vector<double> values, walls;
      };
      std::map<int64_t, Acc> by_step;
      int64_t tokens_per_step = 0;
      for (const auto& run : runs_of[s.variant]) {
        auto series = store.metric_series(run.run_id, key);
        if (series.empty()) continue;
        ++s.seeds;
        if (tokens_per_step == 0) {
          Json config = Json::parse(run.config_json, nullptr, false);
          if (config.is_discarded()) config = Json::object();
          // The defaults of experiments/run_config (batch 32, sequence 64).
          tokens_per_step =
              config_int(config, "train.batch_size", 32) * config_int(config, "model.seq_len", 64);
        }
        for (const auto& p : series) {
          if (std::isnan(p.value)) continue;
          by_step[p.step].values.push_back(p.value);
          by_step[p.step].walls.push_back(p.wall_s);
        }
      }
      if (s.seeds == 0) continue;
      for (const auto& [step, acc] : by_step) {
        CurvePoint c;
        c.step = step;
        const MeanStd stat = mean_std(acc.values);
        c.n = stat.n;
        c.mean = stat.mean;
        c.std = stat.std;
        c.min = *std::min_element(acc.values.begin(), acc.values.end());
        c.max = *std::max_element(acc.values.begin(), acc.values.end());
        c.x = x == "step"   ? double(step)
              : x == "wall" ? mean_std(acc.walls).mean
                            : double(step) * double(tokens_per_step);
        s.points.push_back(c);
      }
      all.push_back(std::move(s));
    }
  }
  return all;
}

PlotFiles write_plot_files(Store& store, const PlotOptions& o) {
  if (o.x != "step" && o.x != "wall" && o.x != "tokens")
    throw ConfigError("--x", o.x, "must be step, wall or tokens");
  if (o.band != "minmax" && o.band != "std" && o.band != "none")
    throw ConfigError("--band", o.band, "must be minmax, std or none");
  const fs::path image(o.out);
  const std::string ext = image.extension().string();
  if (ext != ".png" && ext != ".svg") throw ConfigError("--out", o.out, "must end in .png or .svg");
  if (!store.find_sweep(o.sweep))
    throw ConfigError(store.path(), "SWEEP", o.sweep, "no such sweep in the database");

  PlotFiles files;
  files.image = o.out;
  files.data = (image.parent_path() / image.stem()).string() + ".dat";
  files.script = (image.parent_path() / image.stem()).string() + ".gp";
  files.keys = matching_keys(store, o.sweep, o.metric);
  if (files.keys.empty())
    throw ConfigError("--metric", o.metric, "no metric of sweep \"" + o.sweep + "\" matches it");

  const std::vector<CurveSeries> all = sweep_curves(store, o.sweep, files.keys, o.x);
  {
    std::ofstream dat(files.data);
    if (!dat) throw std::runtime_error("plot: cannot write " + files.data);
    dat << fmt::format(
        "# sweep {} metric {} x {}: one block per (metric key, variant), blocks "
        "separated by two blank lines (gnuplot index 0, 1, ...)\n",
        o.sweep, o.metric, o.x);
    for (size_t i = 0; i < all.size(); ++i) {
      const CurveSeries& s = all[i];
      if (i) dat << "\n\n";
      dat << fmt::format("# index {} key {} variant {} seeds {}\n", i, s.key, s.variant, s.seeds);
      dat << "# x step n mean std min max\n";
      for (const auto& p : s.points)
        dat << fmt::format("{:.10g} {} {} {:.10g} {:.10g} {:.10g} {:.10g}\n", p.x, p.step, p.n,
                           p.mean, p.std, p.min, p.max);
    }
    if (!dat) throw std::runtime_error("plot: writing " + files.data + " failed");
  }

  const size_t panels = files.keys.size();
  const size_t cols = panels > 1 ? 2 : 1, rows = (panels + cols - 1) / cols;
  const int width = panels > 1 ? 640 * int(cols) : 800, height = panels > 1 ? 420 * int(rows) : 500;
  const std::string x_label = o.x == "step" ? "training step"
                              : o.x == "wall"
                                  ? "training wall-clock (s, evaluation excluded)"
                                  : "training tokens (step x batch size x sequence length)";
  const std::string band_text = o.band == "minmax" ? "band: min to max over seeds"
                                : o.band == "std"  ? "band: mean +- std over seeds"
                                                   : "no band";
  const std::string data_name = fs::path(files.data).filename().string();
  const std::string image_name = image.filename().string();

  std::string gp;
  gp += fmt::format("# sweep plot {} --metric {} --x {} --band {}: redraw with  gnuplot {}\n",
                    o.sweep, o.metric, o.x, o.band, fs::path(files.script).filename().string());
  if (ext == ".png")
    gp += fmt::format(
        "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {{\n"
        "  set terminal pngcairo size {0},{1} noenhanced font \"sans,10\"\n"
        "}} else {{\n  set terminal png size {0},{1} noenhanced\n}}\n",
        width, height);
  else
    gp += fmt::format(
        "set terminal svg size {},{} noenhanced font \"sans,10\" background "
        "\"white\"\n",
        width, height);
  gp += "set output " + gp_quote(image_name) + "\n";
  gp += "set grid\nset key top right opaque box\n";
  if (o.x != "step") gp += "set format x \"%.3g\"\n";
  gp += "set xlabel " + gp_quote(x_label) + "\n";
  const std::string title = fmt::format("{}: {} ({})", o.sweep, o.metric, band_text);
  if (panels > 1)
    gp += fmt::format("set multiplot layout {},{} title {}\n", rows, cols, gp_quote(title));
  for (const auto& key : files.keys) {
    gp += "set ylabel " + gp_quote(y_label(key)) + "\n";
    gp += "set title " + gp_quote(panels > 1 ? key : title) + "\n";
    std::vector<std::string> items;
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].key != key) continue;
      const VariantStyle style = variant_style(all[i].variant_index);
      const std::string& colour = style.colour;
      const int dash = style.dash;
      const std::string source = items.empty() ? gp_quote(data_name) : "\"\"";
      if (o.band == "minmax")
        items.push_back(
            fmt::format("{} index {} using 1:6:7 with filledcurves fc rgb \"{}\" "
                        "fs transparent solid 0.2 noborder notitle",
                        source, i, colour));
      if (o.band == "std")
        items.push_back(
            fmt::format("{} index {} using 1:($4-$5):($4+$5) with filledcurves fc "
                        "rgb \"{}\" fs transparent solid 0.2 noborder notitle",
                        source, i, colour));
      items.push_back(
          fmt::format("{} index {} using 1:4 with lines lw 2 lc rgb \"{}\" dt {} title {}",
                      items.empty() ? gp_quote(data_name) : "\"\"", i, colour, dash,
                      gp_quote(fmt::format("{} ({} seeds)", all[i].variant, all[i].seeds))));
    }
    gp += "plot ";
    for (size_t i = 0; i < items.size(); ++i) gp += (i ? ", \\\n     " : "") + items[i];
    gp += "\n";
  }
  if (panels > 1) gp += "unset multiplot\n";
  std::ofstream script(files.script);
  script << gp;
  if (!script) throw std::runtime_error("plot: cannot write " + files.script);
  return files;
}

std::optional<std::string> find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::string dirs = path;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

void run_gnuplot(const PlotFiles& files) {
  const auto gnuplot = find_on_path("gnuplot");
  if (!gnuplot)
    throw std::runtime_error("gnuplot not found on PATH: install gnuplot-nox (the data is in " +
                             files.data + ", the script in " + files.script + ")");
  fs::path dir = fs::path(files.script).parent_path();
  if (dir.empty()) dir = ".";
  const std::string command = "cd " + sh_quote(dir.string()) + " && " + sh_quote(*gnuplot) + " " +
                              sh_quote(fs::path(files.script).filename().string()) + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("plot: cannot start gnuplot");
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = ::pclose(pipe);
  const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::error_code ec;
  if (!ok || fs::file_size(files.image, ec) == 0 || ec) {
    // gnuplot's own message, on one line, says what in the script it refused.
    for (char& c : output)
      if (c == '\n') c = ' ';
    throw std::runtime_error("gnuplot failed on " + files.script + ": " + output);
  }
}

}  // namespace mixlab
