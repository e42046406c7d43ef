// Per-run database files: how runs trained elsewhere (Slurm array tasks) come back into the
// main database.
//
// SQLite must not be shared between machines (WAL needs one host's shared memory; network file
// systems break its locks), so a task never opens the main database: `sweep submit` makes one
// small database per run, `<db folder>/<db stem>.runs/<config hash>.db`, holding that run's
// sweep, its run row and whatever the main database already had of it; the task trains into it.
// The per-run file carries the main database's id and the run's run_id, so the checkpoints a
// task writes (in the main database's checkpoints folder) are the main database's too.
//
// Collecting copies each per-run file's run (its runs row and every metric point) into the
// target, replacing what the target had for that run, unless the target already holds it
// finished: a finished run is final. So collecting twice, or while tasks still write, duplicates
// nothing. The target is the main database (sweep collect, sweep submit) or a copy of it in
// memory (the read commands, which never write).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "results/store.h"

struct sqlite3;

namespace mixlab {

// `<folder>/<stem>.runs`: the per-run files of the database at `main_db`.
std::string per_run_folder(const std::string& main_db);
std::string per_run_file(const std::string& main_db, const std::string& config_hash);
// `<folder>/checkpoints`, the folder resolved through symlinks: where every task checkpoints.
std::string checkpoint_folder(const std::string& main_db);

// Makes the per-run file of run `config_hash` of sweep `sweep_name` (both recorded in `main`) if
// it does not exist yet: the sweep, the run under its main run_id, the main database's id, and
// the run's state and metrics as `main` holds them. An existing file is left as it is: it holds
// the newest progress. Returns its path.
std::string make_per_run_file(Store& main, const std::string& sweep_name,
                              const std::string& config_hash);

struct CollectReport {
  int copied = 0;  // runs whose state the target took (of which `finished` finished)
  int finished = 0;
  int unchanged = 0;                    // the target already held exactly this
  int final = 0;                        // the target holds the run finished: left alone
  std::vector<std::string> unreadable;  // "file: why" (busy, torn, foreign): collected next time
};

// Takes every per-run file of `main_db` into the database open as `target`.
CollectReport collect_runs(sqlite3* target, const std::string& target_name,
                           const std::string& main_db);

// What the read commands (status, report, plot, export) read: the database at `path` opened
// read-only, or, when per-run files exist beside it, a copy of it in memory into which they
// have been collected. Neither the database nor the per-run files are written.
std::unique_ptr<Store> open_for_reading(const std::string& path);

}  // namespace mixlab
