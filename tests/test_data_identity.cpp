// A run's data and numerics, on the real binary: the corpus fingerprint and location, the thread
// count and BLAS recorded with every run; a finished or interrupted run whose corpus changed is
// refused (exit 2, nothing written) unless --retrain-changed-data trains it again from step 0;
// MIXLAB_DATA_DIR pointing at other files counts as a change, at a copy of the same files not.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;

namespace {

const std::string kSweep = MIXLAB_SWEEP_BIN;
namespace fs = std::filesystem;

// One dense run of 8 steps: logged every 2, checkpointed every 4.
std::string one_run_spec(const std::string& data) {
  return R"({
    "name": "data_identity",
    "base": {
      "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16},
      "ffn": {"type": "dense", "d_ff": 32},
      "data": )" +
         data + R"(,
      "train": {"steps": 8, "batch_size": 8, "log_every": 2, "checkpoint_every": 4},
      "eval": {"every": 4, "batches": 2}
    }
  })";
}

std::string text_corpus_spec(const std::string& corpus) {
  return one_run_spec(R"({"corpus": "text", "path": ")" + corpus + R"("})");
}

// The first column of the first row of `sql` as text ("" for NULL); any SQLite error fails.
std::string query(const std::string& db, const std::string& sql) {
  sqlite3* handle = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  const int prepared = sqlite3_prepare_v2(handle, sql.c_str(), -1, &stmt, nullptr);
  INFO(sql << ": " << sqlite3_errmsg(handle));
  REQUIRE(prepared == SQLITE_OK);
  const int stepped = sqlite3_step(stmt);
  REQUIRE((stepped == SQLITE_ROW || stepped == SQLITE_DONE));
  std::string out;
  if (stepped == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL)
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  return out;
}

std::string final_train_loss(const std::string& db) {
  return query(db,
               "SELECT printf('%.17g', value) FROM metrics WHERE key = 'train/loss' "
               "ORDER BY step DESC LIMIT 1");
}

struct Fixture : testing::SpecFixture {
  Fixture() : SpecFixture("spec.json", text_corpus_spec) {}
  testing::CommandResult run(const std::string& args = "", const std::string& env = "",
                             const std::string& database = "", int threads = 1) const {
    return run_command((env.empty() ? "" : "env " + env + " ") + kSweep + " run " + spec +
                       " --db " + (database.empty() ? db : database) + " --threads " +
                       std::to_string(threads) + " " + args);
  }
  void change_corpus() const {
    std::ofstream(corpus + "/b.txt", std::ios::app) << "0123456789 digits only 0123456789\n";
  }
};

}  // namespace

TEST_CASE("a run records its corpus fingerprint and location, its threads and BLAS") {
  Fixture f;
  auto r = f.run();
  INFO(r.output);
  REQUIRE(r.status == 0);
  const std::string fingerprint = query(f.db, "SELECT data_fingerprint FROM runs");
  CHECK(fingerprint.size() > 16);
  CHECK(fingerprint.find("(2 files: ") != std::string::npos);
  CHECK(query(f.db, "SELECT data_location FROM runs") == fs::canonical(f.corpus).string());
  CHECK(query(f.db, "SELECT threads FROM runs") == "1");
  CHECK_FALSE(query(f.db, "SELECT blas FROM runs").empty());

  // Exported with the run.
  auto exported =
      run_command(kSweep + " export data_identity --csv " + (f.dir / "csv") + " --db " + f.db);
  INFO(exported.output);
  REQUIRE(exported.status == 0);
  const std::string csv = testing::read_text(f.dir / "csv/runs.csv");
  CHECK(csv.find(",torch_version,data_fingerprint,data_location,threads,blas,") !=
        std::string::npos);
  CHECK(csv.find("," + fingerprint + "," + fs::canonical(f.corpus).string() + ",1,") !=
        std::string::npos);

  // The fingerprint is the content's: the same files elsewhere give the same one, other bytes
  // another.
  testing::TempDir other;
  fs::copy(f.corpus, other / "copy");
  const std::string copy_spec = other / "spec.json";
  testing::write_text(copy_spec, text_corpus_spec(other / "copy"));
  auto copy =
      run_command(kSweep + " run " + copy_spec + " --db " + (other / "r.db") + " --threads 1");
  REQUIRE(copy.status == 0);
  CHECK(query(other / "r.db", "SELECT data_fingerprint FROM runs") == fingerprint);
  CHECK(query(other / "r.db", "SELECT data_location FROM runs") ==
        fs::canonical(other / "copy").string());
}

TEST_CASE("a finished run whose corpus changed is refused, or trained again when asked") {
  Fixture f;
  REQUIRE(f.run().status == 0);
  const std::string fingerprint = query(f.db, "SELECT data_fingerprint FROM runs");
  const std::string loss = final_train_loss(f.db);
  const std::string metrics = query(f.db, "SELECT COUNT(*) FROM metrics");
  f.change_corpus();

  auto refused = f.run();
  INFO(refused.output);
  CHECK(refused.status == 2);
  CHECK(refused.output.find("run \"base seed=0\" (finished, step 8) trained on " +
                            fs::canonical(f.corpus).string()) != std::string::npos);
  CHECK(refused.output.find("--retrain-changed-data") != std::string::npos);
  CHECK(query(f.db, "SELECT data_fingerprint FROM runs") == fingerprint);
  CHECK(final_train_loss(f.db) == loss);
  CHECK(query(f.db, "SELECT COUNT(*) FROM metrics") == metrics);

  auto retrained = f.run("--retrain-changed-data");
  INFO(retrained.output);
  REQUIRE(retrained.status == 0);
  CHECK(query(f.db, "SELECT status || ' ' || attempt FROM runs") == "finished 1");
  const std::string new_fingerprint = query(f.db, "SELECT data_fingerprint FROM runs");
  CHECK(new_fingerprint != fingerprint);
  CHECK(query(f.db, "SELECT COUNT(*) FROM metrics") == metrics);  // every step once
  CHECK(final_train_loss(f.db) != loss);

  // What it recorded is what a fresh database trains on the new corpus, bit for bit.
  const std::string fresh = f.dir / "fresh/r.db";
  REQUIRE(f.run("", "", fresh).status == 0);
  CHECK(final_train_loss(fresh) == final_train_loss(f.db));
  CHECK(query(fresh, "SELECT data_fingerprint FROM runs") == new_fingerprint);
}

TEST_CASE("an interrupted run whose corpus changed is not resumed on the new data") {
  Fixture f;
  auto killed = f.run("", "MIXLAB_TEST_KILL_AT=step:7");  // checkpoint at step 4
  REQUIRE(killed.status != 0);
  REQUIRE(query(f.db, "SELECT checkpoint_step FROM runs") == "4");
  f.change_corpus();

  auto refused = f.run();
  INFO(refused.output);
  CHECK(refused.status == 2);
  CHECK(refused.output.find("run \"base seed=0\"") != std::string::npos);
  CHECK(query(f.db, "SELECT checkpoint_step FROM runs") == "4");
  CHECK(query(f.db, "SELECT status FROM runs") != "finished");

  auto retrained = f.run("--retrain-changed-data");
  INFO(retrained.output);
  REQUIRE(retrained.status == 0);
  CHECK(query(f.db, "SELECT status FROM runs") == "finished");
  // From step 0 on the new corpus, not from the old checkpoint: equal to a fresh run.
  const std::string fresh = f.dir / "fresh/r.db";
  REQUIRE(f.run("", "", fresh).status == 0);
  CHECK(final_train_loss(fresh) == final_train_loss(f.db));
  CHECK(query(f.db, "SELECT COUNT(*) FROM metrics") ==
        query(fresh, "SELECT COUNT(*) FROM metrics"));
}

TEST_CASE("MIXLAB_DATA_DIR at other files is a changed corpus, at a copy of the same, not") {
  testing::TempDir dir;
  // A Brown-like corpus: files named like Brown's, "word/TAG" tokens.
  auto write_brown = [&](const std::string& root, int files) {
    fs::create_directories(root + "/brown");
    for (int i = 1; i <= files; ++i) {
      std::string text;
      for (int line = 0; line < 150; ++line)
        text += "The/at fox/nn " + std::to_string((line * i) % 17) + "/cd jumps/vbz ./.\n";
      testing::write_text(root + "/brown/ca0" + std::to_string(i), text);
    }
  };
  write_brown(dir / "full", 3);
  write_brown(dir / "copy", 3);
  write_brown(dir / "subset", 2);
  const std::string spec = dir / "spec.json", db = dir / "r.db";
  testing::write_text(spec, one_run_spec(R"({"corpus": "brown"})"));
  auto run = [&](const std::string& data_dir) {
    return run_command("env MIXLAB_DATA_DIR=" + data_dir + " " + kSweep + " run " + spec +
                       " --db " + db + " --threads 1");
  };
  REQUIRE(run(dir / "full").status == 0);
  CHECK(query(db, "SELECT data_location FROM runs") == fs::canonical(dir / "full/brown").string());

  auto same = run(dir / "copy");
  INFO(same.output);
  CHECK(same.status == 0);
  CHECK(same.output.find("1 already finished") != std::string::npos);

  auto subset = run(dir / "subset");
  INFO(subset.output);
  CHECK(subset.status == 2);
  CHECK(subset.output.find("trained on " + fs::canonical(dir / "full/brown").string()) !=
        std::string::npos);
  CHECK(subset.output.find("which now holds " + fs::canonical(dir / "subset/brown").string()) !=
        std::string::npos);
}

TEST_CASE("a relative data.path is found from the spec's folder, wherever sweep runs") {
  Fixture f;
  fs::create_directories(f.dir / "specs");
  const std::string spec = f.dir / "specs/relative.json";
  testing::write_text(spec, text_corpus_spec("../text"));
  auto r = run_command("cd / && " + kSweep + " run " + spec + " --db " + f.db + " --threads 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(query(f.db, "SELECT data_location FROM runs") == fs::canonical(f.corpus).string());
}

TEST_CASE("a run resumed with other thread settings says so and records it") {
  Fixture f;
  REQUIRE(f.run("", "MIXLAB_TEST_KILL_AT=step:7").status != 0);
  REQUIRE(query(f.db, "SELECT threads FROM runs") == "1");
  auto resumed = f.run("", "", "", 2);
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK(resumed.output.find("resuming with 2 threads") != std::string::npos);
  CHECK(query(f.db, "SELECT threads FROM runs") == "2");
  CHECK(query(f.db, "SELECT blas FROM runs").find("; steps before 4 ran with 1 threads") !=
        std::string::npos);

  // Resumed with the same settings: nothing to say.
  Fixture g;
  REQUIRE(g.run("", "MIXLAB_TEST_KILL_AT=step:7").status != 0);
  auto same = g.run();
  REQUIRE(same.status == 0);
  CHECK(same.output.find("resuming with") == std::string::npos);
  CHECK(query(g.db, "SELECT blas FROM runs").find("steps before") == std::string::npos);
}
