// Small helpers shared by the tests: temporary folders, running the real binary.
#pragma once

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/config_reader.h"

namespace mixlab::testing {

// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "mixlab-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A small text corpus under DIR/text: two files, so the split by file has a validation file.
// Returns the folder, for a spec's data.corpus.
inline std::string write_text_corpus(const TempDir& dir) {
  std::filesystem::create_directories(dir / "text");
  std::string a, b;
  for (int i = 0; i < 400; ++i) {
    a += "the quick brown fox " + std::to_string(i * 7 % 13) + " jumps over the lazy dog.\n";
    b += "a stitch in time saves " + std::to_string(i % 9) + " and more.\n";
  }
  write_text(dir / "text/a.txt", a);
  write_text(dir / "text/b.txt", b + a);
  return dir / "text";
}

// A temp folder holding a text corpus, a spec FILE_NAME written by spec_text(corpus), and the
// path of a database not yet made: the start of every test that runs the real binary.
struct SpecFixture {
  TempDir dir;
  std::string corpus, spec, db;
  SpecFixture(const std::string& file_name,
              const std::function<std::string(const std::string&)>& spec_text) {
    corpus = write_text_corpus(dir);
    spec = dir / file_name;
    db = dir / "results/r.db";
    write_text(spec, spec_text(corpus));
  }
};

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// A query a test asks of a database file (opened read-only). Every SQLite error (no such
// table or column, a file that is not a database) throws SqlError, and so do the helpers
// below on no row, a NULL or a value of another type: a check built on them fails when the
// schema changes under it instead of reading 0.
struct SqlError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class SqlQuery {
 public:
  SqlQuery(const std::string& path, const std::string& sql) : where_(path + ": " + sql + ": ") {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    db_.reset(db);
    if (rc != SQLITE_OK) throw error(db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, &tail) != SQLITE_OK)
      throw error(sqlite3_errmsg(db));
    stmt_.reset(stmt);
    if (!stmt) throw error("no statement");
    if (std::string(tail).find_first_not_of(" \t\n;") != std::string::npos)
      throw error("more than one statement");
  }
  // Steps to the next row: false after the last one; throws on an error.
  bool next() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw error(sqlite3_errmsg(db_.get()));
  }
  int columns() const { return sqlite3_column_count(stmt_.get()); }
  int type(int i) const { return sqlite3_column_type(stmt_.get(), i); }
  std::string text(int i) const {
    if (type(i) == SQLITE_NULL)
      throw error(std::string("NULL in column ") + sqlite3_column_name(stmt_.get(), i));
    return reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), i));
  }
  int64_t integer(int i) const {
    if (type(i) != SQLITE_INTEGER) throw error("not an integer: " + text(i));
    return sqlite3_column_int64(stmt_.get(), i);
  }
  SqlError error(const std::string& why) const { return SqlError(where_ + why); }

 private:
  struct CloseDb {
    void operator()(sqlite3* db) const { sqlite3_close(db); }
  };
  struct Finalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };
  std::string where_;
  std::unique_ptr<sqlite3, CloseDb> db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
};

// Every row of `sql`, each value as SQLite's text of it; a NULL throws.
inline std::vector<std::vector<std::string>> sql_rows(const std::string& path,
                                                      const std::string& sql) {
  SqlQuery q(path, sql);
  std::vector<std::vector<std::string>> rows;
  while (q.next()) {
    rows.emplace_back();
    for (int i = 0; i < q.columns(); ++i) rows.back().push_back(q.text(i));
  }
  return rows;
}

// The one integer `sql` answers: one row of one INTEGER column, else SqlError.
inline int64_t sql_int(const std::string& path, const std::string& sql) {
  SqlQuery q(path, sql);
  if (!q.next()) throw q.error("no row");
  if (q.columns() != 1) throw q.error("not one column");
  const int64_t value = q.integer(0);
  if (q.next()) throw q.error("more than one row");
  return value;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Central differences (h = 1e-6, float64) of `objective` against autograd for up to 8 entries
// of each tensor, spread by a stride; zeroes the tensors' gradients first.
inline void check_gradients(const std::function<torch::Tensor()>& objective,
                            const std::vector<torch::Tensor>& tensors) {
  for (const auto& t : tensors)
    if (t.grad().defined()) t.grad().zero_();
  objective().backward();
  const double h = 1e-6;
  for (const auto& tensor : tensors) {
    REQUIRE(tensor.grad().defined());
    auto grad = tensor.grad().clone().view({-1});
    auto flat = tensor.detach().view({-1});
    for (int64_t i = 0; i < std::min<int64_t>(flat.numel(), 8); ++i) {
      const int64_t k = (i * 7919) % flat.numel();
      double original = flat[k].item<double>(), plus, minus;
      {
        torch::NoGradGuard no_grad;
        flat[k] = original + h;
        plus = objective().item<double>();
        flat[k] = original - h;
        minus = objective().item<double>();
        flat[k] = original;
      }
      CHECK(grad[k].item<double>() ==
            doctest::Approx((plus - minus) / (2 * h)).epsilon(1e-6).scale(1e-3));
    }
  }
}

}  // namespace mixlab::testing
