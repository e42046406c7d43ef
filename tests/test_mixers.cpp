// Token mixers (layers/mixer.h): every mixer against a float64 loop of its definition, its
// gradients against finite differences, causality, decoding against training, the dense
// solve against the sparse substitution; the recurrence patterns' sets; configs, bad input
// on the real binary, a spec's grid over mixer.type and every mixer with every FFN layer.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "experiments/benchmark.h"
#include "experiments/model.h"
#include "experiments/run_config.h"
#include "experiments/train_step.h"
#include "layers/recurrence_pattern.h"
#include "layers/registry.h"
#include "layers/structured_mix.h"
#include "results/store.h"
#include "sweep_fixture.h"
#include "test_helpers.h"
#include "test_paths.h"

using namespace mixlab;
using testing::max_abs_diff;

namespace {

const MixerDims kDims{8, 2, 12, 2};  // d_model 8, 2 heads of 4, training length 12

// Every mixer the tests cover, by config.
const std::vector<Json>& mixer_configs() {
  static const std::vector<Json> configs = {
      Json{{"type", "attention"}},
      Json{{"type", "local_attention"}, {"window", 3}},
      Json{{"type", "diagonal_ssm"}},
      Json{{"type", "recurrence"}, {"pattern", "kth"}, {"order", 2}},
      Json{{"type", "recurrence"}, {"pattern", "pow2"}},
      Json{{"type", "recurrence"}, {"pattern", "pow2"}, {"cache_efficient", true}},
      Json{{"type", "recurrence"}, {"pattern", "square_plus_one"}},
      Json{{"type", "recurrence"}, {"pattern", "square_plus_one"}, {"cache_efficient", true}},
      Json{{"type", "recurrence"}, {"pattern", "dense"}},
  };
  return configs;
}

// A float64 mixer with every parameter (biases too) random, so no term is trivially zero.
TokenMixer make_mixer(const Json& config, const MixerDims& dims = kDims, uint64_t seed = 3) {
  torch::manual_seed(seed);
  TokenMixer mixer = parse_mixer(config, "mixer", dims)();
  mixer->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  for (auto& p : mixer->parameters()) p.copy_(torch::randn_like(p) * 0.5);
  return mixer;
}

torch::Tensor param(const TokenMixer& mixer, const std::string& name) {
  return mixer->named_parameters()[name].detach();
}

torch::Tensor linear(const torch::Tensor& x, const TokenMixer& m, const std::string& name) {
  return torch::matmul(x, param(m, name + ".weight").t()) + param(m, name + ".bias");
}

// Offsets of a translation-invariant pattern written out independently of the pattern code.
std::vector<int64_t> reference_offsets(const Json& c, int64_t max_offset) {
  std::vector<int64_t> out;
  const std::string p = c["pattern"];
  for (int64_t m = 0;; ++m) {
    int64_t f = p == "pow2" ? (int64_t(1) << m) : p == "square_plus_one" ? m * m + 1 : m + 1;
    if (f > max_offset || (p == "kth" && m >= c["order"].get<int64_t>())) return out;
    out.push_back(f);
  }
}

// The earlier positions position i reads (recurrence) or attends to besides i (attention).
std::vector<int64_t> reference_reads(const Json& c, int64_t i) {
  std::vector<int64_t> out;
  const std::string type = c["type"];
  if (type == "attention")
    for (int64_t j = 0; j < i; ++j) out.push_back(j);
  if (type == "local_attention")
    for (int64_t j = std::max<int64_t>(0, i - c["window"].get<int64_t>() + 1); j < i; ++j)
      out.push_back(j);
  if (type == "recurrence") {
    if (c.value("cache_efficient", false)) {
      RecurrencePattern::Kind kind = c["pattern"] == "pow2"
                                         ? RecurrencePattern::Kind::pow2
                                         : RecurrencePattern::Kind::square_plus_one;
      return RecurrencePattern(kind, 0, true).predecessors(i);  // the sets are tested below
    }
    for (int64_t f : reference_offsets(c, i)) out.push_back(i - f);
  }
  return out;
}

// The definition of each mixer as plain float64 loops over positions, heads and channels.
torch::Tensor reference_mix(const Json& c, const TokenMixer& m, const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2), h = kDims.n_heads, hd = d / h;
  const std::string type = c["type"];
  auto y = torch::zeros({b, s, d}, torch::kDouble);
  auto Y = y.accessor<double, 3>();
  if (type == "diagonal_ssm") {
    auto a = torch::sigmoid(linear(x, m, "gate")), v = linear(x, m, "value");
    auto A = a.accessor<double, 3>(), V = v.accessor<double, 3>();
    for (int64_t n = 0; n < b; ++n)
      for (int64_t ch = 0; ch < d; ++ch)
        for (int64_t t = 0; t < s; ++t)
          Y[n][t][ch] =
              (t > 0 ? A[n][t][ch] * Y[n][t - 1][ch] : 0) + (1 - A[n][t][ch]) * V[n][t][ch];
    return linear(y, m, "proj");
  }
  auto qkv = linear(x, m, "qkv");
  auto Q = qkv.accessor<double, 3>();
  const bool recurrent = type == "recurrence";
  for (int64_t n = 0; n < b; ++n)
    for (int64_t head = 0; head < h; ++head)
      for (int64_t i = 0; i < s; ++i) {
        std::vector<int64_t> reads = reference_reads(c, i);
        reads.push_back(i);
        std::vector<double> w;
        for (int64_t j : reads) {
          double dot = 0;
          for (int64_t e = 0; e < hd; ++e)
            dot += Q[n][i][head * hd + e] * Q[n][j][d + head * hd + e];
          w.push_back(dot / std::sqrt(double(hd)));
        }
        const double top = *std::max_element(w.begin(), w.end());
        double total = 0;
        for (double& v : w) total += (v = std::exp(v - top));
        for (size_t r = 0; r < reads.size(); ++r) {
          const int64_t j = reads[r];
          for (int64_t e = 0; e < hd; ++e) {
            // Recurrences read earlier *outputs*; attention reads values.
            const double source =
                recurrent && j != i ? Y[n][j][head * hd + e] : Q[n][j][2 * d + head * hd + e];
            Y[n][i][head * hd + e] += w[r] / total * source;
          }
        }
      }
  return linear(y, m, "proj");
}

std::string label(const Json& c) {
  return c.dump();
}

}  // namespace

TEST_CASE("every mixer equals a float64 loop of its definition, in both training forms") {
  for (const auto& c : mixer_configs()) {
    CAPTURE(label(c));
    TokenMixer m = make_mixer(c);
    auto x = torch::randn({2, kDims.seq_len, kDims.d_model}, torch::kDouble);
    auto expected = reference_mix(c, m, x);
    for (MixForm form : {MixForm::dense, MixForm::sparse, MixForm::automatic})
      CHECK(max_abs_diff(m->mix(x, form), expected) < 1e-10);
  }
}

TEST_CASE("every mixer's gradients equal finite differences, in both training forms") {
  for (const auto& c : mixer_configs()) {
    CAPTURE(label(c));
    TokenMixer m = make_mixer(c);
    auto x = torch::randn({2, 9, kDims.d_model}, torch::kDouble).requires_grad_(true);
    auto upstream = torch::randn({2, 9, kDims.d_model}, torch::kDouble);
    std::vector<torch::Tensor> tensors{x};
    for (auto& p : m->parameters()) tensors.push_back(p);
    for (MixForm form : {MixForm::dense, MixForm::sparse}) {
      CAPTURE(int(form));
      testing::check_gradients([&] { return (m->mix(x, form) * upstream).sum(); }, tensors);
    }
  }
}

TEST_CASE("the dense solve and the sparse substitution agree, values and gradients") {
  for (const auto& c : mixer_configs()) {
    CAPTURE(label(c));
    TokenMixer m = make_mixer(c);
    auto x = torch::randn({3, 20, kDims.d_model}, torch::kDouble).requires_grad_(true);
    auto upstream = torch::randn({3, 20, kDims.d_model}, torch::kDouble);
    std::vector<torch::Tensor> outputs, grads;
    for (MixForm form : {MixForm::dense, MixForm::sparse}) {
      if (x.grad().defined()) x.grad().zero_();
      for (auto& p : m->parameters())
        if (p.grad().defined()) p.grad().zero_();
      auto y = m->mix(x, form);
      (y * upstream).sum().backward();
      outputs.push_back(y.detach());
      grads.push_back(x.grad().clone());
      for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
    }
    CHECK(max_abs_diff(outputs[0], outputs[1]) < 1e-11);
    const size_t half = grads.size() / 2;
    for (size_t i = 0; i < half; ++i) CHECK(max_abs_diff(grads[i], grads[half + i]) < 1e-10);
  }
}

TEST_CASE("sparse substitution on a hand-computed case, in float64, float32 and bf16") {
  // Y = (I - B)^-1 A V with a hand-made non-symmetric B: y0 = 2 v0, y1 = v1 + 0.5 y0,
  // y2 = 3 v2 - y0 + 0.25 y1.
  auto v = torch::tensor({1.0, -2.0, 4.0}, torch::kDouble).view({1, 3, 1});
  auto a_w = torch::tensor({2.0, 1.0, 3.0}, torch::kDouble).view({1, 3, 1});
  auto a_idx = torch::tensor({0, 1, 2}, torch::kLong).view({3, 1});
  auto b_w = torch::tensor({0.0, 0.0, 0.5, 0.0, -1.0, 0.25}, torch::kDouble).view({1, 3, 2});
  auto b_idx = torch::tensor({-1, -1, 0, -1, 0, 1}, torch::kLong).view({3, 2});
  const double y0 = 2, y1 = -2 + 0.5 * y0, y2 = 12 - y0 + 0.25 * y1;
  auto y = structured_mix_sparse(v, a_w, a_idx, b_w, b_idx).view({3});
  CHECK(y[0].item<double>() == doctest::Approx(y0));
  CHECK(y[1].item<double>() == doctest::Approx(y1));
  CHECK(y[2].item<double>() == doctest::Approx(y2));
  auto y32 = structured_mix_sparse(v.to(torch::kFloat), a_w.to(torch::kFloat), a_idx,
                                   b_w.to(torch::kFloat), b_idx)
                 .view({3});
  CHECK(max_abs_diff(y32.to(torch::kDouble), y) < 1e-5);
  // bf16 (autocast) is computed in float32.
  auto y16 = structured_mix_sparse(v.to(torch::kBFloat16), a_w.to(torch::kBFloat16), a_idx,
                                   b_w.to(torch::kBFloat16), b_idx)
                 .view({3});
  CHECK((y16.scalar_type() == torch::kFloat));
  CHECK(max_abs_diff(y16.to(torch::kDouble), y) < 0.1);
}

TEST_CASE("the sparse kernel equals the same substitution in tensor operations, with gradients") {
  torch::manual_seed(2);
  const int64_t n = 17;
  auto table =
      RecurrencePattern(RecurrencePattern::Kind::square_plus_one, 0, false).predecessor_table(n);
  auto self = torch::arange(n, torch::kLong).unsqueeze(1);
  auto v = torch::randn({3, n, 4}, torch::kDouble).requires_grad_(true);
  auto a_w = torch::randn({3, n, 1}, torch::kDouble).requires_grad_(true);
  auto b_w = (0.3 * torch::randn({3, n, table.size(1)}, torch::kDouble)).requires_grad_(true);
  auto upstream = torch::randn({3, n, 4}, torch::kDouble);
  std::vector<torch::Tensor> results;
  for (bool kernel : {true, false}) {
    for (auto* t : {&v, &a_w, &b_w})
      if (t->grad().defined()) t->grad().zero_();
    auto y = kernel ? structured_mix_sparse(v, a_w, self, b_w, table)
                    : structured_mix_sparse_by_operations(v, a_w, self, b_w, table);
    (y * upstream).sum().backward();
    results.insert(results.end(),
                   {y.detach(), v.grad().clone(), a_w.grad().clone(), b_w.grad().clone()});
  }
  for (size_t i = 0; i < 4; ++i) CHECK(max_abs_diff(results[i], results[4 + i]) < 1e-12);
}

TEST_CASE("every mixer is causal: changing position t changes nothing before t") {
  for (const auto& c : mixer_configs()) {
    CAPTURE(label(c));
    TokenMixer m = make_mixer(c);
    auto x = torch::randn({2, kDims.seq_len, kDims.d_model}, torch::kDouble);
    for (MixForm form : {MixForm::dense, MixForm::sparse}) {
      auto y = m->mix(x, form);
      for (int64_t t : {0, 5, 11}) {
        auto changed = x.clone();
        changed.select(1, t).add_(1.0);
        auto y2 = m->mix(changed, form);
        if (t > 0) CHECK(max_abs_diff(y.narrow(1, 0, t), y2.narrow(1, 0, t)) == 0);
        CHECK(max_abs_diff(y.select(1, t), y2.select(1, t)) > 1e-6);
      }
    }
  }
}

TEST_CASE("decoding token by token equals training, and the cache keeps what it claims") {
  const int64_t s = 40;  // long enough for windows, evictions and the cache-efficient sets
  const MixerDims dims{8, 2, s, 2};
  for (const auto& c : mixer_configs()) {
    CAPTURE(label(c));
    TokenMixer m = make_mixer(c, dims);
    auto x = torch::randn({3, s, 8}, torch::kDouble);
    auto trained = m->mix(x, MixForm::automatic);
    auto cache = m->new_cache(3);
    for (int64_t t = 0; t < s; ++t) {
      auto y = m->step(x.select(1, t), *cache);
      CHECK(max_abs_diff(y, trained.select(1, t)) < 1e-10);
      CHECK(cache->position == t + 1);
    }
    const std::string type = c["type"];
    int64_t expected_entries = s;  // attention, and recurrences that may reach anywhere back
    if (type == "local_attention") expected_entries = 3;
    if (type == "diagonal_ssm") expected_entries = 1;
    if (c.value("pattern", "") == "kth") expected_entries = 2;
    if (c.value("cache_efficient", false))  // the next position's set
      expected_entries = int64_t(reference_reads(c, s).size());
    CHECK(cache->entries() == expected_entries);
  }
}

TEST_CASE("cache-efficient sets: only the newest position joins, sizes and an example") {
  using Kind = RecurrencePattern::Kind;
  for (Kind kind : {Kind::pow2, Kind::square_plus_one}) {
    RecurrencePattern pattern(kind, 0, true);
    const auto f = pattern.offsets(20000);
    const auto a = lattice_steps(f);
    for (int64_t i = 2; i < 5000; ++i) {
      auto next = cache_efficient_set(f, a, i + 1);
      std::set<int64_t> allowed(next.begin(), next.end());
      auto current = cache_efficient_set(f, a, i);
      std::set<int64_t> have(current.begin(), current.end());
      have.insert(i);
      for (int64_t p : next) CHECK(have.count(p) == 1);
    }
    // Decoding's view: what position t (0-based) reads was kept after t - 1, plus t - 1.
    for (int64_t t = 1; t < 3000; ++t) {
      auto kept = pattern.retained_after(t - 1);
      std::set<int64_t> have(kept.begin(), kept.end());
      for (int64_t p : pattern.predecessors(t)) CHECK(have.count(p) == 1);
    }
  }
  RecurrencePattern pow2(Kind::pow2, 0, true), square(Kind::square_plus_one, 0, true);
  auto size_at = [](const RecurrencePattern& p, int64_t n) {
    const auto f = p.offsets(n);
    return cache_efficient_set(f, lattice_steps(f), n).size();
  };
  CHECK(size_at(pow2, 256) == 8);
  CHECK(size_at(pow2, 1024) == 10);
  CHECK(size_at(square, 256) == 13);
  CHECK(size_at(square, 1024) == 24);
  // The notes' example, and the lattice steps they list.
  const auto f = pow2.offsets(100);
  CHECK(cache_efficient_set(f, lattice_steps(f), 100) ==
        std::vector<int64_t>{64, 80, 88, 92, 96, 98, 99});
  CHECK(lattice_steps(square.offsets(50)) == std::vector<int64_t>{1, 1, 3, 6, 12, 12, 12, 24});
}

TEST_CASE("square_plus_one reaches every offset up to 3000 in at most 4 hops") {
  RecurrencePattern pattern(RecurrencePattern::Kind::square_plus_one, 0, false);
  const auto f = pattern.offsets(3000);
  std::vector<int> hops(3001, 1000);
  hops[0] = 0;
  for (int64_t n = 1; n <= 3000; ++n)
    for (int64_t step : f)
      if (step <= n) hops[n] = std::min(hops[n], hops[n - step] + 1);
  CHECK(*std::max_element(hops.begin() + 1, hops.end()) == 4);  // 4 is needed, and enough
  // pow2 needs the number of 1 bits: 2047 = 11 ones takes 11 hops.
  RecurrencePattern pow2(RecurrencePattern::Kind::pow2, 0, false);
  CHECK(pow2.offsets(2047).size() == 11);
}

TEST_CASE("patterns: predecessors and tables") {
  using Kind = RecurrencePattern::Kind;
  CHECK(RecurrencePattern(Kind::kth, 3, false).predecessors(5) == std::vector<int64_t>{2, 3, 4});
  CHECK(RecurrencePattern(Kind::kth, 3, false).predecessors(1) == std::vector<int64_t>{0});
  CHECK(RecurrencePattern(Kind::pow2, 0, false).predecessors(9) ==
        std::vector<int64_t>{1, 5, 7, 8});
  CHECK(RecurrencePattern(Kind::square_plus_one, 0, false).predecessors(10) ==
        std::vector<int64_t>{0, 5, 8, 9});
  CHECK(RecurrencePattern(Kind::dense, 0, false).predecessors(3) == std::vector<int64_t>{0, 1, 2});
  auto table = RecurrencePattern(Kind::pow2, 0, false).predecessor_table(5);
  CHECK(table.sizes() == torch::IntArrayRef({5, 3}));
  CHECK(table[0].eq(-1).all().item<bool>());
  CHECK(table[4][0].item<int64_t>() == 0);
}

namespace {

Json run_config(const Json& mixer, const Json& ffn) {
  Json c = {{"model", {{"d_model", 16}, {"n_layers", 1}, {"n_heads", 2}, {"seq_len", 8}}},
            {"ffn", ffn},
            {"data", {{"corpus", "brown"}}},
            {"train", {{"steps", 2}, {"batch_size", 4}}},
            {"eval", {{"batches", 1}}}};
  if (!mixer.is_null()) c["mixer"] = mixer;
  return c;
}

std::string config_error(const Json& config) {
  try {
    parse_run_config(config, "c.json");
  } catch (const ConfigError& e) {
    return e.key() + ": " + e.message();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a config without mixer keeps its hash, the default mixer is the attention it was") {
  // The hash computed independently (FNV-1a/64 over the compact sorted JSON) before mixers
  // existed: a database recorded then still knows this run.
  Json plain = Json::parse(
      R"({"data":{"corpus":"brown"},"eval":{"batches":2,"every":0},"ffn":{"d_ff":64,"type":"dense"},)"
      R"("model":{"d_model":32,"n_heads":2,"n_layers":1,"seq_len":16},"seed":0,)"
      R"("train":{"batch_size":4,"steps":2}})");
  RunConfig config = parse_run_config(plain, "c.json");
  CHECK(config.hash == "9ee4ed1883938f76");
  CHECK(config.json.count("mixer") == 0);
  CHECK(!config.model.mixer);
  // Unset and {"type": "attention"}: the same parameter names, values and outputs.
  Json explicit_attention = plain;
  explicit_attention["mixer"] = {{"type", "attention"}};
  RunConfig with_key = parse_run_config(explicit_attention, "c.json");
  torch::manual_seed(5);
  Gpt a(config.model, config.ffn);
  torch::manual_seed(5);
  Gpt b(with_key.model, with_key.ffn);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  CHECK(pa.contains("blocks.0.attention.qkv.weight"));
  CHECK(pa.contains("blocks.0.attention.proj.bias"));
  for (size_t i = 0; i < pa.size(); ++i) {
    CHECK(pa[i].key() == pb[i].key());
    CHECK(torch::equal(pa[i].value(), pb[i].value()));
  }
  auto tokens = torch::randint(0, 256, {2, 16}, torch::kLong);
  CHECK(torch::equal(a->forward(tokens), b->forward(tokens)));
}

TEST_CASE("FLOPs per token count the mixer") {
  const Json dense_ffn = {{"type", "dense"}, {"d_ff", 64}};
  auto flops = [&](const Json& mixer) {
    RunConfig c = parse_run_config(run_config(mixer, dense_ffn), "c.json");
    torch::NoGradGuard no_grad;
    return Gpt(c.model, c.ffn)->cost().forward_flops_per_token;
  };
  const double d = 16, s = 8, projections = 2 * d * 3 * d + 2 * d * d;
  const double base = 2 * d * 256 + 4 * d * 64;  // head, dense FFN
  CHECK(flops(nullptr) == doctest::Approx(base + projections + 4 * s * d));
  CHECK(flops({{"type", "local_attention"}, {"window", 3}}) ==
        doctest::Approx(base + projections + 4 * 3 * d));
  // Position 7 reads itself and 6, 5, 3: 4 positions.
  CHECK(flops({{"type", "recurrence"}, {"pattern", "pow2"}}) ==
        doctest::Approx(base + projections + 4 * 4 * d));
  CHECK(flops({{"type", "diagonal_ssm"}}) == doctest::Approx(base + 6 * d * d + 4 * d));
}

TEST_CASE("mixer configs: bad input names the key") {
  const Json ffn = {{"type", "dense"}};
  auto error = [&](const Json& mixer) { return config_error(run_config(mixer, ffn)); };
  CHECK(error({{"type", "nope"}}).rfind("mixer.type: unknown mixer type", 0) == 0);
  CHECK(error({{"window", 3}}).rfind("mixer.type: required", 0) == 0);
  CHECK(error({{"type", "local_attention"}}).rfind("mixer.window: required", 0) == 0);
  CHECK(error({{"type", "local_attention"}, {"window", 0}}).rfind("mixer.window: must be", 0) == 0);
  CHECK(error({{"type", "recurrence"}, {"pattern", "fib"}}).rfind("mixer.pattern: unknown", 0) ==
        0);
  CHECK(error({{"type", "recurrence"}, {"pattern", "kth"}, {"order", 0}}).rfind("mixer.order", 0) ==
        0);
  CHECK(error({{"type", "recurrence"}, {"pattern", "kth"}}).rfind("mixer.order: required", 0) == 0);
  CHECK(error({{"type", "recurrence"}, {"pattern", "dense"}, {"cache_efficient", true}})
            .rfind("mixer.cache_efficient", 0) == 0);
  CHECK(error({{"type", "recurrence"}, {"pattern", "pow2"}, {"order", 2}}) ==
        "mixer.order: unknown key");
  CHECK(error({{"type", "attention"}, {"window", 2}}) == "mixer.window: unknown key");
  CHECK(error("attention").rfind("mixer: must be an object", 0) == 0);
  CHECK(
      error({{"type", "recurrence"}, {"pattern", "square_plus_one"}, {"cache_efficient", true}}) ==
      "no error");
}

TEST_CASE("bad mixer input on the real binary: exit 2, one line naming the key, nothing written") {
  struct Case {
    std::string mixer, key;
  };
  const std::vector<Case> cases = {
      {R"({"type": "transformer"})", "mixer.type"},
      {R"({"type": "recurrence", "pattern": "fibonacci"})", "mixer.pattern"},
      {R"({"type": "local_attention", "window": 0})", "mixer.window"},
      {R"({"type": "recurrence", "pattern": "kth", "order": 0})", "mixer.order"},
      {R"({"type": "recurrence", "pattern": "kth", "order": 2, "cache_efficient": true})",
       "mixer.cache_efficient"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.mixer);
    testing::SpecFixture fx("spec.json", [&](const std::string& corpus) {
      return R"({"name": "bad", "base": {"model": {"d_model": 16, "n_layers": 1, "seq_len": 8},
        "ffn": {"type": "dense"}, "mixer": )" +
             c.mixer + R"(, "data": {"corpus": "text", "path": ")" + corpus +
             R"("}, "train": {"steps": 2, "batch_size": 4}, "eval": {"batches": 1}}})";
    });
    auto r =
        testing::run_command(std::string(MIXLAB_SWEEP_BIN) + " run " + fx.spec + " --db " + fx.db);
    CHECK(r.status == 2);
    CHECK(r.output.find(c.key) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(!std::filesystem::exists(fx.db));
  }
}

TEST_CASE("a spec grids over mixer.type (dry run on the real binary)") {
  testing::SpecFixture fx("spec.json", [](const std::string& corpus) {
    return R"({"name": "mixers", "base": {"model": {"d_model": 16, "n_layers": 1, "seq_len": 8},
      "ffn": {"type": "dense"}, "data": {"corpus": "text", "path": ")" +
           corpus + R"("}, "train": {"steps": 2, "batch_size": 4}, "eval": {"batches": 1}},
      "grid": {"mixer.type": ["attention", "diagonal_ssm"]}})";
  });
  auto r = testing::run_command(std::string(MIXLAB_SWEEP_BIN) + " run " + fx.spec + " --db " +
                                fx.db + " --dry-run");
  CHECK(r.status == 0);
  CHECK(r.output.find("2 runs") != std::string::npos);
  CHECK(r.output.find("type=attention") != std::string::npos);
  CHECK(r.output.find("type=diagonal_ssm") != std::string::npos);
  CHECK(!std::filesystem::exists(fx.db));
}

TEST_CASE("every mixer trains under every FFN layer type (one step each)") {
  auto experts = [](Json c) {
    c["expert_size"] = "flop_matched";
    c["d_ff"] = 32;
    return c;
  };
  const std::map<std::string, Json> ffns = {
      {"dense", {{"type", "dense"}}},
      {"mot", experts({{"type", "mot"}, {"n_experts", 4}, {"group_size", 2}})},
      {"switch", experts({{"type", "switch"}, {"n_experts", 4}})},
      {"top_k", experts({{"type", "top_k"}, {"n_experts", 4}})},
      {"expert_choice", experts({{"type", "expert_choice"}, {"n_experts", 2}, {"group_size", 2}})},
      {"soft_moe", experts({{"type", "soft_moe"}, {"n_experts", 2}, {"group_size", 2}})},
      {"transition",
       experts(
           {{"type", "transition"}, {"n_experts", 4}, {"group_size", 2}, {"switch_at_step", 1}})},
  };
  // The registry's layer types are all covered.
  for (const auto& type : ffn_types()) CHECK(ffns.count(type) == 1);
  CHECK(mixer_types().size() == 4);
  for (const auto& mixer : mixer_configs()) {
    for (const auto& [name, ffn] : ffns) {
      CAPTURE(label(mixer));
      CAPTURE(name);
      RunConfig c = parse_run_config(run_config(mixer, ffn), "c.json");
      torch::manual_seed(0);
      Gpt model(c.model, c.ffn);
      auto before = model->parameters();
      std::vector<torch::Tensor> copies;
      for (auto& p : before) copies.push_back(p.detach().clone());
      TrainStep step(model, c.train, torch::kCPU);
      auto tokens = torch::randint(0, 256, {4, 8}, torch::kLong);
      step.run(tokens, tokens.roll(-1, 1), 1e-3);
      const double loss = step.loss_sum.item<double>();
      CHECK(std::isfinite(loss));
      CHECK(loss > 0);
      // The mixer's parameters moved: it is in the model and in the optimizer.
      bool mixer_moved = false;
      auto named = model->named_parameters();
      for (size_t i = 0; i < named.size(); ++i) {
        const std::string& key = named[i].key();
        const bool in_mixer = key.find(".attention.") != std::string::npos ||
                              key.find(".mixer.") != std::string::npos;
        if (in_mixer && !torch::equal(named[i].value(), copies[i])) mixer_moved = true;
      }
      CHECK(mixer_moved);
    }
  }
}

TEST_CASE("decode bench: cache entries per mixer, the fitted exponent, unknown names") {
  CHECK(fitted_exponent({256, 1024, 4096}, {16.0, 32.0, 64.0}) == doctest::Approx(0.5));
  CHECK(fitted_exponent({10, 100}, {3.0, 3.0}) == doctest::Approx(0.0));
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"attention", {16, 64}},
      {"local_attention", {16, 64}},  // window 64
      {"diagonal_ssm", {1, 1}},
      {"recurrence_kth", {4, 4}},
      {"recurrence_pow2_cache_efficient", {5, 7}},  // what positions 16 and 64 read
  };
  for (const auto& [name, entries] : expected) {
    CAPTURE(name);
    DecodeBench r = measure_decode(name, {16, 64}, 2);
    CHECK(r.lengths == std::vector<int64_t>{16, 64});
    CHECK(r.cache_entries == entries);
    CHECK(r.us_per_token.size() == 2);
  }
  RecurrencePattern ce(RecurrencePattern::Kind::pow2, 0, true);
  CHECK(ce.predecessors(16).size() == 5);
  CHECK(ce.predecessors(64).size() == 7);
  auto r = testing::run_command(std::string(MIXLAB_SWEEP_BIN) +
                                " bench --what decode --mixers attention,nope");
  CHECK(r.status == 2);
  CHECK(r.output.find("--mixers") != std::string::npos);
}

TEST_CASE("a recurrence run killed mid-run resumes from its checkpoint bit for bit") {
  using namespace testing::sweep_fixture;
  Fixture f;
  // Every run of the two-run spec (dense, mot) with the cache-efficient square_plus_one mixer.
  const std::string mixer =
      "--set mixer.type=recurrence --set mixer.pattern=square_plus_one "
      "--set mixer.cache_efficient=true";
  auto ref = f.run_into(f.dir / "reference/r.db", mixer);
  INFO(ref.output);
  REQUIRE(ref.status == 0);
  auto killed = f.run(mixer, "MIXLAB_TEST_KILL_AT=step:7");  // dense: checkpoint at step 4
  REQUIRE(killed.status == 128 + SIGKILL);
  auto resumed = f.run(mixer);
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  CHECK(contains(resumed.output, "resuming from its checkpoint"));
  Store store(f.db, false), ref_store(f.dir / "reference/r.db", false);
  check_complete_history(store, "robust");
  check_same_results(store, ref_store, "robust");
  for (const auto& run : store.sweep_runs("robust"))
    CHECK(Json::parse(run.config_json)["mixer"]["pattern"] == "square_plus_one");
}
