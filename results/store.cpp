#include "results/store.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "results/fault_injection.h"
#include "results/schema_sql.h"

namespace mixlab {

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw StoreError(fmt::format("{}: cannot prepare statement: {}",
                                   sqlite3_db_filename(db, "main"), sqlite3_errmsg(db)));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v) {
    if (std::isnan(v))
      sqlite3_bind_null(stmt_, i);
    else
      sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
      throw StoreError(
          fmt::format("{}: the database file is corrupt ({}); restore it from a backup",
                      sqlite3_db_filename(db_, "main"), sqlite3_errmsg(db_)));
    throw StoreError(fmt::format("{}: {}", sqlite3_db_filename(db_, "main"), sqlite3_errmsg(db_)));
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t int_at(int col) const { return sqlite3_column_int64(stmt_, col); }
  double double_at(int col) const {
    return is_null(col) ? std::numeric_limits<double>::quiet_NaN()
                        : sqlite3_column_double(stmt_, col);
  }
  std::string text_at(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  std::optional<int64_t> opt_int(int col) const {
    return is_null(col) ? std::nullopt : std::optional<int64_t>(int_at(col));
  }
  std::optional<double> opt_double(int col) const {
    return is_null(col) ? std::nullopt : std::optional<double>(double_at(col));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kRunColumns =
    "r.run_id, COALESCE(sr.name, ''), COALESCE(sr.variant, ''), r.config_json, r.config_hash, "
    "r.status, COALESCE(r.worker, ''), COALESCE(r.error, ''), r.seed, r.attempt, r.last_step, "
    "r.checkpoint_step, r.params_total, r.params_active, r.heartbeat, r.started_at, r.ended_at, "
    "r.flops_per_token, r.passes";

RunRow read_run(const Statement& s) {
  RunRow r;
  r.run_id = s.int_at(0);
  r.name = s.text_at(1);
  r.variant = s.text_at(2);
  r.config_json = s.text_at(3);
  r.config_hash = s.text_at(4);
  r.status = s.text_at(5);
  r.worker = s.text_at(6);
  r.error = s.text_at(7);
  r.seed = s.int_at(8);
  r.attempt = s.int_at(9);
  r.last_step = s.opt_int(10);
  r.checkpoint_step = s.opt_int(11);
  r.params_total = s.opt_int(12);
  r.params_active = s.opt_int(13);
  r.heartbeat = s.opt_double(14);
  r.started_at = s.opt_double(15);
  r.ended_at = s.opt_double(16);
  r.flops_per_token = s.opt_double(17);
  r.passes = s.opt_double(18);
  return r;
}

}  // namespace

Store::Store(const std::string& path, bool create) : path_(path) {
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && !create) throw StoreError(fmt::format("{}: no such database", path));
  int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError(fmt::format("{}: cannot open the database: {}", path, why));
  }
  sqlite3_busy_timeout(db_, 60000);
  try {
    // Reading the header proves the file is a database before anything is written to it.
    int64_t v = 0;
    {
      Statement version(db_, "PRAGMA user_version");
      version.step();
      v = version.int_at(0);
    }
    if (v > kSchemaVersion)
      throw StoreError(fmt::format(
          "{}: user_version = {}: the database has a newer schema than this mixlab ({})", path, v,
          kSchemaVersion));
    // Two processes creating one database at once race to switch it to WAL; that switch can
    // answer SQLITE_BUSY without consulting the busy handler, so it is retried here.
    exec_when_free("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA foreign_keys = ON");
    // The schema is idempotent (IF NOT EXISTS): running it on every open also gives databases of
    // this version the views added since they were created. On an up-to-date database it writes
    // nothing (the version is only set when it changes), so a command that fails before its
    // first write leaves the file byte-for-byte as it was.
    {
      exec_when_free("BEGIN IMMEDIATE");
      try {
        exec(kSchemaSql);
        if (v != kSchemaVersion)
          exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
        commit();
      } catch (...) {
        rollback();
        throw;
      }
    }
  } catch (const StoreError& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    std::string what = e.what();
    if (what.find("file is not a database") != std::string::npos ||
        what.find("malformed") != std::string::npos)
      throw StoreError(
          fmt::format("{}: the file is not a mixlab database (corrupt or foreign)", path));
    throw;
  }
}

Store::~Store() {
  sqlite3_close(db_);
}

void Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError(fmt::format("{}: {}", path_, message));
  }
}

void Store::exec_when_free(const char* sql) {
  const double deadline = unix_now() + 60;
  while (true) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return;
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || unix_now() > deadline)
      throw StoreError(fmt::format("{}: {}", path_, message));
    ::usleep(20000);
  }
}

void Store::begin_immediate() {
  exec("BEGIN IMMEDIATE");
}
void Store::commit() {
  exec("COMMIT");
}
void Store::rollback() noexcept {
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

namespace {
// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back on any exception.
template <class Body>
auto in_transaction(sqlite3* db, const std::string& path, Body&& body) {
  char* err = nullptr;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError(fmt::format("{}: {}", path, message));
  }
  try {
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
        throw StoreError(fmt::format("{}: commit failed: {}", path, sqlite3_errmsg(db)));
    } else {
      auto result = body();
      if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
        throw StoreError(fmt::format("{}: commit failed: {}", path, sqlite3_errmsg(db)));
      return result;
    }
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}
}  // namespace

std::optional<SweepRow> Store::find_sweep(const std::string& name) {
  Statement s(db_,
              "SELECT sweep_id, name, spec_json, spec_hash, created_at FROM sweeps WHERE name = ?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return SweepRow{s.int_at(0), s.text_at(1), s.text_at(2), s.text_at(3), s.double_at(4)};
}

std::vector<SweepRow> Store::sweeps() {
  Statement s(
      db_, "SELECT sweep_id, name, spec_json, spec_hash, created_at FROM sweeps ORDER BY sweep_id");
  std::vector<SweepRow> out;
  while (s.step())
    out.push_back({s.int_at(0), s.text_at(1), s.text_at(2), s.text_at(3), s.double_at(4)});
  return out;
}

std::vector<RunRow> Store::sweep_runs(const std::string& sweep_name) {
  Statement s(db_, fmt::format("SELECT {} FROM sweep_runs sr JOIN sweeps w USING (sweep_id) "
                               "JOIN runs r USING (run_id) WHERE w.name = ? ORDER BY sr.position",
                               kRunColumns)
                       .c_str());
  s.bind(1, sweep_name);
  std::vector<RunRow> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

int64_t Store::register_sweep(const std::string& name, const std::string& spec_json,
                              const std::string& spec_hash, const std::vector<PlannedRun>& runs) {
  return in_transaction(db_, path_, [&] {
    Statement upsert(
        db_,
        "INSERT INTO sweeps (name, spec_json, spec_hash, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET spec_json = excluded.spec_json, "
        "spec_hash = excluded.spec_hash");
    upsert.bind(1, name).bind(2, spec_json).bind(3, spec_hash).bind(4, unix_now()).run();
    Statement id(db_, "SELECT sweep_id FROM sweeps WHERE name = ?");
    id.bind(1, name);
    id.step();
    int64_t sweep_id = id.int_at(0);
    Statement clear(db_, "DELETE FROM sweep_runs WHERE sweep_id = ?");
    clear.bind(1, sweep_id).run();
    Statement insert_run(db_,
                         "INSERT INTO runs (config_json, config_hash, seed) VALUES (?, ?, ?) "
                         "ON CONFLICT(config_hash) DO NOTHING");
    Statement find_run(db_, "SELECT run_id FROM runs WHERE config_hash = ?");
    Statement link(db_,
                   "INSERT INTO sweep_runs (sweep_id, run_id, variant, name, position) "
                   "VALUES (?, ?, ?, ?, ?)");
    for (size_t i = 0; i < runs.size(); ++i) {
      const PlannedRun& p = runs[i];
      insert_run.reset();
      insert_run.bind(1, p.config_json).bind(2, p.config_hash).bind(3, p.seed).run();
      find_run.reset();
      find_run.bind(1, p.config_hash);
      find_run.step();
      int64_t run_id = find_run.int_at(0);
      link.reset();
      link.bind(1, sweep_id).bind(2, run_id).bind(3, p.variant).bind(4, p.name);
      link.bind(5, static_cast<int64_t>(i)).run();
    }
    return sweep_id;
  });
}

std::optional<RunRow> Store::claim_next(int64_t sweep_id, const std::string& worker,
                                        double stale_after_s, int max_attempts,
                                        double retry_failed_before) {
  return in_transaction(db_, path_, [&]() -> std::optional<RunRow> {
    double now = unix_now();
    // Interrupted work first (it has a checkpoint to resume), then fresh runs, in order.
    Statement pick(db_,
                   "SELECT r.run_id FROM sweep_runs sr JOIN runs r USING (run_id) "
                   "WHERE sr.sweep_id = ?1 AND ("
                   "  r.status = 'pending' OR r.status = 'killed' "
                   "  OR (r.status = 'running' AND (r.heartbeat IS NULL OR r.heartbeat < ?2)) "
                   "  OR (r.status = 'failed' AND r.attempt < ?3 AND "
                   "      (r.ended_at IS NULL OR r.ended_at < ?4))) "
                   "ORDER BY (r.status = 'pending'), sr.position LIMIT 1");
    pick.bind(1, sweep_id).bind(2, now - stale_after_s).bind(3, max_attempts);
    pick.bind(4, retry_failed_before);
    if (!pick.step()) return std::nullopt;
    int64_t run_id = pick.int_at(0);
    Statement take(db_,
                   "UPDATE runs SET status = 'running', worker = ?2, heartbeat = ?3, "
                   "attempt = attempt + 1, started_at = COALESCE(started_at, ?3), ended_at = NULL, "
                   "error = CASE WHEN status = 'running' THEN 'reclaimed: stale heartbeat of ' || "
                   "COALESCE(worker, '?') ELSE error END WHERE run_id = ?1");
    take.bind(1, run_id).bind(2, worker).bind(3, now).run();
    Statement read(db_, fmt::format("SELECT {} FROM runs r LEFT JOIN sweep_runs sr ON "
                                    "sr.run_id = r.run_id AND sr.sweep_id = ?2 WHERE r.run_id = ?1",
                                    kRunColumns)
                            .c_str());
    read.bind(1, run_id).bind(2, sweep_id);
    read.step();
    return read_run(read);
  });
}

void Store::require_owner(int64_t run_id, const std::string& worker) {
  Statement s(db_, "SELECT status, COALESCE(worker, '') FROM runs WHERE run_id = ?");
  s.bind(1, run_id);
  if (!s.step() || s.text_at(0) != "running" || s.text_at(1) != worker)
    throw LostOwnership(fmt::format("run {} is no longer held by this worker", run_id));
}

void Store::heartbeat(int64_t run_id, const std::string& worker) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_, "UPDATE runs SET heartbeat = ? WHERE run_id = ?");
    s.bind(1, unix_now()).bind(2, run_id).run();
  });
}

void Store::set_run_info(int64_t run_id, const std::string& worker, const RunInfo& info) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_,
                "UPDATE runs SET host = ?, device = ?, git_commit = ?, torch_version = ?, "
                "params_total = ?, params_active = ?, flops_per_token = ?, train_tokens = ? "
                "WHERE run_id = ?");
    s.bind(1, info.host).bind(2, info.device).bind(3, info.git_commit).bind(4, info.torch_version);
    s.bind(5, info.params_total).bind(6, info.params_active).bind(7, info.flops_per_token);
    s.bind(8, info.train_tokens).bind(9, run_id).run();
  });
}

void Store::end_run(int64_t run_id, const std::string& worker, const std::string& status,
                    const std::string& error) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_,
                "UPDATE runs SET status = ?, error = NULLIF(?, ''), ended_at = ?, heartbeat = ? "
                "WHERE run_id = ?");
    double now = unix_now();
    s.bind(1, status).bind(2, error).bind(3, now).bind(4, now).bind(5, run_id).run();
    fault::point("end_run");
  });
}

bool Store::release_run(int64_t run_id, const std::string& worker, const std::string& error) {
  return in_transaction(db_, path_, [&] {
    Statement s(db_,
                "UPDATE runs SET status = 'killed', error = ?, ended_at = ? "
                "WHERE run_id = ? AND status = 'running' AND worker = ?");
    s.bind(1, error).bind(2, unix_now()).bind(3, run_id).bind(4, worker).run();
    return sqlite3_changes(db_) > 0;
  });
}

std::optional<RunRow> Store::run(int64_t run_id) {
  Statement s(db_, fmt::format("SELECT {} FROM runs r LEFT JOIN sweep_runs sr USING (run_id) "
                               "WHERE r.run_id = ? LIMIT 1",
                               kRunColumns)
                       .c_str());
  s.bind(1, run_id);
  if (!s.step()) return std::nullopt;
  return read_run(s);
}

std::optional<RunRow> Store::run_by_hash(const std::string& config_hash) {
  Statement s(db_, fmt::format("SELECT {} FROM runs r LEFT JOIN sweep_runs sr USING (run_id) "
                               "WHERE r.config_hash = ? LIMIT 1",
                               kRunColumns)
                       .c_str());
  s.bind(1, config_hash);
  if (!s.step()) return std::nullopt;
  return read_run(s);
}

void Store::log_step(int64_t run_id, const std::string& worker, int64_t step,
                     const std::vector<std::pair<std::string, double>>& values, double wall_s,
                     double passes) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement insert(db_,
                     "INSERT OR REPLACE INTO metrics (run_id, key, step, value, wall_s) "
                     "VALUES (?, ?, ?, ?, ?)");
    for (const auto& [key, value] : values) {
      insert.reset();
      insert.bind(1, run_id).bind(2, key).bind(3, step).bind(4, value).bind(5, wall_s).run();
    }
    Statement update(db_,
                     "UPDATE runs SET heartbeat = ?, last_step = ?, passes = ? WHERE run_id = ?");
    update.bind(1, unix_now()).bind(2, step).bind(3, passes).bind(4, run_id).run();
    fault::point("log_step");
  });
}

void Store::set_checkpoint_step(int64_t run_id, const std::string& worker, int64_t step) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_, "UPDATE runs SET checkpoint_step = ?, heartbeat = ? WHERE run_id = ?");
    s.bind(1, step).bind(2, unix_now()).bind(3, run_id).run();
  });
}

void Store::delete_metrics_after(int64_t run_id, const std::string& worker, int64_t step) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_, "DELETE FROM metrics WHERE run_id = ? AND step > ?");
    s.bind(1, run_id).bind(2, step).run();
    Statement u(db_,
                "UPDATE runs SET last_step = (SELECT MAX(step) FROM metrics WHERE run_id = ?1) "
                "WHERE run_id = ?1");
    u.bind(1, run_id).run();
  });
}

std::vector<MetricPoint> Store::metric_series(int64_t run_id, const std::string& key) {
  Statement s(db_,
              "SELECT step, value, wall_s FROM metrics WHERE run_id = ? AND key = ? ORDER BY step");
  s.bind(1, run_id).bind(2, key);
  std::vector<MetricPoint> out;
  while (s.step()) out.push_back({s.int_at(0), s.double_at(1), s.double_at(2)});
  return out;
}

std::vector<std::string> Store::metric_keys(int64_t run_id) {
  Statement s(db_, "SELECT DISTINCT key FROM metrics WHERE run_id = ? ORDER BY key");
  s.bind(1, run_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text_at(0));
  return out;
}

std::vector<std::tuple<std::string, std::string, int64_t>> Store::status_counts(
    const std::string& sweep_name) {
  Statement s(db_,
              "SELECT w.name, r.status, COUNT(*) FROM sweep_runs sr JOIN sweeps w USING (sweep_id) "
              "JOIN runs r USING (run_id) WHERE ?1 = '' OR w.name = ?1 "
              "GROUP BY w.name, r.status ORDER BY w.sweep_id, r.status");
  s.bind(1, sweep_name);
  std::vector<std::tuple<std::string, std::string, int64_t>> out;
  while (s.step()) out.emplace_back(s.text_at(0), s.text_at(1), s.int_at(2));
  return out;
}

}  // namespace mixlab
