// Timing the layers and the train step at a given shape, on the CPU or a GPU.
//
// Used by `sweep bench` and by the Google Benchmark binary (tests/bench/), so both time the
// same work: a layer's forward + backward, and TrainStep::run (forward, backward, clipping,
// AdamW) of a whole model, at matched FLOPs per token for every layer type.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "experiments/model.h"
#include "experiments/train_step.h"

namespace mixlab {

struct BenchShape {
  std::string name;
  int64_t batch = 32, seq_len = 64, d_model = 64, n_layers = 2, n_heads = 2, vocab = 256;
  int64_t d_ff = 256, n_experts = 16, group_size = 16;
};

// batch 32 x 64, d 64, 2 layers, 2 heads, vocab 256, d_ff 256, 16 experts, group 16.
BenchShape cpu_bench_shape();
// The GPU.md peers: batch 256 x 256, d 512, 8 layers, 8 heads, vocab 16384 (the GPU specs'
// SentencePiece vocabulary), d_ff 2048,
// 32 experts, group 32.
BenchShape gpu_bench_shape();

// The flop-matched config of `type` at `shape` (dense, mot, expert_choice, switch, ...).
Json bench_layer_config(const std::string& type, const BenchShape& shape);
// The model at `shape`, and the dimensions its FFN layers are built for.
ModelConfig bench_model_config(const BenchShape& shape);
ModelDims bench_model_dims(const BenchShape& shape);

// Something to time: run_once() does one unit of work and does not wait for the device.
class BenchCase {
 public:
  virtual ~BenchCase() = default;
  virtual void run_once() = 0;
  double tokens_per_run = 0;
  double flops_per_run = 0;  // forward + backward (x3 forward)
};

std::unique_ptr<BenchCase> make_layer_bench(const std::string& type, const BenchShape& shape,
                                            const torch::Device& device, bool bf16);
// `mixer`: a bench mixer name (bench_mixer_names), or "" for the default attention.
std::unique_ptr<BenchCase> make_step_bench(const std::string& type, const BenchShape& shape,
                                           const torch::Device& device, bool bf16,
                                           const std::string& mixer = "");

void synchronize(const torch::Device& device);

// ---- token mixers ---------------------------------------------------------------------------

// The mixers `sweep bench --mixers` knows, each one config: attention, local_attention
// (window 64), diagonal_ssm, recurrence_kth (order 4), recurrence_pow2,
// recurrence_pow2_cache_efficient, recurrence_square_plus_one,
// recurrence_square_plus_one_cache_efficient, recurrence_dense.
std::vector<std::string> bench_mixer_names();
Json bench_mixer_config(const std::string& name);  // throws ConfigError("--mixers") if unknown

// Decoding one sequence token by token through one mixer (d_model 64, 2 heads, no gradients),
// on the CPU. The cache is filled by the real steps; at each length n the last `tokens` steps
// up to n are timed.
struct DecodeBench {
  std::string mixer;
  std::vector<int64_t> lengths;
  std::vector<double> us_per_token;    // median over the timed steps
  std::vector<int64_t> cache_entries;  // positions (or states) held per sequence and head at n
  double time_exponent = 0, cache_exponent = 0;  // least-squares slopes in log-log
  std::string claimed_time, claimed_cache;       // the paper's: "1", "0.5", "0", "log"
};
DecodeBench measure_decode(const std::string& mixer, const std::vector<int64_t>& lengths,
                           int tokens);
// The slope of log(y) against log(x), least squares.
double fitted_exponent(const std::vector<int64_t>& x, const std::vector<double>& y);

struct BenchResult {
  double median_ms = 0;
  double tokens_per_s = 0;
  double flops_per_s = 0;
};

// Median over `iters` timed runs after `warmup` untimed ones; the device is synchronised
// before each clock read.
BenchResult measure(BenchCase& bench, const torch::Device& device, int warmup, int iters);

// The peak the FLOP utilisation is measured against, and where it comes from: on CUDA
// 790e12 (bf16 dense on the H100 here) or the float32 datasheet figure; on the CPU a
// measured 1024^3 matmul rate in the same precision (bf16 on a CPU with bf16 instructions
// runs 2-3x faster than float32, so one peak for both would misstate either).
struct Roofline {
  double flops_per_s;
  std::string source;
};
Roofline roofline(const torch::Device& device, bool bf16);

}  // namespace mixlab
