#include "analysis/export.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace mixlab {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("export: ") + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// A column as CSV text: integers as integers, reals with round-trip precision, NULL empty.
std::string column_text(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_NULL:
      return "";
    case SQLITE_INTEGER:
      return std::to_string(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
      return fmt::format("{:.17g}", sqlite3_column_double(stmt, i));
    default:
      return csv_field(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)));
  }
}

int64_t write_query(sqlite3* db, const char* sql, const std::vector<std::string>& sweeps,
                    std::ofstream& out) {
  Statement stmt(db, sql);
  const int columns = sqlite3_column_count(stmt.get());
  int64_t rows = 0;
  for (const auto& sweep : sweeps) {
    sqlite3_reset(stmt.get());
    sqlite3_bind_text(stmt.get(), 1, sweep.c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      for (int i = 0; i < columns; ++i) out << (i ? "," : "") << column_text(stmt.get(), i);
      out << "\n";
      ++rows;
    }
    if (rc != SQLITE_DONE) throw std::runtime_error(std::string("export: ") + sqlite3_errmsg(db));
  }
  return rows;
}

void write_header(sqlite3* db, const char* sql, std::ofstream& out) {
  Statement stmt(db, sql);
  for (int i = 0; i < sqlite3_column_count(stmt.get()); ++i)
    out << (i ? "," : "") << csv_field(sqlite3_column_name(stmt.get(), i));
  out << "\n";
}

constexpr const char* kRunsSql = R"(
  SELECT s.name AS sweep, sr.variant, sr.name, sr.position, r.run_id, r.seed, r.status,
         r.attempt, r.config_hash, r.config_json, r.params_total, r.params_active,
         r.flops_per_token, r.train_tokens, r.passes, r.last_step, r.host, r.device,
         r.git_commit, r.torch_version, r.data_fingerprint, r.data_location, r.threads, r.blas,
         r.started_at, r.ended_at, r.error
  FROM sweep_runs sr JOIN sweeps s USING (sweep_id) JOIN runs r USING (run_id)
  WHERE s.name = ?1 ORDER BY sr.position)";

constexpr const char* kMetricsSql = R"(
  SELECT s.name AS sweep, sr.variant, r.seed, m.run_id, m.key, m.step, m.value, m.wall_s
  FROM metrics m JOIN runs r USING (run_id) JOIN sweep_runs sr USING (run_id)
  JOIN sweeps s USING (sweep_id)
  WHERE s.name = ?1 ORDER BY sr.position, m.key, m.step)";

}  // namespace

ExportCounts export_csv(Store& store, const std::vector<std::string>& sweeps,
                        const std::string& dir) {
  std::filesystem::create_directories(dir);
  ExportCounts counts;
  const auto runs_path = std::filesystem::path(dir) / "runs.csv";
  const auto metrics_path = std::filesystem::path(dir) / "metrics.csv";
  std::ofstream runs(runs_path), metrics(metrics_path);
  if (!runs || !metrics) throw std::runtime_error(fmt::format("export: cannot write into {}", dir));
  write_header(store.handle(), kRunsSql, runs);
  counts.runs = write_query(store.handle(), kRunsSql, sweeps, runs);
  write_header(store.handle(), kMetricsSql, metrics);
  counts.metrics = write_query(store.handle(), kMetricsSql, sweeps, metrics);
  runs.close();
  metrics.close();
  if (!runs || !metrics)
    throw std::runtime_error(fmt::format("export: writing into {} failed", dir));
  return counts;
}

}  // namespace mixlab
