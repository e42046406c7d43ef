// One run's resolved config: the sections of the JSON a run is trained from, validated.
//
//   {"model": {...}, "ffn": {...}, "data": {...}, "train": {...}, "eval": {...}, "seed": 0}
//
// Parsing checks everything a run could trip over later (unknown keys, ranges, shapes such
// as a group size that does not divide the batch) so a sweep fails before it writes anything.
// The device and thread count are not part of a config: they do not change what is computed.
#pragma once

#include <string>
#include <vector>

#include "experiments/config_reader.h"
#include "layers/ffn_layer.h"
#include "layers/mixer.h"

namespace mixlab {

struct ModelConfig {
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 2;
  int64_t seq_len = 64;
  int64_t vocab_size = 256;   // set by the tokenizer
  std::string init = "gpt2";  // gpt2 | reference (experiments/init.h)
  // The token mixer of every block (the run config's `mixer`); unset: causal attention.
  MixerBuilder mixer;
};

struct DataConfig {
  std::string corpus = "brown";  // brown | text
  std::string tokenizer = "bytes";
  std::string path;  // brown: the unpacked package folder; text: a file or folder of .txt
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 32;
  double lr = 2e-3;
  double warmup_frac = 0.01;
  std::string schedule = "cosine";  // cosine | linear | constant (after warm-up)
  double final_lr_frac = 0.1;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0: off
  double beta1 = 0.9, beta2 = 0.95;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;  // steps; 0: only at the end and when stopped
  std::string precision = "bf16";  // bf16: autocast on CUDA (CPU always float32) | fp32
};

struct EvalConfig {
  int64_t every = 100;  // steps; 0: only at the start and the end
  int64_t batches = 8;
  std::vector<std::string> modes = {"mixed"};
};

struct RunConfig {
  Json json;         // canonical
  std::string hash;  // content_hash(json)
  int64_t seed = 0;
  ModelConfig model;
  Json ffn_json;
  FfnBuilder ffn;
  DataConfig data;
  TrainConfig train;
  EvalConfig eval;
};

// Validates a resolved config; ConfigError names `file` and the dotted key.
RunConfig parse_run_config(const Json& config, const std::string& file);
RunConfig load_run_config(const std::string& file);

}  // namespace mixlab
