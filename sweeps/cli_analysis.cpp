// report, plot, export: everything drawn from the database (analysis/ has no LibTorch).
// Each opens the database read-only (OpenMode::read_only): a read never writes. Per-run
// databases of Slurm tasks beside it are read too, through a copy in memory (open_for_reading).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>

#include "analysis/accuracy_table.h"
#include "analysis/export.h"
#include "analysis/plot.h"
#include "analysis/report.h"
#include "experiments/config_reader.h"
#include "results/collect.h"
#include "results/store.h"
#include "sweeps/commands.h"

namespace mixlab {

namespace {

// An output folder (made if missing) that cannot be written is bad input, found before
// anything is computed: ConfigError naming the option and the path (exit 2). Tried by creating
// (and removing) a file there, which root's permission bypass cannot fool.
void check_writable_folder(const std::string& option, const std::string& shown,
                           const std::filesystem::path& folder) {
  const std::filesystem::path dir = folder.empty() ? "." : folder;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ConfigError(option, shown, "cannot create the folder: " + ec.message());
  std::random_device rd;
  const std::string probe = (dir / (".mixlab-write-test-" + std::to_string(rd()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    throw ConfigError(option, shown, std::string("cannot write there: ") + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// A database with no sweeps (an empty file, or one nothing was run into) says so.
bool say_if_empty(Store& store) {
  if (!store.sweeps().empty()) return false;
  std::cout << store.path() << ": the database holds no sweeps\n";
  return true;
}

// The sweeps a command works on: the one named (which must exist), or every sweep.
std::vector<std::string> chosen_sweeps(Store& store, const std::string& db,
                                       const std::string& sweep) {
  std::vector<std::string> names;
  if (!sweep.empty()) {
    if (!store.find_sweep(sweep))
      throw ConfigError(db, "SWEEP", sweep, "no such sweep in the database");
    names.push_back(sweep);
  } else {
    for (const auto& s : store.sweeps()) names.push_back(s.name);
  }
  return names;
}

}  // namespace

std::vector<Command> add_analysis_commands(CLI::App& app) {
  std::vector<Command> out;

  struct ReportArgs {
    std::string sweep, db = "results/results.db", table = "all", format = "md";
  };
  auto report_args = std::make_shared<ReportArgs>();
  auto* report = app.add_subcommand(
      "report",
      "the paper's tables for a sweep (every sweep if none is named), mean +- std "
      "over seeds");
  report->add_option("SWEEP", report_args->sweep, "sweep name (default: every sweep)");
  report->add_option("--db", report_args->db, "results database")->capture_default_str();
  report
      ->add_option("--table", report_args->table,
                   "all, summary, accuracy, speedup, temperature, costs, transition or grid")
      ->capture_default_str();
  report->add_option("--format", report_args->format, "md, csv or latex")->capture_default_str();
  out.push_back({report, [args = report_args] {
                   const auto format = parse_table_format(args->format);
                   if (!format)
                     throw ConfigError("--format", args->format, "must be md, csv or latex");
                   const auto opened = open_for_reading(args->db);
                   Store& store = *opened;
                   if (args->sweep.empty() && say_if_empty(store)) return 0;
                   auto names = chosen_sweeps(store, args->db, args->sweep);
                   // Every sweep and the accuracy table: the sweeps that have one (a named
                   // sweep without it is refused by build_tables).
                   if (args->sweep.empty() && args->table == "accuracy") {
                     names.erase(std::remove_if(names.begin(), names.end(),
                                                [&](const std::string& name) {
                                                  SweepData data(store, name);
                                                  return !has_accuracy(data);
                                                }),
                                 names.end());
                     if (names.empty())
                       throw ConfigError(args->db, "--table", args->table,
                                         "no sweep in the database has an eval/accuracy metric "
                                         "(only recall-task runs, data.corpus \"synthetic\", "
                                         "record it)");
                   }
                   bool first = true;
                   for (const auto& name : names) {
                     // Built before anything is printed: a refused table prints its one line.
                     const auto tables = build_tables(store, name, args->table);
                     if (*format == TableFormat::markdown) std::cout << "## " << name << "\n\n";
                     for (const auto& table : tables) {
                       // CSV blocks are separated by one blank line, so each parses alone.
                       if (*format == TableFormat::csv && !first) std::cout << "\n";
                       std::cout << render_table(table, *format);
                       first = false;
                     }
                   }
                   return 0;
                 }});

  struct PlotArgs {
    PlotOptions options;
    std::string db = "results/results.db";
  };
  auto plot_args = std::make_shared<PlotArgs>();
  auto* plot =
      app.add_subcommand("plot",
                         "a metric against step, wall-clock or tokens for every variant of a sweep "
                         "(gnuplot; writes OUT, OUT.dat and OUT.gp)");
  plot->add_option("SWEEP", plot_args->options.sweep,
                   "sweep name (may be left out when the database holds one sweep)");
  plot->add_option("--metric", plot_args->options.metric,
                   "metric key, or a glob such as 'layer*/entropy' (one panel per key)")
      ->required();
  plot->add_option("--x", plot_args->options.x, "step, wall or tokens")->capture_default_str();
  plot->add_option("--out", plot_args->options.out,
                   "FILE.png or FILE.svg (default: "
                   "<sweep>_<metric>.png)");
  plot->add_option("--band", plot_args->options.band, "minmax, std or none")->capture_default_str();
  plot->add_option("--db", plot_args->db, "results database")->capture_default_str();
  out.push_back({plot, [args = plot_args] {
                   const auto opened = open_for_reading(args->db);
                   Store& store = *opened;
                   PlotOptions o = args->options;
                   if (o.sweep.empty()) {
                     auto all = store.sweeps();
                     if (all.empty())
                       throw ConfigError(args->db, "SWEEP", "", "the database holds no sweeps");
                     if (all.size() != 1)
                       throw ConfigError(args->db, "SWEEP", "",
                                         "the database holds " + std::to_string(all.size()) +
                                             " sweeps: name one");
                     o.sweep = all.front().name;
                   }
                   if (o.out.empty()) {
                     o.out = o.sweep + "_" + o.metric + ".png";
                     for (char& c : o.out)
                       if (c == '/' || c == '*' || c == ' ') c = '_';
                   }
                   check_writable_folder("--out", o.out,
                                         std::filesystem::path(o.out).parent_path());
                   PlotFiles files = write_plot_files(store, o);
                   run_gnuplot(files);
                   std::cout << "wrote " << files.image << " (data " << files.data << ", script "
                             << files.script << ")\n";
                   return 0;
                 }});

  struct ExportArgs {
    std::string sweep, db = "results/results.db", dir;
  };
  auto export_args = std::make_shared<ExportArgs>();
  auto* export_cmd = app.add_subcommand(
      "export", "runs.csv and metrics.csv of a sweep (every sweep if none is named)");
  export_cmd->add_option("SWEEP", export_args->sweep, "sweep name (default: every sweep)");
  export_cmd->add_option("--csv", export_args->dir, "folder to write the CSV files into")
      ->required();
  export_cmd->add_option("--db", export_args->db, "results database")->capture_default_str();
  out.push_back({export_cmd, [args = export_args] {
                   const auto opened = open_for_reading(args->db);
                   Store& store = *opened;
                   if (args->sweep.empty() && say_if_empty(store)) return 0;
                   const auto sweeps = chosen_sweeps(store, args->db, args->sweep);
                   check_writable_folder("--csv", args->dir, args->dir);
                   auto counts = export_csv(store, sweeps, args->dir);
                   std::cout << "wrote " << counts.runs << " runs to " << args->dir
                             << "/runs.csv and " << counts.metrics << " metric points to "
                             << args->dir << "/metrics.csv\n";
                   return 0;
                 }});
  return out;
}

}  // namespace mixlab
