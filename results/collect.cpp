#include "results/collect.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <filesystem>

namespace mixlab {

namespace fs = std::filesystem;

namespace {

// The columns of `runs` that are the run's identity, never copied over another database's.
const char* const kIdentityColumns[] = {"run_id", "config_json", "config_hash", "seed"};

std::string errmsg(sqlite3* db, const std::string& name) {
  return fmt::format("{}: {}", name, sqlite3_errmsg(db));
}

// A prepared statement that finalizes itself; errors name the database.
class Sql {
 public:
  Sql(sqlite3* db, const std::string& name, const std::string& sql) : db_(db), name_(name) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      throw StoreError(errmsg(db, name));
  }
  ~Sql() { sqlite3_finalize(stmt_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;
  sqlite3_stmt* operator*() { return stmt_; }
  Sql& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Sql& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Sql& bind(int i, const sqlite3_value* v) {
    sqlite3_bind_value(stmt_, i, v);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(errmsg(db_, name_));
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int col) {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  std::string name_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const std::string& name, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string what = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError(fmt::format("{}: {}", name, what));
  }
}

// An owned copy of one SQLite value (a run's column, a metric's field).
struct Value {
  sqlite3_value* v = nullptr;
  explicit Value(sqlite3_value* from) : v(sqlite3_value_dup(from)) {}
  Value(Value&& o) noexcept : v(o.v) { o.v = nullptr; }
  Value(const Value&) = delete;
  ~Value() { sqlite3_value_free(v); }
  bool operator==(const Value& o) const {
    const int t = sqlite3_value_type(v);
    if (t != sqlite3_value_type(o.v)) return false;
    if (t == SQLITE_NULL) return true;
    if (t == SQLITE_INTEGER) return sqlite3_value_int64(v) == sqlite3_value_int64(o.v);
    if (t == SQLITE_FLOAT) return sqlite3_value_double(v) == sqlite3_value_double(o.v);
    const int n = sqlite3_value_bytes(v);
    return n == sqlite3_value_bytes(o.v) &&
           std::equal(static_cast<const char*>(sqlite3_value_blob(v)),
                      static_cast<const char*>(sqlite3_value_blob(v)) + n,
                      static_cast<const char*>(sqlite3_value_blob(o.v)));
  }
};

std::vector<std::string> run_columns(sqlite3* db, const std::string& name) {
  Sql info(db, name, "PRAGMA table_info(runs)");
  std::vector<std::string> out;
  while (info.step()) out.push_back(info.text(1));
  return out;
}

// A run as a database holds it: identity, state columns and every metric point.
struct RunCopy {
  std::string config_json, config_hash;
  int64_t seed = 0;
  std::vector<Value> state;                  // the shared state columns, in order
  std::vector<std::array<Value, 4>> points;  // key, step, value, wall_s
};

std::string joined(const std::vector<std::string>& names, const std::string& suffix) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n + suffix;
  return out;
}

// Every run of `db`, or only the run `only_hash` when it is not "".
std::vector<RunCopy> read_runs(sqlite3* db, const std::string& name,
                               const std::vector<std::string>& columns,
                               const std::string& only_hash) {
  std::vector<RunCopy> out;
  exec(db, name, "BEGIN");  // one snapshot: the run rows and their metrics agree
  try {
    Sql runs(db, name,
             fmt::format("SELECT run_id, config_json, config_hash, seed, {} FROM runs "
                         "WHERE ?1 = '' OR config_hash = ?1",
                         joined(columns, "")));
    runs.bind(1, only_hash);
    Sql metrics(db, name,
                "SELECT key, step, value, wall_s FROM metrics WHERE run_id = ? ORDER BY key, step");
    while (runs.step()) {
      RunCopy run;
      run.config_json = runs.text(1);
      run.config_hash = runs.text(2);
      run.seed = runs.integer(3);
      for (size_t i = 0; i < columns.size(); ++i)
        run.state.emplace_back(sqlite3_column_value(*runs, int(4 + i)));
      metrics.reset();
      metrics.bind(1, runs.integer(0));
      while (metrics.step())
        run.points.push_back(
            {Value(sqlite3_column_value(*metrics, 0)), Value(sqlite3_column_value(*metrics, 1)),
             Value(sqlite3_column_value(*metrics, 2)), Value(sqlite3_column_value(*metrics, 3))});
      out.push_back(std::move(run));
    }
    exec(db, name, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return out;
}

enum class Outcome { copied, unchanged, final };

// Writes `run` into `db` (one transaction): its state columns and exactly its metrics, unless
// `db` holds it finished or already exactly so. A run `db` does not know is added.
Outcome write_run(sqlite3* db, const std::string& name, const std::vector<std::string>& columns,
                  const RunCopy& run) {
  exec(db, name, "BEGIN IMMEDIATE");
  try {
    int64_t run_id = 0;
    {
      Sql find(db, name,
               fmt::format("SELECT run_id, status, (SELECT COUNT(*) FROM metrics m WHERE "
                           "m.run_id = r.run_id), {} FROM runs r WHERE config_hash = ?",
                           joined(columns, "")));
      find.bind(1, run.config_hash);
      if (find.step()) {
        run_id = find.integer(0);
        bool same = find.integer(2) == int64_t(run.points.size());
        for (size_t i = 0; same && i < columns.size(); ++i)
          same = Value(sqlite3_column_value(*find, int(3 + i))) == run.state[i];
        const Outcome left = find.text(1) == "finished" ? Outcome::final
                             : same                     ? Outcome::unchanged
                                                        : Outcome::copied;
        if (left != Outcome::copied) {
          find.reset();
          exec(db, name, "ROLLBACK");
          return left;
        }
      } else {
        Sql add(db, name, "INSERT INTO runs (config_json, config_hash, seed) VALUES (?, ?, ?)");
        add.bind(1, run.config_json).bind(2, run.config_hash).bind(3, run.seed).run();
        run_id = sqlite3_last_insert_rowid(db);
      }
    }
    Sql update(db, name,
               fmt::format("UPDATE runs SET {} WHERE run_id = ?", joined(columns, " = ?")));
    for (size_t i = 0; i < columns.size(); ++i) update.bind(int(i + 1), run.state[i].v);
    update.bind(int(columns.size() + 1), run_id).run();
    Sql clear(db, name, "DELETE FROM metrics WHERE run_id = ?");
    clear.bind(1, run_id).run();
    Sql insert(db, name,
               "INSERT INTO metrics (run_id, key, step, value, wall_s) VALUES (?, ?, ?, ?, ?)");
    for (const auto& p : run.points) {
      insert.reset();
      insert.bind(1, run_id).bind(2, p[0].v).bind(3, p[1].v).bind(4, p[2].v).bind(5, p[3].v);
      insert.run();
    }
    exec(db, name, "COMMIT");
    return Outcome::copied;
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

// The state columns both databases have (a per-run file made by another mixlab version may
// lack a column the main database has, or have one more).
std::vector<std::string> shared_state_columns(sqlite3* a, const std::string& a_name, sqlite3* b,
                                              const std::string& b_name) {
  const auto in_b = run_columns(b, b_name);
  std::vector<std::string> out;
  for (const auto& c : run_columns(a, a_name)) {
    if (std::find(std::begin(kIdentityColumns), std::end(kIdentityColumns), c) !=
        std::end(kIdentityColumns))
      continue;
    if (std::find(in_b.begin(), in_b.end(), c) != in_b.end()) out.push_back(c);
  }
  return out;
}

// Copies every run of `from` into `to`, counting what happened in `report`.
void copy_runs(sqlite3* from, const std::string& from_name, sqlite3* to, const std::string& to_name,
               CollectReport& report, const std::string& only_hash = "") {
  const auto columns = shared_state_columns(from, from_name, to, to_name);
  const size_t status = std::find(columns.begin(), columns.end(), "status") - columns.begin();
  auto status_of = [&](const RunCopy& run) -> std::string {
    if (status >= columns.size()) return "";
    const unsigned char* text = sqlite3_value_text(run.state[status].v);
    return text ? reinterpret_cast<const char*>(text) : "";
  };
  for (const RunCopy& run : read_runs(from, from_name, columns, only_hash)) {
    // A run its task has not started yet holds nothing the target could lack.
    if (status_of(run) == "pending") {
      ++report.unchanged;
      continue;
    }
    switch (write_run(to, to_name, columns, run)) {
      case Outcome::copied:
        ++report.copied;
        report.finished += status_of(run) == "finished";
        break;
      case Outcome::unchanged:
        ++report.unchanged;
        break;
      case Outcome::final:
        ++report.final;
        break;
    }
  }
}

std::string meta_value(sqlite3* db, const std::string& name, const std::string& key) {
  Sql has(db, name, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  if (!has.step()) return "";
  Sql get(db, name, "SELECT value FROM meta WHERE key = ?");
  get.bind(1, key);
  return get.step() ? get.text(0) : "";
}

std::vector<fs::path> per_run_files(const std::string& main_db) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(per_run_folder(main_db), ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().extension() == ".db") out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

fs::path real_folder(const std::string& main_db) {
  std::error_code ec;
  fs::path real = fs::weakly_canonical(fs::absolute(main_db), ec);
  return (ec ? fs::absolute(main_db) : real).parent_path();
}

}  // namespace

std::string per_run_folder(const std::string& main_db) {
  return (real_folder(main_db) / (fs::path(main_db).stem().string() + ".runs")).string();
}

std::string per_run_file(const std::string& main_db, const std::string& config_hash) {
  return (fs::path(per_run_folder(main_db)) / (config_hash + ".db")).string();
}

std::string checkpoint_folder(const std::string& main_db) {
  return (real_folder(main_db) / "checkpoints").string();
}

std::string make_per_run_file(Store& main, const std::string& sweep_name,
                              const std::string& config_hash) {
  const std::string path = per_run_file(main.path(), config_hash);
  if (fs::exists(path)) return path;
  auto sweep = main.find_sweep(sweep_name);
  if (!sweep) throw StoreError(fmt::format("{}: no sweep {}", main.path(), sweep_name));
  std::optional<RunRow> run;
  for (auto& r : main.sweep_runs(sweep_name))
    if (r.config_hash == config_hash) run = r;
  if (!run)
    throw StoreError(
        fmt::format("{}: sweep {} has no run {}", main.path(), sweep_name, config_hash));
  std::error_code ec;
  fs::create_directories(per_run_folder(main.path()), ec);
  if (ec)
    throw StoreError(fmt::format("{}: cannot create the folder {}: {}", main.path(),
                                 per_run_folder(main.path()), ec.message()));
  // Made under a temporary name and renamed: a collect never sees a half-made file.
  const std::string temporary = path + ".tmp";
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(temporary + suffix, ec);
  {
    Store shard(temporary, OpenMode::create);
    sqlite3* db = shard.handle();
    exec(db, temporary, "BEGIN IMMEDIATE");
    // The main database's id and run_id: the task's checkpoints are the main database's.
    const std::string id = meta_value(main.handle(), main.path(), "database_id");
    if (!id.empty()) {
      Sql set(db, temporary, "UPDATE meta SET value = ? WHERE key = 'database_id'");
      set.bind(1, id).run();
    }
    Sql add(db, temporary,
            "INSERT INTO runs (run_id, config_json, config_hash, seed) VALUES (?, ?, ?, ?)");
    add.bind(1, run->run_id).bind(2, run->config_json).bind(3, config_hash).bind(4, run->seed);
    add.run();
    exec(db, temporary, "COMMIT");
  }
  {
    Store shard(temporary, OpenMode::existing);
    shard.register_sweep(
        sweep->name, sweep->spec_json, sweep->spec_hash,
        {PlannedRun{run->name, run->variant, run->config_json, config_hash, run->seed}});
    CollectReport ignored;
    copy_runs(main.handle(), main.path(), shard.handle(), temporary, ignored, config_hash);
  }
  fs::rename(temporary, path);
  return path;
}

CollectReport collect_runs(sqlite3* target, const std::string& target_name,
                           const std::string& main_db) {
  CollectReport report;
  for (const fs::path& file : per_run_files(main_db)) {
    sqlite3* db = nullptr;
    try {
      if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
        throw StoreError(errmsg(db, file.string()));
      sqlite3_busy_timeout(db, 10000);
      copy_runs(db, file.string(), target, target_name, report);
    } catch (const StoreError& e) {
      report.unreadable.push_back(e.what());
    }
    sqlite3_close(db);
  }
  return report;
}

std::unique_ptr<Store> open_for_reading(const std::string& path) {
  auto file = std::make_unique<Store>(path, OpenMode::read_only);
  if (per_run_files(path).empty()) return file;
  // A copy in memory takes the per-run files; the database itself is never written.
  auto merged = std::make_unique<Store>(":memory:", OpenMode::create);
  sqlite3_backup* backup = sqlite3_backup_init(merged->handle(), "main", file->handle(), "main");
  const int rc = backup ? sqlite3_backup_step(backup, -1) : SQLITE_ERROR;
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE)
    throw StoreError(fmt::format("{}: cannot copy the database into memory: {}", path,
                                 sqlite3_errmsg(merged->handle())));
  collect_runs(merged->handle(), path, path);
  exec(merged->handle(), path, "PRAGMA query_only = ON");
  return merged;
}

}  // namespace mixlab
