// The real `sweep` binary on tiny specs: results in the database, resume without duplicates,
// bad input refused with exit status 2 and nothing written.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include "results/store.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::run_command;

namespace {

const std::string kSweep = MIXLAB_SWEEP_BIN;

std::string tiny_spec(const std::string& corpus) {
  return R"({
    "name": "tiny",
    "base": {
      "model": {"d_model": 16, "n_layers": 2, "n_heads": 2, "seq_len": 16},
      "ffn": {"type": "mot", "n_experts": 4, "group_size": 4, "expert_size": "flop_matched", "d_ff": 32},
      "data": {"corpus": "text", "path": ")" +
         corpus + R"("},
      "train": {"steps": 8, "batch_size": 8, "log_every": 4, "checkpoint_every": 4},
      "eval": {"every": 4, "batches": 2, "modes": ["mixed", "discrete"]}
    },
    "variants": [{"name": "dense", "ffn": {"type": "dense", "d_ff": 32}},
                 {"name": "mot"}],
    "seeds": [0, 1]
  })";
}

struct Fixture : testing::SpecFixture {
  Fixture() : SpecFixture("tiny.json", tiny_spec) {}
  testing::CommandResult sweep(const std::string& args) const {
    return run_command(kSweep + " " + args + " --threads 1");
  }
  // Throws (the test fails) on any SQLite error, e.g. a renamed column, instead of reading 0.
  int64_t count(const std::string& sql) const { return testing::sql_int(db, sql); }
};

}  // namespace

TEST_CASE("sweep run trains every run, records it, prints the table, and resumes") {
  Fixture f;
  auto r = f.sweep("run " + f.spec + " --db " + f.db);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("sweep tiny: final eval loss") != std::string::npos);
  CHECK(r.output.find("dense ") != std::string::npos);

  Store store(f.db, false);
  auto runs = store.sweep_runs("tiny");
  REQUIRE(runs.size() == 4);
  for (const auto& run : runs) {
    CHECK(run.status == "finished");
    CHECK(run.last_step == 8);
    CHECK(run.params_total.value_or(0) > 0);
    CHECK(run.flops_per_token.value_or(0) > 0);
  }
  CHECK(f.count("SELECT COUNT(*) FROM runs WHERE host IS NULL OR git_commit IS NULL OR "
                "torch_version IS NULL OR started_at IS NULL OR ended_at IS NULL") == 0);
  auto keys = store.metric_keys(runs[2].run_id);  // mot seed=0
  for (const char* key : {"train/loss", "train/lr", "train/grad_norm", "time/step_ms",
                          "time/wall_s", "throughput/tokens_per_s", "eval/loss", "eval/ppl",
                          "eval_discrete/loss", "layer0/entropy", "layer1/temperature"})
    CHECK_MESSAGE(std::find(keys.begin(), keys.end(), key) != keys.end(), key);
  CHECK(store.metric_series(runs[2].run_id, "eval/loss").size() == 3);  // steps 0, 4, 8
  // Seeds differ; the variant table has both seeds.
  CHECK(store.metric_series(runs[2].run_id, "train/loss").back().value !=
        store.metric_series(runs[3].run_id, "train/loss").back().value);
  CHECK(f.count("SELECT n FROM variant_final WHERE variant = 'mot' AND key = 'eval/loss'") == 2);

  const int64_t metric_rows = f.count("SELECT COUNT(*) FROM metrics");
  auto again = f.sweep("run " + f.spec + " --db " + f.db);
  INFO(again.output);
  CHECK(again.status == 0);
  CHECK(again.output.find("4 already finished") != std::string::npos);
  CHECK(f.count("SELECT COUNT(*) FROM metrics") == metric_rows);
  CHECK(f.count("SELECT MAX(attempt) FROM runs") == 1);

  auto report = run_command(kSweep + " report tiny --db " + f.db);
  CHECK(report.status == 0);
  CHECK(report.output.find("mot") != std::string::npos);
  auto status = run_command(kSweep + " status --db " + f.db);
  CHECK(status.output.find("tiny: 4 runs, 4 finished") != std::string::npos);
}

TEST_CASE("bad input: one line naming file, key and value, exit 2, nothing written") {
  Fixture f;
  auto expect_refused = [&](const std::string& text, const std::string& needle) {
    testing::write_text(f.spec, text);
    auto r = f.sweep("run " + f.spec + " --db " + f.db);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(f.spec) != std::string::npos);
    CHECK(r.output.find(needle) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(!std::filesystem::exists(f.db));
  };
  const std::string spec = tiny_spec(f.corpus);
  expect_refused(spec.substr(0, spec.size() / 2), "line");
  std::string unknown = spec;
  unknown.replace(unknown.find("\"type\": \"mot\""), 13, "\"type\": \"mixture\"");
  expect_refused(unknown, "ffn.type = \"mixture\"");
  std::string indivisible = spec;
  indivisible.replace(indivisible.find("\"group_size\": 4"), 15, "\"group_size\": 3");
  expect_refused(indivisible, "ffn.group_size = 3");
  std::string no_corpus = spec;
  no_corpus.replace(no_corpus.find(f.corpus), f.corpus.size(), f.dir / "nowhere");
  expect_refused(no_corpus, "data.path");

  auto missing = f.sweep("run " + (f.dir / "absent.json") + " --db " + f.db);
  CHECK(missing.status == 2);
  CHECK(!std::filesystem::exists(f.db));

  // A changed spec under the same name is refused, with the changed key named.
  testing::write_text(f.spec, spec);
  REQUIRE(f.sweep("run " + f.spec + " --db " + f.db + " --set train.steps=4").status == 0);
  const std::string before = testing::read_text(f.db);
  auto changed = f.sweep("run " + f.spec + " --db " + f.db + " --set train.steps=6");
  CHECK(changed.status == 2);
  CHECK(changed.output.find("train.steps") != std::string::npos);
  CHECK(f.count("SELECT COUNT(*) FROM runs") == 4);
  auto allowed =
      f.sweep("run " + f.spec + " --db " + f.db + " --set train.steps=6 --allow-changed");
  CHECK(allowed.status == 0);
  CHECK(f.count("SELECT COUNT(*) FROM runs") == 8);  // new configs are new runs
  CHECK(f.count("SELECT COUNT(*) FROM sweep_runs") == 4);

  // A corrupt database is refused and left as it was.
  testing::write_text(f.dir / "junk.db", "not a database at all, not even close....");
  auto junk = f.sweep("run " + f.spec + " --db " + (f.dir / "junk.db"));
  CHECK(junk.status == 2);
  CHECK(testing::read_text(f.dir / "junk.db") == "not a database at all, not even close....");
}

TEST_CASE("the shipped sweeps validate against the default corpus, and help is there") {
  auto dry =
      run_command(kSweep + " run " + MIXLAB_SOURCE_DIR "/sweeps/temperature_sweep.json --dry-run");
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK(dry.output.find("8 runs") != std::string::npos);
  for (const char* command : {"run", "train", "status", "report"}) {
    auto help = run_command(kSweep + " " + command + " --help");
    CHECK(help.status == 0);
    CHECK(help.output.find("--db") != std::string::npos);
  }
  auto nothing = run_command(kSweep);
  CHECK(nothing.status == 2);
}

TEST_CASE("sweep bench: refuses impossible shapes in one line, times the precision it names") {
  auto expect_refused = [](const std::string& args, const std::string& needle) {
    auto r = run_command(kSweep + " bench " + args);
    INFO(args, r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(needle) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  };
  expect_refused("--experts -1", "--experts = -1");
  expect_refused("--group-size 3", "--group-size = 3");
  expect_refused("--precision fp16", "--precision = fp16");
  expect_refused("--types dense,mixture", "--types = mixture");

  // bf16 on the CPU is autocast, measured against a bf16 peak, not the float32 one.
  auto bf16 = run_command(
      kSweep + " bench --types dense --what layers --iters 1 --warmup 0 --precision bf16");
  INFO(bf16.output);
  CHECK(bf16.status == 0);
  CHECK(bf16.output.find("bf16 autocast") != std::string::npos);
  CHECK(bf16.output.find("measured 1024^3 bf16 matmul") != std::string::npos);
  CHECK(bf16.output.find("layer fwd+bwd dense") != std::string::npos);
}

TEST_CASE("sweep train: one config on the Brown corpus, recorded as a one-run sweep") {
  testing::TempDir dir;
  testing::write_text(dir / "one.json", R"({
    "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16},
    "ffn": {"type": "mot", "n_experts": 2, "group_size": 2, "expert_size": 16},
    "data": {"corpus": "brown"},
    "train": {"steps": 4, "batch_size": 4, "log_every": 2},
    "eval": {"every": 2, "batches": 1}, "seed": 5})");
  auto r = run_command(kSweep + " train " + (dir / "one.json") + " --db " + (dir / "r.db") +
                       " --threads 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  Store store(dir / "r.db", false);
  auto runs = store.sweep_runs("one");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].status == "finished");
  CHECK(runs[0].seed == 5);
  CHECK(runs[0].passes.value_or(0) > 0);
}
