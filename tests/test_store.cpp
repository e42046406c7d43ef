// The results store: round trip, scheduling, ownership, bad databases.
#include <doctest/doctest.h>

#include <cmath>

#include "results/store.h"
#include "test_helpers.h"

using namespace mixlab;

namespace {
std::vector<PlannedRun> three_runs() {
  std::vector<PlannedRun> runs;
  for (int seed = 0; seed < 3; ++seed) {
    Json config = {{"ffn", {{"type", "dense"}}}, {"seed", seed}};
    runs.push_back({"dense seed=" + std::to_string(seed), "dense", canonical_dump(config),
                    content_hash(config), seed});
  }
  return runs;
}
}  // namespace

TEST_CASE("store round trip: sweep, runs, metrics, views, reopen") {
  testing::TempDir dir;
  const std::string path = dir / "r.db";
  {
    Store store(path);
    int64_t id = store.register_sweep("s", "{}", "h1", three_runs());
    auto runs = store.sweep_runs("s");
    REQUIRE(runs.size() == 3);
    CHECK(runs[0].status == "pending");
    CHECK(runs[2].name == "dense seed=2");

    auto claimed = store.claim_next(id, "w1", 60, 2);
    REQUIRE(claimed);
    CHECK(claimed->name == "dense seed=0");
    CHECK(claimed->status == "running");
    CHECK(claimed->attempt == 1);
    RunInfo info;
    info.host = "h";
    info.params_total = 100;
    info.params_active = 40;
    info.flops_per_token = 1.5e6;
    store.set_run_info(claimed->run_id, "w1", info);
    store.log_step(claimed->run_id, "w1", 10, {{"train/loss", 3.0}, {"eval/loss", NAN}}, 1.0, 0.1);
    store.log_step(claimed->run_id, "w1", 20, {{"train/loss", 2.0}, {"eval/loss", 2.5}}, 2.0, 0.2);
    // Writing a step again replaces it: never a duplicate.
    store.log_step(claimed->run_id, "w1", 20, {{"train/loss", 1.9}}, 2.1, 0.2);
    store.end_run(claimed->run_id, "w1", "finished", "");
    // Someone else's write into a run it does not hold is refused.
    CHECK_THROWS_AS(store.log_step(claimed->run_id, "w2", 30, {{"x", 1}}, 3, 0.3), LostOwnership);
  }
  Store store(path, false);
  auto run = store.sweep_runs("s")[0];
  CHECK(run.status == "finished");
  CHECK(run.last_step == 20);
  CHECK(*run.params_active == 40);
  auto loss = store.metric_series(run.run_id, "train/loss");
  REQUIRE(loss.size() == 2);
  CHECK(loss[1].value == 1.9);
  CHECK(loss[1].wall_s == 2.1);
  auto eval = store.metric_series(run.run_id, "eval/loss");
  CHECK(std::isnan(eval[0].value));  // NaN is stored as NULL

  testing::CommandResult q = testing::run_command(
      "sqlite3 " + path +
      " \"SELECT variant, key, n, mean FROM variant_final WHERE key = 'train/loss';"
      " SELECT run_name, eval_loss FROM run_overview WHERE status = 'finished';\"");
  CHECK(q.output == "dense|train/loss|1|1.9\ndense seed=0|2.5\n");
}

TEST_CASE("claiming: each run once, stale runs reclaimed, failed runs retried") {
  testing::TempDir dir;
  Store a(dir / "r.db"), b(dir / "r.db");
  int64_t id = a.register_sweep("s", "{}", "h", three_runs());
  auto r1 = a.claim_next(id, "wa", 60, 2);
  auto r2 = b.claim_next(id, "wb", 60, 2);
  auto r3 = a.claim_next(id, "wa", 60, 2);
  REQUIRE((r1 && r2 && r3));
  CHECK(r1->run_id != r2->run_id);
  CHECK(r2->run_id != r3->run_id);
  CHECK(!b.claim_next(id, "wb", 60, 2));
  a.end_run(r1->run_id, "wa", "failed", "boom");
  // A failed run is retried while attempts are left...
  auto again = b.claim_next(id, "wb", 60, 2);
  REQUIRE(again);
  CHECK(again->run_id == r1->run_id);
  CHECK(again->attempt == 2);
  b.end_run(again->run_id, "wb", "failed", "boom");
  // ...and not after.
  CHECK(!b.claim_next(id, "wb", 60, 2));
  // A running run whose heartbeat is older than the limit is taken over.
  auto stale = a.claim_next(id, "wc", -1, 2);
  REQUIRE(stale);
  CHECK(stale->run_id == r2->run_id);
  CHECK(stale->attempt == 2);
  CHECK_THROWS_AS(b.heartbeat(r2->run_id, "wb"), LostOwnership);
  a.heartbeat(r2->run_id, "wc");
}

TEST_CASE("re-registering keeps finished runs and drops removed ones from the sweep") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  auto runs = three_runs();
  int64_t id = store.register_sweep("s", "{}", "h", runs);
  auto r = store.claim_next(id, "w", 60, 2);
  store.end_run(r->run_id, "w", "finished", "");
  runs.pop_back();
  store.register_sweep("s", "{}", "h2", runs);
  auto now = store.sweep_runs("s");
  REQUIRE(now.size() == 2);
  CHECK(now[0].status == "finished");
  CHECK(store.find_sweep("s")->spec_hash == "h2");
}

TEST_CASE("a file that is not a database, or a newer schema, is refused and left intact") {
  testing::TempDir dir;
  testing::write_text(dir / "junk.db", std::string(4096, 'x'));
  CHECK_THROWS_AS(Store(dir / "junk.db"), StoreError);
  CHECK(testing::read_text(dir / "junk.db") == std::string(4096, 'x'));
  { Store s(dir / "new.db"); }
  testing::run_command("sqlite3 " + dir / "new.db" + " 'PRAGMA user_version = 99'");
  try {
    Store s(dir / "new.db");
    FAIL("newer schema accepted");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("user_version = 99") != std::string::npos);
  }
  CHECK_THROWS_AS(Store(dir / "missing.db", false), StoreError);
}
