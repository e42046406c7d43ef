// The results store: one SQLite database holding sweeps, runs and their metrics.
//
// Written by many worker processes at once: WAL mode, a busy timeout, and short
// transactions (one per logging step). Every write that belongs to a run checks that the
// writer still owns it, so a worker whose run was reclaimed cannot write into it.
// The schema is results/schema.sql; PRAGMA user_version holds its version. A command that
// writes (run, train, worker) upgrades an older database when it opens it; a command that only
// reads opens it read-only and never writes to it (an older schema is upgraded in a copy in
// memory, see OpenMode::read_only).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "results/environment_error.h"  // SQLITE_FULL and SQLITE_IOERR are thrown as it

struct sqlite3;

namespace mixlab {

// 2: the meta table (the database's random id, which its checkpoints carry) and the runs
// columns data_fingerprint, data_location, threads, blas.
constexpr int kSchemaVersion = 2;

// A database that cannot be used as given (corrupt, newer schema, not mixlab's): exit 2.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The worker lost its run (reclaimed as stale by another worker): stop, write nothing more.
class LostOwnership : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PlannedRun {
  std::string name;         // variant plus seed, unique in the sweep
  std::string variant;      // seed-free group label
  std::string config_json;  // canonical
  std::string config_hash;
  int64_t seed = 0;
};

struct RunRow {
  int64_t run_id = 0;
  std::string name, variant, config_json, config_hash, status, worker, error;
  std::string data_fingerprint, data_location, blas;  // "" where not recorded
  std::optional<int64_t> threads;
  int64_t seed = 0, attempt = 0;
  std::optional<int64_t> last_step, checkpoint_step, params_total, params_active;
  std::optional<double> heartbeat, started_at, ended_at, flops_per_token, passes;
};

struct RunInfo {
  std::string host, device, git_commit, torch_version;
  std::string data_fingerprint, data_location, blas;  // "" is stored as NULL
  int64_t threads = 0;                                // 0 is stored as NULL
  int64_t params_total = 0, params_active = 0, train_tokens = 0;
  double flops_per_token = 0;
};

struct MetricPoint {
  int64_t step = 0;
  double value = 0;  // NaN where NULL
  double wall_s = 0;
};

struct SweepRow {
  int64_t sweep_id = 0;
  std::string name, spec_json, spec_hash;
  double created_at = 0;
};

double unix_now();

enum class OpenMode {
  create,    // open or create, upgrade the schema (sweep run, train)
  existing,  // open an existing database for writing, upgrade the schema (workers)
  // Never writes (SQLITE_OPEN_READONLY: no WAL switch, no schema, no user_version). A file
  // that is not a mixlab database is refused; an empty one (0 bytes, no tables) reads as a
  // database without sweeps; an older schema is read from an upgraded copy in memory; a
  // database on a read-only file system is opened immutable.
  read_only,
};

class Store {
 public:
  // Opens the database at `path`. Throws StoreError naming the file when it does not exist
  // (unless created), is not a mixlab database, has a newer schema, or cannot be written.
  Store(const std::string& path, OpenMode mode);
  explicit Store(const std::string& path, bool create = true)
      : Store(path, create ? OpenMode::create : OpenMode::existing) {}
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }
  // A random id made when the database was created (meta.database_id): what tells this
  // database's checkpoints from another's in the same folder. "" in a read-only copy of a
  // version-1 database.
  const std::string& database_id() const { return database_id_; }

  // ---- sweeps -------------------------------------------------------------------------
  std::optional<SweepRow> find_sweep(const std::string& name);
  std::vector<SweepRow> sweeps();
  // The runs the sweep holds now, in expansion order.
  std::vector<RunRow> sweep_runs(const std::string& sweep_name);
  // Creates or updates the sweep and makes its run list exactly `runs` (new configs become
  // pending runs; configs already in the database keep their state). One transaction.
  int64_t register_sweep(const std::string& name, const std::string& spec_json,
                         const std::string& spec_hash, const std::vector<PlannedRun>& runs);

  // ---- scheduling ---------------------------------------------------------------------
  // Atomically takes the next run of the sweep that needs work: pending, killed, running
  // with a heartbeat older than `stale_after_s`, or failed with attempts left and ended before
  // `retry_failed_before` (unix seconds: a sweep invocation passes its start time, so a run that
  // failed during this invocation is retried by the next one, not at once by the same one).
  // Marks it running under `worker` and bumps its attempt.
  std::optional<RunRow> claim_next(
      int64_t sweep_id, const std::string& worker, double stale_after_s, int max_attempts,
      double retry_failed_before = std::numeric_limits<double>::infinity());
  void heartbeat(int64_t run_id, const std::string& worker);
  void set_run_info(int64_t run_id, const std::string& worker, const RunInfo& info);
  // Ends the run: status finished|failed|killed, with the error text if any.
  void end_run(int64_t run_id, const std::string& worker, const std::string& status,
               const std::string& error);
  // Marks the run killed if `worker` still holds it: its process is known to be gone.
  bool release_run(int64_t run_id, const std::string& worker, const std::string& error);
  std::optional<RunRow> run(int64_t run_id);
  std::optional<RunRow> run_by_hash(const std::string& config_hash);

  // ---- metrics ------------------------------------------------------------------------
  // One transaction: the metrics of one step, the heartbeat, last_step and passes.
  void log_step(int64_t run_id, const std::string& worker, int64_t step,
                const std::vector<std::pair<std::string, double>>& values, double wall_s,
                double passes);
  void set_checkpoint_step(int64_t run_id, const std::string& worker, int64_t step);
  // Records a new checkpoint of the run: in one write transaction, checks that `worker` still
  // holds the run (else LostOwnership, and `move_into_place` is not called), records `step`,
  // calls `move_into_place` (the rename of the checkpoint file) and commits. No other worker can
  // take the run between the check and the rename.
  void commit_checkpoint(int64_t run_id, const std::string& worker, int64_t step,
                         const std::function<void()>& move_into_place);
  // A resumed run restarts at its checkpoint: the metrics logged after it are rewritten.
  void delete_metrics_after(int64_t run_id, const std::string& worker, int64_t step);
  std::vector<MetricPoint> metric_series(int64_t run_id, const std::string& key);
  std::vector<std::string> metric_keys(int64_t run_id);

  // ---- status -------------------------------------------------------------------------
  // (sweep, status, count) for every sweep or one.
  std::vector<std::tuple<std::string, std::string, int64_t>> status_counts(
      const std::string& sweep_name = "");
  // Runs no sweep lists any more (a variant removed with --allow-changed): kept with their
  // metrics, never deleted; `sweep status` lists them.
  std::vector<RunRow> orphaned_runs();

 private:
  void exec(const char* sql);
  void exec_when_free(const char* sql);  // exec, retrying SQLITE_BUSY for up to 60 s
  void begin_immediate();
  void commit();
  void rollback() noexcept;
  void require_owner(int64_t run_id, const std::string& worker);
  void open_for_writing(bool create);
  void open_read_only();
  void upgrade_schema(int64_t version);  // inside a write transaction

  std::string path_, database_id_;
  sqlite3* db_ = nullptr;
};

}  // namespace mixlab
