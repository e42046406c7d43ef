// What the tests of the real `sweep` binary on one small sweep share (test_robustness.cpp,
// test_ownership.cpp, test_read_only.cpp): a two-run spec of 12 steps, a fixture with a corpus,
// the spec and a database path, and checks of a run's complete history.
#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "results/store.h"
#include "test_helpers.h"
#include "test_paths.h"

extern char** environ;

namespace mixlab::testing::sweep_fixture {

using testing::run_command;

inline const std::string kSweep = MIXLAB_SWEEP_BIN;

// Two runs (dense, mot) of 12 steps: logged every 2, checkpointed every 4, evaluated every 4.
inline std::string two_run_spec(const std::string& name, const std::string& corpus) {
  return R"({
    "name": ")" +
         name + R"(",
    "base": {
      "model": {"d_model": 16, "n_layers": 2, "n_heads": 2, "seq_len": 16},
      "ffn": {"type": "mot", "n_experts": 4, "group_size": 4, "expert_size": "flop_matched", "d_ff": 32},
      "data": {"corpus": "text", "path": ")" +
         corpus + R"("},
      "train": {"steps": 12, "batch_size": 8, "log_every": 2, "checkpoint_every": 4},
      "eval": {"every": 4, "batches": 2, "modes": ["mixed", "discrete"]}
    },
    "variants": [{"name": "dense", "ffn": {"type": "dense", "d_ff": 32}}, {"name": "mot"}],
    "seeds": [0]
  })";
}

// A folder with a small text corpus and a spec; the database goes into a folder of its own
// (its checkpoints sit beside it, in checkpoints/).
struct Fixture : testing::SpecFixture {
  Fixture()
      : SpecFixture("spec.json",
                    [](const std::string& corpus) { return two_run_spec("robust", corpus); }) {}
  std::string checkpoints() const {
    return (std::filesystem::path(db).parent_path() / "checkpoints").string();
  }
  // `sweep run SPEC --db DB ARGS`, with environment assignments `env` (e.g. "A=1 B=2").
  testing::CommandResult run(const std::string& args = "", const std::string& env = "") const {
    return run_into(db, args, env);
  }
  testing::CommandResult run_into(const std::string& database, const std::string& args = "",
                                  const std::string& env = "") const {
    return run_command((env.empty() ? "" : "env " + env + " ") + kSweep + " run " + spec +
                       " --db " + database + " --threads 1 " + args);
  }
};

inline std::string file_bytes(const std::string& path) {
  return testing::read_text(path);
}

inline int64_t count_lines(const std::string& text) {
  return std::count(text.begin(), text.end(), '\n');
}

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

inline std::vector<int64_t> steps_of(Store& store, int64_t run_id, const std::string& key) {
  std::vector<int64_t> out;
  for (const auto& p : store.metric_series(run_id, key)) out.push_back(p.step);
  return out;
}

inline const std::vector<int64_t> kLogSteps = {2, 4, 6, 8, 10, 12};
inline const std::vector<int64_t> kEvalSteps = {0, 4, 8, 12};

// Every run finished, with exactly the logging and evaluation steps of a 12-step run.
inline void check_complete_history(Store& store, const std::string& sweep) {
  auto runs = store.sweep_runs(sweep);
  REQUIRE(runs.size() == 2);
  for (const auto& run : runs) {
    INFO(run.name);
    CHECK(run.status == "finished");
    CHECK(run.last_step == 12);
    CHECK(run.checkpoint_step == 12);
    CHECK(run.ended_at.has_value());
    CHECK(steps_of(store, run.run_id, "train/loss") == kLogSteps);
    CHECK(steps_of(store, run.run_id, "time/wall_s") == kLogSteps);
    CHECK(steps_of(store, run.run_id, "eval/loss") == kEvalSteps);
    // Dense layers have no discrete mode; MoT is evaluated in both.
    const bool mot = run.name.rfind("mot", 0) == 0;
    CHECK(steps_of(store, run.run_id, "eval_discrete/loss") ==
          (mot ? kEvalSteps : std::vector<int64_t>{}));
  }
}

// The same runs in two databases recorded the same metrics at the same steps with the same
// values, timings aside (a resumed run must equal an uninterrupted one bit for bit).
inline void check_same_results(Store& got, Store& reference, const std::string& sweep) {
  auto runs = got.sweep_runs(sweep), ref_runs = reference.sweep_runs(sweep);
  REQUIRE(runs.size() == ref_runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    INFO(runs[i].name);
    REQUIRE(runs[i].config_hash == ref_runs[i].config_hash);
    auto keys = got.metric_keys(runs[i].run_id);
    CHECK(keys == reference.metric_keys(ref_runs[i].run_id));
    for (const auto& key : keys) {
      INFO(key);
      auto a = got.metric_series(runs[i].run_id, key);
      auto b = reference.metric_series(ref_runs[i].run_id, key);
      REQUIRE(a.size() == b.size());
      const bool timing = key.rfind("time/", 0) == 0 || key.rfind("throughput/", 0) == 0;
      for (size_t k = 0; k < a.size(); ++k) {
        CHECK(a[k].step == b[k].step);
        if (!timing) CHECK(a[k].value == b[k].value);
      }
    }
  }
}

// Starts a command line in the background (its own process: `exec` replaces the shell).
inline pid_t spawn_shell(const std::string& command) {
  std::string line = "exec " + command;
  const char* argv[] = {"sh", "-c", line.c_str(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
  return pid;
}

inline int wait_status(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace mixlab::testing::sweep_fixture
