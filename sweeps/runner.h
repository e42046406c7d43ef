// The sweep runner: records a sweep and its runs in the store, then trains every run that
// needs work, in this process or in --jobs worker processes, each claiming runs atomically
// from the database. Interrupted runs resume from their checkpoints; finished runs are never
// trained again.
#pragma once

#include <string>
#include <vector>

namespace mixlab {

struct RunnerOptions {
  std::string db_path = "results/results.db";
  std::string device = "auto";  // cpu | cuda | auto
  int jobs = 1;
  int threads = 0;             // LibTorch intra-op threads per worker; 0: cores / jobs
  double stale_after_s = 120;  // a running run whose heartbeat is older is reclaimed (>= 5)
  int max_attempts = 2;        // a failed run is retried until it has been started this often
  bool quiet = false;
  // When this `sweep run` began (unix seconds; 0: now). Runs that failed after it are not
  // retried by it (nor by its --jobs workers): a retry is for the next invocation.
  double session_start = 0;
  // Where checkpoints live; "": the folder `checkpoints` beside the database. A Slurm task
  // (sweep run-task) writes its own per-run database but the main database's checkpoints.
  std::string checkpoint_dir;
  // sweep submit: validate and record the sweep and its runs, train nothing.
  bool record_only = false;
  // A run whose corpus changed since it recorded its data fingerprint is refused (exit 2)
  // unless this is set; then it trains again from step 0 (sweeps/data_identity.h).
  bool retrain_changed_data = false;
  // A --jobs worker: the pid of the `sweep run` that started it (the worker stops when it is
  // gone); 0 otherwise.
  int parent_pid = 0;
};

struct SweepCommand {
  std::string spec_file;
  std::vector<std::string> overrides;
  bool dry_run = false;
  bool allow_changed = false;
};

// Exit status: 0 every run finished, 1 a run failed, 2 bad input, 75 a full or failing disk
// (EnvironmentError, thrown to main; the run is released), 130 stopped by a signal. It returns
// only once no run of the sweep is being trained by any worker (another sweep may share one).
int run_sweep(const SweepCommand& command, const RunnerOptions& options);

// `sweep train CONFIG.json`: one config as a one-run sweep (named `sweep_name`, default the
// file's stem), or without a database when `db` is false.
int train_config(const std::string& config_file, const std::string& sweep_name, bool use_db,
                 const RunnerOptions& options);

// The hidden `sweep worker` command that --jobs spawns.
int run_worker(const std::string& sweep_name, const RunnerOptions& options);

// `sweep status`: runs per status, progress and an estimate of the time left.
int print_status(const std::string& sweep_name, const RunnerOptions& options);

}  // namespace mixlab
