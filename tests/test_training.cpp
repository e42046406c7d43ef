// The model and the trainer: initial loss, causality, determinism, exact resume.
#include <doctest/doctest.h>

#include <cmath>

#include "experiments/checkpoint.h"
#include "experiments/corpus.h"
#include "experiments/model.h"
#include "experiments/trainer.h"
#include "layers/registry.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::max_abs_diff;

namespace {

Json tiny_config(const std::string& corpus, const Json& ffn) {
  return {{"model", {{"d_model", 16}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", 16}}},
          {"ffn", ffn},
          {"data", {{"corpus", "text"}, {"path", corpus}}},
          {"train",
           {{"steps", 12},
            {"batch_size", 8},
            {"lr", 3e-3},
            {"log_every", 4},
            {"checkpoint_every", 4},
            {"warmup_frac", 0.1}}},
          {"eval", {{"every", 4}, {"batches", 2}, {"modes", {"mixed", "discrete"}}}},
          {"seed", 3}};
}

const Json kMot = {{"type", "mot"},
                   {"n_experts", 4},
                   {"group_size", 4},
                   {"expert_size", "flop_matched"},
                   {"d_ff", 32}};

struct Recorder : TrainHooks {
  std::vector<std::tuple<int64_t, std::string, double>> logged;
  int64_t resumed_at = -1;
  int64_t stop_after_polls = -1;
  int64_t polls = 0;
  void on_log(int64_t step, const Metrics& m, double, double) override {
    for (const auto& [k, v] : m) logged.emplace_back(step, k, v);
  }
  void on_resume(int64_t step) override { resumed_at = step; }
  bool stop_requested() override { return stop_after_polls >= 0 && ++polls > stop_after_polls; }
  double value(int64_t step, const std::string& key) const {
    for (const auto& [s, k, v] : logged)
      if (s == step && k == key) return v;
    return NAN;
  }
};

}  // namespace

TEST_CASE("the model starts at the uniform loss (GPT-2 init) and is causal") {
  ModelConfig m;
  m.d_model = 32;
  m.n_layers = 2;
  m.n_heads = 4;
  m.seq_len = 12;
  ModelDims dims{32, 8, 12, 2, 0};
  torch::manual_seed(0);
  Gpt model(m, parse_ffn(kMot, "ffn", dims));
  auto tokens = torch::randint(0, 256, {8, 12}, torch::kLong);
  auto targets = torch::randint(0, 256, {8, 12}, torch::kLong);
  // Near-uniform predictions: logits have std |LN(x)| * 0.02 = 0.11, so the loss is within a
  // few hundredths of log 256 (with N(0, 1) embeddings it would be in the hundreds).
  const double loss = model->loss(tokens, targets).item<double>();
  CHECK(std::fabs(loss - std::log(256.0)) < 0.05);

  auto logits = model->forward(tokens);
  for (int64_t t : {0, 5, 10}) {
    auto changed = tokens.clone();
    using torch::indexing::Slice;
    changed.index_put_({Slice(), Slice(t + 1)}, torch::randint(0, 256, {8, 11 - t}, torch::kLong));
    auto logits2 = model->forward(changed);
    CHECK(max_abs_diff(logits.index({Slice(), Slice(0, t + 1)}),
                       logits2.index({Slice(), Slice(0, t + 1)})) < 1e-5);
    CHECK(max_abs_diff(logits.index({Slice(), Slice(t + 1)}),
                       logits2.index({Slice(), Slice(t + 1)})) > 1e-4);
  }
}

TEST_CASE("cost accounting: dense and flop-matched MoT have the same FLOPs per token") {
  ModelConfig m;
  ModelDims dims{m.d_model, 32, m.seq_len, m.n_layers, 0};
  Json dense = {{"type", "dense"}, {"d_ff", 256}};
  Json mot = {{"type", "mot"},
              {"n_experts", 16},
              {"group_size", 16},
              {"expert_size", "flop_matched"},
              {"d_ff", 256}};
  Gpt a(m, parse_ffn(dense, "ffn", dims)), b(m, parse_ffn(mot, "ffn", dims));
  int64_t counted = 0;
  for (const auto& p : b->parameters()) counted += p.numel();
  CHECK(b->cost().params_total == counted);
  // The only extra compute of MoT is the controller, merge and emit: 6 d E per token per layer.
  CHECK(b->cost().forward_flops_per_token - a->cost().forward_flops_per_token ==
        doctest::Approx(2 * 6.0 * 64 * 16));
  // Per token MoT touches 1/g of its experts: the same expert parameters as dense.
  CHECK(b->cost().params_active - a->cost().params_active == 2 * 64 * 16);
}

TEST_CASE("brown tags are stripped, windows are deterministic in (seed, step)") {
  CHECK(strip_brown_tags("\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n\tA/at b/c\n") ==
        "The Fulton County said .\nA b\n");
  auto tokens = torch::arange(1000, torch::kLong).remainder(256).to(torch::kUInt8);
  WindowSampler s1(tokens, 4, 10, 7), s2(tokens, 4, 10, 7), s3(tokens, 4, 10, 8);
  auto a = s1.batch(5), b = s2.batch(5), c = s3.batch(5), d = s1.batch(6);
  CHECK(torch::equal(a.inputs, b.inputs));
  CHECK(!torch::equal(a.inputs, c.inputs));
  CHECK(!torch::equal(a.inputs, d.inputs));
  using torch::indexing::Slice;
  CHECK(torch::equal(a.inputs.index({Slice(), Slice(1)}), a.targets.index({Slice(), Slice(0, 9)})));
}

TEST_CASE("a missing corpus is a config error that says how to fetch it") {
  DataConfig data;
  data.path = "/nonexistent/brown";
  try {
    check_corpus_available(data);
    FAIL("missing corpus accepted");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "data.path");
    CHECK(std::string(e.what()).find("scripts/setup.sh") != std::string::npos);
  }
}

TEST_CASE("training is deterministic on the CPU, and a resumed run equals an uninterrupted one") {
  testing::TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  RunConfig config = parse_run_config(tiny_config(corpus, kMot), "tiny.json");

  Recorder first, second;
  TrainOptions options;
  train_run(config, options, first);
  train_run(config, options, second);
  const double loss12 = first.value(12, "train/loss");
  REQUIRE(std::isfinite(loss12));
  CHECK(loss12 == second.value(12, "train/loss"));
  CHECK(first.value(12, "eval/loss") == second.value(12, "eval/loss"));
  CHECK(first.value(12, "eval/loss") < first.value(0, "eval/loss"));
  CHECK(std::isfinite(first.value(12, "eval_discrete/loss")));
  CHECK(std::isfinite(first.value(12, "layer1/entropy")));
  CHECK(first.value(12, "layer0/temperature") == 1.0);

  // Stop after 6 steps (checkpoint at 6), resume: the same numbers as without the stop.
  Recorder stopped, resumed;
  options.checkpoint_path = dir / "ckpt/run.pt";
  stopped.stop_after_polls = 6;
  TrainResult partial = train_run(config, options, stopped);
  CHECK(!partial.finished);
  CHECK(partial.step == 6);
  TrainResult rest = train_run(config, options, resumed);
  CHECK(rest.finished);
  CHECK(resumed.resumed_at == 6);
  CHECK(resumed.value(8, "train/loss") ==
        doctest::Approx(first.value(8, "train/loss")).epsilon(1e-6));
  CHECK(resumed.value(12, "eval/loss") ==
        doctest::Approx(first.value(12, "eval/loss")).epsilon(1e-6));

  // A checkpoint of another config is refused.
  Json other = tiny_config(corpus, kMot);
  other["seed"] = 4;
  CHECK_THROWS_AS(train_run(parse_run_config(other, "o.json"), options, resumed), CheckpointError);
}
