// Who owns a run, on the real `sweep` binary: checkpoints belong to the run of the database that
// wrote them; workers are told apart across PID namespaces and die with their parent; a worker
// that lost its run cannot write its checkpoint; a sweep waits for the runs it shares; a full
// disk releases the run; one database has one checkpoint folder; orphaned runs are listed.
#include <doctest/doctest.h>
#include <sys/mount.h>

#include <chrono>
#include <set>
#include <thread>

#include "experiments/checkpoint.h"
#include "sweep_fixture.h"

using namespace mixlab;
using namespace mixlab::testing::sweep_fixture;

namespace {

// Waits up to `seconds` for `needle` to appear in the file `path`.
bool wait_for_text(const std::string& path, const std::string& needle, double seconds = 60) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (contains(testing::read_text(path), needle)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// True when the process has exited (or is a zombie no one reaped).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  const std::string stat = testing::read_text("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

pid_t worker_pid(const std::string& worker) {
  const size_t first = worker.find(':');
  return std::atoi(worker.c_str() + first + 1);
}

std::vector<std::string> files_in(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec))
    out.push_back(entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string database_id(const std::string& db) {
  auto r = run_command("sqlite3 " + db + " \"SELECT value FROM meta WHERE key = 'database_id'\"");
  REQUIRE(r.status == 0);
  return r.output.substr(0, r.output.find('\n'));
}

// A tmpfs of `size` mounted on a fresh folder for the life of the object (root only).
struct TinyFileSystem {
  testing::TempDir dir;
  bool mounted = false;
  explicit TinyFileSystem(const std::string& size) {
    mounted = ::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
  }
  ~TinyFileSystem() {
    if (mounted) ::umount2(dir.path().c_str(), MNT_DETACH);
  }
  // Writes zeros into `name` until the file system is full.
  void fill(const std::string& name) const {
    run_command("dd if=/dev/zero of=" + (dir / name) + " bs=4k 2>/dev/null");
  }
};

}  // namespace

TEST_CASE("checkpoints belong to their database: a second database in the folder trains anew") {
  Fixture f;
  REQUIRE(f.run().status == 0);
  // A second database beside the first: nothing it finds may pass for its own progress.
  const std::string second = f.dir / "results/second.db";
  auto r = f.run_into(second);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(!contains(r.output, "resuming"));
  CHECK(contains(r.output, "[dense seed=0] starting"));
  CHECK(contains(r.output, "[mot seed=0] starting"));
  {
    Store store(second, false), first(f.db, false);
    check_complete_history(store, "robust");
    check_same_results(store, first, "robust");
    for (const auto& run : store.sweep_runs("robust")) CHECK(run.attempt == 1);
  }
  // The first database deleted and made again at the same path: a new database, trained anew.
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(f.db + suffix);
  auto again = f.run();
  INFO(again.output);
  REQUIRE(again.status == 0);
  CHECK(!contains(again.output, "resuming"));
  Store store(f.db, false), reference(second, false);
  check_complete_history(store, "robust");
  check_same_results(store, reference, "robust");
}

TEST_CASE(
    "a checkpoint of another database, or at a step its database does not record, is "
    "ignored: the run trains from step 0") {
  Fixture f;
  const std::string reference_db = f.dir / "reference/r.db";
  REQUIRE(f.run_into(reference_db).status == 0);
  // Database A: dense killed after step 6 (its checkpoint holds step 4); B is a copy of A (the
  // same database id, so the same checkpoint names) taken then.
  REQUIRE(f.run("", "MIXLAB_TEST_KILL_AT=step:7").status == 128 + SIGKILL);
  const std::string copy = f.dir / "results/copy.db";
  REQUIRE(run_command("sqlite3 " + f.db + " \".backup " + copy + "\"").status == 0);
  REQUIRE(f.run().status == 0);  // A finishes: dense's checkpoint now holds step 12
  auto stale = f.run_into(copy);
  INFO(stale.output);
  REQUIRE(stale.status == 0);
  CHECK(contains(stale.output, "it holds step 12 but the database records step 4"));
  CHECK(contains(stale.output, "[dense seed=0] starting again from step 0"));
  {
    Store store(copy, false), reference(reference_db, false);
    check_complete_history(store, "robust");
    check_same_results(store, reference, "robust");
  }

  // Database C in the same folder, killed before dense's first step; A's finished checkpoint of
  // dense is put under C's name for it.
  const std::string c_db = f.dir / "results/c.db";
  REQUIRE(f.run_into(c_db, "", "MIXLAB_TEST_KILL_AT=step:1").status == 128 + SIGKILL);
  std::string dense_hash;
  {
    Store store(c_db, false);
    dense_hash = store.sweep_runs("robust")[0].config_hash;
  }
  const std::string a_file = f.checkpoints() + "/" + dense_hash + "-" + database_id(f.db) + ".pt";
  const std::string c_file = f.checkpoints() + "/" + dense_hash + "-" + database_id(c_db) + ".pt";
  REQUIRE(std::filesystem::exists(a_file));
  REQUIRE(!std::filesystem::exists(c_file));
  std::filesystem::copy_file(a_file, c_file);
  auto foreign = f.run_into(c_db);
  INFO(foreign.output);
  REQUIRE(foreign.status == 0);
  CHECK(contains(foreign.output, "ignoring the checkpoint " + c_file +
                                     ": it was written for "
                                     "database " +
                                     database_id(f.db)));
  Store store(c_db, false), reference(reference_db, false);
  check_complete_history(store, "robust");
  check_same_results(store, reference, "robust");
}

TEST_CASE("--stale-after below 5 seconds is refused: exit 2 naming it, nothing written") {
  Fixture f;
  for (const std::string value : {"0", "4.9", "-1"}) {
    auto r = f.run("--stale-after " + value);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(contains(r.output, "error: --stale-after = " + value.substr(0, 1)));
    CHECK(contains(r.output, "must be at least 5 seconds"));
    CHECK(!std::filesystem::exists(f.db));
  }
}

TEST_CASE("killing the parent of --jobs 2 stops its workers, a rerun finishes the sweep") {
  Fixture f;
  const std::string out = f.dir / "out.txt";
  // Each worker pauses after its 3rd committed logging step, holding its run.
  pid_t parent = spawn_shell("env MIXLAB_TEST_PAUSE_AT=logged:3 " + kSweep + " run " + f.spec +
                             " --db " + f.db + " --threads 1 --jobs 2 > " + out + " 2>&1");
  REQUIRE(wait_for_text(out, "fault injection: paused at logged:3"));
  std::vector<pid_t> workers;
  {
    Store store(f.db, false);
    for (const auto& run : store.sweep_runs("robust"))
      if (run.status == "running") workers.push_back(worker_pid(run.worker));
  }
  REQUIRE(!workers.empty());
  REQUIRE(::kill(parent, SIGKILL) == 0);
  CHECK(wait_status(parent) == 128 + SIGKILL);
  bool all_gone = false;
  for (int i = 0; i < 600 && !all_gone; ++i) {
    all_gone = std::all_of(workers.begin(), workers.end(), process_gone);
    if (!all_gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(testing::read_text(out));
  CHECK_MESSAGE(all_gone, "a worker outlived its parent");
  {
    Store store(f.db, false);
    for (const auto& run : store.sweep_runs("robust")) CHECK(run.status != "running");
  }
  auto rerun = f.run();
  INFO(rerun.output);
  REQUIRE(rerun.status == 0);
  Store store(f.db, false);
  check_complete_history(store, "robust");
}

TEST_CASE("sweep run B waits for a run it shares with a sweep A still training it") {
  Fixture f;
  std::string only_dense = two_run_spec("a", f.corpus);
  only_dense.replace(only_dense.find(R"(, {"name": "mot"})"), 17, "");
  const std::string spec_a = f.dir / "a.json", spec_b = f.dir / "b.json";
  testing::write_text(spec_a, only_dense);
  testing::write_text(spec_b, two_run_spec("b", f.corpus));
  const std::string out_a = f.dir / "a.txt", out_b = f.dir / "b.txt";
  const std::string command = kSweep + " run --db " + f.db + " --threads 1 ";
  pid_t a = spawn_shell("env MIXLAB_TEST_PAUSE_AT=logged:3 " + command + spec_a + " > " + out_a +
                        " 2>&1");
  REQUIRE(wait_for_text(out_a, "fault injection: paused at logged:3"));
  pid_t b = spawn_shell(command + spec_b + " > " + out_b + " 2>&1");
  // B trains mot, then waits for dense, which A holds (and keeps beating for).
  const bool waited = wait_for_text(out_b,
                                    "waiting for 1 run(s) being trained by other workers: "
                                    "dense seed=0 (step 4");
  INFO(testing::read_text(out_b));
  CHECK(waited);
  CHECK(!process_gone(b));
  REQUIRE(::kill(a, SIGUSR1) == 0);  // A carries on and finishes dense
  CHECK(wait_status(a) == 0);
  CHECK(wait_status(b) == 0);
  const std::string b_output = testing::read_text(out_b);
  CHECK(!contains(b_output, "[dense seed=0] starting"));
  CHECK(contains(b_output, "dense      1/1"));
  Store store(f.db, false);
  check_complete_history(store, "b");
  for (const auto& run : store.sweep_runs("b")) CHECK(run.attempt == 1);
}

TEST_CASE("a worker stopped past --stale-after cannot write the checkpoint of the run it lost") {
  Fixture f;
  const std::string out_a = f.dir / "a.txt";
  // A writes dense's step-4 checkpoint to its temporary file and pauses before moving it into
  // place; SIGSTOP freezes its heartbeat too.
  pid_t a = spawn_shell("env MIXLAB_TEST_PAUSE_AT=checkpoint:1 " + kSweep + " run " + f.spec +
                        " --db " + f.db + " --threads 1 --stale-after 5 > " + out_a + " 2>&1");
  REQUIRE(wait_for_text(out_a, "fault injection: paused at checkpoint:1"));
  REQUIRE(::kill(a, SIGSTOP) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(6500));
  auto b = f.run("--stale-after 5");  // takes dense over and finishes both runs
  INFO(b.output);
  CHECK(b.status == 0);
  CHECK(contains(b.output, "[dense seed=0] starting again from step 0: no checkpoint (attempt 2)"));
  REQUIRE(::kill(a, SIGCONT) == 0);
  REQUIRE(::kill(a, SIGUSR1) == 0);
  CHECK(wait_status(a) == 0);
  const std::string a_output = testing::read_text(out_a);
  INFO(a_output);
  CHECK(contains(a_output, "[dense seed=0] lost: run 1 is no longer held by this worker"));
  Store store(f.db, false);
  check_complete_history(store, "robust");
  auto runs = store.sweep_runs("robust");
  CHECK(runs[0].attempt == 2);
  // The file holds what the database names: B's step 12, not A's step 4; no temporary is left.
  const std::string file =
      f.checkpoints() + "/" + runs[0].config_hash + "-" + store.database_id() + ".pt";
  CHECK(inspect_checkpoint(file).step == 12);
  for (const auto& name : files_in(f.checkpoints()))
    CHECK_MESSAGE(std::filesystem::path(name).extension() == ".pt", name);
}

TEST_CASE("two sweep runs in separate PID namespaces never take runs from each other") {
  if (run_command("unshare --pid --fork --mount-proc true").status != 0) {
    MESSAGE("skipped: unshare --pid --fork --mount-proc is not permitted here");
    return;
  }
  Fixture f;
  std::string spec = two_run_spec("shared", f.corpus);
  spec.replace(spec.find(R"("seeds": [0])"), 12, R"("seeds": [0, 1, 2])");
  testing::write_text(f.spec, spec);
  const std::string command = kSweep + " run " + f.spec + " --db " + f.db + " --threads 1";
  pid_t host = spawn_shell(command + " > " + (f.dir / "host.txt") + " 2>&1");
  pid_t contained = spawn_shell("unshare --pid --fork --mount-proc " + command + " > " +
                                (f.dir / "ns.txt") + " 2>&1");
  const int host_status = wait_status(host), contained_status = wait_status(contained);
  INFO(testing::read_text(f.dir / "host.txt"));
  INFO(testing::read_text(f.dir / "ns.txt"));
  CHECK(host_status == 0);
  CHECK(contained_status == 0);
  Store store(f.db, false);
  std::set<std::string> namespaces;
  for (const auto& run : store.sweep_runs("shared")) {
    INFO(run.name);
    CHECK(run.status == "finished");
    CHECK(run.attempt == 1);  // never released as "dead" by the other namespace
    CHECK(steps_of(store, run.run_id, "train/loss") == kLogSteps);
    namespaces.insert(run.worker.substr(run.worker.rfind(':') + 1));
  }
  MESSAGE("runs were trained from ", namespaces.size(), " PID namespaces");
}

TEST_CASE(
    "a full disk releases the run (exit 75, one line), after space is freed a rerun "
    "finishes it") {
  TinyFileSystem tiny("6m");
  if (!tiny.mounted) {
    MESSAGE("skipped: mounting a tmpfs is not permitted here");
    return;
  }
  Fixture f;
  const std::string db = tiny.dir / "r.db";
  auto full_at = [&](const std::string& pause_at, const std::string& needle) {
    const std::string out = f.dir / "out.txt";
    pid_t p = spawn_shell("env MIXLAB_TEST_PAUSE_AT=" + pause_at + " " + kSweep + " run " + f.spec +
                          " --db " + db + " --threads 1 > " + out + " 2>&1");
    REQUIRE(wait_for_text(out, "fault injection: paused at " + pause_at));
    tiny.fill("filler");
    REQUIRE(::kill(p, SIGUSR1) == 0);
    const int status = wait_status(p);
    const std::string output = testing::read_text(out);
    INFO(output);
    CHECK(status == kEnvironmentExitStatus);
    CHECK(!contains(output, "Exception raised from"));
    CHECK(!contains(output, "terminate called"));
    CHECK(contains(output, needle));
    const size_t error_at = output.rfind("error: ");
    REQUIRE(error_at != std::string::npos);
    CHECK(count_lines(output.substr(error_at)) == 1);  // the last line: no backtrace after it
    std::filesystem::remove(tiny.dir / "filler");
    {
      Store store(db, false);
      for (const auto& run : store.sweep_runs("robust")) CHECK(run.status != "failed");
    }
    auto rerun = run_command(kSweep + " run " + f.spec + " --db " + db + " --threads 1");
    INFO(rerun.output);
    REQUIRE(rerun.status == 0);
    Store store(db, false);
    check_complete_history(store, "robust");
  };
  SUBCASE("while a checkpoint is written") {
    full_at("logged:3", "cannot write the checkpoint");
  }
  SUBCASE("while the database is written") {
    full_at("checkpoint:1", "database or disk is full");
  }
}

TEST_CASE("a symlinked database path: one checkpoint folder, beside the real file") {
  Fixture f;
  std::filesystem::create_directories(f.dir / "real");
  std::filesystem::create_directories(f.dir / "link");
  const std::string real = f.dir / "real/r.db", link = f.dir / "link/r.db";
  testing::write_text(real, "");  // an empty file is a new database
  std::filesystem::create_symlink(real, link);
  REQUIRE(f.run_into(link, "", "MIXLAB_TEST_KILL_AT=step:7").status == 128 + SIGKILL);
  CHECK(!std::filesystem::exists(f.dir / "link/checkpoints"));
  CHECK(!files_in(f.dir / "real/checkpoints").empty());
  auto rerun = f.run_into(real);
  INFO(rerun.output);
  REQUIRE(rerun.status == 0);
  CHECK(contains(rerun.output, "[dense seed=0] resuming from its checkpoint (attempt 2)"));
  Store store(real, false);
  check_complete_history(store, "robust");
}

TEST_CASE("a variant removed with --allow-changed: its run is kept and sweep status lists it") {
  Fixture f;
  REQUIRE(f.run().status == 0);
  const std::string both = testing::read_text(f.spec);
  std::string only_dense = both;
  only_dense.replace(only_dense.find(R"(, {"name": "mot"})"), 17, "");
  testing::write_text(f.spec, only_dense);
  auto changed = f.run("--allow-changed");
  INFO(changed.output);
  REQUIRE(changed.status == 0);
  auto status = run_command(kSweep + " status --db " + f.db);
  INFO(status.output);
  CHECK(status.status == 0);
  CHECK(contains(status.output, "robust: 1 runs, 1 finished"));
  CHECK(contains(status.output, "orphaned: 1 run(s) no sweep lists"));
  CHECK(contains(status.output, "finished run 2 ffn.type=mot seed=0 step 12"));
  // Listed again, it is the same run with the same history: nothing was lost or retrained.
  testing::write_text(f.spec, both);
  auto back = f.run("--allow-changed");
  INFO(back.output);
  REQUIRE(back.status == 0);
  CHECK(!contains(back.output, "[mot seed=0] starting"));
  Store store(f.db, false);
  check_complete_history(store, "robust");
  CHECK(store.orphaned_runs().empty());
  CHECK(!contains(run_command(kSweep + " status --db " + f.db).output, "orphaned"));
}
