// The recall tasks' generators against hand-built examples, Zoology's documented MQAR example,
// and the properties the token-mixing table relies on: targets only where a question is asked,
// determinism by (seed, step), and no evaluation example ever trained on.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "experiments/recall_tasks.h"

using namespace mixlab;

namespace {

RecallTaskConfig task_from(const Json& data, int64_t seq_len) {
  ConfigReader reader(data, "data");
  return parse_recall_task(reader, seq_len);
}

// The key named by a ConfigError for this data section, or "" when it parses.
std::string rejected_key(const Json& data, int64_t seq_len) {
  try {
    task_from(data, seq_len);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "";
}

std::vector<size_t> target_positions(const TaskExample& e) {
  std::vector<size_t> at;
  for (size_t i = 0; i < e.targets.size(); ++i)
    if (e.targets[i] != kIgnoreTarget) at.push_back(i);
  return at;
}

}  // namespace

TEST_CASE("mqar: Zoology's documented example, token for token") {
  // multiquery_ar(vocab_size=12, num_kv_pairs=2, input_seq_len=16, random_non_queries=False):
  //   Inputs: 2 8 4 7 0 0 4 0 0 0 0 0 2 0 0 (0)
  //   Labels: -100 x6, 7, -100 x5, 8, -100 ...
  // Pairs (2, 8) and (4, 7); key 4 is asked at gap 1, key 2 at gap 4.
  TaskExample e = mqar_example({2, 4}, {8, 7}, {4, 1}, 16);
  CHECK(e.tokens == std::vector<int64_t>{2, 8, 4, 7, 0, 0, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0});
  std::vector<int64_t> labels(16, kIgnoreTarget);
  labels[6] = 7;
  labels[12] = 8;
  CHECK(e.targets == labels);
}

TEST_CASE("mqar: random examples follow Zoology's rules") {
  RecallTaskConfig t = task_from(Json{{"task", "mqar"}, {"num_kv_pairs", 8}}, 64);
  CHECK(t.vocab_size == 8192);
  CHECK(t.power_a == doctest::Approx(0.01));
  std::map<int64_t, int> gap_count;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    TaskExample e = recall_task_example(t, 64, seed);
    REQUIRE(e.tokens.size() == 64);
    std::map<int64_t, int64_t> pairs;
    std::set<int64_t> values;
    for (int i = 0; i < 8; ++i) {
      int64_t k = e.tokens[2 * i], v = e.tokens[2 * i + 1];
      CHECK(k >= 1);
      CHECK(k < 4096);
      CHECK(v >= 4096);
      CHECK(v < 8192);
      CHECK(pairs.emplace(k, v).second);  // no repeated key
      CHECK(values.insert(v).second);     // no repeated value
    }
    auto at = target_positions(e);
    REQUIRE(at.size() == 8);
    std::set<int64_t> asked;
    for (size_t p : at) {
      CHECK(p >= 16);
      CHECK((p - 16) % 2 == 0);  // queries sit at even offsets after the block
      REQUIRE(pairs.count(e.tokens[p]));
      CHECK(e.targets[p] == pairs[e.tokens[p]]);  // the answer is the key's value
      asked.insert(e.tokens[p]);
      gap_count[static_cast<int64_t>(p - 16) / 2]++;
    }
    CHECK(asked.size() == 8);  // every key asked once
  }
  // p(g) ~ (g + 1)^-0.99: near gaps are drawn far more often than far ones.
  CHECK(gap_count[0] > 4 * gap_count[23]);
  CHECK(gap_count[1] > gap_count[10]);
}

TEST_CASE("copy: a hand-built example, and random ones") {
  TaskExample e = copy_example({0, 2, 1}, 10);
  // "a c b | a c b" then padding; targets from the separator on: a c b <end>.
  CHECK(e.tokens == std::vector<int64_t>{3, 5, 4, 1, 3, 5, 4, 0, 0, 0});
  CHECK(e.targets == std::vector<int64_t>{-100, -100, -100, 3, 5, 4, 2, -100, -100, -100});

  RecallTaskConfig t = task_from(Json{{"task", "copy"}, {"min_len", 4}, {"max_len", 9}}, 32);
  std::set<size_t> lengths;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    TaskExample r = recall_task_example(t, 32, seed);
    size_t n = 0;
    while (r.tokens[n] != kCopySeparator) ++n;
    lengths.insert(n);
    CHECK(target_positions(r).size() == n + 1);
    for (size_t i = 0; i < n; ++i) CHECK(r.tokens[n + 1 + i] == r.tokens[i]);
    CHECK(r.targets[2 * n] == kCopyEnd);
  }
  CHECK(*lengths.begin() == 4);
  CHECK(*lengths.rbegin() == 9);
}

TEST_CASE("multihop: a hand-built example, and random ones resolved independently") {
  // Chain A: x5 = v7, then x2 = x5 (2 hops); chain B: x0 = v1 (1 hop); stated A, B, A.
  std::vector<MultihopChain> chains = {{{5, 2}, 7}, {{0}, 1}};
  TaskExample e = multihop_example(chains, {0, 1, 0}, 8, 16);
  // Variables are 3 + v, values 3 + 8 + v.
  CHECK(e.tokens == std::vector<int64_t>{8, 1, 18, 3, 1, 12, 5, 1, 8, 5, 2, 3, 2, 0, 0, 0});
  CHECK(target_positions(e) == std::vector<size_t>{10, 12});
  CHECK(e.targets[10] == 18);
  CHECK(e.hops[10] == 2);
  CHECK(e.targets[12] == 12);
  CHECK(e.hops[12] == 1);

  RecallTaskConfig t = task_from(Json{{"task", "multihop"}}, 64);
  std::set<int> hops_seen;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    TaskExample r = recall_task_example(t, 64, seed);
    // Read the statements as a program: every right-hand variable must already be bound.
    std::map<int64_t, int64_t> binding, depth;
    size_t i = 0;
    for (; r.tokens[i + 1] == kHopAssign; i += 3) {
      int64_t lhs = r.tokens[i], rhs = r.tokens[i + 2];
      CHECK(!binding.count(lhs));
      if (rhs >= kHopFirstVariable + t.variables) {
        binding[lhs] = rhs;
        depth[lhs] = 1;
      } else {
        REQUIRE(binding.count(rhs));  // a link is stated after the one it refers to
        binding[lhs] = binding[rhs];
        depth[lhs] = depth[rhs] + 1;
      }
    }
    auto at = target_positions(r);
    CHECK(at.size() == static_cast<size_t>(t.chains));
    for (size_t p : at) {
      CHECK(r.tokens[p] == kHopQuery);
      CHECK(r.targets[p] == binding.at(r.tokens[p - 1]));
      CHECK(r.hops[p] == depth.at(r.tokens[p - 1]));
      hops_seen.insert(r.hops[p]);
    }
  }
  CHECK(hops_seen == std::set<int>{1, 2, 3, 4});
}

TEST_CASE("recall tasks: examples are a function of (seed, step, index)") {
  for (const char* name : {"mqar", "copy", "multihop"}) {
    RecallTaskData data(task_from(Json{{"task", name}, {"eval_examples", 50}}, 64), 64);
    TaskExample a = data.training_example(3, 17, 5);
    TaskExample b = data.training_example(3, 17, 5);
    CHECK(a.tokens == b.tokens);
    CHECK(a.targets == b.targets);
    CHECK(data.training_example(3, 18, 5).tokens != a.tokens);
    CHECK(data.training_example(4, 17, 5).tokens != a.tokens);
    CHECK(data.training_example(3, 17, 6).tokens != a.tokens);
  }
}

TEST_CASE("recall tasks: no evaluation example is trained on (by hash)") {
  // At the default sizes, 3000 evaluation examples against 2 seeds x 100 steps x 32 examples.
  for (const char* name : {"mqar", "copy", "multihop"}) {
    RecallTaskData data(task_from(Json{{"task", name}}, 64), 64);
    REQUIRE(data.eval_set().size() == 3000);
    std::set<uint64_t> eval;
    for (const auto& e : data.eval_set()) eval.insert(example_hash(e));
    for (int64_t seed = 0; seed < 2; ++seed)
      for (int64_t step = 0; step < 100; ++step)
        for (int64_t i = 0; i < 32; ++i)
          CHECK_FALSE(eval.count(example_hash(data.training_example(seed, step, i))));
  }
  // Where the space is small, raw draws do hit the evaluation set and are redrawn.
  RecallTaskData small(task_from(Json{{"task", "copy"},
                                      {"alphabet", 2},
                                      {"min_len", 1},
                                      {"max_len", 6},
                                      {"eval_examples", 30}},
                                 16),
                       16);
  std::set<uint64_t> eval;
  for (const auto& e : small.eval_set()) eval.insert(example_hash(e));
  int raw_hits = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    raw_hits += eval.count(
        example_hash(recall_task_example(small.task(), 16, training_example_seed(0, 0, i))));
    CHECK_FALSE(eval.count(example_hash(small.training_example(0, 0, i))));
  }
  CHECK(raw_hits > 0);
}

TEST_CASE("recall tasks: keys that do not fit are refused, naming the key") {
  CHECK(rejected_key(Json{{"task", "mqar"}, {"num_kv_pairs", 17}}, 64) == "data.num_kv_pairs");
  CHECK(rejected_key(Json{{"task", "mqar"}, {"num_kv_pairs", 16}}, 64) == "");
  CHECK(rejected_key(Json{{"task", "mqar"}, {"vocab_size", 64}}, 64) == "data.vocab_size");
  CHECK(rejected_key(Json{{"task", "mqar"}}, 63) == "data.task");
  CHECK(rejected_key(Json{{"task", "sort"}}, 64) == "data.task");
  CHECK(rejected_key(Json{{"task", "copy"}, {"max_len", 32}}, 64) == "data.max_len");
  CHECK(rejected_key(Json{{"task", "copy"}, {"min_len", 12}, {"max_len", 11}}, 64) ==
        "data.min_len");
  CHECK(rejected_key(Json{{"task", "copy"}, {"alphabet", 2}, {"min_len", 1}, {"max_len", 3}}, 64) ==
        "data.max_len");
  CHECK(rejected_key(Json{{"task", "multihop"}, {"hops", 5}}, 64) == "data.hops");
  CHECK(rejected_key(Json{{"task", "multihop"}, {"variables", 15}}, 64) == "data.variables");
  CHECK(rejected_key(Json{{"task", "multihop"}, {"chains", 0}}, 64) == "data.chains");
}
