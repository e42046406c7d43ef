#include "experiments/run_config.h"

#include "experiments/corpus.h"
#include "layers/registry.h"

namespace mixlab {

namespace {

ModelConfig parse_model(const ConfigReader& c) {
  ModelConfig m;
  m.d_model = c.get_positive_int("d_model", m.d_model);
  m.n_layers = c.get_positive_int("n_layers", m.n_layers);
  m.n_heads = c.get_positive_int("n_heads", m.n_heads);
  m.seq_len = c.get_positive_int("seq_len", m.seq_len);
  if (m.d_model % m.n_heads != 0)
    c.fail("n_heads", "must divide model.d_model (" + std::to_string(m.d_model) + ")");
  m.init = c.get_string("init", m.init);
  if (m.init != "gpt2" && m.init != "reference")
    c.fail("init", "must be \"gpt2\" or \"reference\"");
  c.reject_unknown_keys();
  return m;
}

DataConfig parse_data(const ConfigReader& c) {
  DataConfig d;
  d.corpus = c.get_string("corpus", d.corpus);
  if (d.corpus != "brown" && d.corpus != "text") c.fail("corpus", "must be \"brown\" or \"text\"");
  d.tokenizer = c.get_string("tokenizer", d.tokenizer);
  if (d.tokenizer != "bytes") c.fail("tokenizer", "must be \"bytes\"");
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
    r.data = parse_data(root.child("data"));
    r.model.vocab_size = tokenizer_vocab_size(r.data);
    r.train = parse_train(root.child("train"));
    r.eval = parse_eval(root.child("eval"));
    ModelDims dims{r.model.d_model, r.train.batch_size, r.model.seq_len, r.model.n_layers, 0};
    r.ffn_json = r.json.at("ffn");
    root.raw("ffn");
    r.ffn = parse_ffn(r.ffn_json, "ffn", dims);
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

RunConfig load_run_config(const std::string& file) {
  return parse_run_config(read_json_file(file), file);
}

}  // namespace mixlab
