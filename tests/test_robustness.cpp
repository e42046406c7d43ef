// A sweep never loses or repeats a result: the real `sweep` binary killed (SIGKILL at named
// points, see results/fault_injection.h) and stopped (SIGTERM), a diverging run beside a normal
// one, parallel and concurrent workers, eight writers on one database, and bad input of every
// kind (exit status 2, one line naming the file, the database unchanged byte for byte).
#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "results/store.h"
#include "sweep_fixture.h"

using namespace mixlab;
using namespace mixlab::testing::sweep_fixture;

TEST_CASE("SIGKILL at any point: reruns finish every run once, as if never interrupted") {
  Fixture f;
  // The uninterrupted reference: the same spec (same corpus path, so the same run identities)
  // into a database of its own, with its own checkpoint folder.
  const std::string reference_db = f.dir / "reference/r.db";
  auto ref = f.run_into(reference_db);
  INFO(ref.output);
  REQUIRE(ref.status == 0);

  // Each kill point is counted within its process; the comment says where each one lands.
  const std::vector<std::string> kills = {
      "step:7",        // dense: after step 6 (logged), last checkpoint at step 4
      "checkpoint:1",  // dense resumed at 4: step 8's checkpoint written to .tmp, not renamed
      "log_step:2",    // dense resumed at 4: inside the transaction that logs step 8
      "end_run:1",     // dense: all 12 steps and the final checkpoint, not yet marked finished
      "logged:3",      // dense finishes; mot: step 4 committed, its checkpoint not yet written
      "checkpoint:2",  // mot again from step 0 (no checkpoint): killed writing step 8's
  };
  for (const auto& kill : kills) {
    auto r = f.run("", "MIXLAB_TEST_KILL_AT=" + kill);
    INFO(kill);
    INFO(r.output);
    REQUIRE(r.status == 128 + SIGKILL);
    CHECK(contains(r.output, "fault injection: SIGKILL at " + kill));
    auto integrity = run_command("sqlite3 " + f.db + " 'PRAGMA integrity_check'");
    CHECK(integrity.output == "ok\n");
  }
  {
    // Between kills the database says what survived: the mot run recorded steps 0..8 of its
    // second attempt (its first attempt's metrics were dropped: it had no checkpoint).
    Store store(f.db, false);
    auto runs = store.sweep_runs("robust");
    CHECK(runs[0].status == "finished");
    CHECK(runs[1].status == "running");
    CHECK(runs[1].attempt == 2);
    CHECK(steps_of(store, runs[1].run_id, "train/loss") == std::vector<int64_t>{2, 4, 6, 8});
  }
  auto last = f.run();
  INFO(last.output);
  REQUIRE(last.status == 0);
  CHECK(contains(last.output, "resuming from its checkpoint (attempt 3)"));

  Store store(f.db, false), ref_store(reference_db, false);
  check_complete_history(store, "robust");
  check_same_results(store, ref_store, "robust");
  auto runs = store.sweep_runs("robust");
  CHECK(runs[0].attempt == 5);  // started by 5 processes; finished by the fifth
  CHECK(runs[1].attempt == 3);
  for (const auto& entry : std::filesystem::directory_iterator(f.checkpoints()))
    CHECK_MESSAGE(entry.path().extension() == ".pt", entry.path());
}

TEST_CASE("SIGTERM: the run stops after a checkpoint, is marked killed, and resumes") {
  Fixture f;
  const std::string out = f.dir / "out.txt";
  // The process pauses right after committing dense's step 4, so the signal lands mid-run.
  pid_t pid = spawn_shell("env MIXLAB_TEST_PAUSE_AT=logged:3 " + kSweep + " run " + f.spec +
                          " --db " + f.db + " --threads 1 > " + out + " 2>&1");
  bool paused = false;
  for (int i = 0; i < 1200 && !paused; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    paused = contains(testing::read_text(out), "fault injection: paused at logged:3");
  }
  REQUIRE(paused);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  const int status = wait_status(pid);
  const std::string output = testing::read_text(out);
  INFO(output);
  CHECK(status == 130);
  CHECK(contains(output, "stopped at step 4 (checkpoint written); rerun to resume"));
  {
    Store store(f.db, false);
    auto runs = store.sweep_runs("robust");
    CHECK(runs[0].status == "killed");
    CHECK(runs[0].error == "stopped by signal 15 at step 4");
    CHECK(runs[0].checkpoint_step == 4);
    CHECK(runs[1].status == "pending");
  }
  auto rerun = f.run();
  INFO(rerun.output);
  REQUIRE(rerun.status == 0);
  Store store(f.db, false);
  check_complete_history(store, "robust");
  CHECK(store.sweep_runs("robust")[0].attempt == 2);
}

TEST_CASE("a diverging run fails with its step and reason, the sweep goes on, retries follow") {
  Fixture f;
  std::string spec = two_run_spec("diverge", f.corpus);
  // Adam moves every weight by about lr per step, and decoupled weight decay multiplies it by
  // (1 - lr * 0.1) = -1e5: the weights overflow float32 within a few steps.
  spec.replace(spec.find(R"({"name": "mot"})"), 15,
               R"({"name": "mot", "train.lr": 1e6, "train.grad_clip": 0})");
  testing::write_text(f.spec, spec);

  auto first = f.run("--max-attempts 2");
  INFO(first.output);
  CHECK(first.status == 1);
  CHECK(contains(first.output, "[mot seed=0] failed: train/loss is "));
  // Progress: a line per evaluation step, with the sweep's count and the time left.
  CHECK(contains(first.output, "[0/2 runs done] dense seed=0  step 4/12  loss "));
  CHECK(contains(first.output, "[0/2 runs done] dense seed=0  step 12/12  loss "));
  CHECK(contains(first.output, " tok/s  run 0s left, sweep ~"));
  std::string error;
  {
    Store store(f.db, false);
    auto runs = store.sweep_runs("diverge");
    CHECK(runs[0].status == "finished");
    CHECK(runs[1].status == "failed");
    CHECK(runs[1].attempt == 1);  // not retried by the invocation it failed in
    error = runs[1].error;
    CHECK(error.rfind("train/loss is ", 0) == 0);
    CHECK(contains(error, " at step "));
    const int64_t failed_at = std::atoll(error.c_str() + error.find(" at step ") + 9);
    CHECK(failed_at >= 2);
    CHECK(failed_at <= 12);
    // Nothing is recorded at or after the step that diverged.
    CHECK(store.metric_series(runs[1].run_id, "train/loss").size() == size_t(failed_at / 2 - 1));
  }
  auto status = run_command(kSweep + " status --db " + f.db);
  CHECK(contains(status.output, "diverge: 2 runs, 1 failed, 1 finished"));

  // The next invocation retries it once (max attempts 2), the one after does not.
  auto second = f.run("--max-attempts 2");
  CHECK(second.status == 1);
  CHECK(contains(second.output, "(attempt 2)"));
  auto third = f.run("--max-attempts 2");
  CHECK(third.status == 1);
  CHECK(!contains(third.output, "[mot seed=0] starting"));
  Store store(f.db, false);
  auto runs = store.sweep_runs("diverge");
  CHECK(runs[1].attempt == 2);
  CHECK(runs[1].error == error);  // deterministic: the same step, the same reason
  CHECK(runs[0].attempt == 1);
}

TEST_CASE("--jobs 2 beside a second sweep run on the same spec: every run trained once") {
  Fixture f;
  std::string spec = two_run_spec("shared", f.corpus);
  spec.replace(spec.find(R"("seeds": [0])"), 12, R"("seeds": [0, 1, 2])");
  testing::write_text(f.spec, spec);
  const std::string command = kSweep + " run " + f.spec + " --db " + f.db + " --threads 1";
  pid_t jobs = spawn_shell(command + " --jobs 2 > " + (f.dir / "a.txt") + " 2>&1");
  pid_t other = spawn_shell(command + " > " + (f.dir / "b.txt") + " 2>&1");
  const int jobs_status = wait_status(jobs), other_status = wait_status(other);
  INFO(testing::read_text(f.dir / "a.txt"));
  INFO(testing::read_text(f.dir / "b.txt"));
  CHECK(jobs_status == 0);
  CHECK(other_status == 0);
  Store store(f.db, false);
  auto runs = store.sweep_runs("shared");
  REQUIRE(runs.size() == 6);
  std::set<std::string> workers;
  for (const auto& run : runs) {
    INFO(run.name);
    CHECK(run.status == "finished");
    CHECK(run.attempt == 1);  // claimed once: no run was trained twice or taken over
    CHECK(steps_of(store, run.run_id, "train/loss") == kLogSteps);
    CHECK(steps_of(store, run.run_id, "eval/loss") == kEvalSteps);
    workers.insert(run.worker);
  }
  MESSAGE("runs were trained by ", workers.size(), " worker processes");
}

TEST_CASE("eight connections writing at once: no 'database is locked'") {
  testing::TempDir dir;
  const std::string path = dir / "r.db";
  std::vector<PlannedRun> planned;
  for (int i = 0; i < 40; ++i) {
    Json config = {{"ffn", {{"type", "dense"}}}, {"seed", i}};
    planned.push_back({"dense seed=" + std::to_string(i), "dense", canonical_dump(config),
                       content_hash(config), i});
  }
  constexpr int kWriters = 8, kSteps = 10;
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  auto in_parallel = [&](auto body) {
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w)
      threads.emplace_back([&, w] {
        try {
          body(w);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(errors_mutex);
          errors.push_back(e.what());
        }
      });
    for (auto& t : threads) t.join();
  };
  // Eight processes' worth of first opens of a new file, each registering the sweep.
  in_parallel([&](int) {
    Store store(path);
    store.register_sweep("s", "{}", "h", planned);
  });
  // Then each claims runs and logs their steps until none is left, reading status meanwhile.
  std::vector<int> trained(kWriters, 0);
  in_parallel([&](int w) {
    Store store(path, false);
    const int64_t sweep_id = store.find_sweep("s")->sweep_id;
    const std::string worker = "w" + std::to_string(w);
    while (auto run = store.claim_next(sweep_id, worker, 600, 1)) {
      for (int step = 1; step <= kSteps; ++step) {
        store.log_step(run->run_id, worker, step,
                       {{"train/loss", 1.0 / step}, {"train/lr", 0.1}, {"time/wall_s", step}}, step,
                       0.01 * step);
        if (step % 3 == 0) store.heartbeat(run->run_id, worker);
        if (step % 5 == 0) store.status_counts("s");
      }
      store.set_checkpoint_step(run->run_id, worker, kSteps);
      store.end_run(run->run_id, worker, "finished", "");
      ++trained[w];
    }
  });
  for (const auto& e : errors) FAIL_CHECK(e);
  CHECK(errors.empty());
  Store store(path, false);
  auto runs = store.sweep_runs("s");
  REQUIRE(runs.size() == 40);
  for (const auto& run : runs) {
    CHECK(run.status == "finished");
    CHECK(run.attempt == 1);
    CHECK(run.last_step == kSteps);
    CHECK(store.metric_series(run.run_id, "train/loss").size() == size_t(kSteps));
  }
  int total = 0;
  for (int n : trained) total += n;
  CHECK(total == 40);
}

TEST_CASE("bad input on an existing database: exit 2, one line, the database untouched") {
  Fixture f;
  const std::string good = two_run_spec("robust", f.corpus);
  REQUIRE(f.run("--set train.steps=4").status == 0);
  REQUIRE(!std::filesystem::exists(f.db + "-wal"));
  const std::string before = file_bytes(f.db);

  auto expect_refused = [&](const std::string& spec_text, const std::string& needle) {
    testing::write_text(f.spec, spec_text);
    auto r = f.run("--set train.steps=4");
    INFO(spec_text);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(contains(r.output, "error: " + f.spec + ": "));
    CHECK(contains(r.output, needle));
    CHECK(file_bytes(f.db) == before);
  };
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    REQUIRE(s.find(from) != std::string::npos);
    return s.replace(s.find(from), from.size(), to);
  };
  expect_refused(good.substr(0, good.size() - 3), "malformed JSON at line");
  expect_refused(edited(R"("log_every": 2)", R"("log_every": 2, "stepz": 8)"),
                 "train.stepz = 8: unknown key");
  expect_refused(edited(R"("batch_size": 8)", R"("batch_size": "eight")"),
                 "train.batch_size = \"eight\": must be an integer, not a string");
  expect_refused(edited(R"("type": "dense")", R"("type": "densest")"), "ffn.type = \"densest\"");
  expect_refused(edited(R"("n_heads": 2)", R"("n_heads": 3)"), "model.n_heads = 3: must divide");
  expect_refused(edited(f.corpus, f.dir / "no-such-corpus"), "data.path");
  expect_refused(edited(R"("seeds": [0])", R"("seeds": [0.5])"), "seeds");
}

TEST_CASE("a database that cannot be used: exit 2, one line naming it, left as it was") {
  Fixture f;
  auto expect_refused = [&](const std::string& db, const std::string& needle) {
    auto r = run_command(kSweep + " run " + f.spec + " --db " + db + " --threads 1");
    INFO(db);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(count_lines(r.output) == 1);
    CHECK(contains(r.output, "error: " + db + ": "));
    CHECK(contains(r.output, needle));
  };
  // Places no one can write, root included.
  expect_refused("/proc/nope/r.db", "cannot create the folder /proc/nope");
  CHECK(!std::filesystem::exists("/proc/nope"));
  expect_refused("/proc/r.db", "cannot open the database");
  CHECK(!std::filesystem::exists("/proc/r.db"));

  // A database of a newer mixlab.
  REQUIRE(f.run("--set train.steps=4").status == 0);
  REQUIRE(run_command("sqlite3 " + f.db + " 'PRAGMA user_version = 99'").status == 0);
  REQUIRE(!std::filesystem::exists(f.db + "-wal"));
  const std::string newer = file_bytes(f.db);
  expect_refused(f.db, "user_version = 99");
  CHECK(file_bytes(f.db) == newer);

  // A database whose pages after the first (the tables' contents) are damaged.
  REQUIRE(run_command("sqlite3 " + f.db + " 'PRAGMA user_version = 1'").status == 0);
  std::string damaged = file_bytes(f.db);
  REQUIRE(damaged.size() > 8192);
  for (size_t i = 4096; i < damaged.size(); i += 7) damaged[i] = char(0xA5);
  testing::write_text(f.db, damaged);
  REQUIRE(file_bytes(f.db) == damaged);
  expect_refused(f.db, "corrupt");
  CHECK(file_bytes(f.db) == damaged);
}

TEST_CASE("a truncated checkpoint: exit 2, one line naming it, the database as it was") {
  Fixture f;
  auto killed = f.run("", "MIXLAB_TEST_KILL_AT=step:7");  // dense: checkpoint at step 4
  INFO(killed.output);
  REQUIRE(killed.status == 128 + SIGKILL);
  // Fold the write-ahead log of the killed process into the file, so bytes can be compared.
  REQUIRE(run_command("sqlite3 " + f.db +
                      " 'PRAGMA wal_checkpoint(TRUNCATE); SELECT COUNT(*) FROM runs'")
              .status == 0);
  REQUIRE(!std::filesystem::exists(f.db + "-wal"));
  const std::string db_before = file_bytes(f.db);

  std::string checkpoint;
  for (const auto& entry : std::filesystem::directory_iterator(f.checkpoints()))
    if (entry.path().extension() == ".pt") checkpoint = entry.path().string();
  REQUIRE(!checkpoint.empty());
  const std::string full = file_bytes(checkpoint);
  testing::write_text(checkpoint, full.substr(0, full.size() / 2));

  auto refused = f.run();
  INFO(refused.output);
  CHECK(refused.status == 2);
  CHECK(count_lines(refused.output) == 1);
  CHECK(contains(refused.output, "error: " + checkpoint + ": not a usable checkpoint"));
  CHECK(file_bytes(f.db) == db_before);

  // The way out the message gives: delete it, and the run trains again from step 0.
  std::filesystem::remove(checkpoint);
  auto rerun = f.run();
  INFO(rerun.output);
  REQUIRE(rerun.status == 0);
  CHECK(contains(rerun.output, "[dense seed=0] starting again from step 0: no checkpoint"));
  Store store(f.db, false);
  check_complete_history(store, "robust");
}
