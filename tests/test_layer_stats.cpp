// The statistics every routed layer logs (entropy, token weight CV, load CV, maximum load,
// dropped fraction, Soft MoE's dispatch entropy) and the router z-loss, on NON-uniform
// routing: at uniform routing every axis gives the same number, so a statistic taken over
// the wrong axis would pass there. Each layer is built from its config, given a float64
// router with a fixed random draw, and compared with float64 loops over the definitions
// (README, "Layers"); each case also checks that the wrong axis gives a different number,
// so the case can tell them apart. The layers report statistics in float32: 1e-5 relative.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "layers/registry.h"
#include "test_helpers.h"

using namespace mixlab;

namespace {

using Vec = std::vector<double>;

constexpr int64_t kBatch = 8, kSeq = 3, kDim = 4;

// A layer of the given config, in float64, its router (named `router_name`) drawn from
// N(0, 1.5^2) so that routing is far from uniform, statistics on.
FfnLayer make_layer(Json cfg, const std::string& router_name, uint64_t seed) {
  ModelDims dims{kDim, kBatch, kSeq, 2, 0};
  FfnLayer layer = parse_ffn(cfg, "ffn", dims)();
  layer->to(torch::kDouble);
  torch::manual_seed(seed);
  bool found = false;
  torch::NoGradGuard no_grad;
  for (auto& p : layer->named_parameters(/*recurse=*/false))
    if (p.key() == router_name) {
      p.value().normal_(0.0, 1.5);
      found = true;
    }
  REQUIRE_MESSAGE(found, "no parameter " << router_name);
  layer->record_stats(true);
  return layer;
}

torch::Tensor param(const FfnLayer& layer, const std::string& name) {
  for (auto& p : layer->named_parameters(/*recurse=*/false))
    if (p.key() == name) return p.value().detach();
  FAIL("no parameter " << name);
  return {};
}

double stat(const FfnLayer& layer, const std::string& name) {
  const auto& names = layer->stat_names();
  auto it = std::find(names.begin(), names.end(), name);
  REQUIRE_MESSAGE(it != names.end(), "no statistic " << name);
  return layer->stat_values()[it - names.begin()].item<double>();
}

torch::Tensor input(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({kBatch, kSeq, kDim}, torch::kDouble);
}

// x . W[:, j] for token (b, t).
double dot(const torch::Tensor& x, int64_t b, int64_t t, const torch::Tensor& w, int64_t j) {
  auto xa = x.accessor<double, 3>();
  auto wa = w.accessor<double, 2>();
  double s = 0;
  for (int64_t k = 0; k < kDim; ++k) s += xa[b][t][k] * wa[k][j];
  return s;
}

Vec softmax(const Vec& logits) {
  const double m = *std::max_element(logits.begin(), logits.end());
  Vec p(logits.size());
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(logits[i] - m);
  for (double& v : p) v /= z;
  return p;
}

// Entropy of p divided by log(size): 1 uniform, 0 one-hot. (Applied to a vector that does
// not sum to 1 it is still a number: what a statistic over the wrong axis would report.)
double normalized_entropy(const Vec& p) {
  double h = 0;
  for (double v : p) h -= v * std::log(std::max(v, 1e-30));
  return h / std::log(double(p.size()));
}

double mean(const Vec& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

// Population std / mean.
double cv(const Vec& v) {
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size())) / m;
}

void check_close(double got, double expected) {
  CHECK(got == doctest::Approx(expected).epsilon(1e-5));
}

// The two numbers differ enough that a tolerance of 1e-5 cannot confuse them.
void check_apart(double right, double wrong) {
  CHECK(std::fabs(right - wrong) > 1e-3);
}

// Per-group weights of a grouped layer: w[G][t][i][j] = softmax over the group's g tokens
// i of (x_i . W[:, j]) / temperature.
using GroupWeights = std::vector<std::vector<std::vector<Vec>>>;  // [G][t][j] -> over i

GroupWeights softmax_over_group(const torch::Tensor& x, const torch::Tensor& w, int64_t g,
                                int64_t columns, double temperature) {
  GroupWeights out(size_t(kBatch / g), std::vector<std::vector<Vec>>(size_t(kSeq)));
  for (int64_t G = 0; G < kBatch / g; ++G)
    for (int64_t t = 0; t < kSeq; ++t)
      for (int64_t j = 0; j < columns; ++j) {
        Vec logits;
        for (int64_t i = 0; i < g; ++i) logits.push_back(dot(x, G * g + i, t, w, j) / temperature);
        out[size_t(G)][size_t(t)].push_back(softmax(logits));
      }
  return out;
}

// Per token (b, t): softmax over the columns j of x . W[:, j].
std::vector<Vec> softmax_over_columns(const torch::Tensor& x, const torch::Tensor& w,
                                      int64_t columns) {
  std::vector<Vec> out;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSeq; ++t) {
      Vec logits;
      for (int64_t j = 0; j < columns; ++j) logits.push_back(dot(x, b, t, w, j));
      out.push_back(softmax(logits));
    }
  return out;
}

size_t argmax(const Vec& v) {
  return size_t(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

TEST_CASE("layer statistics on non-uniform routing: MoT entropy over the group, token weight CV") {
  const int64_t g = 4, e = 3;
  const double temperature = 0.7;
  auto layer = make_layer({{"type", "mot"},
                           {"n_experts", e},
                           {"group_size", g},
                           {"expert_size", 5},
                           {"temperature", temperature}},
                          "controller", 1);
  auto x = input(2);
  layer->forward(x);
  auto w = softmax_over_group(x, param(layer, "controller"), g, e, temperature);
  // entropy: of each expert's weights over the g tokens of its group, normalised by log g,
  // averaged over groups, positions and experts.
  // token_weight_cv: CV over all B S tokens of the weight a token receives, sum over experts.
  Vec entropies, received, wrong_entropies;
  for (int64_t G = 0; G < kBatch / g; ++G)
    for (int64_t t = 0; t < kSeq; ++t) {
      const auto& per_expert = w[size_t(G)][size_t(t)];
      for (int64_t j = 0; j < e; ++j)
        entropies.push_back(normalized_entropy(per_expert[size_t(j)]));
      for (int64_t i = 0; i < g; ++i) {
        Vec over_experts;
        for (int64_t j = 0; j < e; ++j) over_experts.push_back(per_expert[size_t(j)][size_t(i)]);
        received.push_back(std::accumulate(over_experts.begin(), over_experts.end(), 0.0));
        wrong_entropies.push_back(normalized_entropy(over_experts));  // the expert axis
      }
    }
  REQUIRE(received.size() == size_t(kBatch * kSeq));
  check_close(stat(layer, "entropy"), mean(entropies));
  check_apart(mean(entropies), mean(wrong_entropies));
  CHECK(mean(entropies) < 0.9);  // far from uniform
  check_close(stat(layer, "token_weight_cv"), cv(received));
  CHECK(cv(received) > 0.05);  // the wrong axis (sum over the group) is 1 for every expert: CV 0
  check_close(stat(layer, "temperature"), temperature);
}

TEST_CASE("layer statistics on non-uniform routing: Expert Choice entropy, load, dropped tokens") {
  // capacity_factor 1: k = g / E = 2 tokens per expert. (With g = 4 and E = 2 both entropies
  // divide the same sum by N log 2 and agree; these sizes tell the axes apart.)
  const int64_t g = 8, e = 4, k = 2;
  auto layer = make_layer({{"type", "expert_choice"},
                           {"n_experts", e},
                           {"group_size", g},
                           {"capacity_factor", 1.0},
                           {"expert_size", 5}},
                          "router", 3);
  auto x = input(4);
  layer->forward(x);
  auto p = softmax_over_columns(x, param(layer, "router"), e);  // token index b * S + t
  auto token = [&](int64_t b, int64_t t) -> const Vec& { return p[size_t(b * kSeq + t)]; };
  // entropy: of each token's router distribution over the E experts, normalised by log E.
  // load: tokens whose most probable expert is e. dropped: tokens that no expert took among
  // its k most probable of the group.
  Vec entropies, loads(size_t(e), 0.0), wrong_entropies;
  for (const auto& probs : p) {
    entropies.push_back(normalized_entropy(probs));
    loads[argmax(probs)] += 1;
  }
  int64_t dropped = 0;
  for (int64_t G = 0; G < kBatch / g; ++G)
    for (int64_t t = 0; t < kSeq; ++t) {
      std::vector<bool> taken(size_t(g), false);
      for (int64_t j = 0; j < e; ++j) {
        Vec column;
        for (int64_t i = 0; i < g; ++i) column.push_back(token(G * g + i, t)[size_t(j)]);
        wrong_entropies.push_back(normalized_entropy(column));  // the group axis
        std::vector<int64_t> order(static_cast<size_t>(g));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(),
                  [&](int64_t a, int64_t b) { return column[size_t(a)] > column[size_t(b)]; });
        for (int64_t r = 0; r < k; ++r) taken[size_t(order[size_t(r)])] = true;
      }
      dropped += std::count(taken.begin(), taken.end(), false);
    }
  check_close(stat(layer, "entropy"), mean(entropies));
  check_apart(mean(entropies), mean(wrong_entropies));
  CHECK(mean(entropies) < 0.9);
  CHECK(cv(loads) > 0.05);  // unbalanced
  check_close(stat(layer, "load_cv"), cv(loads));
  check_close(stat(layer, "max_load"), *std::max_element(loads.begin(), loads.end()) / mean(loads));
  const double dropped_frac = double(dropped) / double(kBatch * kSeq);
  CHECK(dropped_frac > 0);
  check_close(stat(layer, "dropped_frac"), dropped_frac);
}

TEST_CASE("layer statistics on non-uniform routing: Soft MoE combine and dispatch entropy") {
  const int64_t g = 4, e = 2, slots_per_expert = 2, slots = e * slots_per_expert;
  auto layer = make_layer({{"type", "soft_moe"},
                           {"n_experts", e},
                           {"slots_per_expert", slots_per_expert},
                           {"group_size", g},
                           {"expert_size", 5}},
                          "phi", 5);
  auto x = input(6);
  layer->forward(x);
  const auto phi = param(layer, "phi");
  auto combine = softmax_over_columns(x, phi, slots);         // per token, over slots
  auto dispatch = softmax_over_group(x, phi, g, slots, 1.0);  // per slot, over the group
  // entropy: of each token's combine weights over the E p slots, normalised by log(E p).
  // dispatch_entropy: of each slot's dispatch weights over the group's g tokens, by log g.
  // token_weight_cv: CV over tokens of the dispatch weight a token sends, summed over slots.
  Vec combine_entropies, dispatch_entropies, sent;
  for (const auto& c : combine) combine_entropies.push_back(normalized_entropy(c));
  for (int64_t G = 0; G < kBatch / g; ++G)
    for (int64_t t = 0; t < kSeq; ++t) {
      const auto& per_slot = dispatch[size_t(G)][size_t(t)];
      for (int64_t s = 0; s < slots; ++s)
        dispatch_entropies.push_back(normalized_entropy(per_slot[size_t(s)]));
      for (int64_t i = 0; i < g; ++i) {
        double total = 0;
        for (int64_t s = 0; s < slots; ++s) total += per_slot[size_t(s)][size_t(i)];
        sent.push_back(total);
      }
    }
  check_close(stat(layer, "entropy"), mean(combine_entropies));
  check_close(stat(layer, "dispatch_entropy"), mean(dispatch_entropies));
  // With g = E p both are entropies of the same logits, over the two axes: they must differ.
  check_apart(mean(combine_entropies), mean(dispatch_entropies));
  check_close(stat(layer, "token_weight_cv"), cv(sent));
  CHECK(cv(sent) > 0.05);
}

TEST_CASE("layer statistics on non-uniform routing: top-k entropy, load, drops and the z-loss") {
  const int64_t e = 4, k = 2, n = kBatch * kSeq;
  const double capacity_factor = 1.0, alpha = 0.03, beta = 0.1;
  auto layer = make_layer({{"type", "top_k"},
                           {"n_experts", e},
                           {"k", k},
                           {"expert_size", 5},
                           {"capacity_factor", capacity_factor},
                           {"aux_loss_weight", alpha},
                           {"z_loss", beta}},
                          "router", 7);
  auto x = input(8);
  layer->forward(x);
  const auto router = param(layer, "router");
  auto p = softmax_over_columns(x, router, e);  // token index b * S + t
  // Each token's k most probable experts, most probable first.
  std::vector<std::vector<size_t>> chosen;
  for (const auto& probs : p) {
    std::vector<size_t> order(static_cast<size_t>(e));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probs[a] > probs[b]; });
    chosen.emplace_back(order.begin(), order.begin() + k);
  }
  // entropy over the experts per token; load: assignments per expert (all k choices) before
  // capacity; capacity C = ceil(capacity_factor k N / E) granted position-major: position t,
  // then choice rank, then sequence.
  Vec entropies, wrong_entropies, loads(size_t(e), 0.0);
  for (const auto& probs : p) entropies.push_back(normalized_entropy(probs));
  for (int64_t j = 0; j < e; ++j) {
    Vec over_tokens;
    for (const auto& probs : p) over_tokens.push_back(probs[size_t(j)]);
    wrong_entropies.push_back(normalized_entropy(over_tokens));
  }
  for (const auto& c : chosen)
    for (size_t j : c) loads[j] += 1;
  const int64_t capacity = int64_t(std::ceil(capacity_factor * double(k * n) / double(e)));
  Vec filled(size_t(e), 0.0);
  int64_t kept = 0;
  for (int64_t t = 0; t < kSeq; ++t)
    for (int64_t r = 0; r < k; ++r)
      for (int64_t b = 0; b < kBatch; ++b) {
        const size_t j = chosen[size_t(b * kSeq + t)][size_t(r)];
        if (filled[j] < double(capacity)) {
          filled[j] += 1;
          ++kept;
        }
      }
  check_close(stat(layer, "entropy"), mean(entropies));
  check_apart(mean(entropies), mean(wrong_entropies));
  check_close(stat(layer, "load_cv"), cv(loads));
  CHECK(cv(loads) > 0.05);
  check_close(stat(layer, "max_load"), *std::max_element(loads.begin(), loads.end()) / mean(loads));
  const double dropped_frac = 1.0 - double(kept) / double(k * n);
  CHECK(dropped_frac > 0);
  check_close(stat(layer, "dropped_frac"), dropped_frac);

  // aux = alpha E sum_e f_e P_e (f_e: the share of the N k (token, choice) assignments sent
  // to e before capacity, every choice counted; P_e: mean probability) + beta mean over
  // tokens of logsumexp_e(logits)^2.
  Vec f(size_t(e), 0.0), mean_p(size_t(e), 0.0);
  double z = 0, z_wrong = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    for (size_t j : chosen[i]) f[j] += 1.0 / double(k * n);
    for (int64_t j = 0; j < e; ++j) mean_p[size_t(j)] += p[i][size_t(j)] / double(n);
    double sum_exp = 0;
    for (int64_t j = 0; j < e; ++j)
      sum_exp += std::exp(dot(x, int64_t(i) / kSeq, int64_t(i) % kSeq, router, j));
    z += std::pow(std::log(sum_exp), 2) / double(n);
  }
  for (int64_t j = 0; j < e; ++j) {  // the wrong axis: logsumexp over the tokens
    double sum_exp = 0;
    for (size_t i = 0; i < p.size(); ++i)
      sum_exp += std::exp(dot(x, int64_t(i) / kSeq, int64_t(i) % kSeq, router, j));
    z_wrong += std::pow(std::log(sum_exp), 2) / double(e);
  }
  double balance = 0;
  for (int64_t j = 0; j < e; ++j) balance += f[size_t(j)] * mean_p[size_t(j)];
  const double expected = alpha * double(e) * balance + beta * z;
  // The aux loss is computed in float64 here (float64 inputs keep float64 routing).
  CHECK(layer->aux_loss().item<double>() == doctest::Approx(expected).epsilon(1e-10));
  check_apart(z, z_wrong);
  CHECK(alpha * double(e) * balance > alpha * 1.001);  // unbalanced: above its minimum alpha

  // balance "top_choice" (the definition before 2026-12): f_e counts each token's top choice.
  auto top_only = make_layer({{"type", "top_k"},
                              {"n_experts", e},
                              {"k", k},
                              {"expert_size", 5},
                              {"capacity_factor", capacity_factor},
                              {"aux_loss_weight", alpha},
                              {"z_loss", beta},
                              {"balance", "top_choice"}},
                             "router", 7);
  top_only->forward(x);
  Vec f_top(size_t(e), 0.0);
  for (const auto& c : chosen) f_top[c[0]] += 1.0 / double(n);
  double balance_top = 0;
  for (int64_t j = 0; j < e; ++j) balance_top += f_top[size_t(j)] * mean_p[size_t(j)];
  CHECK(top_only->aux_loss().item<double>() ==
        doctest::Approx(alpha * double(e) * balance_top + beta * z).epsilon(1e-10));
  check_apart(balance_top, balance);
}

TEST_CASE("layer statistics on non-uniform routing: Switch z-loss alone, and its load") {
  const int64_t e = 3, n = kBatch * kSeq;
  const double beta = 0.25;
  auto layer = make_layer({{"type", "switch"},
                           {"n_experts", e},
                           {"expert_size", 5},
                           {"capacity_factor", 4.0},
                           {"aux_loss_weight", 0.0},
                           {"z_loss", beta}},
                          "router", 9);
  auto x = input(10);
  layer->forward(x);
  const auto router = param(layer, "router");
  double z = 0;
  Vec loads(size_t(e), 0.0), entropies;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSeq; ++t) {
      Vec logits;
      for (int64_t j = 0; j < e; ++j) logits.push_back(dot(x, b, t, router, j));
      double sum_exp = 0;
      for (double l : logits) sum_exp += std::exp(l);
      z += std::pow(std::log(sum_exp), 2) / double(n);
      auto probs = softmax(logits);
      loads[argmax(probs)] += 1;
      entropies.push_back(normalized_entropy(probs));
    }
  CHECK(layer->aux_loss().item<double>() == doctest::Approx(beta * z).epsilon(1e-10));
  check_close(stat(layer, "load_cv"), cv(loads));
  CHECK(cv(loads) > 0.05);
  check_close(stat(layer, "entropy"), mean(entropies));
  check_close(stat(layer, "dropped_frac"), 0.0);  // capacity 4 x: nothing dropped
}
