// Switch, top-k token choice, Expert Choice and Soft MoE against naive float64 loops over
// their definitions, plus the invariants every layer must keep: one expert is the dense
// layer, gradients match finite differences, causality, config errors, hand-counted costs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "experiments/init.h"
#include "experiments/model.h"
#include "experiments/run_config.h"
#include "layers/dense.h"
#include "layers/expert_choice.h"
#include "layers/mot.h"
#include "layers/registry.h"
#include "layers/soft_moe.h"
#include "layers/token_choice.h"
#include "layers/transition.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::check_gradients;
using testing::max_abs_diff;
using torch::indexing::Slice;

namespace {

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() &&
         text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

ModelDims dims_for(int64_t d, int64_t batch) {
  return ModelDims{d, batch, 8, 2, 0};
}

// Float64 layer with router weights larger than the init, so routing is far from uniform.
template <typename Layer>
std::shared_ptr<Layer> in_double(std::shared_ptr<Layer> layer, torch::Tensor& router) {
  layer->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  router.normal_(0.0, 0.7);
  return layer;
}

std::shared_ptr<TokenChoiceImpl> make_token_choice(int64_t d, int64_t batch, int64_t e, int64_t f,
                                                   int64_t k, double capacity_factor,
                                                   double z_loss = 0.0) {
  TokenChoiceOptions o;
  o.n_experts = e;
  o.expert_size = f;
  o.k = k;
  o.capacity_factor = capacity_factor;
  o.z_loss_weight = z_loss;
  auto layer = std::make_shared<TokenChoiceImpl>(dims_for(d, batch), o);
  return in_double(layer, layer->router);
}

// Without its output LayerNorm unless asked: most tests compare the routing itself.
std::shared_ptr<ExpertChoiceImpl> make_expert_choice(int64_t d, int64_t batch, int64_t e, int64_t g,
                                                     int64_t f, int64_t k, bool scale = true,
                                                     bool output_norm = false) {
  ExpertChoiceOptions o;
  o.n_experts = e;
  o.group_size = g;
  o.expert_size = f;
  o.k = k;
  o.scale_by_probability = scale;
  o.output_norm = output_norm;
  auto layer = std::make_shared<ExpertChoiceImpl>(dims_for(d, batch), o);
  return in_double(layer, layer->router);
}

std::shared_ptr<SoftMoeImpl> make_soft_moe(int64_t d, int64_t batch, int64_t e, int64_t p,
                                           int64_t g, int64_t f) {
  SoftMoeOptions o;
  o.n_experts = e;
  o.slots_per_expert = p;
  o.group_size = g;
  o.expert_size = f;
  auto layer = std::make_shared<SoftMoeImpl>(dims_for(d, batch), o);
  return in_double(layer, layer->phi);
}

// ---- naive float64 references --------------------------------------------------------

using Vec = std::vector<double>;

Vec token_vector(const torch::Tensor& x, int64_t b, int64_t t) {
  Vec v(x.size(2));
  for (int64_t k = 0; k < x.size(2); ++k) v[k] = x[b][t][k].item<double>();
  return v;
}

// W2_e relu(W1_e v).
Vec expert_apply(const torch::Tensor& w1, const torch::Tensor& w2, int64_t e, const Vec& v) {
  const int64_t d = w1.size(1), f = w1.size(2);
  auto W1 = w1.accessor<double, 3>();
  auto W2 = w2.accessor<double, 3>();
  Vec hidden(f, 0.0), out(d, 0.0);
  for (int64_t h = 0; h < f; ++h) {
    for (int64_t k = 0; k < d; ++k) hidden[h] += v[k] * W1[e][k][h];
    hidden[h] = std::max(0.0, hidden[h]);
  }
  for (int64_t k = 0; k < d; ++k)
    for (int64_t h = 0; h < f; ++h) out[k] += hidden[h] * W2[e][h][k];
  return out;
}

// softmax over j of v . router[:, j]
Vec router_softmax(const Vec& v, const torch::Tensor& router) {
  auto R = router.accessor<double, 2>();
  const int64_t n = router.size(1);
  Vec logit(n, 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (size_t k = 0; k < v.size(); ++k) logit[j] += v[k] * R[k][j];
  const double mx = *std::max_element(logit.begin(), logit.end());
  double z = 0;
  for (auto& l : logit) z += l = std::exp(l - mx);
  for (auto& l : logit) l /= z;
  return logit;
}

std::vector<int64_t> descending_order(const Vec& values) {
  std::vector<int64_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  return idx;
}

void add_scaled(torch::TensorAccessor<double, 3>& y, int64_t b, int64_t t, double w, const Vec& v) {
  for (size_t k = 0; k < v.size(); ++k) y[b][t][k] += w * v[k];
}

// Token choice by its definition: each token's top-k experts by router probability, gates
// p (k = 1) or renormalised top-k p; expert e serves at most `capacity` assignments, taken in
// the order position, choice rank, sequence. `kept` counts the kept assignments.
torch::Tensor naive_token_choice(const torch::Tensor& x, const TokenChoiceImpl& layer,
                                 int64_t capacity, int64_t* kept = nullptr) {
  const int64_t b_n = x.size(0), s_n = x.size(1), k_n = layer.options().k;
  std::vector<std::vector<std::vector<std::pair<int64_t, double>>>> choice(
      b_n, std::vector<std::vector<std::pair<int64_t, double>>>(s_n));
  for (int64_t b = 0; b < b_n; ++b)
    for (int64_t t = 0; t < s_n; ++t) {
      Vec p = router_softmax(token_vector(x, b, t), layer.router);
      auto order = descending_order(p);
      double top_sum = 0;
      for (int64_t r = 0; r < k_n; ++r) top_sum += p[order[r]];
      for (int64_t r = 0; r < k_n; ++r)
        choice[b][t].emplace_back(order[r], k_n == 1 ? p[order[r]] : p[order[r]] / top_sum);
    }
  auto y = torch::zeros_like(x);
  auto Y = y.accessor<double, 3>();
  std::vector<int64_t> used(layer.router.size(1), 0);
  int64_t n_kept = 0;
  for (int64_t t = 0; t < s_n; ++t)
    for (int64_t r = 0; r < k_n; ++r)
      for (int64_t b = 0; b < b_n; ++b) {
        auto [e, gate] = choice[b][t][r];
        if (used[e] >= capacity) continue;
        ++used[e];
        ++n_kept;
        add_scaled(Y, b, t, gate, expert_apply(layer.w1, layer.w2, e, token_vector(x, b, t)));
      }
  if (kept) *kept = n_kept;
  return y;
}

// Expert choice by its definition: groups of g consecutive sequences at one position; each
// expert takes its k tokens of highest router probability, output scaled by it (or not).
torch::Tensor naive_expert_choice(const torch::Tensor& x, const torch::Tensor& router,
                                  const torch::Tensor& w1, const torch::Tensor& w2, int64_t g,
                                  int64_t k, bool scale) {
  const int64_t e_n = router.size(1);
  auto y = torch::zeros_like(x);
  auto Y = y.accessor<double, 3>();
  for (int64_t group = 0; group < x.size(0) / g; ++group)
    for (int64_t t = 0; t < x.size(1); ++t) {
      std::vector<Vec> p(g);
      for (int64_t i = 0; i < g; ++i)
        p[i] = router_softmax(token_vector(x, group * g + i, t), router);
      for (int64_t e = 0; e < e_n; ++e) {
        Vec score(g);
        for (int64_t i = 0; i < g; ++i) score[i] = p[i][e];
        auto order = descending_order(score);
        for (int64_t j = 0; j < k; ++j) {
          const int64_t b = group * g + order[j];
          add_scaled(Y, b, t, scale ? score[order[j]] : 1.0,
                     expert_apply(w1, w2, e, token_vector(x, b, t)));
        }
      }
    }
  return y;
}

torch::Tensor naive_soft_moe(const torch::Tensor& x, const SoftMoeImpl& layer, int64_t g,
                             int64_t p) {
  const int64_t d = x.size(2), slots = layer.phi.size(1);
  auto Phi = layer.phi.accessor<double, 2>();
  auto y = torch::zeros_like(x);
  auto Y = y.accessor<double, 3>();
  for (int64_t group = 0; group < x.size(0) / g; ++group)
    for (int64_t t = 0; t < x.size(1); ++t) {
      std::vector<Vec> xs(g), logit(g, Vec(slots, 0.0));
      for (int64_t i = 0; i < g; ++i) {
        xs[i] = token_vector(x, group * g + i, t);
        for (int64_t s = 0; s < slots; ++s)
          for (int64_t k = 0; k < d; ++k) logit[i][s] += xs[i][k] * Phi[k][s];
      }
      std::vector<Vec> slot_out(slots);
      for (int64_t s = 0; s < slots; ++s) {
        double z = 0;
        Vec w(g), in(d, 0.0);
        for (int64_t i = 0; i < g; ++i) z += w[i] = std::exp(logit[i][s]);
        for (int64_t i = 0; i < g; ++i)
          for (int64_t k = 0; k < d; ++k) in[k] += w[i] / z * xs[i][k];
        slot_out[s] = expert_apply(layer.w1, layer.w2, s / p, in);
      }
      for (int64_t i = 0; i < g; ++i) {
        double z = 0;
        for (int64_t s = 0; s < slots; ++s) z += std::exp(logit[i][s]);
        for (int64_t s = 0; s < slots; ++s)
          add_scaled(Y, group * g + i, t, std::exp(logit[i][s]) / z, slot_out[s]);
      }
    }
  return y;
}

// ---- shared invariant checks --------------------------------------------------------------

double stat(const FfnLayerImpl& layer, const std::string& name) {
  const auto& names = layer.stat_names();
  auto it = std::find(names.begin(), names.end(), name);
  REQUIRE(it != names.end());
  return layer.stat_values()[it - names.begin()].item<double>();
}

// Changing every sequence at positions > t leaves all outputs at positions <= t unchanged
// and changes some later output.
void check_causal(FfnLayerImpl& layer, const torch::Tensor& x) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  auto y = layer.forward(x);
  for (int64_t t = 0; t + 1 < s; ++t) {
    auto changed = x.clone();
    changed.index_put_({Slice(), Slice(t + 1)}, torch::randn({b, s - t - 1, d}, torch::kDouble));
    auto y2 = layer.forward(changed);
    CHECK(max_abs_diff(y.index({Slice(), Slice(0, t + 1)}), y2.index({Slice(), Slice(0, t + 1)})) <
          1e-13);
    CHECK(max_abs_diff(y.index({Slice(), Slice(t + 1)}), y2.index({Slice(), Slice(t + 1)})) > 1e-6);
  }
}

std::shared_ptr<DenseFfnImpl> dense_copy(const torch::Tensor& w1, const torch::Tensor& w2,
                                         int64_t batch) {
  auto dense = std::make_shared<DenseFfnImpl>(dims_for(w1.size(0), batch), w1.size(1));
  dense->to(torch::kDouble);
  torch::NoGradGuard no_grad;
  dense->w1.copy_(w1);
  dense->w2.copy_(w2);
  return dense;
}

template <typename Fn>
void expect_config_error(Fn&& fn, const std::string& key, const std::string& value) {
  try {
    fn();
    FAIL("accepted: " << key << " = " << value);
  } catch (const ConfigError& e) {
    CHECK(e.key() == key);
    CHECK(e.value() == value);
  }
}

}  // namespace

// ---- definitions --------------------------------------------------------------------------

TEST_CASE("switch and top-2 equal the naive loop, capacity taken position-major") {
  torch::manual_seed(11);
  for (int64_t k : {1, 2}) {
    CAPTURE(k);
    // N = 20 tokens, E = 3: capacity ceil(0.6 k 20 / 3) = 4 (k = 1) or 8 (k = 2), well below
    // the load of the busiest expert, so tokens are dropped.
    auto layer = make_token_choice(/*d=*/6, /*batch=*/4, /*e=*/3, /*f=*/5, k, 0.6);
    auto x = torch::randn({4, 5, 6}, torch::kDouble);
    layer->record_stats(true);
    auto y = layer->forward(x);
    const int64_t capacity = token_choice_capacity(layer->options(), 20);
    CHECK(capacity == (k == 1 ? 4 : 8));
    int64_t kept = 0;
    CHECK(max_abs_diff(y, naive_token_choice(x, *layer, capacity, &kept)) < 1e-12);
    CHECK(kept < 20 * k);
    CHECK(stat(*layer, "dropped_frac") == doctest::Approx(1.0 - double(kept) / double(20 * k)));
    CHECK(stat(*layer, "entropy") > 0.0);
    CHECK(stat(*layer, "entropy") < 1.0);

    // The load-balancing loss from its definition: alpha E sum_e f_e P_e with f_e the share of
    // the 20 k (token, choice) assignments sent to e before capacity.
    Vec top_frac(3, 0.0), mean_p(3, 0.0);
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t t = 0; t < 5; ++t) {
        Vec p = router_softmax(token_vector(x, b, t), layer->router);
        for (int64_t r = 0; r < k; ++r) top_frac[descending_order(p)[r]] += 1.0 / double(20 * k);
        for (int64_t e = 0; e < 3; ++e) mean_p[e] += p[e] / 20;
      }
    double expected = 0;
    for (int64_t e = 0; e < 3; ++e) expected += 0.01 * 3 * top_frac[e] * mean_p[e];
    CHECK(layer->aux_loss().item<double>() == doctest::Approx(expected).epsilon(1e-12));
  }
}

TEST_CASE("expert choice equals the naive loop (k = 1 and k = 2)") {
  torch::manual_seed(12);
  for (int64_t k : {1, 2}) {
    CAPTURE(k);
    auto layer = make_expert_choice(/*d=*/6, /*batch=*/8, /*e=*/3, /*g=*/4, /*f=*/5, k);
    auto x = torch::randn({8, 3, 6}, torch::kDouble);
    layer->record_stats(true);
    auto y = layer->forward(x);
    CHECK(max_abs_diff(y, naive_expert_choice(x, layer->router, layer->w1, layer->w2, 4, k, true)) <
          1e-12);
    // Dropped: tokens no expert took, counted from the outputs (exactly zero rows).
    const double unchosen = (y.abs().sum(2) == 0).to(torch::kDouble).mean().item<double>();
    CHECK(stat(*layer, "dropped_frac") == doctest::Approx(unchosen));
    if (k == 1) CHECK(unchosen >= 0.25);  // 3 experts, 4 tokens: at least one left per group
  }
}

TEST_CASE("expert choice with its output LayerNorm equals the naive loop followed by the norm") {
  // The reference's layer_norm_in_expert_choice: LayerNorm over d of each token's output,
  // (y - mean) / sqrt(biased var + 1e-5) * gain + shift, with a gain and shift that are not
  // (1, 0) so that a norm without its affine part, or over the wrong axis, would fail.
  torch::manual_seed(19);
  const int64_t d = 6;
  auto layer = make_expert_choice(d, /*batch=*/8, /*e=*/3, /*g=*/4, /*f=*/5, /*k=*/1,
                                  /*scale=*/true, /*output_norm=*/true);
  REQUIRE(layer->output_norm);
  {
    torch::NoGradGuard no_grad;
    layer->output_norm->weight.uniform_(0.5, 2.0);
    layer->output_norm->bias.uniform_(-1.0, 1.0);
  }
  auto x = torch::randn({8, 3, d}, torch::kDouble);
  auto bare = naive_expert_choice(x, layer->router, layer->w1, layer->w2, 4, 1, true);
  auto expected = torch::zeros_like(bare);
  auto Y = bare.accessor<double, 3>();
  auto E = expected.accessor<double, 3>();
  auto gain = layer->output_norm->weight.accessor<double, 1>();
  auto shift = layer->output_norm->bias.accessor<double, 1>();
  int64_t untaken = 0;
  for (int64_t b = 0; b < 8; ++b)
    for (int64_t t = 0; t < 3; ++t) {
      double mean = 0, var = 0;
      for (int64_t k = 0; k < d; ++k) mean += Y[b][t][k] / d;
      for (int64_t k = 0; k < d; ++k) var += (Y[b][t][k] - mean) * (Y[b][t][k] - mean) / d;
      for (int64_t k = 0; k < d; ++k)
        E[b][t][k] = (Y[b][t][k] - mean) / std::sqrt(var + 1e-5) * gain[k] + shift[k];
      if (var == 0) ++untaken;
    }
  CHECK(untaken > 0);  // 3 experts, groups of 4: a token no expert took gets the shift
  auto y = layer->forward(x);
  CHECK(max_abs_diff(y, expected) < 1e-12);
  CHECK(max_abs_diff(y, bare) > 0.1);
  // The config key: on by default, off on request.
  ModelDims dims{d, 8, 3, 2, 0};
  Json cfg = {{"type", "expert_choice"},
              {"n_experts", 3},
              {"group_size", 4},
              {"expert_size", 5},
              {"capacity_factor", 0.75}};
  CHECK(std::dynamic_pointer_cast<ExpertChoiceImpl>(parse_ffn(cfg, "ffn", dims)())->output_norm);
  cfg["output_norm"] = false;
  CHECK(!std::dynamic_pointer_cast<ExpertChoiceImpl>(parse_ffn(cfg, "ffn", dims)())->output_norm);
  cfg["output_norm"] = "yes";
  CHECK_THROWS_AS(parse_ffn(cfg, "ffn", dims), ConfigError);
}

TEST_CASE("soft moe equals the naive loop") {
  torch::manual_seed(13);
  auto layer = make_soft_moe(/*d=*/6, /*batch=*/6, /*e=*/2, /*p=*/2, /*g=*/3, /*f=*/4);
  auto x = torch::randn({6, 3, 6}, torch::kDouble);
  CHECK(max_abs_diff(layer->forward(x), naive_soft_moe(x, *layer, 3, 2)) < 1e-12);
}

// ---- one expert is the dense layer ---------------------------------------------------------

TEST_CASE("with one expert (and group size one) every layer is the dense layer") {
  torch::manual_seed(14);
  auto x = torch::randn({4, 3, 6}, torch::kDouble);
  SUBCASE("switch") {
    auto layer = make_token_choice(6, 4, 1, 10, 1, 1.25);
    CHECK(max_abs_diff(layer->forward(x), dense_copy(layer->w1[0], layer->w2[0], 4)->forward(x)) <
          1e-12);
  }
  SUBCASE("top-2 over two copies of the dense weights (renormalised gates sum to 1)") {
    auto layer = make_token_choice(6, 4, 2, 10, 2, 2.0);
    {
      torch::NoGradGuard no_grad;
      layer->w1[1].copy_(layer->w1[0]);
      layer->w2[1].copy_(layer->w2[0]);
    }
    CHECK(max_abs_diff(layer->forward(x), dense_copy(layer->w1[0], layer->w2[0], 4)->forward(x)) <
          1e-12);
  }
  SUBCASE("expert choice, g = 1, k = 1") {
    auto layer = make_expert_choice(6, 4, 1, 1, 10, 1);
    CHECK(max_abs_diff(layer->forward(x), dense_copy(layer->w1[0], layer->w2[0], 4)->forward(x)) <
          1e-12);
  }
  SUBCASE("soft moe, g = 1, one slot") {
    auto layer = make_soft_moe(6, 4, 1, 1, 1, 10);
    CHECK(max_abs_diff(layer->forward(x), dense_copy(layer->w1[0], layer->w2[0], 4)->forward(x)) <
          1e-12);
  }
}

// ---- gradients ----------------------------------------------------------------------------

TEST_CASE("gradients match float64 finite differences") {
  torch::manual_seed(15);
  auto x = torch::randn({4, 3, 5}, torch::kDouble).requires_grad_(true);
  auto probe = torch::randn({4, 3, 5}, torch::kDouble);
  SUBCASE("switch with dropping, aux loss and z-loss") {
    auto layer = make_token_choice(5, 4, 3, 4, 1, 0.75, /*z_loss=*/0.1);
    check_gradients(
        [&] {
          auto y = layer->forward(x);  // first: aux_loss() is the loss of this forward
          return (y * probe).sum() + layer->aux_loss();
        },
        {x, layer->router, layer->w1, layer->w2});
  }
  SUBCASE("top-2") {
    auto layer = make_token_choice(5, 4, 3, 4, 2, 1.0);
    check_gradients(
        [&] {
          auto y = layer->forward(x);  // first: aux_loss() is the loss of this forward
          return (y * probe).sum() + layer->aux_loss();
        },
        {x, layer->router, layer->w1, layer->w2});
  }
  SUBCASE("expert choice") {
    auto layer = make_expert_choice(5, 4, 2, 2, 4, 1);
    check_gradients([&] { return (layer->forward(x) * probe).sum(); },
                    {x, layer->router, layer->w1, layer->w2});
  }
  SUBCASE("soft moe") {
    auto layer = make_soft_moe(5, 4, 2, 2, 2, 4);
    check_gradients([&] { return (layer->forward(x) * probe).sum(); },
                    {x, layer->phi, layer->w1, layer->w2});
  }
}

// ---- causality ----------------------------------------------------------------------------

TEST_CASE("every layer is causal, Switch and top-2 also while dropping tokens") {
  torch::manual_seed(16);
  auto x = torch::randn({8, 6, 6}, torch::kDouble);
  // Capacity factor 1 with an uneven router: some tokens are dropped (mostly at late positions,
  // which position-major priority serves last), yet every position keeps some tokens.
  SUBCASE("switch") {
    auto layer = make_token_choice(6, 8, 3, 5, 1, 1.0);
    layer->record_stats(true);
    layer->forward(x);
    CHECK(stat(*layer, "dropped_frac") > 0.0);  // the capacity binds
    layer->record_stats(false);
    check_causal(*layer, x);
  }
  SUBCASE("top-2") {
    auto layer = make_token_choice(6, 8, 3, 5, 2, 1.0);
    layer->record_stats(true);
    layer->forward(x);
    CHECK(stat(*layer, "dropped_frac") > 0.0);
    layer->record_stats(false);
    check_causal(*layer, x);
  }
  SUBCASE("expert choice") {
    check_causal(*make_expert_choice(6, 8, 4, 4, 5, 1), x);
  }
  SUBCASE("soft moe") {
    check_causal(*make_soft_moe(6, 8, 2, 2, 4, 5), x);
  }
}

// ---- relations between layers -------------------------------------------------------------

TEST_CASE("mot at T -> 0 is expert choice with k = 1 (without the probability scaling)") {
  // MoT's discrete routing gives each expert the token of the group with the largest logit
  // x . c_e and does not scale its output; Expert Choice ranks tokens by the router
  // probability softmax_e(x . c)_e and scales by it. The rankings agree whenever the
  // softmax's per-token normaliser cannot reorder tokens: with two experts and c_2 = -c_1,
  // p_{i,1} = sigmoid(2 x_i . c_1) is increasing in the logit of expert 1, and likewise for
  // expert 2. On such weights, MoT at T = 1e-6 must equal EC (k = 1) without the scaling.
  torch::manual_seed(17);
  MotOptions mo;
  mo.n_experts = 2;
  mo.group_size = 4;
  mo.expert_size = 5;
  mo.temperature = 1e-6;
  auto mot = std::make_shared<MotImpl>(dims_for(6, 8), mo);
  mot->to(torch::kDouble);
  auto ec = make_expert_choice(6, 8, 2, 4, 5, 1, /*scale=*/false);
  {
    torch::NoGradGuard no_grad;
    mot->controller.normal_(0.0, 0.7);
    mot->controller.select(1, 1).copy_(-mot->controller.select(1, 0));
    ec->router.copy_(mot->controller);
    ec->w1.copy_(mot->w1);
    ec->w2.copy_(mot->w2);
  }
  auto x = torch::randn({8, 4, 6}, torch::kDouble);
  auto y_ec = ec->forward(x);
  CHECK(max_abs_diff(mot->forward(x), y_ec) < 1e-9);
  mot->set_eval_mode("discrete");
  CHECK(max_abs_diff(mot->forward(x), y_ec) < 1e-12);
  // With its scaling EC differs from MoT (the comparison could fail).
  auto ec_scaled = make_expert_choice(6, 8, 2, 4, 5, 1, /*scale=*/true);
  {
    torch::NoGradGuard no_grad;
    ec_scaled->router.copy_(ec->router);
    ec_scaled->w1.copy_(ec->w1);
    ec_scaled->w2.copy_(ec->w2);
  }
  CHECK(max_abs_diff(ec_scaled->forward(x), y_ec) > 0.1 * y_ec.abs().max().item<double>());
  // Scaled EC equals the naive definition on these weights too.
  CHECK(max_abs_diff(ec_scaled->forward(x),
                     naive_expert_choice(x, ec->router, ec->w1, ec->w2, 4, 1, true)) < 1e-12);
}

TEST_CASE("mot discrete lets no token content cross examples") {
  // In discrete mode, which tokens an expert takes depends on the whole group, but what it
  // writes into token i is a function of x_i alone: dy_i/dx_j = 0 for every j != i. Mixed
  // mode is the counter-example (the check can fail).
  torch::manual_seed(18);
  MotOptions mo;
  mo.n_experts = 3;
  mo.group_size = 4;
  mo.expert_size = 5;
  auto mot = std::make_shared<MotImpl>(dims_for(6, 8), mo);
  mot->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    mot->controller.normal_(0.0, 0.7);
  }
  auto cross_gradient = [&](const std::string& mode, int64_t i) {
    mot->set_eval_mode(mode);
    auto x = torch::randn({8, 3, 6}, torch::kDouble).requires_grad_(true);
    mot->forward(x).index({i}).sum().backward();
    auto g = x.grad().clone();
    g.index_put_({i}, 0.0);  // the token's own sequence
    return g.abs().max().item<double>();
  };
  for (int64_t i : {0, 2, 5}) {
    CHECK(cross_gradient("discrete", i) == 0.0);
    CHECK(cross_gradient("mixed", i) > 1e-6);
  }
}

TEST_CASE("switch: aux loss is alpha at uniform routing, dropping matches a hand-built case") {
  // Zero router weights: p = 1/E for every token, so sum_e f_e P_e = 1/E whatever f is.
  auto uniform = make_token_choice(4, 4, 4, 3, 1, 1.25);
  {
    torch::NoGradGuard no_grad;
    uniform->router.zero_();
  }
  uniform->forward(torch::randn({4, 3, 4}, torch::kDouble));
  CHECK(uniform->aux_loss().item<double>() == doctest::Approx(0.01));

  // Two experts, router logit difference 10 x_0: tokens with x_0 > 0 go to expert 0.
  // Batch 2 x 4 positions; x_0 signs: sequence 0: + + + -, sequence 1: + + - -.
  // Expert 0 is wanted by 5 tokens, expert 1 by 3; capacity ceil(0.5 * 8 / 2) = 2.
  // Position-major priority keeps (t0,s0), (t0,s1) for expert 0 and (t2,s1), (t3,s0) for
  // expert 1; it drops (t1,s0), (t1,s1), (t2,s0), (t3,s1).
  auto layer = make_token_choice(2, 2, 2, 3, 1, 0.5);
  {
    torch::NoGradGuard no_grad;
    layer->router.copy_(torch::tensor({{5.0, -5.0}, {0.0, 0.0}}, torch::kDouble));
    layer->w1.uniform_(0.5, 1.0);  // positive weights: a kept token's output is non-zero
    layer->w2.uniform_(0.5, 1.0);
  }
  // x_1 = 3 on the expert-1 tokens keeps W1 x positive, so kept rows are non-zero.
  auto x = torch::tensor({{{1.0, 1.0}, {1.0, 1.0}, {1.0, 1.0}, {-1.0, 3.0}},
                          {{1.0, 1.0}, {1.0, 1.0}, {-1.0, 3.0}, {-1.0, 3.0}}},
                         torch::kDouble);
  layer->record_stats(true);
  auto y = layer->forward(x);
  auto row_is_zero = (y.abs().sum(2) == 0);
  auto expected_dropped = torch::tensor({{false, true, true, false}, {false, true, false, true}});
  CHECK(torch::equal(row_is_zero, expected_dropped));
  CHECK(stat(*layer, "dropped_frac") == doctest::Approx(0.5));
  CHECK(stat(*layer, "load_cv") == doctest::Approx(0.25));  // loads 5, 3: std 1, mean 4
  CHECK(stat(*layer, "max_load") == doctest::Approx(1.25));
  // Fully imbalanced routing: f_0 = 1, P_0 ~ 1, so the loss is alpha E.
  auto all_to_expert_0 = torch::ones({2, 4, 2}, torch::kDouble) * 3.0;
  layer->forward(all_to_expert_0);
  CHECK(layer->aux_loss().item<double>() == doctest::Approx(0.01 * 2).epsilon(1e-6));
}

TEST_CASE(
    "switch: the load-balancing loss reaches the router and pushes tokens off an overloaded "
    "expert, but hardly sees a collapse of a near-uniform router") {
  // Every input shares a common direction u (x = u + small noise) and the router's column 0
  // has a small component along u: all tokens go to expert 0 (f_0 = 1), while p stays near
  // uniform. This is the collapse of the committed moe_comparison runs (load_cv 3.8 at router
  // entropy 0.996): the loss alpha E sum_e f_e P_e is then only a little above alpha.
  torch::manual_seed(23);
  const int64_t d = 4, e = 4;
  auto layer = make_token_choice(d, /*batch=*/4, e, /*f=*/3, /*k=*/1, 1.25);
  auto u = torch::tensor({1.0, -1.0, 0.5, 0.5}, torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    layer->router.normal_(0.0, 0.02);
    layer->router.select(1, 0).add_(0.1 * u);
  }
  auto x = (u + 0.05 * torch::randn({4, 6, d}, torch::kDouble)).detach();
  layer->record_stats(true);
  layer->forward(x);
  CHECK(stat(*layer, "load_cv") == doctest::Approx(std::sqrt(double(e) - 1)));  // all on one
  CHECK(stat(*layer, "entropy") > 0.98);
  const double alpha = 0.01, aux = layer->aux_loss().item<double>();
  CHECK(aux > alpha);
  CHECK(aux < 1.5 * alpha);  // fully collapsed routing costs less than 0.5 alpha more

  // Its gradient, alone, is that of its definition (finite differences) and non-zero in the
  // router; the experts get none (f is a count, P_e the mean router probability).
  layer->record_stats(false);
  check_gradients(
      [&] {
        layer->forward(x);
        return layer->aux_loss();
      },
      {layer->router});
  auto grad = layer->router.grad().clone();
  CHECK(grad.abs().max().item<double>() > 1e-4);
  for (auto* w : {&layer->w1, &layer->w2})
    CHECK((!w->grad().defined() || w->grad().abs().max().item<double>() == 0.0));
  // A step against it lowers expert 0's mean probability and the loss.
  auto mean_p0 = [&] {
    return torch::softmax(torch::matmul(x.reshape({-1, d}), layer->router), 1)
        .select(1, 0)
        .mean()
        .item<double>();
  };
  const double before = mean_p0();
  {
    torch::NoGradGuard no_grad;
    layer->router.sub_(grad / grad.norm() * 0.05);
  }
  layer->forward(x);
  CHECK(mean_p0() < before);
  CHECK(layer->aux_loss().item<double>() < aux);

  // In the model, the summed auxiliary loss of every switch layer reaches each router.
  ModelDims dims{16, 4, 8, 2, 0};
  ModelConfig m;
  m.d_model = 16;
  m.seq_len = 8;
  Gpt model(m,
            parse_ffn(Json{{"type", "switch"}, {"n_experts", 4}, {"expert_size", 8}}, "ffn", dims));
  auto tokens = torch::randint(0, 256, {4, 8});
  model->loss(tokens, tokens);
  auto total = model->aux_loss();
  double layers_sum = 0;
  for (const auto& layer_i : model->ffn_layers()) layers_sum += layer_i->aux_loss().item<double>();
  CHECK(total.item<double>() == doctest::Approx(layers_sum));
  total.backward();
  int64_t routers = 0;
  for (const auto& p : model->named_parameters())
    if (ends_with(p.key(), "router")) {
      CAPTURE(p.key());
      ++routers;
      REQUIRE(p.value().grad().defined());
      CHECK(p.value().grad().abs().max().item<double>() > 0.0);
    }
  CHECK(routers == 2);
}

// ---- configs and costs --------------------------------------------------------------------

TEST_CASE("moe configs refuse impossible shapes, naming key and value") {
  ModelDims dims{64, 32, 64, 2, 0};
  auto parse = [&](const Json& cfg) { return [&, cfg] { parse_ffn(cfg, "ffn", dims); }; };
  Json ec = {{"type", "expert_choice"},
             {"n_experts", 16},
             {"group_size", 16},
             {"expert_size", "flop_matched"},
             {"d_ff", 256}};
  CHECK_NOTHROW(parse_ffn(ec, "ffn", dims));
  Json bad = ec;
  bad["group_size"] = 12;
  expect_config_error(parse(bad), "ffn.group_size", "12");
  bad = ec;
  bad["capacity_factor"] = 1.5;  // k = 1.5
  expect_config_error(parse(bad), "ffn.capacity_factor", "1.5");
  bad = ec;
  bad["capacity_factor"] = 0.5;  // k = 0.5
  expect_config_error(parse(bad), "ffn.capacity_factor", "0.5");

  Json top_k = {{"type", "top_k"}, {"n_experts", 4}, {"expert_size", 32}, {"k", 5}};
  expect_config_error(parse(top_k), "ffn.k", "5");
  top_k["k"] = 3;
  top_k["expert_size"] = "flop_matched";
  top_k["d_ff"] = 256;  // 256 / 3 is no integer
  expect_config_error(parse(top_k), "ffn.d_ff", "256");

  Json sw = {{"type", "switch"}, {"n_experts", 4}, {"expert_size", 32}, {"capacity_factor", 0}};
  expect_config_error(parse(sw), "ffn.capacity_factor", "0");
  sw["capacity_factor"] = 1.0;
  sw["z_loss"] = -1;
  expect_config_error(parse(sw), "ffn.z_loss", "-1");
  sw["z_loss"] = 0.001;
  sw["group_size"] = 4;  // switch has no groups: unknown key
  CHECK_THROWS_AS(parse_ffn(sw, "ffn", dims), ConfigError);

  Json soft = {{"type", "soft_moe"}, {"n_experts", 4}, {"group_size", 5}, {"expert_size", 8}};
  expect_config_error(parse(soft), "ffn.group_size", "5");

  Json transition = {
      {"type", "transition"}, {"n_experts", 4}, {"group_size", 4}, {"expert_size", 8}};
  try {
    parse_ffn(transition, "ffn", dims);
    FAIL("transition without switch_at_step accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "ffn.switch_at_step");
  }
  transition["switch_at_step"] = 0;
  expect_config_error(parse(transition), "ffn.switch_at_step", "0");
}

TEST_CASE("moe parameter and FLOP counts against a hand count, flop matched to dense") {
  // The sweep's model: d 64, d_ff 256, 16 experts, groups of 16, batch 32.
  const int64_t d = 64, d_ff = 256, e = 16, g = 16;
  ModelDims dims{d, 32, 64, 2, 0};
  auto cost_of = [&](Json cfg) {
    cfg["n_experts"] = e;
    cfg["expert_size"] = "flop_matched";
    cfg["d_ff"] = d_ff;
    return parse_ffn(cfg, "ffn", dims)()->cost();
  };
  const double dense_flops = 4.0 * d * d_ff;

  // Switch: f = d_ff, one expert per token, router d x E.
  LayerCost sw = cost_of({{"type", "switch"}});
  CHECK(sw.params_total == e * 2 * d * d_ff + d * e);
  CHECK(sw.params_active == 2 * d * d_ff + d * e);
  CHECK(sw.forward_flops == doctest::Approx(dense_flops + 2.0 * d * e));

  // Top-2: f = d_ff / 2, two experts per token.
  LayerCost t2 = cost_of({{"type", "top_k"}});
  CHECK(t2.params_total == e * 2 * d * (d_ff / 2) + d * e);
  CHECK(t2.params_active == 2 * 2 * d * (d_ff / 2) + d * e);
  CHECK(t2.forward_flops == doctest::Approx(dense_flops + 2.0 * d * e));

  // Expert choice, capacity factor 2: k = 2 tokens per expert per group of 16, so a token
  // pays for E k / g = 2 expert passes of f = d_ff / 2.
  // Its output LayerNorm (on by default) adds a gain and a shift of d each, and no matrix
  // product.
  LayerCost ec = cost_of({{"type", "expert_choice"}, {"group_size", g}, {"capacity_factor", 2}});
  CHECK(ec.params_total == e * 2 * d * (d_ff / 2) + d * e + 2 * d);
  CHECK(ec.params_active == 2 * 2 * d * (d_ff / 2) + d * e + 2 * d);
  CHECK(ec.forward_flops == doctest::Approx(dense_flops + 2.0 * d * e));
  LayerCost ec_bare = cost_of({{"type", "expert_choice"},
                               {"group_size", g},
                               {"capacity_factor", 2},
                               {"output_norm", false}});
  CHECK(ec_bare.params_total == e * 2 * d * (d_ff / 2) + d * e);
  CHECK(ec_bare.params_active == 2 * 2 * d * (d_ff / 2) + d * e);

  // Soft MoE, 2 slots per expert: f = d_ff g / (E p) = 128; logits, dispatch and combine
  // cost 2 d (E p) each per token.
  LayerCost soft = cost_of({{"type", "soft_moe"}, {"group_size", g}, {"slots_per_expert", 2}});
  CHECK(soft.params_total == e * 2 * d * 128 + d * e * 2);
  CHECK(soft.forward_flops == doctest::Approx(dense_flops + 3 * 2.0 * d * e * 2));

  // Transition reports its MoT phase: g x the dense parameters plus the controller.
  LayerCost tr = cost_of({{"type", "transition"}, {"group_size", g}, {"switch_at_step", 10}});
  CHECK(tr.params_total == g * 2 * d * d_ff + d * e);

  // The model's count equals its real parameters for every type.
  ModelConfig m;
  for (Json cfg : {Json{{"type", "switch"}}, Json{{"type", "top_k"}},
                   Json{{"type", "expert_choice"}, {"group_size", g}},
                   Json{{"type", "expert_choice"}, {"group_size", g}, {"output_norm", false}},
                   Json{{"type", "soft_moe"}, {"group_size", g}},
                   Json{{"type", "transition"}, {"group_size", g}, {"switch_at_step", 3}}}) {
    cfg["n_experts"] = e;
    cfg["expert_size"] = "flop_matched";
    cfg["d_ff"] = d_ff;
    CAPTURE(cfg.dump());
    Gpt model(m, parse_ffn(cfg, "ffn", dims));
    int64_t counted = 0;
    for (const auto& p : model->parameters()) counted += p.numel();
    CHECK(model->cost().params_total == counted);
  }
}

TEST_CASE("moe statistics are recorded only when asked, and entropy is 1 at uniform routing") {
  ModelDims dims{8, 4, 8, 2, 0};
  for (Json cfg : {Json{{"type", "switch"}}, Json{{"type", "top_k"}},
                   Json{{"type", "expert_choice"}, {"group_size", 4}},
                   Json{{"type", "soft_moe"}, {"group_size", 4}}}) {
    CAPTURE(cfg.dump());
    cfg["n_experts"] = 4;
    cfg["expert_size"] = 6;
    auto layer = parse_ffn(cfg, "ffn", dims)();
    for (auto& p : layer->named_parameters())
      if (p.key() == "router" || p.key() == "phi") {
        torch::NoGradGuard no_grad;
        p.value().zero_();
      }
    auto x = torch::randn({4, 3, 8});
    layer->forward(x);
    CHECK(!layer->stat_values().defined());
    layer->record_stats(true);
    layer->forward(x);
    REQUIRE(layer->stat_values().defined());
    CHECK(stat(*layer, "entropy") == doctest::Approx(1.0));
    CHECK(layer->stat_values().device() == x.device());
  }
}

// ---- model.init ---------------------------------------------------------------------------

namespace {

// Standard deviation of N(0, sigma) truncated to [-bound, bound], from the closed form
// sigma^2 (1 - 2 a phi(a) / (2 Phi(a) - 1)) with a = bound / sigma.
double truncated_normal_std(double sigma, double bound) {
  const double a = bound / sigma;
  const double pdf = std::exp(-0.5 * a * a) / std::sqrt(2.0 * M_PI);
  const double mass = std::erf(a / std::sqrt(2.0));  // 2 Phi(a) - 1
  return sigma * std::sqrt(1.0 - 2.0 * a * pdf / mass);
}

Json init_run_config(const Json& ffn, const char* init) {
  Json model = {{"d_model", 64}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", 32}};
  if (init) model["init"] = init;
  return {{"model", model},
          {"ffn", ffn},
          {"data", {{"corpus", "brown"}}},
          {"train", {{"batch_size", 16}}},
          {"eval", Json::object()}};
}

}  // namespace

TEST_CASE("model.init reference: truncated normal of std sqrt(0.1 / fan_in) in every matrix") {
  // The reference (llm-random truncated_normal, init_scale 0.1): std sqrt(0.1 / fan_in), cut at
  // +-2 * 0.1 absolute. Fan-in: d for attention, router, controller, phi and the first expert
  // matrix, f for the second, 1 for the embeddings (whose cut at 0.2 = 0.63 std bites).
  const double s = 0.1, bound = 2 * s;
  const int64_t d = 64, d_ff = 256;
  for (Json ffn :
       {Json{{"type", "dense"}, {"d_ff", d_ff}},
        Json{{"type", "switch"}, {"n_experts", 16}, {"expert_size", 128}},
        Json{
            {"type", "expert_choice"}, {"n_experts", 16}, {"group_size", 16}, {"expert_size", 128}},
        Json{{"type", "mot"}, {"n_experts", 16}, {"group_size", 16}, {"expert_size", 32}},
        Json{{"type", "soft_moe"}, {"n_experts", 8}, {"group_size", 16}, {"expert_size", 32}}}) {
    CAPTURE(ffn.dump());
    torch::manual_seed(21);
    RunConfig config = parse_run_config(init_run_config(ffn, "reference"), "init.json");
    CHECK(config.model.init == "reference");
    Gpt model(config.model, config.ffn);
    const int64_t f = ffn.value("expert_size", d_ff);
    for (const auto& p : model->named_parameters()) {
      const std::string& name = p.key();
      const torch::Tensor& w = p.value();
      CAPTURE(name);
      if (w.dim() < 2) {
        // LayerNorm gains 1, every bias and LayerNorm shift 0, temperatures as constructed.
        if (name.find("ln_") != std::string::npos || name.find("norm") != std::string::npos)
          CHECK(torch::all(w == (ends_with(name, "weight") ? 1.0 : 0.0)).item<bool>());
        else if (ends_with(name, "bias"))
          CHECK(torch::all(w == 0).item<bool>());
        continue;
      }
      int64_t fan_in = d;  // attention, router, controller, phi, w1
      if (name == "wte" || name == "wpe") fan_in = 1;
      if (ends_with(name, "ffn.w2")) fan_in = ffn["type"] == "dense" ? d_ff : f;
      const double sigma = std::sqrt(s / double(fan_in));
      const double expected_std = truncated_normal_std(sigma, bound);
      const double n = double(w.numel());
      const double std = w.std(/*unbiased=*/false).item<double>();
      // The sample std of n draws has a relative error of about 1 / sqrt(2 n) (less with the
      // truncation's light tails): 5 of those is a bound no correct init crosses by chance.
      CHECK(std == doctest::Approx(expected_std).epsilon(5.0 / std::sqrt(2.0 * n)));
      CHECK(std::fabs(w.mean().item<double>()) < 5.0 * expected_std / std::sqrt(n));
      CHECK(w.abs().max().item<double>() <= bound);
      if (fan_in == 1) CHECK(w.abs().max().item<double>() > 0.99 * bound);  // the cut is used
    }
    // The embedding's effective std is well below its nominal sqrt(0.1) (the cut), and the
    // expert matrices' is the nominal one: the two rules are told apart.
    CHECK(truncated_normal_std(std::sqrt(s), bound) < 0.4 * std::sqrt(s));
    CHECK(truncated_normal_std(std::sqrt(s / d), bound) == doctest::Approx(std::sqrt(s / d)));
  }
}

TEST_CASE("model.init gpt2 is the default, redraws nothing and keeps the config's hash") {
  Json ffn = {{"type", "switch"}, {"n_experts", 4}, {"expert_size", 32}};
  RunConfig plain = parse_run_config(init_run_config(ffn, nullptr), "init.json");
  CHECK(plain.model.init == "gpt2");
  CHECK(!plain.json.at("model").contains("init"));  // the default is not written in
  RunConfig named = parse_run_config(init_run_config(ffn, "gpt2"), "init.json");
  CHECK(named.model.init == "gpt2");

  torch::manual_seed(22);
  Gpt model(plain.model, plain.ffn);
  std::vector<torch::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.clone());
  const auto next_draw = torch::randn({4});
  torch::manual_seed(22);
  Gpt again(plain.model, plain.ffn);
  apply_init_scheme(*again, "gpt2");  // a second application changes nothing, draws nothing
  CHECK(torch::equal(torch::randn({4}), next_draw));
  auto params = again->parameters();
  REQUIRE(params.size() == before.size());
  for (size_t i = 0; i < params.size(); ++i) CHECK(torch::equal(params[i], before[i]));
  // GPT-2's N(0, 0.02) in the token embedding, unlike the reference's cut sqrt(0.1).
  CHECK(model->named_parameters()["wte"].std().item<double>() ==
        doctest::Approx(0.02).epsilon(0.1));

  try {
    parse_run_config(init_run_config(ffn, "xavier"), "init.json");
    FAIL("model.init xavier accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "model.init");
    CHECK(e.value() == "\"xavier\"");
  }
}
