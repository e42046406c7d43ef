#include "sweeps/validate.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "experiments/corpus.h"

namespace mixlab {

namespace {

std::string gib(double bytes) {
  return bytes >= 1024.0 * (1 << 30) ? fmt::format("{:.3g} TiB", bytes / 1024.0 / (1 << 30))
                                     : fmt::format("{:.3g} GiB", bytes / (1 << 30));
}

double physical_memory_bytes() {
  return double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
}

// A number of the FFN config, or `fallback` where it is absent or not a number.
double ffn_number(const RunConfig& config, const char* key, double fallback) {
  auto it = config.ffn_json.find(key);
  return it != config.ffn_json.end() && it->is_number() ? it->get<double>() : fallback;
}

// The sizes the memory bound depends on, as doubles: an absurd size must not overflow into a
// small one.
struct Sizes {
  double d_model, n_layers, seq_len, vocab, batch, d_ff, n_experts, expert_size;
};

Sizes sizes_of(const RunConfig& c) {
  const double d = double(c.model.d_model);
  return {d,
          double(c.model.n_layers),
          double(c.model.seq_len),
          double(c.model.vocab_size),
          double(c.train.batch_size),
          ffn_number(c, "d_ff", 4 * d),
          ffn_number(c, "n_experts", 1),
          ffn_number(c, "expert_size", 0)};  // 0: not an integer size ("flop_matched", dense)
}

double memory_bound(const Sizes& s) {
  const double d = s.d_model, L = s.n_layers;
  // The FFN's parameters per layer, at least: every layer type has d_ff hidden units per token
  // at matched FLOPs, and an integer expert size means E experts of f units.
  const double ffn = s.expert_size > 0 ? 2 * d * s.expert_size * s.n_experts : 2 * d * s.d_ff;
  // Embeddings (tied output) and positions; per layer the attention's 4 d^2 and the FFN.
  const double params = (s.vocab + s.seq_len) * d + L * (4 * d * d + ffn);
  // Activations kept for the backward pass, at least: per layer the residual stream, the
  // LayerNorm output, q, k and v (5 d a token); the logits and their gradient (2 V a token).
  const double activations = s.batch * s.seq_len * (5 * d * L + 2 * s.vocab);
  // 16 bytes a parameter (float32 weight, gradient, AdamW's two moments), 4 an activation.
  return 16 * params + 4 * activations;
}

// The key whose value makes the bound large: the one that, put back to an ordinary value,
// lowers it most.
std::pair<std::string, double> largest_size_key(const RunConfig& c) {
  const Sizes given = sizes_of(c);
  struct Candidate {
    const char* key;
    double Sizes::*field;
    double ordinary;
  };
  const Candidate candidates[] = {{"model.d_model", &Sizes::d_model, 64},
                                  {"model.n_layers", &Sizes::n_layers, 2},
                                  {"model.seq_len", &Sizes::seq_len, 64},
                                  {"train.batch_size", &Sizes::batch, 32},
                                  {"ffn.d_ff", &Sizes::d_ff, 256},
                                  {"ffn.n_experts", &Sizes::n_experts, 16},
                                  {"ffn.expert_size", &Sizes::expert_size, 256}};
  std::pair<std::string, double> best{"model.d_model", given.d_model};
  double lowest = memory_bound(given);
  for (const auto& candidate : candidates) {
    if (!(given.*candidate.field > candidate.ordinary)) continue;
    Sizes reset = given;
    reset.*candidate.field = candidate.ordinary;
    if (const double bound = memory_bound(reset); bound < lowest) {
      lowest = bound;
      best = {candidate.key, given.*candidate.field};
    }
  }
  return best;
}

}  // namespace

double training_memory_lower_bound(const RunConfig& config) {
  return memory_bound(sizes_of(config));
}

void check_run_feasible(const RunConfig& config) {
  // Temperatures first: they need no data.
  for (const char* key : {"temperature", "initial_temperature"}) {
    const double t = ffn_number(config, key, 1.0);
    if (t < kMinTemperature)
      throw ConfigError(std::string("ffn.") + key, fmt::format("{:g}", t),
                        fmt::format("must be at least {:g}: far below it the controller's "
                                    "logits / T overflow float32 and the run diverges with a "
                                    "NaN loss (1e-30 does at step 2 at d_model 64)",
                                    kMinTemperature));
  }

  const double needed = training_memory_lower_bound(config), available = physical_memory_bytes();
  if (needed > available) {
    const auto [key, value] = largest_size_key(config);
    throw ConfigError(key, fmt::format("{:g}", value),
                      fmt::format("the run needs at least {} of memory (weights, gradients and "
                                  "AdamW state, and one batch's activations) and this machine "
                                  "has {}",
                                  gib(needed), gib(available)));
  }

  // A synthetic run generates its data: parse_recall_task checked that the task fits.
  if (config.data.corpus == "synthetic") return;
  const auto corpus = load_corpus(config.data);  // checks it is there; cached per process
  const int64_t window = config.model.seq_len + 1;
  for (const auto& [split, tokens] :
       {std::pair{"training", corpus->train.numel()}, {"validation", corpus->validation.numel()}})
    if (tokens <= window)
      throw ConfigError(
          "model.seq_len", std::to_string(config.model.seq_len),
          fmt::format("a window of model.seq_len + 1 = {} tokens does not fit in the {} split of "
                      "{} ({} tokens): shorten model.seq_len or give the corpus more text",
                      window, split, corpus_location(config.data), tokens));
  // The rows of a validation batch must not share text where the layer mixes them (corpus.h):
  // a split too short for that is refused here, before a sweep writes anything.
  validation_offsets(corpus->validation.numel(), config.train.batch_size, config.model.seq_len,
                     config.eval.batches, batch_rows_mix(config));
}

std::vector<RunConfig> validate_spec(const SweepSpec& spec) {
  std::vector<RunConfig> out;
  for (const auto& planned : spec.runs) {
    try {
      RunConfig config = parse_run_config(planned.config, "");
      check_run_feasible(config);
      out.push_back(std::move(config));
    } catch (const ConfigError& e) {
      throw ConfigError(spec.file, e.key(), e.value(),
                        e.message() + " (in run \"" + planned.name + "\")");
    }
  }
  return out;
}

}  // namespace mixlab
