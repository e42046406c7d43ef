#include "results/store.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "results/fault_injection.h"
#include "results/schema_sql.h"

namespace mixlab {

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

namespace {

// The one place an SQLite error becomes an exception: a full or failing disk is the
// environment's fault (EnvironmentError), a damaged file the user's to restore (StoreError).
[[noreturn]] void throw_sqlite_error(int rc, const std::string& path, const std::string& message) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR)
    throw EnvironmentError(
        fmt::format("{}: {} (the file system is full or failing: free space and rerun to continue)",
                    path, message));
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
    throw StoreError(fmt::format("{}: the database file is corrupt ({}); restore it from a backup",
                                 path, message));
  throw StoreError(fmt::format("{}: {}", path, message));
}

// sqlite3_exec with the error turned into an exception.
void exec_sql(sqlite3* db, const std::string& path, const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return;
  std::string message = err ? err : sqlite3_errmsg(db);
  sqlite3_free(err);
  throw_sqlite_error(rc, path, message);
}

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
    throw_sqlite_error(rc, sqlite3_db_filename(db_, "main"), sqlite3_errmsg(db_));
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
    "r.flops_per_token, r.passes, COALESCE(r.data_fingerprint, ''), "
    "COALESCE(r.data_location, ''), COALESCE(r.blas, ''), r.threads";

// The runs columns added since version 1, in the order they were added: one list, applied by
// ALTER TABLE to every database that lacks them (a new database gets version 1's CREATE TABLE
// from schema.sql, then these). results/schema.sql documents each.
constexpr std::pair<const char*, const char*> kAddedRunColumns[] = {
    {"data_fingerprint", "TEXT"},  // v2
    {"data_location", "TEXT"},     // v2
    {"threads", "INTEGER"},        // v2
    {"blas", "TEXT"},              // v2
};

// Views whose definition changed, with the version that changed them: a database of an older
// version gets the new definition when it is upgraded.
constexpr std::pair<int, const char*> kRedefinedViews[] = {
    {2, "variant_final"},  // the std two-pass (deviations from the mean), not sum-of-squares
};

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
  r.data_fingerprint = s.text_at(19);
  r.data_location = s.text_at(20);
  r.blas = s.text_at(21);
  r.threads = s.opt_int(22);
  return r;
}

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) out += fmt::format("{:02x}", rd() & 0xff);
  return out;
}

std::vector<std::string> table_names(sqlite3* db) {
  Statement s(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text_at(0));
  return out;
}

bool has_table(const std::vector<std::string>& tables, const char* name) {
  return std::find(tables.begin(), tables.end(), name) != tables.end();
}

// A file: URI for `path` (for the immutable flag): '%', '?' and '#' escaped.
std::string file_uri(const std::string& path) {
  std::string out = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#')
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  return out;
}

}  // namespace

Store::Store(const std::string& path, OpenMode mode) : path_(path) {
  if (mode == OpenMode::read_only)
    open_read_only();
  else
    open_for_writing(mode == OpenMode::create);
}

void Store::upgrade_schema(int64_t version) {
  // Views hold no data, and CREATE VIEW IF NOT EXISTS would keep an older definition: an
  // upgrade drops the schema's views so that it recreates each as this version defines it
  // (version 2: variant_final's std became two-pass). A user's own views are left alone.
  if (version > 0 && version < kSchemaVersion) {
    const std::string schema = kSchemaSql, create = "CREATE VIEW IF NOT EXISTS ";
    for (size_t at = schema.find(create); at != std::string::npos;
         at = schema.find(create, at + 1)) {
      const size_t name = at + create.size();
      const std::string view = schema.substr(name, schema.find_first_of(" \n", name) - name);
      exec(fmt::format("DROP VIEW IF EXISTS {}", view).c_str());
    }
  }
  auto add_missing_run_columns = [&] {
    std::vector<std::string> have;
    Statement info(db_, "PRAGMA table_info(runs)");
    while (info.step()) have.push_back(info.text_at(1));
    if (have.empty()) return;  // no runs table yet
    for (const auto& [name, type] : kAddedRunColumns)
      if (std::find(have.begin(), have.end(), name) == have.end())
        exec(fmt::format("ALTER TABLE runs ADD COLUMN {} {}", name, type).c_str());
  };
  // Before the schema too: a view of schema.sql may name an added column.
  add_missing_run_columns();
  // A view redefined since `version` is dropped, so the schema's CREATE VIEW IF NOT EXISTS makes
  // the new definition (a user's own views are left alone).
  for (const auto& [since, view] : kRedefinedViews)
    if (version > 0 && version < since) exec(fmt::format("DROP VIEW IF EXISTS {}", view).c_str());
  exec(kSchemaSql);
  add_missing_run_columns();
  Statement id(db_,
               "INSERT INTO meta (key, value) VALUES ('database_id', ?) "
               "ON CONFLICT(key) DO NOTHING");
  id.bind(1, random_hex(8)).run();
  if (version != kSchemaVersion)
    exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
}

void Store::open_for_writing(bool create) {
  const std::string& path = path_;
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
    // A SQLite file of something else is not made into a mixlab database.
    if (v == 0) {
      const auto tables = table_names(db_);
      if (!tables.empty() && !has_table(tables, "runs"))
        throw StoreError(fmt::format(
            "{}: the file is not a mixlab database (an SQLite file with other tables)", path));
    }
    // Two processes creating one database at once race to switch it to WAL; that switch can
    // answer SQLITE_BUSY without consulting the busy handler, so it is retried here.
    exec_when_free("PRAGMA journal_mode = WAL");
    exec("PRAGMA synchronous = NORMAL");
    exec("PRAGMA foreign_keys = ON");
    // The schema is idempotent (IF NOT EXISTS): running it on every open also gives databases of
    // this version the views added since they were created, and upgrades older versions. On an
    // up-to-date database it writes nothing (the version is only set when it changes), so a
    // command that fails before its first write leaves the file byte-for-byte as it was.
    {
      exec_when_free("BEGIN IMMEDIATE");
      try {
        // Another process may have upgraded it between the check above and this lock.
        Statement version(db_, "PRAGMA user_version");
        version.step();
        upgrade_schema(version.int_at(0));
        commit();
      } catch (...) {
        rollback();
        throw;
      }
    }
    Statement id(db_, "SELECT value FROM meta WHERE key = 'database_id'");
    if (id.step()) database_id_ = id.text_at(0);
  } catch (const StoreError& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    std::string what = e.what();
    if (what.find("file is not a database") != std::string::npos ||
        what.find("malformed") != std::string::npos)
      throw StoreError(
          fmt::format("{}: the file is not a mixlab database (corrupt or foreign)", path));
    throw;
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

void Store::open_read_only() {
  const std::string& path = path_;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw StoreError(fmt::format("{}: no such database", path));
  auto open = [&](const std::string& name, int extra) {
    sqlite3_close(db_);
    db_ = nullptr;
    const int rc = sqlite3_open_v2(name.c_str(), &db_,
                                   SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX | extra, nullptr);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(db_, 60000);
    return rc;
  };
  auto fail = [&](const std::string& why) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError(fmt::format("{}: {}", path, why));
  };
  if (open(path, 0) != SQLITE_OK)
    fail(std::string("cannot open the database: ") + sqlite3_errmsg(db_));
  int64_t version = 0;
  std::vector<std::string> tables;
  auto read_header = [&] {
    Statement v(db_, "PRAGMA user_version");
    v.step();
    version = v.int_at(0);
    tables = table_names(db_);
  };
  try {
    try {
      read_header();
    } catch (const StoreError& e) {
      // A WAL database in a place this process cannot write (a read-only mount) cannot get
      // its -shm file: nothing can write there either, so it is read as immutable.
      if (sqlite3_errcode(db_) != SQLITE_CANTOPEN) throw;
      if (open(file_uri(path) + "?immutable=1", SQLITE_OPEN_URI) != SQLITE_OK)
        fail(std::string("cannot open the database: ") + sqlite3_errmsg(db_));
      read_header();
    }
  } catch (const StoreError& e) {
    const std::string what = e.what();
    if (what.find("not a database") != std::string::npos ||
        what.find("malformed") != std::string::npos || what.find("corrupt") != std::string::npos)
      fail("the file is not a mixlab database (corrupt or foreign)");
    fail(what.substr(path.size() + 2));
  }
  if (version > kSchemaVersion)
    fail(fmt::format("user_version = {}: the database has a newer schema than this mixlab ({})",
                     version, kSchemaVersion));
  const bool empty = tables.empty() && version == 0;
  if (!empty && (version < 1 || !has_table(tables, "sweeps") || !has_table(tables, "runs") ||
                 !has_table(tables, "sweep_runs") || !has_table(tables, "metrics")))
    fail(fmt::format(
        "the file is not a mixlab database (user_version = {}, tables: {})", version,
        tables.empty() ? std::string("none") : fmt::format("{}", fmt::join(tables, ", "))));
  if (version < kSchemaVersion) {
    // An empty or older database is read from a copy in memory with the current schema, so
    // every query works and the file is never written.
    sqlite3* memory = nullptr;
    if (sqlite3_open_v2(":memory:", &memory, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      sqlite3_close(memory);
      fail("cannot open a database in memory");
    }
    if (!empty) {
      sqlite3_backup* backup = sqlite3_backup_init(memory, "main", db_, "main");
      const int rc = backup ? sqlite3_backup_step(backup, -1) : SQLITE_ERROR;
      sqlite3_backup_finish(backup);
      if (rc != SQLITE_DONE) {
        sqlite3_close(memory);
        fail(std::string("cannot read the database: ") + sqlite3_errmsg(db_));
      }
    }
    sqlite3_close(db_);
    db_ = memory;
    exec("BEGIN");
    try {
      upgrade_schema(version);
      commit();
    } catch (...) {
      rollback();
      throw;
    }
  }
  // The copy of an empty or version-1 database got an id of its own: not the file's.
  Statement id(db_, "SELECT value FROM meta WHERE key = 'database_id'");
  if (version >= 2 && id.step()) database_id_ = id.text_at(0);
  // Belt and braces: this connection refuses every write.
  exec("PRAGMA query_only = ON");
}

Store::~Store() {
  sqlite3_close(db_);
}

void Store::exec(const char* sql) {
  exec_sql(db_, path_, sql);
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
      throw_sqlite_error(rc, path_, message);
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
  exec_sql(db, path, "BEGIN IMMEDIATE");
  try {
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      exec_sql(db, path, "COMMIT");
    } else {
      auto result = body();
      exec_sql(db, path, "COMMIT");
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
    Statement added(
        db_,
        "UPDATE runs SET data_fingerprint = NULLIF(?, ''), data_location = NULLIF(?, ''), "
        "blas = NULLIF(?, ''), threads = NULLIF(?, 0) WHERE run_id = ?");
    added.bind(1, info.data_fingerprint).bind(2, info.data_location).bind(3, info.blas);
    added.bind(4, info.threads).bind(5, run_id).run();
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
  commit_checkpoint(run_id, worker, step, [] {});
}

void Store::commit_checkpoint(int64_t run_id, const std::string& worker, int64_t step,
                              const std::function<void()>& move_into_place) {
  in_transaction(db_, path_, [&] {
    require_owner(run_id, worker);
    Statement s(db_, "UPDATE runs SET checkpoint_step = ?, heartbeat = ? WHERE run_id = ?");
    s.bind(1, step).bind(2, unix_now()).bind(3, run_id).run();
    move_into_place();
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

std::vector<RunRow> Store::orphaned_runs() {
  Statement s(db_, fmt::format("SELECT {} FROM runs r LEFT JOIN sweep_runs sr USING (run_id) "
                               "WHERE sr.run_id IS NULL ORDER BY r.run_id",
                               kRunColumns)
                       .c_str());
  std::vector<RunRow> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

}  // namespace mixlab
