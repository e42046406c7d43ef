#include "experiments/run_config.h"

#include "experiments/corpus.h"
#include "experiments/tokenizer.h"
#include "layers/registry.h"

namespace mixlab {

namespace {

// model.ffn_blocks: "all", "upper_half" (the 2024 paper's placement: blocks n_layers / 2 and
// up) or a list of distinct block indices; the blocks that get the configured FFN.
std::vector<bool> parse_ffn_blocks(const ConfigReader& c, int64_t n_layers) {
  // One flag a block: bounded, so an absurd n_layers is a ConfigError, not an allocation failure
  // (the memory check that would refuse it comes later).
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  if (n_layers > kMaxBlocks)
    c.fail("ffn_blocks", "needs model.n_layers of at most " + std::to_string(kMaxBlocks));
  const Json& blocks = c.raw("ffn_blocks");
  std::vector<bool> in_block(size_t(n_layers), false);
  if (blocks == "all" || blocks == "upper_half") {
    for (int64_t i = blocks == "all" ? 0 : n_layers / 2; i < n_layers; ++i) in_block[i] = true;
    return in_block;
  }
  if (!blocks.is_array() || blocks.empty())
    c.fail("ffn_blocks", "must be \"all\", \"upper_half\" or a non-empty list of block indices");
  for (const auto& b : blocks) {
    if (!b.is_number_integer() || b.get<int64_t>() < 0 || b.get<int64_t>() >= n_layers ||
        in_block[b.get<size_t>()])
      throw ConfigError(c.key_path("ffn_blocks"), short_value(b),
                        "a block index must be an integer in [0, model.n_layers = " +
                            std::to_string(n_layers) + "), each at most once");
    in_block[b.get<size_t>()] = true;
  }
  return in_block;
}

ModelConfig parse_model(const ConfigReader& c) {
  ModelConfig m;
  m.d_model = c.get_positive_int("d_model", m.d_model);
  m.n_layers = c.get_positive_int("n_layers", m.n_layers);
  m.n_heads = c.get_positive_int("n_heads", m.n_heads);
  m.seq_len = c.get_positive_int("seq_len", m.seq_len);
  if (m.d_model % m.n_heads != 0)
    c.fail("n_heads", "must divide model.d_model (" + std::to_string(m.d_model) + ")");
  m.init = c.get_string("init", m.init);
  if (m.init != "gpt2" && m.init != "reference" && m.init != "fan_in")
    c.fail("init", "must be \"gpt2\", \"reference\" or \"fan_in\"");
  if (c.has("init_scale")) {
    if (m.init == "gpt2")
      c.fail("init_scale",
             "has no meaning for model.init \"gpt2\" (N(0, 0.02)): set model.init to "
             "\"reference\" or \"fan_in\"");
    m.init_scale = c.get_positive_double("init_scale", 0);
  }
  m.final_norm = c.get_bool("final_norm", m.final_norm);
  m.tied_head = c.get_bool("tied_head", m.tied_head);
  if (c.has("ffn_blocks")) m.ffn_in_block = parse_ffn_blocks(c, m.n_layers);
  c.reject_unknown_keys();
  return m;
}

// data.corpus "synthetic": a recall task (experiments/recall_tasks.h) generates the data. A
// tokenizer or a path would say the run reads files, which it does not: refused, not ignored.
DataConfig parse_synthetic_data(const ConfigReader& c, DataConfig d, int64_t seq_len) {
  for (const char* key : {"tokenizer", "path"})
    if (c.has(key))
      c.fail(key, "has no meaning for data.corpus \"synthetic\": data.task defines the tokens");
  d.tokenizer = "";
  d.task = parse_recall_task(c, seq_len);
  c.reject_unknown_keys();
  return d;
}

DataConfig parse_data(const ConfigReader& c, int64_t seq_len) {
  DataConfig d;
  d.corpus = c.get_string("corpus", d.corpus);
  if (d.corpus == "synthetic") return parse_synthetic_data(c, d, seq_len);
  if (d.corpus != "brown" && d.corpus != "text" && d.corpus != "english")
    c.fail("corpus", "must be \"brown\", \"text\", \"english\" or \"synthetic\"");
  d.tokenizer = c.get_string("tokenizer", d.tokenizer);
  if (d.tokenizer != "bytes" && d.tokenizer != "sentencepiece")
    c.fail("tokenizer", "must be \"bytes\" or \"sentencepiece\"");
  // The SentencePiece options: only with that tokenizer, so a bytes config never carries one.
  for (const char* key : {"vocab_size", "model_type"})
    if (c.has(key) && d.tokenizer != "sentencepiece")
      c.fail(key, "applies only to data.tokenizer \"sentencepiece\"");
  d.vocab_size = c.get_int("vocab_size", d.vocab_size);
  if (d.vocab_size < kMinVocabSize || d.vocab_size > kMaxVocabSize)
    c.fail("vocab_size", "must be in [" + std::to_string(kMinVocabSize) + ", " +
                             std::to_string(kMaxVocabSize) +
                             "] (256 byte pieces, <unk> and \"\\n\" included)");
  d.model_type = c.get_string("model_type", d.model_type);
  if (d.model_type != "unigram" && d.model_type != "bpe")
    c.fail("model_type", "must be \"unigram\" or \"bpe\"");
  d.path = c.get_string("path", "");
  if (d.corpus == "text" && d.path.empty()) c.fail("path", "required when data.corpus is \"text\"");
  c.reject_unknown_keys();
  return d;
}

TrainConfig parse_train(const ConfigReader& c) {
  TrainConfig t;
  t.steps = c.get_positive_int("steps", t.steps);
  t.batch_size = c.get_positive_int("batch_size", t.batch_size);
  t.lr = c.get_positive_double("lr", t.lr);
  t.warmup_frac = c.get_double("warmup_frac", t.warmup_frac);
  if (t.warmup_frac < 0 || t.warmup_frac >= 1) c.fail("warmup_frac", "must be in [0, 1)");
  t.schedule = c.get_string("schedule", t.schedule);
  if (t.schedule != "cosine" && t.schedule != "linear" && t.schedule != "constant")
    c.fail("schedule", "must be \"cosine\", \"linear\" or \"constant\"");
  t.final_lr_frac = c.get_double("final_lr_frac", t.final_lr_frac);
  if (t.final_lr_frac < 0 || t.final_lr_frac > 1) c.fail("final_lr_frac", "must be in [0, 1]");
  t.weight_decay = c.get_double("weight_decay", t.weight_decay);
  if (t.weight_decay < 0) c.fail("weight_decay", "must be >= 0");
  t.grad_clip = c.get_double("grad_clip", t.grad_clip);
  if (t.grad_clip < 0) c.fail("grad_clip", "must be >= 0 (0 turns clipping off)");
  t.beta1 = c.get_double("beta1", t.beta1);
  if (t.beta1 < 0 || t.beta1 >= 1) c.fail("beta1", "must be in [0, 1)");
  t.beta2 = c.get_double("beta2", t.beta2);
  if (t.beta2 < 0 || t.beta2 >= 1) c.fail("beta2", "must be in [0, 1)");
  t.log_every = c.get_positive_int("log_every", t.log_every);
  t.checkpoint_every = c.get_int("checkpoint_every", t.checkpoint_every);
  if (t.checkpoint_every < 0) c.fail("checkpoint_every", "must be >= 0");
  t.precision = c.get_string("precision", t.precision);
  if (t.precision != "bf16" && t.precision != "fp32") c.fail("precision", "must be bf16 or fp32");
  t.autocast_cpu = c.get_bool("autocast_cpu", t.autocast_cpu);
  t.decay = c.get_string("decay", t.decay);
  if (t.decay != "matrices" && t.decay != "all")
    c.fail("decay", "must be \"matrices\" (no decay on biases, norms, temperatures) or \"all\"");
  c.reject_unknown_keys();
  return t;
}

EvalConfig parse_eval(const ConfigReader& c) {
  EvalConfig e;
  e.every = c.get_int("every", e.every);
  if (e.every < 0) c.fail("every", "must be >= 0");
  e.batches = c.get_positive_int("batches", e.batches);
  if (c.has("modes")) {
    const Json& modes = c.raw("modes");
    if (!modes.is_array() || modes.empty()) c.fail("modes", "must be a non-empty list");
    e.modes.clear();
    for (const auto& m : modes) {
      if (!m.is_string() || (m != "mixed" && m != "discrete" && m != "switch"))
        throw ConfigError(c.key_path("modes"), short_value(m),
                          "eval modes are \"mixed\", \"discrete\" and \"switch\"");
      e.modes.push_back(m.get<std::string>());
    }
  }
  c.reject_unknown_keys();
  return e;
}

}  // namespace

RunConfig parse_run_config(const Json& config, const std::string& file) {
  try {
    if (!config.is_object())
      throw ConfigError("", short_value(config), "a run config is an object");
    RunConfig r;
    Json with_defaults = config;
    write_changed_defaults(with_defaults);
    r.json = canonicalize(with_defaults);
    r.hash = content_hash(r.json);
    ConfigReader root(r.json, "");
    for (const char* section : {"model", "ffn", "data", "train", "eval"})
      if (!root.has(section)) root.fail(section, "required section is missing");
    r.seed = root.get_int("seed", 0);
    r.model = parse_model(root.child("model"));
    r.data = parse_data(root.child("data"), r.model.seq_len);
    r.model.vocab_size = r.data.corpus == "synthetic" ? recall_task_vocab_size(r.data.task)
                                                      : tokenizer_vocab_size(r.data);
    r.train = parse_train(root.child("train"));
    r.eval = parse_eval(root.child("eval"));
    ModelDims dims{r.model.d_model, r.train.batch_size, r.model.seq_len, r.model.n_layers, 0};
    r.ffn_json = r.json.at("ffn");
    root.raw("ffn");
    r.ffn = parse_ffn(r.ffn_json, "ffn", dims);
    if (!r.model.ffn_in_block.empty()) {
      // The other blocks' dense FFN: as wide as the configured FFN's d_ff (what flop-matched
      // experts are matched to), 4 d_model where it has none.
      const auto d_ff = r.ffn_json.find("d_ff");
      const Json dense = {
          {"type", "dense"},
          {"d_ff", d_ff != r.ffn_json.end() && d_ff->is_number_integer() ? d_ff->get<int64_t>()
                                                                         : 4 * r.model.d_model}};
      r.model.dense_ffn = parse_ffn(dense, "ffn", dims);
    }
    // Optional; left out, the block keeps its attention and the config its hash (the
    // canonical config holds `mixer` only when it is given).
    if (root.has("mixer"))
      r.model.mixer = parse_mixer(
          root.raw("mixer"), "mixer",
          MixerDims{r.model.d_model, r.model.n_heads, r.model.seq_len, r.model.n_layers});
    root.reject_unknown_keys();
    return r;
  } catch (const ConfigError& e) {
    throw e.in_file(file);
  }
}

bool batch_rows_mix(const RunConfig& config) {
  return ffn_mixes_batch_rows(config.ffn_json.value("type", ""));
}

bool autocast_on(const TrainConfig& train, const torch::Device& device) {
  return train.precision == "bf16" && (device.is_cuda() || (device.is_cpu() && train.autocast_cpu));
}

RunConfig load_run_config(const std::string& file) {
  return parse_run_config(read_json_file(file), file);
}

}  // namespace mixlab
