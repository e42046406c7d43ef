// The decode cost a recall-task run records (experiments/decode_cost.h): the model decoded
// token by token through its mixers' caches gives the training forward's logits, and the cache
// it reports is what each mixer's definition keeps.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "experiments/decode_cost.h"
#include "experiments/model.h"
#include "experiments/run_config.h"

using namespace mixlab;

namespace {

RunConfig model_config(const Json& mixer, int64_t seq_len) {
  Json c = {{"model", {{"d_model", 16}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", seq_len}}},
            {"ffn", {{"type", "dense"}, {"d_ff", 32}}},
            {"data", {{"corpus", "brown"}}},
            {"train", {{"steps", 2}, {"batch_size", 4}}},
            {"eval", {{"batches", 1}}}};
  if (!mixer.is_null()) c["mixer"] = mixer;
  return parse_run_config(c, "c.json");
}

}  // namespace

TEST_CASE("model decode: token by token through the mixer caches equals the training forward") {
  const int64_t s = 16;
  struct Case {
    Json mixer;
    int64_t entries;  // per layer after s tokens, from the mixer's definition
  };
  const std::vector<Case> cases = {
      {Json(), s},  // default attention: every position
      {{{"type", "local_attention"}, {"window", 3}}, 3},
      {{{"type", "diagonal_ssm"}}, 1},  // y_(t-1)
      {{{"type", "recurrence"}, {"pattern", "kth"}, {"order", 2}}, 2},
      {{{"type", "recurrence"}, {"pattern", "pow2"}}, s},
      {{{"type", "recurrence"}, {"pattern", "pow2"}, {"cache_efficient", true}}, -1},
      {{{"type", "recurrence"}, {"pattern", "square_plus_one"}, {"cache_efficient", true}}, -1},
      {{{"type", "recurrence"}, {"pattern", "dense"}}, s},
  };
  for (const auto& c : cases) {
    CAPTURE(c.mixer.dump());
    RunConfig config = model_config(c.mixer, s);
    torch::manual_seed(3);
    Gpt model(config.model, config.ffn);
    model->to(torch::kDouble);
    model->eval();
    auto tokens = torch::randint(0, config.model.vocab_size, {s}, torch::kLong);
    torch::Tensor expected;
    {
      torch::NoGradGuard no_grad;
      expected = model->forward(tokens.unsqueeze(0)).squeeze(0);
    }
    std::vector<int64_t> entries;
    auto decoded = decode_logits(*model, tokens, &entries);
    REQUIRE(decoded.sizes() == expected.sizes());
    CHECK((decoded - expected).abs().max().item<double>() < 1e-10);
    REQUIRE(entries.size() == 2);
    CHECK(entries[0] == entries[1]);
    if (c.entries >= 0) CHECK(entries[0] == c.entries);
    // The cache-efficient sets keep fewer than every position.
    if (c.entries < 0) CHECK(entries[0] < s);
  }
}

TEST_CASE("model decode without the final LayerNorm and with an untied head equals the forward") {
  Json c = {{"model",
             {{"d_model", 16},
              {"n_layers", 2},
              {"n_heads", 2},
              {"seq_len", 8},
              {"final_norm", false},
              {"tied_head", false}}},
            {"ffn", {{"type", "dense"}, {"d_ff", 32}}},
            {"mixer", {{"type", "recurrence"}, {"pattern", "pow2"}}},
            {"data", {{"corpus", "brown"}}},
            {"train", {{"steps", 2}, {"batch_size", 4}}},
            {"eval", {{"batches", 1}}}};
  RunConfig config = parse_run_config(c, "c.json");
  torch::manual_seed(5);
  Gpt model(config.model, config.ffn);
  model->to(torch::kDouble);
  model->eval();
  auto tokens = torch::randint(0, config.model.vocab_size, {8}, torch::kLong);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(tokens.unsqueeze(0)).squeeze(0);
  }
  CHECK((decode_logits(*model, tokens) - expected).abs().max().item<double>() < 1e-10);
}

TEST_CASE("decode cost: time per token and the per-layer cache after model.seq_len tokens") {
  RunConfig config = model_config({{"type", "recurrence"}, {"pattern", "kth"}, {"order", 3}}, 12);
  torch::manual_seed(0);
  Gpt model(config.model, config.ffn);
  model->train();
  DecodeCost cost = measure_decode_cost(*model, 3);
  CHECK(cost.cache_entries == 3.0);
  CHECK(std::isfinite(cost.ms_per_token));
  CHECK(cost.ms_per_token > 0);
  CHECK(cost.mixer_ms_per_token > 0);
  CHECK(cost.mixer_ms_per_token < cost.ms_per_token);  // a part of the whole decode
  CHECK(model->is_training());                         // left as found

  RunConfig attention = model_config(Json(), 10);
  Gpt plain(attention.model, attention.ffn);
  plain->eval();
  CHECK(measure_decode_cost(*plain, 1).cache_entries == 10.0);
  CHECK(!plain->is_training());
}
