// Mixture of Tokens against a naive loop over the brief's formula, plus its invariants.
#include <doctest/doctest.h>

#include <cmath>

#include "layers/dense.h"
#include "layers/mot.h"
#include "layers/registry.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::check_gradients;
using testing::max_abs_diff;

namespace {

ModelDims dims_for(int64_t d, int64_t batch) {
  return ModelDims{d, batch, 8, 2, 0};
}

std::shared_ptr<MotImpl> make_mot(int64_t d, int64_t batch, int64_t e, int64_t g, int64_t f,
                                  double temperature, bool learnable = false) {
  MotOptions o;
  o.n_experts = e;
  o.group_size = g;
  o.expert_size = f;
  o.temperature = temperature;
  o.learnable_temperature = learnable;
  auto layer = std::make_shared<MotImpl>(dims_for(d, batch), o);
  layer->to(torch::kDouble);
  // Larger controller weights than the init, so the softmax is far from uniform.
  torch::NoGradGuard no_grad;
  layer->controller.normal_(0.0, 0.5);
  return layer;
}

// y_i = sum_e w_ie W2_e relu(W1_e sum_j w_je x_j), w_.e = softmax_j(x_j . c_e / T), computed
// with scalar loops in double; groups are g consecutive sequences at one position.
torch::Tensor naive_mot(const torch::Tensor& x, const MotImpl& layer, int64_t g, double t,
                        bool discrete) {
  const int64_t b = x.size(0), s = x.size(1), d = x.size(2);
  const int64_t e = layer.controller.size(1), f = layer.w1.size(2);
  auto X = x.accessor<double, 3>();
  auto C = layer.controller.accessor<double, 2>();
  auto W1 = layer.w1.accessor<double, 3>();
  auto W2 = layer.w2.accessor<double, 3>();
  auto y = torch::zeros_like(x);
  auto Y = y.accessor<double, 3>();
  for (int64_t group = 0; group < b / g; ++group) {
    for (int64_t pos = 0; pos < s; ++pos) {
      for (int64_t ex = 0; ex < e; ++ex) {
        std::vector<double> logit(g), w(g);
        double mx = -1e300, z = 0;
        for (int64_t i = 0; i < g; ++i) {
          logit[i] = 0;
          for (int64_t k = 0; k < d; ++k) logit[i] += X[group * g + i][pos][k] * C[k][ex];
          logit[i] /= t;
          mx = std::max(mx, logit[i]);
        }
        for (int64_t i = 0; i < g; ++i) z += w[i] = std::exp(logit[i] - mx);
        for (int64_t i = 0; i < g; ++i) w[i] /= z;
        if (discrete) {
          int64_t best = std::max_element(logit.begin(), logit.end()) - logit.begin();
          for (int64_t i = 0; i < g; ++i) w[i] = i == best ? 1.0 : 0.0;
        }
        std::vector<double> mixed(d, 0.0), hidden(f, 0.0), out(d, 0.0);
        for (int64_t i = 0; i < g; ++i)
          for (int64_t k = 0; k < d; ++k) mixed[k] += w[i] * X[group * g + i][pos][k];
        for (int64_t h = 0; h < f; ++h) {
          for (int64_t k = 0; k < d; ++k) hidden[h] += mixed[k] * W1[ex][k][h];
          hidden[h] = std::max(0.0, hidden[h]);
        }
        for (int64_t k = 0; k < d; ++k)
          for (int64_t h = 0; h < f; ++h) out[k] += hidden[h] * W2[ex][h][k];
        for (int64_t i = 0; i < g; ++i)
          for (int64_t k = 0; k < d; ++k) Y[group * g + i][pos][k] += w[i] * out[k];
      }
    }
  }
  return y;
}

}  // namespace

TEST_CASE("mot equals the naive loop of the formula (mixed and discrete)") {
  torch::manual_seed(1);
  for (double t : {1.0, 0.3}) {
    auto layer = make_mot(/*d=*/6, /*batch=*/8, /*e=*/3, /*g=*/4, /*f=*/5, t);
    auto x = torch::randn({8, 3, 6}, torch::kDouble);
    CHECK(max_abs_diff(layer->forward(x), naive_mot(x, *layer, 4, t, false)) < 1e-12);
    layer->set_eval_mode("discrete");
    CHECK(max_abs_diff(layer->forward(x), naive_mot(x, *layer, 4, t, true)) < 1e-12);
  }
}

TEST_CASE("mot with groups of one token equals the naive loop, values and gradients") {
  // Group size 1 takes its own path (one wide FFN); the loop knows nothing of that.
  torch::manual_seed(11);
  for (const char* mode : {"mixed", "discrete"}) {
    auto layer = make_mot(/*d=*/6, /*batch=*/4, /*e=*/5, /*g=*/1, /*f=*/3, 0.5);
    layer->set_eval_mode(mode);
    auto x = torch::randn({4, 3, 6}, torch::kDouble).requires_grad_(true);
    auto probe = torch::randn({4, 3, 6}, torch::kDouble);
    auto y = layer->forward(x);
    CHECK(max_abs_diff(y, naive_mot(x.detach(), *layer, 1, 0.5, mode[0] == 'd')) < 1e-12);
    // Gradients for x and the experts (the controller gets none: its softmax is constant).
    check_gradients([&] { return (layer->forward(x) * probe).sum(); }, {x, layer->w1, layer->w2});
  }
}

TEST_CASE("mot groups sequences, not positions: it is causal") {
  torch::manual_seed(2);
  auto layer = make_mot(6, 8, 3, 4, 5, 1.0);
  auto x = torch::randn({8, 5, 6}, torch::kDouble);
  auto y = layer->forward(x);
  for (int64_t t = 0; t < 4; ++t) {
    auto changed = x.clone();
    using torch::indexing::Slice;
    changed.index_put_({Slice(), Slice(t + 1)}, torch::randn({8, 5 - t - 1, 6}, torch::kDouble));
    auto y2 = layer->forward(changed);
    CHECK(max_abs_diff(y.index({Slice(), Slice(0, t + 1)}), y2.index({Slice(), Slice(0, t + 1)})) ==
          0.0);
    CHECK(max_abs_diff(y.index({Slice(), Slice(t + 1)}), y2.index({Slice(), Slice(t + 1)})) > 1e-6);
  }
}

TEST_CASE("mot with one expert and group size one is the dense layer") {
  torch::manual_seed(3);
  auto mot = make_mot(6, 4, 1, 1, 10, 1.0);
  auto dense = std::make_shared<DenseFfnImpl>(dims_for(6, 4), 10);
  dense->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    dense->w1.copy_(mot->w1[0]);
    dense->w2.copy_(mot->w2[0]);
  }
  auto x = torch::randn({4, 3, 6}, torch::kDouble);
  CHECK(max_abs_diff(mot->forward(x), dense->forward(x)) < 1e-12);
}

TEST_CASE("mot at a temperature near zero equals its discrete mode") {
  torch::manual_seed(4);
  auto layer = make_mot(6, 8, 3, 4, 5, 1e-6);
  auto x = torch::randn({8, 3, 6}, torch::kDouble);
  auto mixed = layer->forward(x);
  layer->set_eval_mode("discrete");
  CHECK(max_abs_diff(mixed, layer->forward(x)) < 1e-9);
}

TEST_CASE("mot gradients match float64 finite differences") {
  torch::manual_seed(5);
  auto layer = make_mot(5, 4, 2, 2, 3, 0.7, /*learnable=*/true);
  auto x = torch::randn({4, 2, 5}, torch::kDouble).requires_grad_(true);
  auto probe = torch::randn({4, 2, 5}, torch::kDouble);
  check_gradients([&] { return (layer->forward(x) * probe).sum(); },
                  {x, layer->controller, layer->w1, layer->w2, layer->log_temperature});
}

TEST_CASE("learnable temperature starts at T0 and learns only from its step") {
  ModelDims dims = dims_for(8, 4);
  Json cfg = {{"type", "mot"},
              {"n_experts", 2},
              {"group_size", 2},
              {"expert_size", 4},
              {"temperature", "learnable"},
              {"initial_temperature", 0.5},
              {"learn_temperature_from_step", 3}};
  auto layer = std::dynamic_pointer_cast<MotImpl>(parse_ffn(cfg, "ffn", dims)());
  REQUIRE(layer);
  CHECK(layer->temperature().item<double>() == doctest::Approx(0.5));
  auto x = torch::randn({4, 2, 8});
  layer->on_step(2);
  layer->forward(x).pow(2).sum().backward();
  CHECK(!layer->log_temperature.grad().defined());
  layer->on_step(3);
  layer->forward(x).pow(2).sum().backward();
  REQUIRE(layer->log_temperature.grad().defined());
  CHECK(layer->log_temperature.grad().abs().item<double>() > 0);
}

TEST_CASE("mot config: group size must divide the batch, flop matching, unknown keys") {
  ModelDims dims{64, 32, 64, 2, 0};
  Json good = {{"type", "mot"},
               {"n_experts", 16},
               {"group_size", 16},
               {"expert_size", "flop_matched"},
               {"d_ff", 256}};
  auto layer = parse_ffn(good, "ffn", dims)();
  LayerCost cost = layer->cost();
  // Flop matched: the experts' compute per token equals the dense layer of width d_ff, and the
  // layer holds g times the dense parameters (plus the controller).
  CHECK(cost.params_total == 16 * 2 * 64 * 256 + 64 * 16);
  CHECK(cost.forward_flops == doctest::Approx(4.0 * 64 * 256 + 6.0 * 64 * 16));
  // Groups of one token compute only the experts: E of width d_ff / E, the dense FLOPs.
  Json single = good;
  single["group_size"] = 1;
  LayerCost one = parse_ffn(single, "ffn", dims)()->cost();
  CHECK(one.forward_flops == doctest::Approx(4.0 * 64 * 256));
  CHECK(one.params_active == 2 * 64 * 256 + 64 * 16);

  Json bad = good;
  bad["group_size"] = 7;
  try {
    parse_ffn(bad, "ffn", dims);
    FAIL("group_size 7 with batch 32 was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "ffn.group_size");
    CHECK(e.value() == "7");
  }
  Json typo = good;
  typo["temprature"] = 0.5;
  CHECK_THROWS_AS(parse_ffn(typo, "ffn", dims), ConfigError);
  Json unknown = {{"type", "moe_of_dreams"}};
  try {
    parse_ffn(unknown, "ffn", dims);
    FAIL("unknown type accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "ffn.type");
    CHECK(e.value() == "\"moe_of_dreams\"");
  }
}

TEST_CASE("mot statistics: entropy is 1 at uniform weights and temperature is reported") {
  auto layer = make_mot(4, 4, 2, 4, 3, 2.0);
  {
    torch::NoGradGuard no_grad;
    layer->controller.zero_();  // every logit 0: uniform weights over the group
  }
  layer->record_stats(true);
  layer->forward(torch::randn({4, 2, 4}, torch::kDouble));
  const auto& names = layer->stat_names();
  auto values = layer->stat_values();
  REQUIRE(names.size() == size_t(values.numel()));
  auto at = [&](const std::string& n) {
    return values[std::find(names.begin(), names.end(), n) - names.begin()].item<double>();
  };
  CHECK(at("entropy") == doctest::Approx(1.0));
  CHECK(at("temperature") == doctest::Approx(2.0));
  CHECK(at("token_weight_cv") == doctest::Approx(0.0));
}
