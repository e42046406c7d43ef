// Issue 16, items 3 and 4: evaluation as training is (disjoint validation rows for layers that
// mix the rows of a batch, bf16 autocast on the CPU), and the MoT papers' model choices as
// recorded config keys (which blocks get the FFN, final norm, tied head, init, decay groups).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "experiments/corpus.h"
#include "experiments/init.h"
#include "experiments/model.h"
#include "experiments/train_step.h"
#include "experiments/trainer.h"
#include "layers/dense.h"
#include "layers/mot.h"
#include "layers/registry.h"
#include "layers/torch_compat.h"
#include "sweeps/data_identity.h"
#include "sweeps/spec.h"
#include "sweeps/validate.h"
#include "test_helpers.h"

using namespace mixlab;
using testing::max_abs_diff;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {

const Json kMot = {{"type", "mot"},
                   {"n_experts", 4},
                   {"group_size", 4},
                   {"expert_size", "flop_matched"},
                   {"d_ff", 32}};

// A text corpus of two files: validation (the first) `val_bytes` long, training 40 KB.
std::string write_corpus(const TempDir& dir, size_t val_bytes) {
  fs::create_directories(dir / "text");
  std::string a, b;
  for (size_t i = 0; a.size() < val_bytes; ++i)
    a += "validation line " + std::to_string(i * 7919 % 10007) + " of the held-out text.\n";
  a.resize(val_bytes - 1);  // the split adds a newline after each file
  while (b.size() < 40000) b += "training text, " + std::to_string(b.size() % 97) + " words.\n";
  testing::write_text(dir / "text/a.txt", a);
  testing::write_text(dir / "text/b.txt", b);
  return dir / "text";
}

Json run_json(const std::string& corpus, int64_t batch, int64_t seq_len, const Json& ffn,
              int64_t eval_batches = 8) {
  return {{"model", {{"d_model", 16}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", seq_len}}},
          {"ffn", ffn},
          {"data", {{"corpus", "text"}, {"path", corpus}}},
          {"train", {{"steps", 2}, {"batch_size", batch}}},
          {"eval", {{"every", 0}, {"batches", eval_batches}}}};
}

// Every text position covered by two windows of one batch, counted.
int64_t shared_positions(const std::vector<std::vector<int64_t>>& batches, int64_t seq_len) {
  int64_t shared = 0;
  for (const auto& offsets : batches) {
    std::set<int64_t> seen;
    for (int64_t o : offsets)
      for (int64_t t = o; t <= o + seq_len; ++t) shared += !seen.insert(t).second;
  }
  return shared;
}

ModelConfig small_model(int64_t n_layers = 2) {
  ModelConfig m;
  m.d_model = 16;
  m.n_layers = n_layers;
  m.n_heads = 2;
  m.seq_len = 8;
  return m;
}

const ModelDims kDims{16, 8, 8, 2, 0};

}  // namespace

// ---- item 3a: disjoint validation rows -----------------------------------------------------

TEST_CASE("validation batches of B 256 S 256: no two windows of a batch share a text position") {
  TempDir dir;
  const std::string corpus = write_corpus(dir, 100000);  // 66049 tokens are the least
  RunConfig config = parse_run_config(run_json(corpus, 256, 256, kMot), "c.json");
  const auto split = load_corpus(config.data)->validation;
  REQUIRE(split.numel() == 100000);
  // The even spread at this size overlaps: 2048 windows of 257 tokens in 100,000.
  std::vector<std::vector<int64_t>> spread(8);
  for (int64_t k = 0; k < 2048; ++k) spread[k / 256].push_back(k * (100000 - 257) / 2048);
  CHECK(shared_positions(spread, 256) > 0);
  CHECK(validation_layout(100000, 256, 256, 8) == ValidationLayout::strided);
  const auto offsets = validation_offsets(100000, 256, 256, 8, true);
  REQUIRE(offsets.size() == 8);
  CHECK(shared_positions(offsets, 256) == 0);
  for (const auto& batch : offsets) {
    REQUIRE(batch.size() == 256);
    CHECK(batch.front() >= 0);
    CHECK(batch.back() + 256 < 100000);  // the last target is inside the split
  }
  // The same windows as the even spread, regrouped: a dense model's mean loss is unchanged.
  std::multiset<int64_t> even, strided;
  for (int64_t k = 0; k < 2048; ++k) even.insert(k * (100000 - 257) / 2048);
  for (const auto& batch : offsets) strided.insert(batch.begin(), batch.end());
  CHECK(even == strided);
  // validation_batches reads exactly those windows: inputs, and targets one token later.
  const auto batches = validation_batches(split, 256, 256, 8, true);
  REQUIRE(batches.size() == 8);
  auto tokens = split.to(torch::kLong);
  for (int64_t b : {0, 5, 7})
    for (int64_t i : {0, 101, 255}) {
      const int64_t o = offsets[b][i];
      using torch::indexing::Slice;
      CHECK(torch::equal(batches[b].inputs[i], tokens.index({Slice(o, o + 256)})));
      CHECK(torch::equal(batches[b].targets[i], tokens.index({Slice(o + 1, o + 257)})));
    }
}

TEST_CASE("validation batches keep the even spread where its windows are already disjoint") {
  // Brown's validation split is about 300 KB; at 32 x 64 and 8 batches the spread is disjoint.
  CHECK(validation_layout(300000, 32, 64, 8) == ValidationLayout::even_spread);
  const auto offsets = validation_offsets(300000, 32, 64, 8, true);
  // Pinned: what validation_batches has always drawn, k (n - S - 1) / (B n_batches).
  CHECK(offsets[0][0] == 0);
  CHECK(offsets[0][1] == 1171);
  CHECK(offsets[3][5] == 118333);
  CHECK(offsets[7][31] == 298763);
  CHECK(validation_offsets(300000, 32, 64, 8, false) == offsets);
  // A model whose rows never mix is not refused on a short split: the old spread, overlapping.
  CHECK(validation_layout(500, 8, 64, 2) == ValidationLayout::too_short);
  const auto short_split = validation_offsets(500, 8, 64, 2, false);
  CHECK(short_split[1][3] == (8 + 3) * (500 - 65) / 16);
  CHECK(shared_positions(short_split, 64) > 0);
}

TEST_CASE("a validation split too short for disjoint rows is refused for a layer that mixes rows") {
  // (B + 1)(S + 1) tokens are enough, one fewer is not.
  CHECK(validation_layout(9 * 17, 8, 16, 4) == ValidationLayout::strided);
  CHECK(shared_positions(validation_offsets(9 * 17, 8, 16, 4, true), 16) == 0);
  CHECK(validation_layout(9 * 17 - 1, 8, 16, 4) == ValidationLayout::too_short);
  try {
    validation_offsets(9 * 17 - 1, 8, 16, 4, true);
    FAIL("not refused");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "train.batch_size");
    CHECK(e.value() == "8");
    CHECK(std::string(e.what()).find("at least (train.batch_size + 1) x (model.seq_len + 1) = 153 "
                                     "tokens") != std::string::npos);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
  // sweep validate refuses the config before anything is written, naming the key.
  TempDir dir;
  const std::string corpus = write_corpus(dir, 3000);
  try {
    check_run_feasible(parse_run_config(run_json(corpus, 256, 16, kMot), "c.json"));
    FAIL("not refused");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "train.batch_size");
  }
  CHECK_NOTHROW(check_run_feasible(
      parse_run_config(run_json(corpus, 256, 16, {{"type", "dense"}}), "c.json")));
  CHECK(batch_rows_mix(parse_run_config(run_json(corpus, 8, 16, kMot), "c.json")));
  CHECK(!batch_rows_mix(parse_run_config(run_json(corpus, 8, 16, {{"type", "dense"}}), "c.json")));
}

TEST_CASE("the disjoint regrouping is part of the recorded data identity") {
  TempDir dir;
  const std::string corpus = write_corpus(dir, 100000);
  const RunConfig paper = parse_run_config(run_json(corpus, 256, 256, kMot), "c.json");
  const RunConfig small = parse_run_config(run_json(corpus, 8, 16, kMot), "c.json");
  const CorpusIdentity files = corpus_identity(small.data);
  // Unchanged where the layout is: runs recorded before keep matching.
  CHECK(run_data_identity(small).fingerprint == files.fingerprint);
  CHECK(run_data_identity(paper).fingerprint == files.fingerprint + "; eval windows: disjoint");
  CHECK(run_data_identity(paper).location == files.location);
  CHECK(current_environment(paper).data.fingerprint == run_data_identity(paper).fingerprint);
  // A run recorded with the old identity reads as trained on other data: refused, not reused.
  RunRow old;
  old.config_hash = paper.hash;
  old.name = "paper";
  old.data_fingerprint = files.fingerprint;
  old.data_location = files.location;
  CHECK_THROWS_AS(environment_of_claimed_run(old, paper, false, [](const std::string&) {}),
                  ConfigError);
  old.data_fingerprint = run_data_identity(paper).fingerprint;
  CHECK_NOTHROW(environment_of_claimed_run(old, paper, false, [](const std::string&) {}));
}

TEST_CASE("every bundled spec validates and evaluates on Brown's unchanged even spread") {
  const fs::path sweeps = fs::path(MIXLAB_SOURCE_DIR) / "sweeps";
  if (!fs::exists(fs::path(MIXLAB_SOURCE_DIR) / "data/brown/.complete")) {
    MESSAGE("no data/brown in the checkout (scripts/setup.sh fetches it): skipped");
    return;
  }
  int specs = 0;
  for (const auto& entry : fs::directory_iterator(sweeps)) {
    if (entry.path().extension() != ".json") continue;
    ++specs;
    const SweepSpec spec = load_spec(entry.path().string());
    INFO(entry.path().filename().string());
    // A spec on the opt-in english corpus (scripts/setup.sh --corpus english) cannot be
    // validated where it was not assembled (CI): its run configs must still parse.
    bool corpus_missing = false;
    for (const auto& run : spec.runs) {
      RunConfig parsed;
      REQUIRE_NOTHROW(parsed = parse_run_config(run.config, spec.file));
      try {
        check_corpus_available(parsed.data);
      } catch (const ConfigError&) {
        REQUIRE(parsed.data.corpus == "english");
        corpus_missing = true;
      }
    }
    if (corpus_missing) continue;
    std::vector<RunConfig> configs;
    REQUIRE_NOTHROW(configs = validate_spec(spec));
    for (const auto& c : configs) {
      if (c.data.corpus != "brown") continue;
      const auto corpus = load_corpus(c.data);
      // Every committed result keeps its validation batches, and so its identity.
      CHECK(validation_layout(corpus->validation.numel(), c.train.batch_size, c.model.seq_len,
                              c.eval.batches) == ValidationLayout::even_spread);
    }
  }
  CHECK(specs >= 7);
}

// ---- item 3b: evaluation under the training autocast ----------------------------------------

TEST_CASE("a bf16 evaluation runs under CPU autocast with train.autocast_cpu") {
  TempDir dir;
  const std::string corpus = write_corpus(dir, 4000);
  Json json = run_json(corpus, 8, 16, kMot, 2);
  json["train"]["precision"] = "bf16";
  const RunConfig fp32_config = parse_run_config(json, "c.json");
  json["train"]["autocast_cpu"] = true;
  const RunConfig config = parse_run_config(json, "c.json");
  CHECK(!autocast_on(fp32_config.train, torch::kCPU));
  CHECK(autocast_on(config.train, torch::kCPU));
  json["train"]["precision"] = "fp32";
  CHECK(!autocast_on(parse_run_config(json, "c.json").train, torch::kCPU));

  torch::manual_seed(0);
  Gpt model(config.model, config.ffn);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches;
  for (auto& b : validation_batches(load_corpus(config.data)->validation, 8, 16, 2, true))
    batches.emplace_back(b.inputs, b.targets);
  const double fp32 = evaluate(model, batches, {"mixed"}).front().second;
  const double bf16 = evaluate(model, batches, {"mixed"}, true).front().second;
  // By hand: the logits are bf16 inside the guard, and the mean loss is what evaluate reports.
  double manual = 0;
  {
    torch::NoGradGuard no_grad;
    model->eval();
    compat::AutocastGuard guard(torch::kCPU, true);
    const bool bf16_logits = model->forward(batches[0].first).scalar_type() == torch::kBFloat16;
    CHECK(bf16_logits);
    for (const auto& [inputs, targets] : batches)
      manual += model->loss(inputs, targets).item<double>();
    model->train();
  }
  manual /= double(batches.size());
  const bool float_logits = model->forward(batches[0].first).scalar_type() == torch::kFloat;
  CHECK(float_logits);  // the guard is undone
  CHECK(bf16 == doctest::Approx(manual).epsilon(1e-6));
  CHECK(std::fabs(bf16 - fp32) > 1e-5);  // bf16 rounding shows
  CHECK(std::fabs(bf16 - fp32) < 0.05);

  // The trainer evaluates a run with train.autocast_cpu that way: its step-0 eval loss is the
  // bf16 one of the same initial weights, and without the key the float32 one.
  struct Last : TrainHooks {
    double eval0 = NAN;
    void on_log(int64_t step, const Metrics& m, double, double) override {
      for (const auto& [k, v] : m)
        if (step == 0 && k == "eval/loss") eval0 = v;
    }
  };
  Json trained = json;
  trained["train"]["precision"] = "bf16";
  trained["train"]["steps"] = 1;
  trained["eval"]["modes"] = {"mixed"};
  for (bool cpu_autocast : {false, true}) {
    trained["train"]["autocast_cpu"] = cpu_autocast;
    const RunConfig c = parse_run_config(trained, "c.json");
    torch::manual_seed(uint64_t(c.seed));
    Gpt fresh(c.model, c.ffn);
    const double expected = evaluate(fresh, batches, {"mixed"}, cpu_autocast).front().second;
    Last hooks;
    TrainOptions options;
    train_run(c, options, hooks);
    CHECK(hooks.eval0 == doctest::Approx(expected).epsilon(1e-9));
  }
}

// ---- item 4: the reference's model choices ---------------------------------------------------

TEST_CASE("model.ffn_blocks: the configured FFN only in the chosen blocks, dense elsewhere") {
  TempDir dir;
  const std::string corpus = write_corpus(dir, 4000);
  Json json = run_json(corpus, 8, 16, kMot);
  json["model"]["n_layers"] = 4;
  auto kinds = [&](const Json& blocks) {
    Json j = json;
    if (!blocks.is_null()) j["model"]["ffn_blocks"] = blocks;
    const RunConfig c = parse_run_config(j, "c.json");
    Gpt model(c.model, c.ffn);
    std::string out;
    for (const auto& layer : model->ffn_layers()) {
      if (auto* dense = dynamic_cast<DenseFfnImpl*>(layer.get())) {
        CHECK(dense->w1.size(1) == 32);  // the MoT's d_ff
        out += "d";
      } else {
        out += dynamic_cast<MotImpl*>(layer.get()) ? "m" : "?";
      }
    }
    return out;
  };
  CHECK(kinds(Json()) == "mmmm");
  CHECK(kinds("all") == "mmmm");
  CHECK(kinds("upper_half") == "ddmm");
  CHECK(kinds(Json::array({0, 3})) == "mddm");
  json["model"]["n_layers"] = 3;
  CHECK(kinds("upper_half") == "dmm");  // blocks n_layers / 2 and up
  // Without a d_ff in the FFN's config the dense blocks are 4 d_model wide.
  Json no_dff = run_json(
      corpus, 8, 16, {{"type", "mot"}, {"n_experts", 4}, {"group_size", 4}, {"expert_size", 8}});
  no_dff["model"]["ffn_blocks"] = Json::array({1});
  const RunConfig c = parse_run_config(no_dff, "c.json");
  Gpt model(c.model, c.ffn);
  CHECK(dynamic_cast<DenseFfnImpl*>(model->ffn_layers()[0].get())->w1.size(1) == 64);
  // "all" given explicitly builds the default model, draw for draw.
  Json all = run_json(corpus, 8, 16, kMot);
  all["model"]["ffn_blocks"] = "all";
  const RunConfig a = parse_run_config(all, "c.json"),
                  b = parse_run_config(run_json(corpus, 8, 16, kMot), "c.json");
  torch::manual_seed(1);
  Gpt ma(a.model, a.ffn);
  torch::manual_seed(1);
  Gpt mb(b.model, b.ffn);
  const auto pa = ma->named_parameters(), pb = mb->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto& p : pa) CHECK(torch::equal(p.value(), pb[p.key()]));
}

TEST_CASE("model.final_norm false: no ln_final, and the forward pass is the manual one") {
  ModelConfig m = small_model();
  m.final_norm = false;
  torch::manual_seed(0);
  Gpt model(m, parse_ffn(kMot, "ffn", kDims));
  const auto params = model->named_parameters();
  CHECK(params.find("ln_final.weight") == nullptr);
  CHECK(params.find("ln_final.bias") == nullptr);
  CHECK(params.find("wte") != nullptr);
  auto tokens = torch::randint(0, 256, {8, 8}, torch::kLong);
  auto x = params["wte"].index_select(0, tokens.reshape({-1})).view({8, 8, 16}) + params["wpe"];
  auto blocks = model->named_children()["blocks"];
  for (const auto& block : blocks->children()) x = block->as<BlockImpl>()->forward(x);
  CHECK(max_abs_diff(model->forward(tokens), torch::matmul(x, params["wte"].t())) < 1e-6);
  // The default has it, and it changes the output.
  torch::manual_seed(0);
  Gpt normed(small_model(), parse_ffn(kMot, "ffn", kDims));
  CHECK(normed->named_parameters().find("ln_final.weight") != nullptr);
  CHECK(normed->named_parameters().size() == params.size() + 2);
  CHECK(max_abs_diff(normed->forward(tokens), model->forward(tokens)) > 1e-3);
}

TEST_CASE("model.tied_head false: a separate head without bias, with its own gradient") {
  ModelConfig m = small_model();
  m.tied_head = false;
  torch::manual_seed(0);
  Gpt model(m, parse_ffn(kMot, "ffn", kDims));
  const auto params = model->named_parameters();
  REQUIRE(params.find("head.weight") != nullptr);
  CHECK(params.find("head.bias") == nullptr);
  CHECK(params["head.weight"].sizes() == params["wte"].sizes());
  CHECK(params["head.weight"].std().item<double>() == doctest::Approx(0.02).epsilon(0.05));
  // Every other weight is drawn as in the tied model.
  torch::manual_seed(0);
  Gpt tied(small_model(), parse_ffn(kMot, "ffn", kDims));
  for (const auto& p : tied->named_parameters()) CHECK(torch::equal(p.value(), params[p.key()]));
  CHECK(params.size() == tied->named_parameters().size() + 1);

  auto tokens = torch::randint(0, 256, {8, 8}, torch::kLong);
  auto targets = torch::randint(0, 256, {8, 8}, torch::kLong);
  model->loss(tokens, targets).backward();
  const auto& head_grad = params["head.weight"].grad();
  const auto& wte_grad = params["wte"].grad();
  REQUIRE(head_grad.defined());
  REQUIRE(wte_grad.defined());
  CHECK(max_abs_diff(head_grad, wte_grad) > 1e-4);
  // Rows of tokens that never occur as inputs get no embedding gradient, only a head one.
  std::set<int64_t> seen;
  for (int64_t i = 0; i < tokens.numel(); ++i) seen.insert(tokens.reshape({-1})[i].item<int64_t>());
  for (int64_t v = 0; v < 256; ++v) {
    if (seen.count(v)) continue;
    CHECK(wte_grad[v].abs().max().item<double>() == 0.0);
    CHECK(head_grad[v].abs().max().item<double>() > 0.0);
    break;
  }
}

TEST_CASE("model.init fan_in: matrix std sqrt(s / fan_in), uniform, embeddings N(0, s)") {
  for (double s : {1.0, 0.25}) {
    ModelConfig m = small_model();
    m.d_model = 128;
    m.n_heads = 4;
    m.init = "fan_in";
    m.init_scale = s == 1.0 ? 0 : s;  // 0: the scheme's default, 1
    m.tied_head = false;
    ModelDims dims{128, 8, 8, 2, 0};
    torch::manual_seed(0);
    Gpt model(m, parse_ffn({{"type", "dense"}, {"d_ff", 512}}, "ffn", dims));
    const auto params = model->named_parameters();
    INFO("s = " << s);
    // w1 (128 x 512, fan-in 128); w2 (512 x 128, fan-in 512); the head (Linear, in 128).
    for (const auto& [name, fan_in] : std::vector<std::pair<std::string, double>>{
             {"blocks.0.ffn.w1", 128}, {"blocks.1.ffn.w2", 512}, {"head.weight", 128}}) {
      INFO(name);
      const auto& w = params[name];
      const double expected = std::sqrt(s / fan_in);
      CHECK(w.std().item<double>() == doctest::Approx(expected).epsilon(0.02));
      CHECK(w.abs().max().item<double>() <= std::sqrt(3.0) * expected + 1e-7);
      CHECK(w.abs().max().item<double>() > 0.98 * std::sqrt(3.0) * expected);  // uniform
    }
    CHECK(params["wte"].std().item<double>() == doctest::Approx(std::sqrt(s)).epsilon(0.02));
    CHECK(params["wte"].mean().item<double>() == doctest::Approx(0.0).epsilon(0.02));
    // LayerNorm keeps (1, 0).
    CHECK(torch::equal(params["ln_final.weight"], torch::ones({128})));
  }
  // model.init_scale rescales the reference scheme too: std sqrt(s / fan_in).
  ModelConfig m = small_model();
  m.d_model = 128;
  m.n_heads = 4;
  m.init = "reference";
  m.init_scale = 0.5;
  torch::manual_seed(0);
  Gpt model(m, parse_ffn({{"type", "dense"}, {"d_ff", 512}}, "ffn", ModelDims{128, 8, 8, 2, 0}));
  CHECK(model->named_parameters()["blocks.0.ffn.w1"].std().item<double>() ==
        doctest::Approx(std::sqrt(0.5 / 128)).epsilon(0.02));
}

TEST_CASE("train.decay all: a 1-D parameter decays with zero gradient") {
  for (const std::string decay : {"matrices", "all"}) {
    torch::manual_seed(0);
    Gpt model(small_model(), parse_ffn(kMot, "ffn", kDims));
    TrainConfig t;
    t.lr = 0.01;
    t.weight_decay = 0.1;
    t.decay = decay;
    TrainStep step(model, t, torch::kCPU);
    const auto params = model->named_parameters();
    const auto before_matrix = params["wte"].clone();
    for (auto& p : model->parameters()) p.mutable_grad() = torch::zeros_like(p);
    step.optimizer().step();
    // AdamW with a zero gradient moves a parameter only by decay: p (1 - lr wd).
    const double gain = params["ln_final.weight"][0].item<double>();
    CHECK(gain == doctest::Approx(decay == "all" ? 1.0 - 0.01 * 0.1 : 1.0).epsilon(1e-7));
    CHECK(max_abs_diff(params["wte"], before_matrix * (1.0 - 0.01 * 0.1)) < 1e-8);
  }
}

TEST_CASE("the model choice keys: an old config keeps its hash, bad values name the key") {
  const Json old = {{"model", {{"d_model", 64}, {"n_layers", 2}, {"n_heads", 2}, {"seq_len", 64}}},
                    {"ffn", {{"type", "dense"}, {"d_ff", 256}}},
                    {"data", {{"corpus", "brown"}, {"tokenizer", "bytes"}}},
                    {"train", {{"steps", 1000}, {"batch_size", 32}, {"lr", 2e-3}}},
                    {"eval", {{"every", 50}, {"batches", 8}}}};
  const RunConfig c = parse_run_config(old, "c.json");
  // Pinned: the hash this config had before these keys existed.
  CHECK(c.hash == "e160abfa9262a7fc");
  CHECK(c.model.ffn_in_block.empty());
  CHECK(c.model.final_norm);
  CHECK(c.model.tied_head);
  CHECK(c.model.init == "gpt2");
  CHECK(c.train.decay == "matrices");
  CHECK(!c.train.autocast_cpu);
  // Given, each key is recorded: another config.
  for (const auto& [section, key, value] : std::vector<std::tuple<std::string, std::string, Json>>{
           {"model", "ffn_blocks", "upper_half"},
           {"model", "final_norm", false},
           {"model", "tied_head", false},
           {"model", "init", "fan_in"},
           {"train", "decay", "all"},
           {"train", "autocast_cpu", true}}) {
    Json j = old;
    j[section][key] = value;
    CHECK(parse_run_config(j, "c.json").hash != c.hash);
  }
  auto refused = [&](const std::string& section, const std::string& key, const Json& value,
                     const std::string& model_init = "") {
    Json j = old;
    j[section][key] = value;
    if (!model_init.empty()) j["model"]["init"] = model_init;
    try {
      parse_run_config(j, "c.json");
    } catch (const ConfigError& e) {
      return e.key();
    }
    return std::string("accepted");
  };
  CHECK(refused("model", "init_scale", 0.5) == "model.init_scale");  // gpt2 has no scale
  CHECK(refused("model", "init_scale", 0.5, "fan_in") == "accepted");
  CHECK(refused("model", "init_scale", -1, "reference") == "model.init_scale");
  CHECK(refused("model", "init", "xavier") == "model.init");
  CHECK(refused("model", "ffn_blocks", "lower_half") == "model.ffn_blocks");
  CHECK(refused("model", "ffn_blocks", Json::array({2})) == "model.ffn_blocks");
  CHECK(refused("model", "ffn_blocks", Json::array({1, 1})) == "model.ffn_blocks");
  CHECK(refused("model", "ffn_blocks", Json::array()) == "model.ffn_blocks");
  CHECK(refused("model", "final_norm", "no") == "model.final_norm");
  CHECK(refused("train", "decay", "none") == "train.decay");
  CHECK(refused("train", "autocast_cpu", 1) == "train.autocast_cpu");
}
