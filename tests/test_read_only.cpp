// Read commands never write (report, status, plot, export on the real binary): a SQLite file that
// is not mixlab's is refused and left byte for byte; a database on a read-only file system is
// reported; an empty one says it has no sweeps; a missing one is not created; an older schema is
// read without being upgraded (the next `sweep run` upgrades it); an output path that cannot be
// written is bad input naming its option.
#include <doctest/doctest.h>
#include <sys/mount.h>

#include "sweep_fixture.h"

using namespace mixlab;
using namespace mixlab::testing::sweep_fixture;

namespace {

std::vector<std::string> files_in(const std::filesystem::path& folder) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder))
    out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The four read commands on `db`, output files under `out`.
std::vector<std::string> read_commands(const std::string& db, const std::string& out) {
  return {kSweep + " report --db " + db, kSweep + " status --db " + db,
          kSweep + " plot robust --metric eval/loss --out " + out + "/p.png --db " + db,
          kSweep + " export --csv " + out + "/csv --db " + db};
}

std::string sqlite_value(const std::string& db, const std::string& sql) {
  auto r = run_command("sqlite3 " + db + " \"" + sql + "\"");
  REQUIRE(r.status == 0);
  return r.output.substr(0, r.output.find('\n'));
}

}  // namespace

TEST_CASE("read commands on a SQLite file that is not mixlab's: exit 2, the file unchanged") {
  testing::TempDir dir;
  const std::string db = dir / "other.db";
  REQUIRE(run_command("sqlite3 " + db +
                      " 'CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT); "
                      "INSERT INTO notes (text) VALUES (\"keep me\")'")
              .status == 0);
  const std::string before = file_bytes(db);
  const auto listing = files_in(dir.path());
  for (const auto& command : read_commands(db, dir / "out")) {
    auto r = run_command(command);
    INFO(command);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(contains(r.output, "error: " + db + ": the file is not a mixlab database"));
    CHECK(file_bytes(db) == before);
    CHECK(files_in(dir.path()) == listing);  // no -wal, no -shm, no output folder
  }
  CHECK(sqlite_value(db, "PRAGMA user_version") == "0");
  CHECK(sqlite_value(db, "PRAGMA journal_mode") == "delete");
  // A write command refuses it as well, and makes nothing of it.
  auto run = run_command(kSweep + " run nothing.json --db " + db);
  CHECK(file_bytes(db) == before);
}

TEST_CASE("a mixlab database is read without a write: byte for byte, and on a read-only mount") {
  Fixture f;
  REQUIRE(f.run("--set train.steps=4").status == 0);
  REQUIRE(!std::filesystem::exists(f.db + "-wal"));
  const std::string before = file_bytes(f.db);
  for (const auto& command : read_commands(f.db, f.dir / "out")) {
    auto r = run_command(command);
    INFO(command);
    INFO(r.output);
    // plot may lack gnuplot (exit 1, the data written); the others succeed.
    CHECK((r.status == 0 || (r.status == 1 && contains(r.output, "gnuplot"))));
    CHECK(file_bytes(f.db) == before);
  }
  CHECK(contains(testing::read_text(f.dir / "out/csv/runs.csv"), "dense seed=0"));

  // Read-only for everyone, root included: a read-only mount (root can write through chmod).
  testing::TempDir mount_point;
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=4m") != 0) {
    MESSAGE("skipped the read-only mount: mounting is not permitted here");
    return;
  }
  const std::string ro_db = mount_point / "r.db";
  std::filesystem::copy_file(f.db, ro_db);
  const bool remounted =
      ::mount("tmpfs", mount_point.path().c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=4m") == 0;
  if (remounted) {
    auto report = run_command(kSweep + " report --db " + ro_db);
    INFO(report.output);
    CHECK(report.status == 0);
    CHECK(contains(report.output, "dense"));
    auto status = run_command(kSweep + " status --db " + ro_db);
    CHECK(status.status == 0);
    CHECK(contains(status.output, "robust: 2 runs, 2 finished"));
    auto exported = run_command(kSweep + " export --csv " + (f.dir / "ro_csv") + " --db " + ro_db);
    CHECK(exported.status == 0);
    CHECK(file_bytes(ro_db) == before);
  } else {
    MESSAGE("skipped the read-only mount: remounting read-only is not permitted here");
  }
  ::umount2(mount_point.path().c_str(), MNT_DETACH);
}

TEST_CASE("an empty database says it has no sweeps, a missing one is an error, not created") {
  testing::TempDir dir;
  const std::string empty = dir / "empty.db";
  testing::write_text(empty, "");
  for (const std::string command : {"report", "status"}) {
    auto r = run_command(kSweep + " " + command + " --db " + empty);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output == empty + ": the database holds no sweeps\n");
  }
  auto exported = run_command(kSweep + " export --csv " + (dir / "csv") + " --db " + empty);
  CHECK(exported.status == 0);
  CHECK(contains(exported.output, "holds no sweeps"));
  CHECK(!std::filesystem::exists(dir / "csv"));
  auto plot = run_command(kSweep + " plot --metric eval/loss --db " + empty);
  CHECK(plot.status == 2);
  CHECK(contains(plot.output, "the database holds no sweeps"));
  CHECK(std::filesystem::file_size(empty) == 0);
  CHECK(files_in(dir.path()) == std::vector<std::string>{empty});

  // A database with the schema and no sweep reads the same.
  const std::string schema_only = dir / "schema.db";
  { Store store(schema_only); }
  auto r = run_command(kSweep + " report --db " + schema_only);
  CHECK(r.status == 0);
  CHECK(r.output == schema_only + ": the database holds no sweeps\n");

  const std::string missing = dir / "none/missing.db";
  for (const auto& command : read_commands(missing, dir / "out")) {
    auto m = run_command(command);
    INFO(command);
    INFO(m.output);
    CHECK(m.status == 2);
    CHECK(count_lines(m.output) == 1);
    CHECK(contains(m.output, "error: " + missing + ": no such database"));
  }
  CHECK(!std::filesystem::exists(dir / "none"));
  CHECK(!std::filesystem::exists(dir / "out"));
}

TEST_CASE("a version-1 database: read commands leave it as it is, sweep run upgrades it") {
  Fixture f;
  REQUIRE(f.run("--set train.steps=4").status == 0);
  // Made into what version 1 wrote: no meta table, none of the columns added since.
  REQUIRE(run_command("sqlite3 " + f.db +
                      " 'DROP TABLE meta; ALTER TABLE runs DROP COLUMN data_fingerprint; "
                      "ALTER TABLE runs DROP COLUMN data_location; ALTER TABLE runs DROP COLUMN "
                      "threads; ALTER TABLE runs DROP COLUMN blas; PRAGMA user_version = 1'")
              .status == 0);
  REQUIRE(!std::filesystem::exists(f.db + "-wal"));
  const std::string v1 = file_bytes(f.db);
  auto report = run_command(kSweep + " report --db " + f.db);
  INFO(report.output);
  CHECK(report.status == 0);
  CHECK(contains(report.output, "dense"));
  auto exported = run_command(kSweep + " export --csv " + (f.dir / "csv") + " --db " + f.db);
  CHECK(exported.status == 0);
  CHECK(file_bytes(f.db) == v1);
  CHECK(sqlite_value(f.db, "PRAGMA user_version") == "1");

  auto rerun = f.run("--set train.steps=4");
  INFO(rerun.output);
  REQUIRE(rerun.status == 0);
  CHECK(contains(rerun.output, "2 already finished"));
  CHECK(sqlite_value(f.db, "PRAGMA user_version") == "2");
  CHECK(sqlite_value(f.db,
                     "SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name IN "
                     "('data_fingerprint', 'data_location', 'threads', 'blas')") == "4");
  CHECK(sqlite_value(f.db, "SELECT length(value) FROM meta WHERE key = 'database_id'") == "16");
}

TEST_CASE("an output path that cannot be written is bad input: exit 2 naming the option") {
  Fixture f;
  REQUIRE(f.run("--set train.steps=4").status == 0);
  auto plot =
      run_command(kSweep + " plot robust --metric eval/loss --out /proc/nope/p.png --db " + f.db);
  INFO(plot.output);
  CHECK(plot.status == 2);
  CHECK(count_lines(plot.output) == 1);
  CHECK(contains(plot.output, "error: --out = "));
  CHECK(contains(plot.output, "/proc/nope/p.png"));
  auto plot_proc =
      run_command(kSweep + " plot robust --metric eval/loss --out /proc/p.png --db " + f.db);
  INFO(plot_proc.output);
  CHECK(plot_proc.status == 2);
  CHECK(contains(plot_proc.output, "error: --out = "));
  for (const std::string dir : {"/proc/nope", "/proc/self/csv"}) {
    auto exported = run_command(kSweep + " export --csv " + dir + " --db " + f.db);
    INFO(exported.output);
    CHECK(exported.status == 2);
    CHECK(count_lines(exported.output) == 1);
    CHECK(contains(exported.output, "error: --csv = "));
    CHECK(contains(exported.output, dir));
  }
}
