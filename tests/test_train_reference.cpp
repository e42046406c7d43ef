// The model's forward pass and the train step's gradient clipping and AdamW against their
// definitions, written out independently in float64 loops: a GPT forward from the
// embeddings, LayerNorm, causal attention, the FFN, the final norm and the tied head; the
// global-norm clip; the AdamW update with bias correction and decoupled weight decay on
// matrices only. Every parameter (LayerNorm gains and biases included) is drawn at random, so
// a swapped or missing term changes the numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "experiments/model.h"
#include "experiments/train_step.h"
#include "layers/registry.h"
#include "test_helpers.h"

using namespace mixlab;

namespace {

constexpr int64_t kDim = 8, kHeads = 2, kSeq = 5, kVocab = 11, kLayers = 2, kHidden = 12;
constexpr int64_t kBatch = 2;

// A float64 GPT with a dense FFN, every parameter drawn from N(0, 0.3^2) (gains around 1).
Gpt make_model(uint64_t seed) {
  ModelConfig m;
  m.d_model = kDim;
  m.n_heads = kHeads;
  m.n_layers = kLayers;
  m.seq_len = kSeq;
  m.vocab_size = kVocab;
  ModelDims dims{kDim, kBatch, kSeq, kLayers, 0};
  Gpt model(m, parse_ffn({{"type", "dense"}, {"d_ff", kHidden}}, "ffn", dims));
  model->to(torch::kDouble);
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    p.value().normal_(0.0, 0.3);
    if (p.key().find("ln_") != std::string::npos && p.key().find(".weight") != std::string::npos)
      p.value().add_(1.0);
  }
  return model;
}

// The parameters by name, as float64 values (row-major).
struct Params {
  std::map<std::string, torch::Tensor> by_name;
  explicit Params(const Gpt& model) {
    for (const auto& p : model->named_parameters())
      by_name[p.key()] = p.value().detach().clone().contiguous();
  }
  const torch::Tensor& operator[](const std::string& name) const {
    auto it = by_name.find(name);
    REQUIRE_MESSAGE(it != by_name.end(), "no parameter " << name);
    return it->second;
  }
  double at(const std::string& name, int64_t i) const {
    return (*this)[name].data_ptr<double>()[i];
  }
  double at(const std::string& name, int64_t i, int64_t j) const {
    const auto& t = (*this)[name];
    return t.data_ptr<double>()[i * t.size(1) + j];
  }
};

using Matrix = std::vector<std::vector<double>>;  // [position][feature]

// LayerNorm over the features: (x - mean) / sqrt(biased variance + 1e-5) * gain + bias.
Matrix layer_norm(const Matrix& x, const Params& p, const std::string& name) {
  Matrix out = x;
  for (size_t t = 0; t < x.size(); ++t) {
    double mean = 0, var = 0;
    for (double v : x[t]) mean += v / double(kDim);
    for (double v : x[t]) var += (v - mean) * (v - mean) / double(kDim);
    for (int64_t k = 0; k < kDim; ++k)
      out[t][size_t(k)] =
          (x[t][size_t(k)] - mean) / std::sqrt(var + 1e-5) * p.at(name + ".weight", k) +
          p.at(name + ".bias", k);
  }
  return out;
}

// y = x W^T + b with W (out, in), as torch::nn::Linear.
Matrix linear(const Matrix& x, const Params& p, const std::string& name) {
  const auto& w = p[name + ".weight"];
  Matrix out(x.size(), std::vector<double>(size_t(w.size(0)), 0.0));
  for (size_t t = 0; t < x.size(); ++t)
    for (int64_t o = 0; o < w.size(0); ++o) {
      double s = p.at(name + ".bias", o);
      for (int64_t k = 0; k < w.size(1); ++k) s += x[t][size_t(k)] * p.at(name + ".weight", o, k);
      out[t][size_t(o)] = s;
    }
  return out;
}

// Logits of one sequence, from the definitions.
Matrix reference_logits(const Params& p, const std::vector<int64_t>& tokens) {
  const int64_t s = int64_t(tokens.size()), hd = kDim / kHeads;
  Matrix x(static_cast<size_t>(s), std::vector<double>(static_cast<size_t>(kDim)));
  for (int64_t t = 0; t < s; ++t)
    for (int64_t k = 0; k < kDim; ++k)
      x[size_t(t)][size_t(k)] = p.at("wte", tokens[size_t(t)], k) + p.at("wpe", t, k);
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string block = "blocks." + std::to_string(l) + ".";
    // Attention: qkv rows are [q heads | k heads | v heads], each head hd wide.
    Matrix qkv = linear(layer_norm(x, p, block + "ln_attention"), p, block + "attention.qkv");
    Matrix heads(size_t(s), std::vector<double>(size_t(kDim), 0.0));
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t t = 0; t < s; ++t) {
        std::vector<double> score;
        for (int64_t u = 0; u <= t; ++u) {  // causal: keys at positions <= t
          double dot = 0;
          for (int64_t j = 0; j < hd; ++j)
            dot += qkv[size_t(t)][size_t(h * hd + j)] * qkv[size_t(u)][size_t(kDim + h * hd + j)];
          score.push_back(dot / std::sqrt(double(hd)));
        }
        double top = score[0], z = 0;
        for (double v : score) top = std::max(top, v);
        for (double& v : score) z += v = std::exp(v - top);
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t j = 0; j < hd; ++j)
            heads[size_t(t)][size_t(h * hd + j)] +=
                score[size_t(u)] / z * qkv[size_t(u)][size_t(2 * kDim + h * hd + j)];
      }
    Matrix attended = linear(heads, p, block + "attention.proj");
    for (int64_t t = 0; t < s; ++t)
      for (int64_t k = 0; k < kDim; ++k) x[size_t(t)][size_t(k)] += attended[size_t(t)][size_t(k)];
    // Dense FFN: W2 relu(W1 x), w1 (d, d_ff), w2 (d_ff, d), no biases.
    Matrix f = layer_norm(x, p, block + "ln_ffn");
    for (int64_t t = 0; t < s; ++t) {
      std::vector<double> hidden(size_t(kHidden), 0.0);
      for (int64_t h = 0; h < kHidden; ++h) {
        for (int64_t k = 0; k < kDim; ++k)
          hidden[size_t(h)] += f[size_t(t)][size_t(k)] * p.at(block + "ffn.w1", k, h);
        hidden[size_t(h)] = std::max(0.0, hidden[size_t(h)]);
      }
      for (int64_t k = 0; k < kDim; ++k)
        for (int64_t h = 0; h < kHidden; ++h)
          x[size_t(t)][size_t(k)] += hidden[size_t(h)] * p.at(block + "ffn.w2", h, k);
    }
  }
  Matrix final_norm = layer_norm(x, p, "ln_final");
  Matrix logits(size_t(s), std::vector<double>(size_t(kVocab), 0.0));
  for (int64_t t = 0; t < s; ++t)
    for (int64_t v = 0; v < kVocab; ++v)
      for (int64_t k = 0; k < kDim; ++k)  // the head is the token embedding, transposed
        logits[size_t(t)][size_t(v)] += final_norm[size_t(t)][size_t(k)] * p.at("wte", v, k);
  return logits;
}

torch::Tensor random_tokens(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(kVocab, {kBatch, kSeq}, torch::kLong);
}

TrainConfig train_config(double grad_clip, double weight_decay) {
  TrainConfig t;
  t.grad_clip = grad_clip;
  t.weight_decay = weight_decay;
  t.beta1 = 0.8;  // not the defaults, so a hard-coded constant would show
  t.beta2 = 0.9;
  t.precision = "fp32";  // no autocast: the float64 model stays float64
  return t;
}

// The gradients of the mean cross-entropy at the model's current parameters, by name.
std::map<std::string, torch::Tensor> raw_gradients(Gpt& model, const torch::Tensor& inputs,
                                                   const torch::Tensor& targets) {
  model->zero_grad();
  model->loss(inputs, targets).backward();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters()) {
    REQUIRE_MESSAGE(p.value().grad().defined(), "no gradient for " << p.key());
    out[p.key()] = p.value().grad().detach().clone();
  }
  return out;
}

}  // namespace

TEST_CASE("GPT forward equals a float64 loop over its definition") {
  Gpt model = make_model(21);
  auto tokens = random_tokens(22);
  torch::NoGradGuard no_grad;
  auto logits = model->forward(tokens);
  REQUIRE(logits.sizes() == torch::IntArrayRef({kBatch, kSeq, kVocab}));
  const Params p(model);
  double worst = 0;
  for (int64_t b = 0; b < kBatch; ++b) {
    std::vector<int64_t> seq;
    for (int64_t t = 0; t < kSeq; ++t) seq.push_back(tokens[b][t].item<int64_t>());
    const Matrix expected = reference_logits(p, seq);
    for (int64_t t = 0; t < kSeq; ++t)
      for (int64_t v = 0; v < kVocab; ++v)
        worst = std::max(
            worst, std::fabs(logits[b][t][v].item<double>() - expected[size_t(t)][size_t(v)]));
  }
  CHECK(worst < 1e-10);
  // The logits are far from trivial: the comparison could fail.
  CHECK(logits.abs().max().item<double>() > 0.1);
}

TEST_CASE("gradient clipping: the global norm over every parameter, scaled to max_norm") {
  auto inputs = random_tokens(31), targets = random_tokens(32);
  for (double max_norm : {0.05, 1e6, 0.0}) {
    CAPTURE(max_norm);
    Gpt trained = make_model(33), reference = make_model(33);
    auto raw = raw_gradients(reference, inputs, targets);
    double norm_squared = 0;
    for (const auto& [name, g] : raw) norm_squared += g.pow(2).sum().item<double>();
    const double norm = std::sqrt(norm_squared);
    // One norm over all parameters together (not per tensor), clipped only when above.
    const double scale = max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
    if (max_norm == 0.05) REQUIRE(scale < 0.5);  // this case really clips

    TrainStep step(trained, train_config(max_norm, 0.1), torch::Device(torch::kCPU));
    step.run(inputs, targets, 1e-3);
    CHECK(step.norm_sum.item<double>() == doctest::Approx(norm).epsilon(1e-6));
    for (const auto& p : trained->named_parameters()) {
      CAPTURE(p.key());
      const auto& g = raw.at(p.key());
      // The step computes the norm and the scale in float32: 1e-6 relative.
      CHECK(testing::max_abs_diff(p.value().grad(), g * scale) <
            1e-6 * g.abs().max().item<double>() + 1e-15);
    }
  }
}

TEST_CASE("AdamW: bias-corrected moments, decoupled weight decay on matrices only") {
  auto inputs = random_tokens(41), targets = random_tokens(42);
  const double weight_decay = 0.5, eps = 1e-8;
  const TrainConfig config = train_config(0.5, weight_decay);
  Gpt trained = make_model(43);
  TrainStep step(trained, config, torch::Device(torch::kCPU));
  std::map<std::string, torch::Tensor> m, v;  // the reference's moments
  const std::vector<double> lrs = {3e-2, 1e-2, 2e-2};
  int decayed = 0, not_decayed = 0;
  for (size_t k = 0; k < lrs.size(); ++k) {
    const int t = int(k) + 1;
    const double lr = lrs[k];
    CAPTURE(t);
    const Params before(trained);
    step.run(inputs, targets, lr);
    for (const auto& p : trained->named_parameters()) {
      CAPTURE(p.key());
      const torch::Tensor g = p.value().grad().detach();  // as clipped: what the step used
      if (t == 1) {
        m[p.key()] = torch::zeros_like(g);
        v[p.key()] = torch::zeros_like(g);
      }
      m[p.key()] = config.beta1 * m[p.key()] + (1 - config.beta1) * g;
      v[p.key()] = config.beta2 * v[p.key()] + (1 - config.beta2) * g * g;
      const auto m_hat = m[p.key()] / (1 - std::pow(config.beta1, t));
      const auto v_hat = v[p.key()] / (1 - std::pow(config.beta2, t));
      // Decay only matrices (embeddings, projections, expert weights), not biases or gains.
      const bool matrix = p.value().dim() >= 2;
      (matrix ? decayed : not_decayed) += t == 1;
      auto expected = before[p.key()] * (1 - lr * (matrix ? weight_decay : 0.0)) -
                      lr * m_hat / (v_hat.sqrt() + eps);
      CHECK(testing::max_abs_diff(p.value().detach(), expected) < 1e-12);
      // Decay on the wrong tensors would move them by lr * wd * |p|, far above the tolerance.
      CHECK(lr * weight_decay * before[p.key()].abs().max().item<double>() > 1e-4);
    }
  }
  CHECK(decayed == 2 + 4 * kLayers);      // wte, wpe; per block qkv, proj, w1, w2 weights
  CHECK(not_decayed == 2 + 6 * kLayers);  // ln_final; per block 2 LayerNorms, 2 biases
}
