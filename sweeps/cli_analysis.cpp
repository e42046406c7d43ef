// report, plot, export: everything drawn from the database (analysis/ has no LibTorch).
#include <iostream>
#include <memory>

#include "analysis/export.h"
#include "analysis/plot.h"
#include "analysis/report.h"
#include "experiments/config_reader.h"
#include "results/store.h"
#include "sweeps/commands.h"

namespace mixlab {

namespace {

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
                   "all, summary, speedup, temperature, costs, transition or grid")
      ->capture_default_str();
  report->add_option("--format", report_args->format, "md, csv or latex")->capture_default_str();
  out.push_back({report, [args = report_args] {
                   const auto format = parse_table_format(args->format);
                   if (!format)
                     throw ConfigError("--format", args->format, "must be md, csv or latex");
                   Store store(args->db, false);
                   bool first = true;
                   for (const auto& name : chosen_sweeps(store, args->db, args->sweep)) {
                     if (*format == TableFormat::markdown) std::cout << "## " << name << "\n\n";
                     for (const auto& table : build_tables(store, name, args->table)) {
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
                   Store store(args->db, false);
                   PlotOptions o = args->options;
                   if (o.sweep.empty()) {
                     auto all = store.sweeps();
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
                   Store store(args->db, false);
                   auto counts =
                       export_csv(store, chosen_sweeps(store, args->db, args->sweep), args->dir);
                   std::cout << "wrote " << counts.runs << " runs to " << args->dir
                             << "/runs.csv and " << counts.metrics << " metric points to "
                             << args->dir << "/metrics.csv\n";
                   return 0;
                 }});
  return out;
}

}  // namespace mixlab
