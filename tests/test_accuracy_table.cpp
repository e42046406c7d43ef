// `sweep report --table accuracy` (analysis/accuracy_table.h) on a database built by hand: the
// expected numbers are worked out in the comments, not taken from the code under test.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "analysis/accuracy_table.h"
#include "analysis/report.h"
#include "results/store.h"
#include "table_cell.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;

namespace {

using Points = std::vector<std::pair<int64_t, std::vector<std::pair<std::string, double>>>>;

struct TaskRun {
  std::string variant;  // the spec variant (the mixer)
  std::string task;
  int seed = 0;
  bool finish = true;
  Points steps;
};

Json config_of(const TaskRun& r) {
  Json data = {{"corpus", "synthetic"}, {"task", r.task}};
  if (r.task == "multihop") data["hops"] = 2;
  const Json mixer =
      r.variant == "attention" ? Json{{"type", "attention"}} : Json{{"type", "diagonal_ssm"}};
  return {{"mixer", mixer}, {"data", data}, {"model", {{"seq_len", 32}}}, {"seed", r.seed}};
}

// Registers the runs as a spec with variants (mixers) x grid (data) would, in that order, and
// records the finished ones.
void write_task_sweep(Store& store, const std::string& sweep, const std::vector<TaskRun>& runs) {
  const std::string spec =
      R"({"name": "tasks", "variants": [{"name": "attention"}, {"name": "ssm"}],
          "grid": {"data": []}, "seeds": [0, 1, 2]})";
  std::vector<PlannedRun> planned;
  for (const auto& r : runs) {
    const Json config = config_of(r);
    Json data = config["data"];
    const std::string variant = r.variant + " data=" + canonical_dump(data);
    planned.push_back({variant + " seed=" + std::to_string(r.seed), variant, canonical_dump(config),
                       content_hash(config), r.seed});
  }
  const int64_t id = store.register_sweep(sweep, spec, "hash-" + sweep, planned);
  for (const auto& r : runs) {
    if (!r.finish) break;
    auto claimed = store.claim_next(id, "w", 3600, 3);
    REQUIRE(claimed);
    RunInfo info;
    info.host = "h";
    info.device = "cpu";
    store.set_run_info(claimed->run_id, "w", info);
    for (const auto& [step, values] : r.steps)
      store.log_step(claimed->run_id, "w", step, values, 1.0 * double(step), 0.0);
    store.end_run(claimed->run_id, "w", "finished", "");
  }
}

// The final step of a run with accuracy `acc`, decode time `ms` and cache `cache`; an earlier
// evaluation at 0.5 shows the last one counts.
Points final_at(double acc, double ms, double cache,
                std::vector<std::pair<std::string, double>> more = {}) {
  std::vector<std::pair<std::string, double>> last = {{"eval/accuracy", acc},
                                                      {"decode/mixer_ms_per_token", ms},
                                                      {"decode/ms_per_token", 10 * ms},
                                                      {"decode/cache_entries", cache}};
  last.insert(last.end(), more.begin(), more.end());
  return {{100, {{"eval/accuracy", 0.5}}}, {200, last}};
}

// attention: copy 1.00, 0.98 (exact 0.9, 0.7); mqar 0.9, 0.6, 0.3 (three seeds); no multihop.
//   decode ms 0.10, 0.12 (copy), 0.11, 0.13, 0.14 (mqar); cache 32 in every run.
// ssm: copy 0.25 (a second seed pending); mqar 0.2, 0.5; multihop 0.4, 0.3 with hop 1 0.8, 0.6
//   and hop 2 0.1, 0.2; decode ms 0.05 everywhere; cache 1.
// Registered in expansion order (mqar before copy: the table puts copy first, as the paper);
// the pending run last (claim_next hands runs out in order).
std::vector<TaskRun> hand_runs() {
  auto hop = [](double h1, double h2) {
    return std::vector<std::pair<std::string, double>>{{"eval/accuracy_hop1", h1},
                                                       {"eval/accuracy_hop2", h2}};
  };
  return {
      {"attention", "mqar", 0, true, final_at(0.9, 0.11, 32)},
      {"attention", "mqar", 1, true, final_at(0.6, 0.13, 32)},
      {"attention", "mqar", 2, true, final_at(0.3, 0.14, 32)},
      {"attention", "copy", 0, true, final_at(1.0, 0.10, 32, {{"eval/exact_match", 0.9}})},
      {"attention", "copy", 1, true, final_at(0.98, 0.12, 32, {{"eval/exact_match", 0.7}})},
      {"ssm", "mqar", 0, true, final_at(0.2, 0.05, 1)},
      {"ssm", "mqar", 1, true, final_at(0.5, 0.05, 1)},
      {"ssm", "copy", 0, true, final_at(0.25, 0.05, 1, {{"eval/exact_match", 0.0}})},
      {"ssm", "multihop", 0, true, final_at(0.4, 0.05, 1, hop(0.8, 0.1))},
      {"ssm", "multihop", 1, true, final_at(0.3, 0.05, 1, hop(0.6, 0.2))},
      {"ssm", "copy", 1, false, {}},
  };
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("accuracy table: mixers by task, mean and std over seeds, hops, decode cost") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_task_sweep(store, "tasks", hand_runs());
  const Table t = build_tables(store, "tasks", "accuracy").at(0);
  CHECK(t.name == "accuracy");
  // Rows in the spec's order, labelled by the spec variant; copy first, as in the paper.
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[0][0].text == "attention");
  CHECK(t.rows[1][0].text == "ssm");
  CHECK(t.columns == std::vector<std::string>{"mixer", "runs", "copy", "mqar", "multihop",
                                              "copy exact", "multihop hop 1", "multihop hop 2",
                                              "decode ms/token", "cache/token"});
  CHECK(cell(t, "attention", "runs").text == "5/5");
  CHECK(cell(t, "ssm", "runs").text == "5/6");

  // attention copy: 100, 98 -> 99 +- sqrt(1 + 1) = 1.4142136
  CHECK(cell(t, "attention", "copy").mean == doctest::Approx(99.0));
  CHECK(cell(t, "attention", "copy").std == doctest::Approx(1.4142136));
  CHECK(cell(t, "attention", "copy").n == 2);
  // attention mqar: 90, 60, 30 -> 60 +- sqrt((900 + 0 + 900) / 2) = 30, three seeds
  CHECK(cell(t, "attention", "mqar").mean == doctest::Approx(60.0));
  CHECK(cell(t, "attention", "mqar").std == doctest::Approx(30.0));
  CHECK(cell(t, "attention", "mqar").n == 3);
  CHECK(cell(t, "attention", "multihop").text == "-");  // no run of it
  // ssm copy: one finished seed of two: the value alone, no spread
  CHECK(cell(t, "ssm", "copy").mean == doctest::Approx(25.0));
  CHECK_FALSE(cell(t, "ssm", "copy").has_std());
  // ssm mqar: 20, 50 -> 35 +- sqrt(225 + 225) = 21.2132034
  CHECK(cell(t, "ssm", "mqar").mean == doctest::Approx(35.0));
  CHECK(cell(t, "ssm", "mqar").std == doctest::Approx(21.2132034));
  // ssm multihop 40, 30 -> 35 +- 7.0710678; hop 1: 80, 60 -> 70 +- 14.1421356; hop 2: 15 +- 7.07
  CHECK(cell(t, "ssm", "multihop").mean == doctest::Approx(35.0));
  CHECK(cell(t, "ssm", "multihop").std == doctest::Approx(7.0710678));
  CHECK(cell(t, "ssm", "multihop hop 1").mean == doctest::Approx(70.0));
  CHECK(cell(t, "ssm", "multihop hop 1").std == doctest::Approx(14.1421356));
  CHECK(cell(t, "ssm", "multihop hop 2").mean == doctest::Approx(15.0));
  CHECK(cell(t, "attention", "multihop hop 1").text == "-");
  // copy exact: attention 90, 70 -> 80 +- 14.1421356; ssm 0
  CHECK(cell(t, "attention", "copy exact").mean == doctest::Approx(80.0));
  CHECK(cell(t, "attention", "copy exact").std == doctest::Approx(14.1421356));
  CHECK(cell(t, "ssm", "copy exact").mean == doctest::Approx(0.0));
  // decode over every finished run of the row: attention 0.10, 0.12, 0.11, 0.13, 0.14 -> 0.12,
  // squared deviations 4 + 0 + 1 + 1 + 4 (x 1e-4) = 1e-3, / 4 -> std 0.0158114
  CHECK(cell(t, "attention", "decode ms/token").mean == doctest::Approx(0.12));
  CHECK(cell(t, "attention", "decode ms/token").std == doctest::Approx(0.0158114));
  // cache: the same count in every run is shown alone
  CHECK(cell(t, "attention", "cache/token").mean == 32.0);
  CHECK_FALSE(cell(t, "attention", "cache/token").has_std());
  CHECK(cell(t, "ssm", "cache/token").mean == 1.0);
  CHECK(contains(t.notes.at(0), "1 or 2 or 3 per cell"));
  CHECK(contains(t.notes.at(2), "model.seq_len = 32"));

  // The three formats of the same numbers.
  const std::string md = render_table(t, TableFormat::markdown);
  CHECK(contains(md, "| attention | 5/5 | 99.00 ± 1.41 | 60.00 ± 30.00 | - | 80.00 ± 14.14 |"));
  CHECK(contains(md, "| ssm | 5/6 | 25.00 | 35.00 ± 21.21 | 35.00 ± 7.07 | 0.00 |"));
  CHECK(contains(md, "| 0.120 ± 0.016 | 32 |"));
  const std::string csv = render_table(t, TableFormat::csv);
  CHECK(contains(csv, "mixer,runs,copy,copy std,mqar,mqar std,multihop,multihop std,"));
  CHECK(contains(csv, "\nattention,5/5,99,1.4142135623730951,60,30,,,80,"));
  CHECK(contains(csv, "\nssm,5/6,25,,35,21.213203435596427,35,7.0710678118654755,0,"));
  const std::string latex = render_table(t, TableFormat::latex);
  CHECK(contains(latex, "\\label{tab:accuracy}"));
  CHECK(contains(latex, "attention & 5/5 & $99.00 \\pm 1.41$ & $60.00 \\pm 30.00$ & - &"));
  CHECK(contains(latex, "ssm & 5/6 & $25.00$ &"));

  // "all" includes it where there is accuracy.
  bool in_all = false;
  for (const auto& table : build_tables(store, "tasks", "all")) in_all |= table.name == "accuracy";
  CHECK(in_all);
}

TEST_CASE("sweep report --table accuracy: the real binary, refusal without accuracy, read-only") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  {
    Store store(db);
    write_task_sweep(store, "tasks", hand_runs());
    // A language-model sweep: eval/loss only.
    PlannedRun lm{"dense seed=0", "dense", R"({"ffn":{"type":"dense"},"seed":0})",
                  content_hash(Json{{"ffn", {{"type", "dense"}}}, {"seed", 0}}), 0};
    const int64_t id = store.register_sweep("lm", "{}", "hash-lm", {lm});
    auto claimed = store.claim_next(id, "w", 3600, 3);
    REQUIRE(claimed);
    store.log_step(claimed->run_id, "w", 10, {{"eval/loss", 2.0}}, 1.0, 0.0);
    store.end_run(claimed->run_id, "w", "finished", "");
  }
  const std::string bin = MIXLAB_SWEEP_BIN;
  const std::string before = testing::read_text(db);

  auto ok = testing::run_command(bin + " report tasks --table accuracy --format csv --db " + db);
  CHECK(ok.status == 0);
  CHECK(contains(ok.output, "\nattention,5/5,99,1.4142135623730951,60,30,"));

  // Every sweep: only the ones with accuracy.
  auto every = testing::run_command(bin + " report --table accuracy --db " + db);
  CHECK(every.status == 0);
  CHECK(contains(every.output, "## tasks"));
  CHECK_FALSE(contains(every.output, "## lm"));

  auto refused = testing::run_command(bin + " report lm --table accuracy --db " + db);
  CHECK(refused.status == 2);
  CHECK(std::count(refused.output.begin(), refused.output.end(), '\n') == 1);
  CHECK(contains(refused.output, "--table"));
  CHECK(contains(refused.output, "eval/accuracy"));
  // "all" on the language-model sweep leaves the table out instead.
  auto all = testing::run_command(bin + " report lm --db " + db);
  CHECK(all.status == 0);
  CHECK_FALSE(contains(all.output, "recall-task accuracy"));

  CHECK(testing::read_text(db) == before);  // a read never writes
}

TEST_CASE("sweep report --table accuracy: a database without accuracy is refused, exit 2") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  {
    Store store(db);
    PlannedRun lm{"dense seed=0", "dense", R"({"seed":0})", content_hash(Json{{"seed", 0}}), 0};
    store.register_sweep("lm", "{}", "hash-lm", {lm});
  }
  auto r =
      testing::run_command(std::string(MIXLAB_SWEEP_BIN) + " report --table accuracy --db " + db);
  CHECK(r.status == 2);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(contains(r.output, "no sweep in the database has an eval/accuracy metric"));
}
