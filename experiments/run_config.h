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
#include "experiments/recall_tasks.h"
#include "layers/ffn_layer.h"
#include "layers/mixer.h"

namespace mixlab {

struct ModelConfig {
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 2;
  int64_t seq_len = 64;
  int64_t vocab_size = 256;   // set by the tokenizer
  std::string init = "gpt2";  // gpt2 | reference | fan_in (experiments/init.h)
  double init_scale = 0;      // model.init_scale; 0: the scheme's own (reference 0.1, fan_in 1)
  // The reference's architecture choices (README, "The papers' model choices"); each key is
  // written into the canonical config only when given, so older configs keep their hashes.
  // Which blocks get the configured FFN (model.ffn_blocks: "all", "upper_half" = blocks
  // n_layers / 2 .. n_layers - 1, or a list of indices); the others get `dense_ffn`.
  std::vector<bool> ffn_in_block;  // n_layers entries where the key is given; empty: every block
  FfnBuilder dense_ffn;            // dense, d_ff = the FFN's d_ff (4 d_model without one)
  bool has_configured_ffn(int64_t block) const {
    return ffn_in_block.empty() || ffn_in_block[size_t(block)];
  }
  bool final_norm = true;  // model.final_norm: LayerNorm before the head
  bool tied_head = true;   // model.tied_head: false, a separate head without bias
  // The token mixer of every block (the run config's `mixer`); unset: causal attention.
  MixerBuilder mixer;
};

struct DataConfig {
  std::string corpus = "brown";        // brown | text | english | synthetic
  std::string tokenizer = "bytes";     // bytes | sentencepiece (tokenizer.h)
  int64_t vocab_size = 16384;          // sentencepiece: the vocabulary, byte pieces included
  std::string model_type = "unigram";  // sentencepiece: unigram | bpe
  std::string path;       // brown: the unpacked package folder; text: a file or folder of .txt
  RecallTaskConfig task;  // synthetic: data.task and its keys
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
  std::string precision =
      "bf16";  // bf16: autocast on CUDA (CPU float32 unless autocast_cpu) | fp32
  // train.autocast_cpu: precision bf16 autocasts on the CPU too (training and evaluation).
  bool autocast_cpu = false;
  std::string decay = "matrices";  // train.decay: weight decay on "matrices" or "all" parameters
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
// Whether the run's FFN mixes the rows of a batch at one position (MoT, Expert Choice, Soft
// MoE, transition): its validation rows must not share text (corpus.h, validation_batches).
bool batch_rows_mix(const RunConfig& config);
// Whether the forward pass runs under bf16 autocast on `device` (training and evaluation).
bool autocast_on(const TrainConfig& train, const torch::Device& device);
RunConfig load_run_config(const std::string& file);

}  // namespace mixlab
