// run, status, train and the internal worker command.
#include <memory>

#include "sweeps/commands.h"
#include "sweeps/runner.h"
#include "sweeps/spec_lookup.h"

namespace mixlab {

namespace {
void add_runner_options(CLI::App* cmd, RunnerOptions& o) {
  cmd->add_option("--db", o.db_path, "results database")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--threads", o.threads,
                  "CPU threads per worker (0: cores / jobs); see README, Performance")
      ->capture_default_str();
}

void add_retrain_flag(CLI::App* cmd, RunnerOptions& o) {
  cmd->add_flag("--retrain-changed-data", o.retrain_changed_data,
                "train again from step 0 the runs whose corpus changed since they trained "
                "(without it such runs are refused)");
}
}  // namespace

std::vector<Command> add_run_commands(CLI::App& app) {
  auto options = std::make_shared<RunnerOptions>();
  std::vector<Command> out;

  auto sweep = std::make_shared<SweepCommand>();
  auto* run = app.add_subcommand("run",
                                 "expand a sweep spec, train every run not yet finished, "
                                 "print the summary table (rerun to resume)");
  run->add_option("SPEC", sweep->spec_file,
                  "sweep spec (JSON): a file, or a bundled spec's name (sweep specs), e.g. "
                  "temperature_sweep.json")
      ->required();
  add_runner_options(run, *options);
  run->add_option("--jobs", options->jobs, "worker processes training runs in parallel")
      ->capture_default_str();
  run->add_option("--set", sweep->overrides,
                  "override a config key for every run, e.g. --set train.steps=100 (repeatable)");
  run->add_flag("--dry-run", sweep->dry_run, "validate and list the runs; write nothing");
  run->add_flag("--allow-changed", sweep->allow_changed,
                "accept a spec that differs from the one recorded under the same name");
  add_retrain_flag(run, *options);
  run->add_option("--stale-after", options->stale_after_s,
                  "seconds without heartbeat after which a running run is reclaimed (at least 5)")
      ->capture_default_str();
  run->add_option("--max-attempts", options->max_attempts, "starts allowed for a failing run")
      ->capture_default_str();
  out.push_back({run, [=] {
                   sweep->spec_file = resolve_spec_argument(sweep->spec_file);
                   return run_sweep(*sweep, *options);
                 }});

  auto status_sweep = std::make_shared<std::string>();
  auto* status = app.add_subcommand("status", "runs per status, progress and time left");
  status->add_option("SWEEP", *status_sweep, "sweep name (default: all)");
  status->add_option("--db", options->db_path, "results database")->capture_default_str();
  out.push_back({status, [=] { return print_status(*status_sweep, *options); }});

  struct TrainArgs {
    std::string config_file, sweep;
    bool no_db = false;
  };
  auto targs = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand(
      "train", "train one resolved run config (recorded as a one-run sweep, resumable)");
  train
      ->add_option("CONFIG", targs->config_file,
                   "run config (JSON): model, ffn, data, train, eval, seed")
      ->required();
  add_runner_options(train, *options);
  train->add_option("--sweep", targs->sweep, "sweep name to record it under (default: file stem)");
  train->add_flag("--no-db", targs->no_db, "train without recording anything (no checkpoints)");
  add_retrain_flag(train, *options);
  out.push_back({train, [=] {
                   return train_config(targs->config_file, targs->sweep, !targs->no_db, *options);
                 }});

  auto worker_sweep = std::make_shared<std::string>();
  auto* worker = app.add_subcommand("worker", "(internal) train runs of a recorded sweep");
  worker->group("");
  worker->add_option("SWEEP", *worker_sweep)->required();
  add_runner_options(worker, *options);
  worker->add_option("--jobs", options->jobs);
  worker->add_option("--stale-after", options->stale_after_s);
  worker->add_option("--max-attempts", options->max_attempts);
  worker->add_option("--session-start", options->session_start);
  worker->add_option("--parent", options->parent_pid);
  out.push_back({worker, [=] { return run_worker(*worker_sweep, *options); }});
  return out;
}

}  // namespace mixlab
