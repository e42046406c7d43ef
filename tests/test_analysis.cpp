// Tables, plots and exports drawn from a database built by hand with known numbers: every
// expected value below is worked out in the comments, not taken from the code under test.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "analysis/export.h"
#include "analysis/plot.h"
#include "analysis/report.h"
#include "analysis/stats.h"
#include "analysis/summary.h"
#include "results/store.h"
#include "table_cell.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;

namespace {

const std::string kSweepBin = MIXLAB_SWEEP_BIN;

struct HandRun {
  std::string variant;
  int seed = 0;
  Json config;
  bool finish = true;
  RunInfo info;
  // step -> (wall_s, metrics at that step)
  std::vector<std::tuple<int64_t, double, std::vector<std::pair<std::string, double>>>> steps;
  double passes = 0.1;  // logged with every step
};

void write_sweep(Store& store, const std::string& sweep, std::vector<HandRun> runs,
                 const std::string& spec_json = "{}") {
  std::vector<PlannedRun> planned;
  for (auto& r : runs) {
    r.config["seed"] = r.seed;
    planned.push_back({r.variant + " seed=" + std::to_string(r.seed), r.variant,
                       canonical_dump(r.config), content_hash(r.config), r.seed});
  }
  const int64_t id = store.register_sweep(sweep, spec_json, "hash-" + sweep, planned);
  // claim_next hands the runs out in expansion order; the unfinished ones come last.
  for (const auto& r : runs) {
    if (!r.finish) break;
    auto claimed = store.claim_next(id, "w", 3600, 3);
    REQUIRE(claimed);
    REQUIRE(claimed->variant == r.variant);
    store.set_run_info(claimed->run_id, "w", r.info);
    for (const auto& [step, wall, values] : r.steps)
      store.log_step(claimed->run_id, "w", step, values, wall, r.passes);
    store.end_run(claimed->run_id, "w", "finished", "");
  }
}

RunInfo info(int64_t total, int64_t active, double flops) {
  RunInfo i;
  i.host = "testhost";
  i.device = "cpu";
  i.params_total = total;
  i.params_active = active;
  i.flops_per_token = flops;
  i.train_tokens = 1000;
  return i;
}

Json config_of(const std::string& type) {
  return {{"ffn", {{"type", type}}},
          {"model", {{"seq_len", 8}}},
          {"train", {{"batch_size", 4}, {"steps", 200}}},
          {"note", "a, \"quoted\" value"}};
}

// The "hand" sweep. Dense: final eval losses 2.1 and 1.9, so the target is 2.0; its last
// evaluation is at step 200, wall 20 s and 24 s (baseline 200 steps, 22 s).
// MoT seed 0: 3.0 @0, 2.5 @100 (10 s), 1.5 @200 (30 s): reaches 2.0 at step 150, 20 s.
// MoT seed 1: 3.0 @0, 2.4 @100 (12 s), 1.4 @200 (22 s): 0.4 of the way, step 140, 16 s.
// "never": ends at 2.5, above the target. A third MoT seed stays pending.
void write_hand_sweep(Store& store) {
  std::vector<HandRun> runs;
  runs.push_back({"dense",
                  0,
                  config_of("dense"),
                  true,
                  info(1000, 1000, 6000),
                  {{0, 0.0, {{"eval/loss", 3.2}}},
                   {100, 10.0, {{"eval/loss", 2.6}, {"time/step_ms", 10}}},
                   {200, 20.0, {{"eval/loss", 2.1}, {"time/step_ms", 12}}}}});
  runs.push_back({"dense",
                  1,
                  config_of("dense"),
                  true,
                  info(1000, 1000, 6000),
                  {{0, 0.0, {{"eval/loss", 3.2}}},
                   {100, 12.0, {{"eval/loss", 2.5}, {"time/step_ms", 12}}},
                   {200, 24.0, {{"eval/loss", 1.9}, {"time/step_ms", 14}}}}});
  runs.push_back({"mot",
                  0,
                  config_of("mot"),
                  true,
                  info(8000, 1100, 6600),
                  {{0, 0.0, {{"eval/loss", 3.0}}},
                   {100,
                    10.0,
                    {{"eval/loss", 2.5},
                     {"time/step_ms", 15},
                     {"layer0/entropy", 0.9},
                     {"layer0/temperature", 1.0},
                     {"layer1/entropy", 0.7}}},
                   {200,
                    30.0,
                    {{"eval/loss", 1.5},
                     {"time/step_ms", 15},
                     {"layer0/entropy", 0.8},
                     {"layer0/temperature", 0.5},
                     {"layer1/entropy", 0.5}}}}});
  runs.push_back({"mot",
                  1,
                  config_of("mot"),
                  true,
                  info(8000, 1100, 6600),
                  {{0, 0.0, {{"eval/loss", 3.0}}},
                   {100,
                    12.0,
                    {{"eval/loss", 2.4},
                     {"time/step_ms", 14},
                     {"layer0/entropy", 0.7},
                     {"layer0/temperature", 1.0},
                     {"layer1/entropy", 0.6}}},
                   {200,
                    22.0,
                    {{"eval/loss", 1.4},
                     {"time/step_ms", 16},
                     {"layer0/entropy", 0.6},
                     {"layer0/temperature", 0.25},
                     {"layer1/entropy", 0.5}}}}});
  Json never_config = config_of("mot");
  never_config["ffn"]["temperature"] = 0.01;  // a config of its own: runs are keyed by config
  runs.push_back({"never",
                  0,
                  never_config,
                  true,
                  info(8000, 1100, 6600),
                  {{0, 0.0, {{"eval/loss", 3.0}}},
                   {100, 10.0, {{"eval/loss", 2.8}}},
                   {200, 20.0, {{"eval/loss", 2.5}}}}});
  HandRun pending{"mot", 2, config_of("mot"), false};
  runs.push_back(pending);
  write_sweep(store, "hand", runs);
}

// "trans": no dense baseline; a transition run switching at step 100.
void write_transition_sweep(Store& store) {
  Json config = {{"ffn", {{"type", "transition"}, {"switch_at_step", 100}}}};
  write_sweep(store, "trans",
              {{"transition",
                0,
                config,
                true,
                info(8000, 1100, 6600),
                {{0, 0.0, {{"eval/loss", 3.0}, {"eval_switch/loss", 3.1}}},
                 {99, 9.9, {{"eval/loss", 2.2}, {"eval_switch/loss", 2.9}}},
                 {200, 20.0, {{"eval/loss", 2.6}, {"eval_switch/loss", 2.6}}}}}});
}

const Table& table_named(const std::vector<Table>& tables, const std::string& name) {
  for (const auto& t : tables)
    if (t.name == name) return t;
  FAIL("no table " << name);
  return tables.front();
}

// RFC 4180: quoted fields may hold commas, doubled quotes and newlines.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\n') {
      row.push_back(field);
      rows.push_back(row);
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any) {
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

// One CSV row by column name. A column that is not there throws, so a renamed or dropped
// column fails the check instead of reading as an empty field.
struct Record {
  std::map<std::string, std::string> fields;
  const std::string& operator[](const std::string& column) const {
    auto it = fields.find(column);
    if (it == fields.end()) throw std::out_of_range("no CSV column \"" + column + "\"");
    return it->second;
  }
};

Record as_record(const std::vector<std::string>& header, const std::vector<std::string>& row) {
  REQUIRE(header.size() == row.size());
  Record out;
  for (size_t i = 0; i < header.size(); ++i) out.fields[header[i]] = row[i];
  return out;
}

// A CSV field holding an upper bound: "<", then the number, which no CSV reader takes for a
// plain value.
void check_csv_upper_bound(const Record& record, const std::string& column, double expected) {
  const std::string& field = record[column];
  REQUIRE(field.substr(0, 1) == "<");
  CHECK(std::stod(field.substr(1)) == doctest::Approx(expected));
  CHECK_THROWS(std::stod(field));
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("stats: mean and sample std, first crossing, interpolation") {
  // 1,2,3,4: mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5; 5/3 -> std 1.2909944.
  MeanStd s = mean_std({1, 2, 3, 4});
  CHECK(s.n == 4);
  CHECK(s.mean == doctest::Approx(2.5));
  CHECK(s.std == doctest::Approx(1.2909944));
  MeanStd with_nan = mean_std({2, NAN, 4});  // NaN is a seed without the number
  CHECK(with_nan.n == 2);
  CHECK(with_nan.mean == doctest::Approx(3));
  CHECK(with_nan.std == doctest::Approx(std::sqrt(2.0)));
  CHECK(mean_std({5}).std == 0);
  CHECK(std::isnan(mean_std({}).mean));

  // 3.0 @0, 2.5 @100, 1.5 @200 comes down to 2.0 halfway through the second segment.
  auto reach = first_reach_below({0, 100, 200}, {3.0, 2.5, 1.5}, 2.0);
  REQUIRE(reach);
  CHECK(*reach == doctest::Approx(150));
  // It goes below 2.0, back up, and below again: the first crossing counts (at 50).
  auto first = first_reach_below({0, 100, 200, 300}, {3.0, 1.0, 2.5, 1.0}, 2.0);
  REQUIRE(first);
  CHECK(*first == doctest::Approx(50));
  CHECK(*first_reach_below({0, 100}, {1.0, 0.5}, 2.0) == 0);  // already below at the start
  CHECK_FALSE(first_reach_below({0, 100}, {3.0, 2.5}, 2.0));

  CHECK(interpolate({0, 100, 200}, {0, 10, 30}, 150) == doctest::Approx(20));
  CHECK(interpolate({0, 100, 200}, {0, 10, 30}, 250) == doctest::Approx(30));  // clamped
}

TEST_CASE("report tables: mean +- std, step and wall-clock to the dense loss, speed-ups") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_hand_sweep(store);
  auto tables = build_tables(store, "hand", "all");

  SUBCASE("summary") {
    const Table& t = table_named(tables, "summary");
    CHECK(cell(t, "mot", "runs").text == "2/3");  // the pending seed is not averaged
    // dense: 2.1 and 1.9 -> 2.0 +- sqrt(0.01 + 0.01) = 0.1414214
    CHECK(cell(t, "dense", "eval loss").mean == doctest::Approx(2.0));
    CHECK(cell(t, "dense", "eval loss").std == doctest::Approx(0.1414214));
    CHECK(cell(t, "dense", "eval loss").n == 2);
    // mot: 1.5 and 1.4 -> 1.45 +- 0.0707107
    CHECK(cell(t, "mot", "eval loss").mean == doctest::Approx(1.45));
    CHECK(cell(t, "mot", "eval loss").std == doctest::Approx(0.0707107));
    // no eval/ppl logged: exp(2.1) = 8.1661699, exp(1.9) = 6.6858944 -> mean 7.4260322
    CHECK(cell(t, "dense", "eval ppl").mean == doctest::Approx(7.4260322));
    CHECK(cell(t, "never", "eval loss").mean == doctest::Approx(2.5));
    CHECK_FALSE(cell(t, "never", "eval loss").has_std());  // one seed: no spread shown
  }

  SUBCASE("speedup") {
    const Table& t = table_named(tables, "speedup");
    // steps 150 and 140: mean 145, std sqrt(25 + 25) = 7.0710678; 200 / 145 = 1.3793103
    CHECK(cell(t, "mot", "step to target").mean == doctest::Approx(145));
    CHECK(cell(t, "mot", "step to target").std == doctest::Approx(7.0710678));
    CHECK(cell(t, "mot", "speed-up (steps)").mean == doctest::Approx(1.3793103));
    // wall 20 s and 16 s: mean 18, std sqrt(4 + 4) = 2.8284271; 22 / 18 = 1.2222222
    CHECK(cell(t, "mot", "wall s to target").mean == doctest::Approx(18));
    CHECK(cell(t, "mot", "wall s to target").std == doctest::Approx(2.8284271));
    CHECK(cell(t, "mot", "speed-up (wall)").mean == doctest::Approx(1.2222222));
    // ms/step: dense runs average 11 and 13 -> 12; mot 15 and 15 -> 15; 15 / 12 = 1.25
    CHECK(cell(t, "dense", "ms/step").mean == doctest::Approx(12));
    CHECK(cell(t, "mot", "ms/step").mean == doctest::Approx(15));
    CHECK(cell(t, "mot", "step time vs dense").mean == doctest::Approx(1.25));
    CHECK(cell(t, "mot", "reached").text == "2/2");
    CHECK(cell(t, "mot", "speed-up (steps)").bound == Cell::Bound::none);
    // dense seed 0 (2.6 @100 -> 2.1 @200) never gets to 2.0; seed 1 (2.5 -> 1.9) does at
    // 100 + (0.5 / 0.6) * 100 = 183.33 (wall 12 + 0.8333 * 12 = 22 s). Seed 0 counts at its
    // last evaluation, step 200 and 20 s: the mean is at least (183.33 + 200) / 2 = 191.67
    // steps and 21 s, so the speed-ups are at most 200 / 191.67 = 1.0434783 and 22 / 21 =
    // 1.0476190. (Averaging the seed that reached it alone gave dense a speed-up of 1.09 over
    // itself.)
    CHECK(cell(t, "dense", "reached").text == "1/2");
    CHECK(cell(t, "dense", "step to target").mean == doctest::Approx(191.6667));
    CHECK(cell(t, "dense", "step to target").bound == Cell::Bound::more_than);
    CHECK_FALSE(cell(t, "dense", "step to target").has_std());
    CHECK(cell(t, "dense", "speed-up (steps)").mean == doctest::Approx(1.0434783));
    CHECK(cell(t, "dense", "speed-up (steps)").bound == Cell::Bound::less_than);
    CHECK(cell(t, "dense", "wall s to target").mean == doctest::Approx(21));
    CHECK(cell(t, "dense", "wall s to target").bound == Cell::Bound::more_than);
    CHECK(cell(t, "dense", "speed-up (wall)").mean == doctest::Approx(1.0476190));
    CHECK(cell(t, "dense", "speed-up (wall)").bound == Cell::Bound::less_than);
    // "never" ends at 2.5: at least 200 steps and 20 s, a speed-up of at most 1 and 22 / 20.
    CHECK(cell(t, "never", "reached").text == "0/1");
    CHECK(cell(t, "never", "step to target").mean == doctest::Approx(200));
    CHECK(cell(t, "never", "step to target").bound == Cell::Bound::more_than);
    CHECK(cell(t, "never", "speed-up (wall)").mean == doctest::Approx(1.1));
    CHECK(cell(t, "never", "speed-up (wall)").bound == Cell::Bound::less_than);
    bool never_noted = false, dense_noted = false, bounds_noted = false;
    for (const auto& note : t.notes) {
      never_noted = never_noted || contains(note, "never: no finished seed reached");
      dense_noted = dense_noted || contains(note, "dense: 1 of 2 finished seeds never");
      bounds_noted = bounds_noted || contains(note, "the speed-ups upper bounds (<)");
    }
    CHECK(never_noted);
    CHECK(dense_noted);
    CHECK(bounds_noted);
    CHECK(contains(t.notes.front(), "2.0000"));
  }

  SUBCASE("temperature") {
    const Table& t = table_named(tables, "temperature");
    // layers 0 and 1 have entropy, layer 0 a temperature
    CHECK(t.columns.size() == 3 + 4);
    // entropy 0.8 and 0.6 -> 0.7 +- 0.1414214
    CHECK(cell(t, "mot", "L0 entropy").mean == doctest::Approx(0.7));
    CHECK(cell(t, "mot", "L0 entropy").std == doctest::Approx(0.1414214));
    // log 0.5 = -0.6931472, log 0.25 = -1.3862944: mean -1.0397208, std 0.4901291
    CHECK(cell(t, "mot", "L0 log T").mean == doctest::Approx(-1.0397208));
    CHECK(cell(t, "mot", "L0 log T").std == doctest::Approx(0.4901291));
    CHECK(cell(t, "mot", "L1 entropy").mean == doctest::Approx(0.5));
    CHECK(cell(t, "dense", "L0 entropy").text == "-");
  }

  SUBCASE("costs") {
    const Table& t = table_named(tables, "costs");
    CHECK(cell(t, "mot", "params total").mean == 8000);
    CHECK(cell(t, "mot", "params active").mean == 1100);
    CHECK(cell(t, "mot", "FLOPs/token").mean == 6600);
    CHECK(cell(t, "mot", "FLOPs vs dense").mean == doctest::Approx(1.1));
    // final time/wall_s is not logged in this database: "-"
    CHECK(cell(t, "mot", "wall s").text == "-");
  }

  SUBCASE("no transition runs: left out of 'all', explained when asked for") {
    for (const auto& t : tables) CHECK(t.name != "transition");
    auto only = build_tables(store, "hand", "transition");
    REQUIRE(only.size() == 1);
    CHECK(only[0].rows.empty());
    CHECK(contains(only[0].notes.at(0), "no transition runs"));
  }

  SUBCASE("renderings carry the numbers") {
    const Table& t = table_named(tables, "speedup");
    const std::string md = render_table(t, TableFormat::markdown);
    CHECK(
        contains(md, "| mot | 2/3 | 2/2 | 1.4500 ± 0.0707 | 145 ± 7 | 1.38 | 18.0 ± 2.8 | 1.22 |"));
    CHECK(contains(md, "| never | 1/1 | 0/1 | 2.5000 | > 200 | < 1.00 | > 20.0 | < 1.10 |"));
    const std::string tex = render_table(t, TableFormat::latex);
    CHECK(contains(tex, "mot & 2/3 & 2/2 & $1.4500 \\pm 0.0707$ & $145 \\pm 7$ & $1.38$"));
    CHECK(contains(tex, "never & 1/1 & 0/1 & $2.5000$ & $> 200$ & $< 1.00$"));
    CHECK(contains(tex, "\\toprule"));
    // The notes are printed under the table (escaped), not hidden in comments.
    CHECK(contains(tex, "never: no finished seed reached the target\\par"));
    CHECK(contains(tex, "upper bounds (\\textless{})"));
    CHECK_FALSE(contains(tex, "\n%  "));
    const auto rows = parse_csv(render_table(t, TableFormat::csv));
    REQUIRE(rows.size() == 4);  // header, dense, mot, never
    auto mot = as_record(rows[0], rows[2]);
    CHECK(mot["variant"] == "mot");
    CHECK(mot["reached"] == "2/2");
    CHECK(std::stod(mot["step to target"]) == doctest::Approx(145));
    CHECK(std::stod(mot["step to target std"]) == doctest::Approx(7.0710678));
    CHECK(std::stod(mot["speed-up (wall)"]) == doctest::Approx(1.2222222));
    auto never = as_record(rows[0], rows[3]);
    CHECK(never["reached"] == "0/1");
    CHECK(never["step to target"] == ">200");
    CHECK(never["speed-up (steps)"] == "<1");
    CHECK(never["speed-up (wall)"] == "<1.1000000000000001");  // 22 / 20, every digit
    const std::string temp_md =
        render_table(table_named(tables, "temperature"), TableFormat::markdown);
    CHECK(contains(temp_md, "-1.040 ± 0.490"));
  }
}

TEST_CASE("speedup: seeds that never reach the target make the speed-up a bound in every format") {
  // Dense: both seeds 3.0 @0 -> 2.0 @200 (20 s): target 2.0, baseline 200 steps, 20 s.
  // "lucky" seed 0: 3.0 @0 -> 1.8 @100 (10 s) -> 1.8 @200: crosses 2.0 at 1 / 1.2 of the first
  // segment, step 83.33, 8.333 s. Seed 1 stays at 3.0. Its mean loss, 2.4 +- 0.8485, is worse
  // than dense's, yet the lucky seed alone gives a speed-up of 200 / 83.33 = 2.4. Counting
  // seed 1 at its last evaluation (200 steps, 20 s) bounds the mean below by 141.67 steps and
  // 14.17 s: the speed-ups are at most 200 / 141.67 = 1.4117647 and 20 / 14.17 = 1.4117647.
  auto curve = [](double mid, double end) {
    return std::vector<std::tuple<int64_t, double, std::vector<std::pair<std::string, double>>>>{
        {0, 0.0, {{"eval/loss", 3.0}}},
        {100, 10.0, {{"eval/loss", mid}}},
        {200, 20.0, {{"eval/loss", end}}}};
  };
  Json lucky = config_of("mot");
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_sweep(store, "lucky",
              {{"dense", 0, config_of("dense"), true, info(1, 1, 1), curve(2.5, 2.0)},
               {"dense", 1, config_of("dense"), true, info(1, 1, 1), curve(2.5, 2.0)},
               {"lucky", 0, lucky, true, info(1, 1, 1), curve(1.8, 1.8)},
               {"lucky", 1, lucky, true, info(1, 1, 1), curve(3.0, 3.0)}});
  const Table t = build_tables(store, "lucky", "speedup").at(0);
  CHECK(cell(t, "lucky", "reached").text == "1/2");
  CHECK(cell(t, "lucky", "speed-up (steps)").mean == doctest::Approx(1.4117647));
  CHECK(cell(t, "lucky", "speed-up (steps)").bound == Cell::Bound::less_than);
  CHECK(cell(t, "lucky", "step to target").mean == doctest::Approx(141.6667));
  CHECK(cell(t, "lucky", "wall s to target").mean == doctest::Approx(14.16667));
  CHECK(cell(t, "lucky", "speed-up (wall)").mean == doctest::Approx(1.4117647));
  CHECK(cell(t, "dense", "reached").text == "2/2");
  CHECK(cell(t, "dense", "speed-up (steps)").bound == Cell::Bound::none);
  CHECK(cell(t, "dense", "speed-up (steps)").mean == doctest::Approx(1.0));

  const std::string md = render_table(t, TableFormat::markdown);
  INFO(md);
  CHECK(contains(md, "| lucky | 2/2 | 1/2 | 2.4000 ± 0.8485 | > 142 | < 1.41 | > 14.2 | < 1.41 |"));
  CHECK(contains(md, "lucky: 1 of 2 finished seeds never reached the target"));
  CHECK_FALSE(contains(md, "2.40 |"));  // the lucky seed's own speed-up appears nowhere
  const std::string tex = render_table(t, TableFormat::latex);
  CHECK(contains(tex,
                 "lucky & 2/2 & 1/2 & $2.4000 \\pm 0.8485$ & $> 142$ & $< 1.41$ & "
                 "$> 14.2$ & $< 1.41$"));
  CHECK(contains(tex, "lucky: 1 of 2 finished seeds never reached the target\\par"));
  const auto rows = parse_csv(render_table(t, TableFormat::csv));
  REQUIRE(rows.size() == 3);
  auto row = as_record(rows[0], rows[2]);
  CHECK(row["variant"] == "lucky");
  CHECK(row["reached"] == "1/2");
  check_csv_upper_bound(row, "speed-up (steps)", 1.4117647);
  CHECK(row["step to target"].substr(0, 1) == ">");
  CHECK(row["speed-up (wall)"].substr(0, 1) == "<");
  CHECK(std::stod(as_record(rows[0], rows[1])["speed-up (steps)"]) == 1.0);
}

TEST_CASE("speedup: leaving the plateau sooner is not a post-plateau speed-up") {
  // Runs of 800 steps, warm-up 0.125 * 800 = 100 steps, evaluated every 100 steps.
  // Dense (two seeds, 0.01 apart at step 200 only), mean curve:
  //   2.60 @0, 2.599 @100, 2.46 @200, 2.44 @300, 2.24 @400, 2.04 @500, 1.84 @600, 1.64 @700,
  //   1.63 @800; wall = step / 10 s.
  // Interval slopes: [0,100] -0.00001 (starts inside warm-up: left out), [100,200] -0.00139,
  // [200,300] -0.0002, [300,400] -0.002, [700,800] -0.0001 (second half: left out). The
  // slowest is [200,300]: P = (2.46 + 2.44) / 2 = 2.45. (Seed 1 alone, 2.45 -> 2.44, would
  // give P = 2.445: the seeds are averaged first.) Target = 1.63; L0 = 2.45 - 0.25 * 0.82 =
  // 2.245, which dense reaches at 300 + 0.195 / 0.002 = 397.5 (39.75 s); it reaches the target
  // at 800: 402.5 post-plateau steps, 40.25 s.
  // MoT: dense's curve 200 steps earlier (2.44 @100, 2.24 @200, ..., 1.64 @500, 1.63 @600),
  // 1.25x slower per step (wall = step / 8 s). Target at step 600 (75 s): plain speed-ups
  // 800 / 600 = 1.3333 and 80 / 75 = 1.0667. L0 at 197.5 (24.6875 s): 402.5 post-plateau
  // steps, 50.3125 s: speed-ups 402.5 / 402.5 = 1 and 40.25 / 50.3125 = 0.8.
  // "stuck" stays at 2.50 after step 100: never reaches L0; "half" has one seed of each.
  using Curve =
      std::vector<std::tuple<int64_t, double, std::vector<std::pair<std::string, double>>>>;
  auto curve = [](std::vector<double> losses, double steps_per_s) {
    Curve c;
    for (size_t i = 0; i < losses.size(); ++i)
      c.push_back({int64_t(100 * i), 100.0 * double(i) / steps_per_s, {{"eval/loss", losses[i]}}});
    return c;
  };
  auto config = [](const std::string& type) {
    return Json{{"ffn", {{"type", type}}}, {"train", {{"steps", 800}, {"warmup_frac", 0.125}}}};
  };
  const std::vector<double> dense0 = {2.60, 2.599, 2.47, 2.44, 2.24, 2.04, 1.84, 1.64, 1.63};
  const std::vector<double> dense1 = {2.60, 2.599, 2.45, 2.44, 2.24, 2.04, 1.84, 1.64, 1.63};
  const std::vector<double> mot = {2.60, 2.44, 2.24, 2.04, 1.84, 1.64, 1.63, 1.62, 1.61};
  const std::vector<double> stuck = {2.60, 2.50, 2.50, 2.50, 2.50, 2.50, 2.50, 2.50, 2.50};
  // Configs other than "mot"'s: a run is identified by its config.
  Json stuck_config = config("mot"), half = config("mot");
  stuck_config["note"] = "stuck";
  half["note"] = "half";
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_sweep(store, "plateau",
              {{"dense", 0, config("dense"), true, info(1, 1, 1), curve(dense0, 10)},
               {"dense", 1, config("dense"), true, info(1, 1, 1), curve(dense1, 10)},
               {"mot", 0, config("mot"), true, info(1, 1, 1), curve(mot, 8)},
               {"mot", 1, config("mot"), true, info(1, 1, 1), curve(mot, 8)},
               {"stuck", 0, stuck_config, true, info(1, 1, 1), curve(stuck, 10)},
               {"half", 0, half, true, info(1, 1, 1), curve(mot, 8)},
               {"half", 1, half, true, info(1, 1, 1), curve(stuck, 8)}});
  const Table t = build_tables(store, "plateau", "speedup").at(0);
  INFO(render_table(t, TableFormat::markdown));
  CHECK(cell(t, "mot", "step to target").mean == doctest::Approx(600));
  CHECK(cell(t, "mot", "speed-up (steps)").mean == doctest::Approx(1.3333333));
  CHECK(cell(t, "mot", "speed-up (wall)").mean == doctest::Approx(1.0666667));
  CHECK(cell(t, "mot", "post-plateau steps").mean == doctest::Approx(402.5));
  CHECK(cell(t, "mot", "speed-up post-plateau (steps)").mean == doctest::Approx(1.0));
  CHECK(cell(t, "mot", "speed-up post-plateau (steps)").bound == Cell::Bound::none);
  CHECK(cell(t, "mot", "post-plateau wall s").mean == doctest::Approx(50.3125));
  CHECK(cell(t, "mot", "speed-up post-plateau (wall)").mean == doctest::Approx(0.8));
  CHECK(cell(t, "dense", "post-plateau steps").mean == doctest::Approx(402.5));
  CHECK(cell(t, "dense", "speed-up post-plateau (steps)").mean == doctest::Approx(1.0));
  CHECK(cell(t, "stuck", "post-plateau steps").text == "not escaped");
  // One seed escaped, one stayed on the plateau: no number, not even a bound.
  CHECK(cell(t, "half", "speed-up post-plateau (steps)").text == "1/2 escaped");
  bool defined = false;
  for (const auto& note : t.notes)
    defined = defined || (contains(note, "P = 2.4500") && contains(note, "steps 200-300") &&
                          contains(note, "= 2.2450") && contains(note, "402 steps, 40.2 s"));
  CHECK(defined);
}

TEST_CASE("report csv: every number reads back exactly (17 significant digits)") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_hand_sweep(store);
  int numbers = 0;
  bool needs_more_than_10_digits = false;
  for (const Table& t : build_tables(store, "hand", "all")) {
    CAPTURE(t.name);
    const auto rows = parse_csv(render_table(t, TableFormat::csv));
    REQUIRE(rows.size() == t.rows.size() + 1);
    for (size_t r = 0; r < t.rows.size(); ++r) {
      auto record = as_record(rows[0], rows[r + 1]);
      for (size_t c = 0; c < t.columns.size(); ++c) {
        const Cell& cell = t.rows[r][c];
        if (cell.kind != Cell::Kind::number) continue;
        CAPTURE(t.columns[c]);
        std::string field = record[t.columns[c]];
        if (cell.bound != Cell::Bound::none) field = field.substr(1);
        CHECK(std::stod(field) == cell.mean);  // exact: not Approx
        if (cell.has_std()) CHECK(std::stod(record[t.columns[c] + " std"]) == cell.std);
        needs_more_than_10_digits =
            needs_more_than_10_digits || std::stod(fmt::format("{:.10g}", cell.mean)) != cell.mean;
        ++numbers;
      }
    }
  }
  CHECK(numbers > 30);
  CHECK(needs_more_than_10_digits);  // e.g. 200 / 145: ten digits would not round-trip
}

namespace {

// Three seeds ending at 10000, 10000.0001 and 10000.0002: std 1e-4. The one-pass formula
// (sum x^2 - (sum x)^2 / n) / (n - 1) subtracts two numbers near 3e8 and keeps about one
// digit of the 1e-8 variance. Writes the sweep "precise" and returns the std computed by a
// float64 two-pass loop.
double write_precise_sweep(const std::string& db) {
  const std::vector<double> finals = {10000.0, 10000.0001, 10000.0002};
  Store store(db);
  std::vector<HandRun> runs;
  for (int seed = 0; seed < 3; ++seed)
    runs.push_back(
        {"v",
         seed,
         config_of("mot"),
         true,
         info(1, 1, 1),
         {{0, 0.0, {{"eval/loss", 11000.0}}}, {10, 1.0, {{"eval/loss", finals[size_t(seed)]}}}}});
  runs.push_back({"v", 3, config_of("mot"), false});  // pending: not averaged
  write_sweep(store, "precise", runs);
  double mean = 0, squares = 0, sum = 0, sum_squares = 0;
  for (double x : finals) mean += x / 3;
  for (double x : finals) {
    squares += (x - mean) * (x - mean);
    sum += x;
    sum_squares += x * x;
  }
  const double expected = std::sqrt(squares / 2);
  const double one_pass = std::sqrt(std::max(0.0, (sum_squares - sum * sum / 3) / 2));
  REQUIRE(std::fabs(one_pass - expected) / expected > 1e-3);  // the case tells them apart
  return expected;
}

// n, mean and std of the "precise" sweep's final eval loss in the variant_final view.
std::vector<std::string> precise_variant_final(const std::string& db) {
  const auto rows =
      testing::sql_rows(db,
                        "SELECT n, printf('%.17g', mean), printf('%.17g', std) FROM variant_final "
                        "WHERE sweep = 'precise' AND variant = 'v' AND key = 'eval/loss'");
  REQUIRE(rows.size() == 1);
  return rows[0];
}

}  // namespace

TEST_CASE("variant_final: two-pass sample std, exact where the one-pass formula cancels") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  const double expected = write_precise_sweep(db);
  const auto row = precise_variant_final(db);
  CHECK(row[0] == "3");
  CHECK(std::stod(row[1]) == doctest::Approx(10000.0001).epsilon(1e-15));
  CHECK(std::fabs(std::stod(row[2]) - expected) / expected < 1e-9);
  CHECK(std::stod(row[2]) == doctest::Approx(1e-4).epsilon(1e-6));
}

TEST_CASE("variant_final: a version-1 database gets the new view when a write command opens it") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  const double expected = write_precise_sweep(db);
  // Put back version 1's one-pass view and version number.
  auto old = testing::run_command(
      "sqlite3 " + db +
      " \"DROP VIEW variant_final; CREATE VIEW variant_final AS"
      " SELECT s.name AS sweep, sr.variant, f.key, COUNT(f.value) AS n, AVG(f.value) AS mean,"
      " CASE WHEN COUNT(f.value) > 1 THEN sqrt(max(0.0, (SUM(f.value * f.value) -"
      " SUM(f.value) * SUM(f.value) / COUNT(f.value)) / (COUNT(f.value) - 1))) ELSE 0.0 END AS std"
      " FROM run_final f JOIN sweep_runs sr USING (run_id) JOIN sweeps s USING (sweep_id)"
      " JOIN runs r USING (run_id) WHERE r.status = 'finished' GROUP BY s.name, sr.variant, f.key;"
      " CREATE VIEW mine AS SELECT 1; PRAGMA user_version = 1;\"");
  INFO(old.output);
  REQUIRE(old.status == 0);
  REQUIRE(std::fabs(std::stod(precise_variant_final(db)[2]) - expected) / expected > 1e-3);
  { Store upgraded(db, false); }  // what sweep run does first
  CHECK(std::fabs(std::stod(precise_variant_final(db)[2]) - expected) / expected < 1e-9);
  CHECK(testing::sql_int(db, "PRAGMA user_version") >= 2);
  CHECK(testing::sql_int(db, "SELECT * FROM mine") == 1);  // a user's own view is kept
}

TEST_CASE("passes: the mean over the finished seeds, in the costs table and the run summary") {
  // Seeds 0 and 1 of "mot" end at 0.2 and 0.4 passes: 0.3 +- 0.1414214. A third seed is
  // pending (its passes would be NULL), and no single run's value is the answer.
  testing::TempDir dir;
  Store store(dir / "r.db");
  auto ending = [](double loss) {
    return std::vector<std::tuple<int64_t, double, std::vector<std::pair<std::string, double>>>>{
        {10, 1.0, {{"eval/loss", loss}}}};
  };
  write_sweep(store, "passes",
              {{"mot", 0, config_of("mot"), true, info(1, 1, 1), ending(2.0), 0.2},
               {"mot", 1, config_of("mot"), true, info(1, 1, 1), ending(2.2), 0.4},
               {"mot", 2, config_of("mot"), false}});
  const Table costs = build_tables(store, "passes", "costs").at(0);
  CHECK(cell(costs, "mot", "passes").mean == doctest::Approx(0.3));
  CHECK(cell(costs, "mot", "passes").std == doctest::Approx(0.1414214));
  CHECK(cell(costs, "mot", "passes").n == 2);
  const auto summary = summarize_sweep(store, "passes");
  REQUIRE(summary.size() == 1);
  CHECK(summary[0].passes == doctest::Approx(0.3));
  CHECK(contains(format_summary("passes", summary), " 0.300\n"));
}

TEST_CASE("sql helpers fail the test on a query error instead of reading 0") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  {
    Store store(db);
    write_hand_sweep(store);
  }
  CHECK(testing::sql_int(db, "SELECT COUNT(*) FROM runs") == 6);
  // A renamed or missing column, a missing table, no row, a NULL, a real, two rows: each
  // throws, where reading the sqlite3 shell's output as a number gave 0 and passed.
  CHECK_THROWS_WITH_AS(testing::sql_int(db, "SELECT COUNT(*) FROM runs WHERE hots IS NULL"),
                       doctest::Contains("no such column: hots"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db, "SELECT COUNT(*) FROM nothing"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db, "SELECT run_id FROM runs WHERE 0"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db, "SELECT MAX(run_id) FROM runs WHERE 0"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db, "SELECT 0.5"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db, "SELECT run_id FROM runs"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_rows(db, "SELECT error FROM runs"), testing::SqlError);
  CHECK_THROWS_AS(testing::sql_int(db + ".missing", "SELECT 1"), testing::SqlError);
  testing::write_text(dir / "not.db", std::string(4096, 'x'));
  CHECK_THROWS_AS(testing::sql_int(dir / "not.db", "SELECT 1 FROM runs"), testing::SqlError);
}

TEST_CASE("stats: the sample std is stable when the spread is tiny next to the values") {
  // 1e9 + {1, 2, 3}: std exactly 1. A one-pass formula loses every digit here.
  MeanStd s = mean_std({1e9 + 1, 1e9 + 2, 1e9 + 3});
  CHECK(s.mean == 1e9 + 2);
  CHECK(s.std == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("report: transition table, and a sweep without a dense baseline says so") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  write_transition_sweep(store);
  auto tables = build_tables(store, "trans", "all");
  const Table& t = table_named(tables, "transition");
  CHECK(cell(t, "transition", "switch at step").mean == 100);
  CHECK(cell(t, "transition", "eval loss before").mean == doctest::Approx(2.2));
  CHECK(cell(t, "transition", "switch-eval loss before").mean == doctest::Approx(2.9));
  CHECK(cell(t, "transition", "eval loss after").mean == doctest::Approx(2.6));
  CHECK(cell(t, "transition", "final switch-eval loss").mean == doctest::Approx(2.6));
  const Table& speed = table_named(tables, "speedup");
  CHECK(speed.rows.empty());
  CHECK(contains(speed.notes.at(0), "no dense baseline"));
  CHECK_THROWS_AS(build_tables(store, "trans", "nonsense"), ConfigError);
}

TEST_CASE("report: the grid table lays a two-key grid out as the paper's table 4") {
  testing::TempDir dir;
  Store store(dir / "r.db");
  // Keys sorted: rows ffn.group_size (1, 8), columns ffn.n_experts (2, 4). Cell (8, 4) has no
  // variant. (1, 2): seeds end at 3.0 and 3.2 -> 3.1 +- 0.1414.
  auto mot = [](int64_t g, int64_t e) {
    Json c = config_of("mot");
    c["ffn"]["group_size"] = g;
    c["ffn"]["n_experts"] = e;
    return c;
  };
  auto ending_at = [](double loss) {
    return std::vector<std::tuple<int64_t, double, std::vector<std::pair<std::string, double>>>>{
        {0, 0.0, {{"eval/loss", 5.0}}}, {10, 1.0, {{"eval/loss", loss}}}};
  };
  write_sweep(store, "gridded",
              {{"dense", 0, config_of("dense"), true, info(1, 1, 1), ending_at(2.0)},
               {"mot g=1 e=2", 0, mot(1, 2), true, info(1, 1, 1), ending_at(3.0)},
               {"mot g=1 e=2", 1, mot(1, 2), true, info(1, 1, 1), ending_at(3.2)},
               {"mot g=1 e=4", 0, mot(1, 4), true, info(1, 1, 1), ending_at(2.5)},
               {"mot g=8 e=2", 0, mot(8, 2), true, info(1, 1, 1), ending_at(2.25)}},
              R"({"grid": {"ffn.n_experts": [2, 4], "ffn.group_size": [1, 8]}})");
  auto tables = build_tables(store, "gridded", "grid");
  REQUIRE(tables.size() == 1);
  const std::string md = render_table(tables[0], TableFormat::markdown);
  INFO(md);
  CHECK(contains(md, "| type | group_size \\ n_experts | 2 | 4 |"));
  CHECK(contains(md, "| mot | 1 | 3.1000 ± 0.1414 | 2.5000 |"));
  CHECK(contains(md, "| mot | 8 | 2.2500 | - |"));
  CHECK(contains(md, "dense (outside the grid): eval loss 2.0000 (1 finished)"));

  // A sweep without a two-key grid: the table says why it is empty, and "all" leaves it out.
  Store other(dir / "other.db");
  write_hand_sweep(other);
  auto hand = build_tables(other, "hand", "grid");
  REQUIRE(hand.size() == 1);
  CHECK(hand[0].rows.empty());
  for (const auto& t : build_tables(other, "hand", "all")) CHECK(t.name != "grid");
}

TEST_CASE("plot: every variant gets its own line style, even past the palette") {
  // 22 variants: the 20 colours once each, then two repeat dashed.
  testing::TempDir dir;
  Store store(dir / "r.db");
  std::vector<HandRun> runs;
  for (int v = 0; v < 22; ++v) {
    Json config = config_of("mot");
    config["ffn"]["n_experts"] = v + 1;
    runs.push_back({"v" + std::to_string(v),
                    0,
                    config,
                    true,
                    info(1, 1, 1),
                    {{0, 0.0, {{"eval/loss", 3.0}}}, {10, 1.0, {{"eval/loss", 2.0 + v}}}}});
  }
  write_sweep(store, "many", runs);
  PlotOptions options;
  options.sweep = "many";
  options.metric = "eval/loss";
  options.out = dir / "many.png";
  const std::string gp = testing::read_text(write_plot_files(store, options).script);
  std::set<std::string> colours, styles;
  size_t at = 0;
  while ((at = gp.find("with lines lw 2 lc rgb \"", at)) != std::string::npos) {
    at += std::string("with lines lw 2 lc rgb \"").size();
    const std::string colour = gp.substr(at, 7);
    const size_t dt = gp.find("dt ", at);
    REQUIRE(dt != std::string::npos);
    colours.insert(colour);
    styles.insert(colour + " " + gp.substr(dt + 3, gp.find(' ', dt + 3) - dt - 3));
  }
  CHECK(colours.size() == 20);
  CHECK(styles.size() == 22);
}

TEST_CASE("sweep report, plot and export through the real binary") {
  testing::TempDir dir;
  const std::string db = dir / "r.db";
  {
    Store store(db);
    write_hand_sweep(store);
    write_transition_sweep(store);
  }

  SUBCASE("report: every sweep by default, one table in each format") {
    auto all = testing::run_command(kSweepBin + " report --db " + db);
    INFO(all.output);
    CHECK(all.status == 0);
    CHECK(contains(all.output, "## hand"));
    CHECK(contains(all.output, "## trans"));
    auto csv =
        testing::run_command(kSweepBin + " report hand --table summary --format csv --db " + db);
    CHECK(csv.status == 0);
    auto rows = parse_csv(csv.output);
    REQUIRE(rows.size() == 4);
    CHECK(as_record(rows[0], rows[1])["eval loss"] == "2");
    CHECK(std::stod(as_record(rows[0], rows[1])["eval loss std"]) == doctest::Approx(0.1414214));
    auto tex =
        testing::run_command(kSweepBin + " report hand --table speedup --format latex --db " + db);
    CHECK(contains(tex.output, "$145 \\pm 7$"));
    // Dense: one of its two seeds reached its own final loss; the CSV says so and gives the
    // speed-up as a bound (200 / 191.67 = 1.0434783), not as the other seed's 1.09.
    auto speed_csv =
        testing::run_command(kSweepBin + " report hand --table speedup --format csv --db " + db);
    CHECK(speed_csv.status == 0);
    auto speed = parse_csv(speed_csv.output);
    REQUIRE(speed.size() == 4);
    auto dense = as_record(speed[0], speed[1]);
    CHECK(dense["variant"] == "dense");
    CHECK(dense["reached"] == "1/2");
    check_csv_upper_bound(dense, "speed-up (steps)", 1.0434783);
    auto bad = testing::run_command(kSweepBin + " report hand --format html --db " + db);
    CHECK(bad.status == 2);
  }

  SUBCASE("plot: PNG and SVG with the data file holding the seed statistics") {
    const std::string png = dir / "loss.png";
    auto r = testing::run_command(kSweepBin + " plot hand --metric eval/loss --out " + png +
                                  " --db " + db);
    INFO(r.output);
    REQUIRE(r.status == 0);
    const std::string image = testing::read_text(png);
    REQUIRE(image.size() > 1000);
    CHECK(image.substr(1, 3) == "PNG");
    const std::string dat = testing::read_text(dir / "loss.dat");
    // mot at step 100: 2.5 and 2.4 -> x 100, n 2, mean 2.45, std 0.0707..., min 2.4, max 2.5
    CHECK(contains(dat, "variant mot seeds 2"));
    CHECK(contains(dat, "\n100 100 2 2.45 0.07071067812 2.4 2.5\n"));
    CHECK(contains(dat, "\n200 200 2 1.45 0.07071067812 1.4 1.5\n"));
    CHECK(contains(testing::read_text(dir / "loss.gp"), "title \"mot (2 seeds)\""));

    const std::string svg = dir / "wall.svg";
    r = testing::run_command(kSweepBin + " plot hand --metric eval/loss --x wall --out " + svg +
                             " --db " + db);
    REQUIRE(r.status == 0);
    CHECK(contains(testing::read_text(svg), "<svg"));
    // wall-clock x: mot's step 100 at 10 s and 12 s -> 11
    CHECK(contains(testing::read_text(dir / "wall.dat"), "\n11 100 2 2.45 "));

    r = testing::run_command(kSweepBin + " plot hand --metric eval/loss --x tokens --out " +
                             (dir / "tokens.png") + " --db " + db);
    REQUIRE(r.status == 0);
    // tokens = step x batch 4 x sequence 8: step 100 -> 3200
    CHECK(contains(testing::read_text(dir / "tokens.dat"), "\n3200 100 2 2.45 "));

    r = testing::run_command(kSweepBin + " plot hand --metric 'layer*/entropy' --out " +
                             (dir / "entropy.png") + " --db " + db);
    REQUIRE(r.status == 0);
    const std::string entropy = testing::read_text(dir / "entropy.dat");
    CHECK(contains(entropy, "key layer0/entropy variant mot"));
    CHECK(contains(entropy, "key layer1/entropy variant mot"));
    CHECK_FALSE(contains(entropy, "variant dense"));  // dense has no layer statistics
    CHECK(contains(testing::read_text(dir / "entropy.gp"), "set multiplot layout 1,2"));
  }

  SUBCASE("plot: bad input exits 2, missing gnuplot exits 1 with one line") {
    auto r = testing::run_command(kSweepBin + " plot hand --metric nothing/here --out " +
                                  (dir / "x.png") + " --db " + db);
    CHECK(r.status == 2);
    r = testing::run_command(kSweepBin + " plot hand --metric eval/loss --out " + (dir / "x.pdf") +
                             " --db " + db);
    CHECK(r.status == 2);
    r = testing::run_command("PATH=/nonexistent " + kSweepBin +
                             " plot hand --metric eval/loss --out " + (dir / "y.png") + " --db " +
                             db);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(contains(r.output, "gnuplot not found"));
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }

  SUBCASE("export: runs.csv and metrics.csv read back to the database's values") {
    const std::string out = dir / "csv";
    auto r = testing::run_command(kSweepBin + " export hand --csv " + out + " --db " + db);
    INFO(r.output);
    REQUIRE(r.status == 0);
    auto runs = parse_csv(testing::read_text(out + "/runs.csv"));
    Store store(db, false);
    auto expected = store.sweep_runs("hand");
    REQUIRE(runs.size() == expected.size() + 1);
    for (size_t i = 0; i < expected.size(); ++i) {
      auto rec = as_record(runs[0], runs[i + 1]);
      CHECK(rec["sweep"] == "hand");
      CHECK(rec["variant"] == expected[i].variant);
      CHECK(rec["name"] == expected[i].name);
      CHECK(rec["seed"] == std::to_string(expected[i].seed));
      CHECK(rec["status"] == expected[i].status);
      // the config holds "a, \"quoted\" value": commas and quotes survive the quoting
      CHECK(rec["config_json"] == expected[i].config_json);
      CHECK(contains(rec["config_json"], "a, \\\"quoted\\\" value"));
    }
    CHECK(as_record(runs[0], runs[3])["params_total"] == "8000");
    CHECK(as_record(runs[0], runs[6])["status"] == "pending");

    auto metrics = parse_csv(testing::read_text(out + "/metrics.csv"));
    // 4 finished runs with 3 + 3 + 3 + 3 eval/loss, 2 + 2 + 2 + 2 time/step_ms, 2 x 6 layer
    // points, and "never" with 3: 12 + 8 + 12 + 3 = 35 points.
    REQUIRE(metrics.size() == 35 + 1);
    bool found = false;
    for (size_t i = 1; i < metrics.size(); ++i) {
      auto rec = as_record(metrics[0], metrics[i]);
      if (rec["variant"] == "mot" && rec["seed"] == "1" && rec["key"] == "eval/loss" &&
          rec["step"] == "100") {
        found = true;
        CHECK(std::stod(rec["value"]) == 2.4);  // 17 digits: exact round trip
        CHECK(std::stod(rec["wall_s"]) == 12.0);
        CHECK(rec["sweep"] == "hand");
      }
    }
    CHECK(found);
  }
}
