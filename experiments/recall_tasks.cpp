#include "experiments/recall_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace mixlab {

namespace {

// SplitMix64: a full-avalanche mix, so neighbouring (seed, step, index) give unrelated streams.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Training and evaluation seeds come from different domains: no run seed, step and index can
// produce an evaluation example's seed by construction of the stream.
constexpr uint64_t kTrainDomain = 0x7472'6169'6e00'0001ULL;
constexpr uint64_t kEvalDomain = 0x6576'616c'0000'0002ULL;

uint64_t eval_example_seed(int64_t eval_seed, int64_t index) {
  return mix(mix(kEvalDomain ^ static_cast<uint64_t>(eval_seed)) ^ static_cast<uint64_t>(index));
}

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {  // [lo, hi]
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// `count` distinct values of [lo, hi), uniformly (a partial Fisher-Yates over the range).
std::vector<int64_t> distinct(std::mt19937_64& rng, int64_t lo, int64_t hi, int64_t count) {
  std::vector<int64_t> pool(static_cast<size_t>(hi - lo));
  std::iota(pool.begin(), pool.end(), lo);
  for (int64_t i = 0; i < count; ++i) std::swap(pool[i], pool[uniform(rng, i, hi - lo - 1)]);
  pool.resize(static_cast<size_t>(count));
  return pool;
}

// Zoology's query gaps: `count` distinct g in [0, space) drawn one after another with
// p(g) proportional to (g + 1)^(power_a - 1) over those not yet drawn (numpy's choice
// without replacement).
std::vector<int64_t> power_law_gaps(std::mt19937_64& rng, int64_t space, int64_t count,
                                    double power_a) {
  std::vector<double> weight(static_cast<size_t>(space));
  for (int64_t g = 0; g < space; ++g) weight[g] = std::pow(static_cast<double>(g + 1), power_a - 1);
  std::vector<int64_t> gaps;
  for (int64_t i = 0; i < count; ++i) {
    std::discrete_distribution<int64_t> pick(weight.begin(), weight.end());
    int64_t g = pick(rng);
    gaps.push_back(g);
    weight[g] = 0;
  }
  return gaps;
}

TaskExample empty_example(int64_t seq_len) {
  TaskExample e;
  e.tokens.assign(static_cast<size_t>(seq_len), 0);
  e.targets.assign(static_cast<size_t>(seq_len), kIgnoreTarget);
  e.hops.assign(static_cast<size_t>(seq_len), 0);
  return e;
}

TaskExample random_mqar(const RecallTaskConfig& t, int64_t seq_len, std::mt19937_64& rng) {
  int64_t half = t.vocab_size / 2;
  auto keys = distinct(rng, 1, half, t.num_kv_pairs);
  auto values = distinct(rng, half, t.vocab_size, t.num_kv_pairs);
  auto gaps = power_law_gaps(rng, (seq_len - 2 * t.num_kv_pairs) / 2, t.num_kv_pairs, t.power_a);
  TaskExample e = mqar_example(keys, values, gaps, seq_len);
  if (t.random_non_queries)
    for (auto& token : e.tokens)
      if (token == 0) token = uniform(rng, 0, t.vocab_size - 1);
  return e;
}

TaskExample random_copy(const RecallTaskConfig& t, int64_t seq_len, std::mt19937_64& rng) {
  std::vector<int64_t> text(static_cast<size_t>(uniform(rng, t.min_len, t.max_len)));
  for (auto& symbol : text) symbol = uniform(rng, 0, t.alphabet - 1);
  return copy_example(text, seq_len);
}

TaskExample random_multihop(const RecallTaskConfig& t, int64_t seq_len, std::mt19937_64& rng) {
  std::vector<int64_t> lengths(static_cast<size_t>(t.chains));
  for (auto& h : lengths) h = uniform(rng, 1, t.hops);
  int64_t links = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
  auto names = distinct(rng, 0, t.variables, links);
  std::vector<MultihopChain> chains(lengths.size());
  std::vector<int64_t> order;
  size_t next = 0;
  for (size_t c = 0; c < chains.size(); ++c) {
    chains[c].value = uniform(rng, 0, t.values - 1);
    for (int64_t k = 0; k < lengths[c]; ++k) {
      chains[c].variables.push_back(names[next++]);
      order.push_back(static_cast<int64_t>(c));
    }
  }
  // Any shuffle of the multiset of chain indices keeps each chain's own statement order.
  std::shuffle(order.begin(), order.end(), rng);
  // The chains are drawn independently, so asking them in chain order is a random order too.
  return multihop_example(chains, order, t.variables, seq_len);
}

// Distinct copy strings with lengths in [min_len, max_len], capped (it only needs to be
// compared with a few thousand).
double copy_space(const RecallTaskConfig& t) {
  double total = 0;
  for (int64_t len = t.min_len; len <= t.max_len && total < 1e18; ++len)
    total += std::pow(static_cast<double>(t.alphabet), static_cast<double>(len));
  return total;
}

}  // namespace

RecallTaskConfig parse_recall_task(const ConfigReader& c, int64_t seq_len) {
  RecallTaskConfig t;
  t.task = c.get_string("task");
  auto limit = [&](const std::string& key, const std::string& why) { c.fail(key, why); };
  if (t.task == "mqar") {
    t.vocab_size = c.get_positive_int("vocab_size", t.vocab_size);
    t.num_kv_pairs = c.get_positive_int("num_kv_pairs", t.num_kv_pairs);
    t.power_a = c.get_positive_double("power_a", t.power_a);
    t.random_non_queries = c.get_bool("random_non_queries", t.random_non_queries);
    if (seq_len % 2 != 0)
      limit("task", fmt::format("mqar needs an even model.seq_len (it is {})", seq_len));
    if (t.vocab_size <= seq_len)
      limit("vocab_size", fmt::format("must be greater than model.seq_len ({})", seq_len));
    if (4 * t.num_kv_pairs > seq_len)
      limit("num_kv_pairs",
            fmt::format("must be at most model.seq_len / 4 ({}): the key-value block and the "
                        "queries must fit",
                        seq_len / 4));
  } else if (t.task == "copy") {
    t.alphabet = c.get_positive_int("alphabet", t.alphabet);
    t.min_len = c.get_positive_int("min_len", t.min_len);
    t.max_len = c.get_positive_int("max_len", std::max(t.max_len, t.min_len));
    if (t.alphabet < 2) limit("alphabet", "must be at least 2");
    if (t.min_len > t.max_len)
      limit("min_len", fmt::format("must be at most data.max_len ({})", t.max_len));
    if (2 * t.max_len + 1 > seq_len)
      limit("max_len", fmt::format("must be at most (model.seq_len - 1) / 2 ({}): the string, "
                                   "the separator and the copy must fit",
                                   (seq_len - 1) / 2));
  } else if (t.task == "multihop") {
    t.chains = c.get_positive_int("chains", t.chains);
    t.hops = c.get_positive_int("hops", t.hops);
    t.variables = c.get_positive_int("variables", t.variables);
    t.values = c.get_positive_int("values", t.values);
    if (t.variables < t.chains * t.hops)
      limit("variables", fmt::format("must be at least data.chains x data.hops ({}): every "
                                     "link names a new variable",
                                     t.chains * t.hops));
    if (3 * t.chains * t.hops + 2 * t.chains > seq_len)
      limit("hops", fmt::format("3 x chains x hops + 2 x chains = {} tokens must fit in "
                                "model.seq_len ({})",
                                3 * t.chains * t.hops + 2 * t.chains, seq_len));
  } else {
    limit("task", "must be \"mqar\", \"copy\" or \"multihop\"");
  }
  t.eval_examples = c.get_positive_int("eval_examples", t.eval_examples);
  t.eval_seed = c.get_int("eval_seed", t.eval_seed);
  // The evaluation set must be a small part of what training can draw, or redrawing training
  // examples that fall in it would skew (or never end).
  if (t.task == "copy" && copy_space(t) < 4.0 * static_cast<double>(t.eval_examples))
    limit("max_len", fmt::format("{} distinct strings cannot keep {} evaluation examples apart "
                                 "from training: raise data.alphabet or data.max_len",
                                 copy_space(t), t.eval_examples));
  return t;
}

int64_t recall_task_vocab_size(const RecallTaskConfig& t) {
  if (t.task == "mqar") return t.vocab_size;
  if (t.task == "copy") return kCopyFirstSymbol + t.alphabet;
  return kHopFirstVariable + t.variables + t.values;
}

TaskExample recall_task_example(const RecallTaskConfig& t, int64_t seq_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  if (t.task == "mqar") return random_mqar(t, seq_len, rng);
  if (t.task == "copy") return random_copy(t, seq_len, rng);
  if (t.task == "multihop") return random_multihop(t, seq_len, rng);
  throw std::invalid_argument("unknown recall task " + t.task);
}

uint64_t training_example_seed(int64_t run_seed, int64_t step, int64_t index, int64_t redraw) {
  uint64_t h = mix(kTrainDomain ^ static_cast<uint64_t>(run_seed));
  h = mix(h ^ static_cast<uint64_t>(step));
  h = mix(h ^ static_cast<uint64_t>(index));
  return redraw == 0 ? h : mix(h ^ static_cast<uint64_t>(redraw));
}

uint64_t example_hash(const TaskExample& e) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto feed = [&](int64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= static_cast<uint64_t>(v >> (8 * b)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  for (auto v : e.tokens) feed(v);
  for (auto v : e.targets) feed(v);
  return h;
}

TaskExample mqar_example(const std::vector<int64_t>& keys, const std::vector<int64_t>& values,
                         const std::vector<int64_t>& gaps, int64_t seq_len) {
  auto context = static_cast<int64_t>(2 * keys.size());
  TaskExample e = empty_example(seq_len);
  for (size_t i = 0; i < keys.size(); ++i) {
    e.tokens[2 * i] = keys[i];
    e.tokens[2 * i + 1] = values[i];
    // The query repeats the key; the model must answer with its value as the next token.
    int64_t at = context + 2 * gaps[i];
    if (at >= seq_len) throw std::invalid_argument("mqar query beyond the sequence");
    e.tokens[at] = keys[i];
    e.targets[at] = values[i];
  }
  return e;
}

TaskExample copy_example(const std::vector<int64_t>& text, int64_t seq_len) {
  auto n = static_cast<int64_t>(text.size());
  if (2 * n + 1 > seq_len) throw std::invalid_argument("copy string does not fit");
  TaskExample e = empty_example(seq_len);
  for (int64_t i = 0; i < n; ++i) {
    e.tokens[i] = kCopyFirstSymbol + text[i];
    e.tokens[n + 1 + i] = kCopyFirstSymbol + text[i];
  }
  e.tokens[n] = kCopySeparator;
  // From the separator on, each position predicts the next symbol of the copy, and the last
  // symbol of the copy predicts the end token.
  for (int64_t i = 0; i < n; ++i) e.targets[n + i] = kCopyFirstSymbol + text[i];
  e.targets[2 * n] = kCopyEnd;
  return e;
}

TaskExample multihop_example(const std::vector<MultihopChain>& chains,
                             const std::vector<int64_t>& order, int64_t variables,
                             int64_t seq_len) {
  TaskExample e = empty_example(seq_len);
  auto var = [&](int64_t v) { return kHopFirstVariable + v; };
  auto value = [&](int64_t v) { return kHopFirstVariable + variables + v; };
  std::vector<size_t> stated(chains.size(), 0);
  size_t at = 0;
  auto put = [&](int64_t token) {
    if (at >= static_cast<size_t>(seq_len))
      throw std::invalid_argument("multihop example does not fit");
    e.tokens[at++] = token;
  };
  for (int64_t c : order) {
    const auto& chain = chains[static_cast<size_t>(c)];
    size_t k = stated[c]++;
    put(var(chain.variables[k]));
    put(kHopAssign);
    put(k == 0 ? value(chain.value) : var(chain.variables[k - 1]));
  }
  for (const auto& chain : chains) {
    put(var(chain.variables.back()));
    e.targets[at] = value(chain.value);
    e.hops[at] = static_cast<int32_t>(chain.variables.size());
    put(kHopQuery);
  }
  return e;
}

RecallTaskData::RecallTaskData(RecallTaskConfig task, int64_t seq_len)
    : task_(std::move(task)), seq_len_(seq_len) {
  eval_.reserve(static_cast<size_t>(task_.eval_examples));
  for (int64_t i = 0; i < task_.eval_examples; ++i) {
    eval_.push_back(recall_task_example(task_, seq_len_, eval_example_seed(task_.eval_seed, i)));
    eval_hashes_.insert(example_hash(eval_.back()));
  }
}

TaskExample RecallTaskData::training_example(int64_t run_seed, int64_t step, int64_t index) const {
  // parse_recall_task keeps the evaluation set a small part of the example space, so a redraw
  // is rare and a long run of them means that check is wrong.
  for (int64_t redraw = 0; redraw < 1000; ++redraw) {
    TaskExample e =
        recall_task_example(task_, seq_len_, training_example_seed(run_seed, step, index, redraw));
    if (!eval_hashes_.count(example_hash(e))) return e;
  }
  throw std::runtime_error(fmt::format(
      "data.task = \"{}\": 1000 draws in a row fell in the evaluation set", task_.task));
}

}  // namespace mixlab
