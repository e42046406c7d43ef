// sweep: the mixlab command line. Exit status 0 success, 1 a failure while running,
// 2 bad input (with a one-line message naming the file, the key and the value), 130 stopped.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "analysis/summary.h"
#include "experiments/checkpoint.h"
#include "experiments/config_reader.h"
#include "results/store.h"
#include "sweeps/runner.h"

using namespace mixlab;

namespace {

void add_runner_options(CLI::App* cmd, RunnerOptions& o) {
  cmd->add_option("--db", o.db_path, "results database")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--threads", o.threads, "LibTorch threads per worker (0: cores / jobs)")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mixlab: train and compare Mixture of Tokens, Mixture of Experts and dense Transformers.\n"
      "Results go to an SQLite database (default results/results.db); see README.md."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");

  RunnerOptions options;
  SweepCommand sweep_command;
  auto* run = app.add_subcommand("run",
                                 "expand a sweep spec, train every run not yet finished, "
                                 "print the summary table (rerun to resume)");
  run->add_option("SPEC", sweep_command.spec_file,
                  "sweep spec (JSON), e.g. "
                  "sweeps/temperature_sweep.json")
      ->required();
  add_runner_options(run, options);
  run->add_option("--jobs", options.jobs, "worker processes training runs in parallel")
      ->capture_default_str();
  run->add_option("--set", sweep_command.overrides,
                  "override a config key for every run, e.g. --set train.steps=100 (repeatable)");
  run->add_flag("--dry-run", sweep_command.dry_run, "validate and list the runs; write nothing");
  run->add_flag("--allow-changed", sweep_command.allow_changed,
                "accept a spec that differs from the one recorded under the same name");
  run->add_option("--stale-after", options.stale_after_s,
                  "seconds without heartbeat after which a running run is reclaimed")
      ->capture_default_str();
  run->add_option("--max-attempts", options.max_attempts, "starts allowed for a failing run")
      ->capture_default_str();

  std::string status_sweep;
  auto* status = app.add_subcommand("status", "runs per status, progress and time left");
  status->add_option("SWEEP", status_sweep, "sweep name (default: all)");
  status->add_option("--db", options.db_path, "results database")->capture_default_str();

  std::string config_file, train_sweep;
  bool no_db = false;
  auto* train = app.add_subcommand(
      "train", "train one resolved run config (recorded as a one-run sweep, resumable)");
  train->add_option("CONFIG", config_file, "run config (JSON): model, ffn, data, train, eval, seed")
      ->required();
  add_runner_options(train, options);
  train->add_option("--sweep", train_sweep, "sweep name to record it under (default: file stem)");
  train->add_flag("--no-db", no_db, "train without recording anything (no checkpoints)");

  std::string report_sweep;
  auto* report = app.add_subcommand("report", "the summary table of a sweep");
  report->add_option("SWEEP", report_sweep, "sweep name (default: every sweep)");
  report->add_option("--db", options.db_path, "results database")->capture_default_str();

  std::string worker_sweep;
  auto* worker = app.add_subcommand("worker", "(internal) train runs of a recorded sweep");
  worker->group("");
  worker->add_option("SWEEP", worker_sweep)->required();
  add_runner_options(worker, options);
  worker->add_option("--jobs", options.jobs);
  worker->add_option("--stale-after", options.stale_after_s);
  worker->add_option("--max-attempts", options.max_attempts);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    if (*run) return run_sweep(sweep_command, options);
    if (*status) return print_status(status_sweep, options);
    if (*train) return train_config(config_file, train_sweep, !no_db, options);
    if (*worker) {
      options.quiet = false;
      return run_worker(worker_sweep, options);
    }
    if (*report) {
      Store store(options.db_path, false);
      std::vector<std::string> names;
      if (!report_sweep.empty()) {
        if (!store.find_sweep(report_sweep))
          throw ConfigError(options.db_path, "SWEEP", report_sweep,
                            "no such sweep in the database");
        names.push_back(report_sweep);
      } else {
        for (const auto& s : store.sweeps()) names.push_back(s.name);
      }
      for (const auto& name : names)
        std::cout << format_summary(name, summarize_sweep(store, name)) << "\n";
      return 0;
    }
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const StoreError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const CheckpointError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "error: " << what.substr(0, what.find('\n')) << std::endl;
    return 1;
  }
  return 0;
}
