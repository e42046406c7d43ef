// Transition tuning: a MoT layer that continues as Switch on the same weights.
#include <doctest/doctest.h>

#include <cmath>

#include "experiments/trainer.h"
#include "layers/mot.h"
#include "layers/registry.h"
#include "layers/token_choice.h"
#include "layers/transition.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::max_abs_diff;

namespace {

struct Recorder : TrainHooks {
  std::vector<std::tuple<int64_t, std::string, double>> logged;
  void on_log(int64_t step, const Metrics& m, double, double) override {
    for (const auto& [k, v] : m) logged.emplace_back(step, k, v);
  }
  double value(int64_t step, const std::string& key) const {
    for (const auto& [s, k, v] : logged)
      if (s == step && k == key) return v;
    return NAN;
  }
};

}  // namespace

TEST_CASE("transition is MoT before its step and Switch on the same weights from it") {
  torch::manual_seed(21);
  const int64_t d = 6, batch = 8;
  ModelDims dims{d, batch, 8, 2, 0};
  TransitionOptions o;
  o.mot.n_experts = 3;
  o.mot.group_size = 4;
  o.mot.expert_size = 5;
  o.switch_layer.n_experts = 3;
  o.switch_layer.expert_size = 5;
  o.switch_layer.capacity_factor = 1.0;
  o.switch_at_step = 5;
  auto layer = std::make_shared<TransitionImpl>(dims, o);
  layer->to(torch::kDouble);
  auto mot = std::make_shared<MotImpl>(dims, o.mot);
  auto sw = std::make_shared<TokenChoiceImpl>(dims, o.switch_layer);
  mot->to(torch::kDouble);
  sw->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    layer->mot->controller.normal_(0.0, 0.7);
    mot->controller.copy_(layer->mot->controller);
    mot->w1.copy_(layer->mot->w1);
    mot->w2.copy_(layer->mot->w2);
    sw->router.copy_(layer->mot->controller);  // the controller becomes the router
    sw->w1.copy_(layer->mot->w1);
    sw->w2.copy_(layer->mot->w2);
  }
  auto x = torch::randn({batch, 4, d}, torch::kDouble);
  auto y_mot = mot->forward(x);
  auto y_switch = sw->forward(x);
  REQUIRE(max_abs_diff(y_mot, y_switch) > 1e-3);  // the two phases are distinguishable

  layer->on_step(4);
  CHECK(!layer->switched());
  CHECK(layer->wants_eval_at(4));
  CHECK(!layer->wants_eval_at(5));
  CHECK(max_abs_diff(layer->forward(x), y_mot) < 1e-12);
  CHECK(!layer->aux_loss().defined());
  layer->set_eval_mode("switch");  // what the run would be right after the switch
  CHECK(max_abs_diff(layer->forward(x), y_switch) < 1e-12);
  layer->set_eval_mode("mixed");

  layer->on_step(5);
  CHECK(layer->switched());
  layer->record_stats(true);
  auto y = layer->forward(x);
  CHECK(max_abs_diff(y, y_switch) < 1e-12);
  REQUIRE(layer->aux_loss().defined());
  CHECK(layer->aux_loss().item<double>() == doctest::Approx(sw->aux_loss().item<double>()));
  const auto& names = layer->stat_names();
  CHECK(std::find(names.begin(), names.end(), "load_cv") != names.end());
  // The Switch phase trains the MoT controller as its router.
  (y.pow(2).sum() + layer->aux_loss()).backward();
  REQUIRE(layer->mot->controller.grad().defined());
  CHECK(layer->mot->controller.grad().abs().max().item<double>() > 0);

  layer->set_eval_mode("discrete");
  mot->set_eval_mode("discrete");
  CHECK(max_abs_diff(layer->forward(x), mot->forward(x)) < 1e-12);
}

TEST_CASE("a transition run continues from the MoT weights and records the switch") {
  testing::TempDir dir;
  const std::string corpus = testing::write_text_corpus(dir);
  const int64_t switch_at = 36, steps = 48;
  Json config = {{"model", {{"d_model", 16}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", 16}}},
                 {"ffn",
                  {{"type", "transition"},
                   {"n_experts", 4},
                   {"group_size", 4},
                   {"expert_size", "flop_matched"},
                   {"d_ff", 32},
                   {"switch_at_step", switch_at}}},
                 {"data", {{"corpus", "text"}, {"path", corpus}}},
                 {"train",
                  {{"steps", steps},
                   {"batch_size", 8},
                   {"lr", 3e-3},
                   {"log_every", 4},
                   {"checkpoint_every", 0},
                   {"warmup_frac", 0.1}}},
                 {"eval", {{"every", 12}, {"batches", 2}, {"modes", {"mixed", "switch"}}}},
                 {"seed", 5}};
  RunConfig run = parse_run_config(config, "transition.json");
  Recorder rec;
  TrainResult result = train_run(run, TrainOptions{}, rec);
  REQUIRE(result.finished);

  // Step 0: the fresh model; its Switch reading is a freshly initialised Switch model.
  const double fresh_switch = rec.value(0, "eval_switch/loss");
  CHECK(std::fabs(fresh_switch - std::log(256.0)) < 0.1);
  // The step before the switch is evaluated although it is no multiple of eval.every:
  // eval/loss is the MoT loss just before, eval_switch/loss the loss just after the switch
  // (the same weights as Switch, no tuning yet).
  const double before = rec.value(switch_at - 1, "eval/loss");
  const double just_after = rec.value(switch_at - 1, "eval_switch/loss");
  const double end = rec.value(steps, "eval/loss");
  REQUIRE(std::isfinite(before));
  REQUIRE(std::isfinite(just_after));
  REQUIRE(std::isfinite(end));
  MESSAGE("fresh switch " << fresh_switch << ", MoT before " << before << ", switch right after "
                          << just_after << ", after tuning " << end);
  // The converted model keeps what MoT learned: far below a fresh Switch model.
  CHECK(just_after < fresh_switch - 1.0);
  CHECK(before < fresh_switch - 1.0);
  // After the switch the run is a Switch model: eval/loss and eval_switch/loss agree, and the
  // load-balancing loss is logged from the switch on, never before.
  CHECK(rec.value(steps, "eval_switch/loss") == doctest::Approx(end).epsilon(1e-9));
  CHECK(std::isnan(rec.value(switch_at - 4, "train/aux_loss")));
  CHECK(rec.value(steps, "train/aux_loss") > 0);
  CHECK(std::isfinite(rec.value(steps, "layer0/load_cv")));
  CHECK(std::isfinite(rec.value(switch_at - 4, "layer0/token_weight_cv")));
}
