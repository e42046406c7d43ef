// report (and, as they come, plot and export): everything drawn from the database.
#include <iostream>
#include <memory>

#include "analysis/summary.h"
#include "experiments/config_reader.h"
#include "results/store.h"
#include "sweeps/commands.h"

namespace mixlab {

std::vector<Command> add_analysis_commands(CLI::App& app) {
  std::vector<Command> out;
  struct ReportArgs {
    std::string sweep, db = "results/results.db";
  };
  auto args = std::make_shared<ReportArgs>();
  auto* report = app.add_subcommand("report", "the summary table of a sweep");
  report->add_option("SWEEP", args->sweep, "sweep name (default: every sweep)");
  report->add_option("--db", args->db, "results database")->capture_default_str();
  out.push_back({report, [=] {
                   Store store(args->db, false);
                   std::vector<std::string> names;
                   if (!args->sweep.empty()) {
                     if (!store.find_sweep(args->sweep))
                       throw ConfigError(args->db, "SWEEP", args->sweep,
                                         "no such sweep in the database");
                     names.push_back(args->sweep);
                   } else {
                     for (const auto& s : store.sweeps()) names.push_back(s.name);
                   }
                   for (const auto& name : names)
                     std::cout << format_summary(name, summarize_sweep(store, name)) << "\n";
                   return 0;
                 }});
  return out;
}

}  // namespace mixlab
