// bench: layer forward + backward and whole train steps, timed at the CPU or the GPU shape.
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <sstream>

#include "experiments/benchmark.h"
#include "experiments/cpu_runtime.h"
#include "layers/registry.h"
#include "sweeps/commands.h"

namespace mixlab {

namespace {

struct BenchArgs {
  std::string device = "auto", shape = "auto", types = "dense,mot,expert_choice,switch";
  std::string what = "all", precision = "auto";
  std::string mixers;  // "": attention for layers and steps, every bench mixer for decode
  int warmup = 5, iters = 30, threads = 0;
  int64_t experts = 0, group_size = 0;  // 0: the shape's own
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// `sweep bench --what decode`: time per generated token and cache entries against length,
// with the growth exponents fitted over the lengths next to the paper's.
int run_decode_bench(const BenchArgs& a) {
  std::vector<std::string> mixers = a.mixers.empty() ? bench_mixer_names() : split(a.mixers);
  for (const auto& m : mixers) (void)bench_mixer_config(m);  // unknown names before any work
  const CpuThreads threads = set_cpu_threads(a.threads);
  const std::vector<int64_t> lengths = {256, 1024, 4096, 16384};
  std::cout << fmt::format(
      "decode on the cpu ({}): one sequence, d_model 64, 2 heads, token by token without "
      "gradients; median of the last {} steps up to each length n; cache = positions (or "
      "states) held per head; exponents fitted in log-log over n, claimed in brackets (log: "
      "grows as log n)\n\n",
      threads.describe(), a.iters);
  std::cout << fmt::format(
      "{:<44} {:>8} {:>8} {:>8} {:>8} {:>12}   {:>6} {:>6} {:>6} {:>6} {:>12}\n", "mixer", "us@256",
      "us@1k", "us@4k", "us@16k", "time exp", "c@256", "c@1k", "c@4k", "c@16k", "cache exp");
  for (const auto& m : mixers) {
    DecodeBench r = measure_decode(m, lengths, a.iters);
    std::string line = fmt::format("{:<44}", m);
    for (double us : r.us_per_token) line += fmt::format(" {:>8.1f}", us);
    line += fmt::format(" {:>12}  ", fmt::format("{:.2f} [{}]", r.time_exponent, r.claimed_time));
    for (int64_t c : r.cache_entries) line += fmt::format(" {:>6}", c);
    line += fmt::format(" {:>12}", fmt::format("{:.2f} [{}]", r.cache_exponent, r.claimed_cache));
    std::cout << line << "\n";
  }
  return 0;
}

int run_bench(const BenchArgs& a) {
  if (a.what == "decode") return run_decode_bench(a);
  torch::Device device = torch::kCPU;
  if (a.device == "cuda" || (a.device == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available())
      throw ConfigError("--device", a.device, "no CUDA device is available to this LibTorch");
    device = torch::Device(torch::kCUDA, 0);
  } else if (a.device != "cpu" && a.device != "auto") {
    throw ConfigError("--device", a.device, "must be cpu, cuda or auto");
  }
  const CpuThreads threads = set_cpu_threads(a.threads);
  std::string shape_name = a.shape == "auto" ? (device.is_cuda() ? "gpu" : "cpu") : a.shape;
  if (shape_name != "cpu" && shape_name != "gpu")
    throw ConfigError("--shape", a.shape, "must be cpu, gpu or auto");
  BenchShape shape = shape_name == "gpu" ? gpu_bench_shape() : cpu_bench_shape();
  if (a.experts < 0)
    throw ConfigError("--experts", std::to_string(a.experts),
                      "must be >= 1, or 0 for the shape's own");
  if (a.group_size < 0)
    throw ConfigError("--group-size", std::to_string(a.group_size),
                      "must be >= 1, or 0 for the shape's own");
  if (a.experts > 0) shape.n_experts = a.experts;
  if (a.group_size > 0) shape.group_size = a.group_size;
  if (shape.batch % shape.group_size != 0)
    throw ConfigError("--group-size", std::to_string(shape.group_size),
                      "must divide the shape's batch (" + std::to_string(shape.batch) + ")");
  const bool bf16 = a.precision == "bf16" || (a.precision == "auto" && device.is_cuda());
  if (a.precision != "auto" && a.precision != "bf16" && a.precision != "fp32")
    throw ConfigError("--precision", a.precision, "must be bf16, fp32 or auto");
  if (a.what != "all" && a.what != "layers" && a.what != "steps")
    throw ConfigError("--what", a.what, "must be layers, steps, all or decode");
  std::vector<std::string> mixers =
      a.mixers.empty() ? std::vector<std::string>{""} : split(a.mixers);
  for (const auto& m : mixers)
    if (!m.empty()) (void)bench_mixer_config(m);
  const auto known = ffn_types();
  for (const auto& type : split(a.types))
    if (std::find(known.begin(), known.end(), type) == known.end())
      throw ConfigError("--types", type, "unknown layer type");

  const Roofline peak = roofline(device, bf16);
  std::cout << fmt::format(
      "device {} ({}), {} shape: batch {} x seq {}, d_model {}, {} layers, {} heads, "
      "vocab {}, d_ff {}, {} experts, group {}; {}; median of {} after {} warm-up; roofline "
      "{:.3g} FLOP/s ({})\n\n",
      device.str(), threads.describe(), shape.name, shape.batch, shape.seq_len, shape.d_model,
      shape.n_layers, shape.n_heads, shape.vocab, shape.d_ff, shape.n_experts, shape.group_size,
      bf16 ? "bf16 autocast" : "float32", a.iters, a.warmup, peak.flops_per_s, peak.source);
  const size_t width = a.mixers.empty() ? 28 : 64;  // "step fwd+bwd TYPE + MIXER"
  std::cout << fmt::format("{:<{}} {:>10} {:>14} {:>12} {:>9}\n", "case", width, "ms", "tokens/s",
                           "TFLOP/s", "of peak");
  for (const char* kind : {"layer", "step"}) {
    if (a.what == (std::string(kind) == "layer" ? "steps" : "layers")) continue;
    // Layers are timed alone (no mixer); steps once per mixer.
    for (const auto& mixer : std::string(kind) == "layer" ? std::vector<std::string>{""} : mixers)
      for (const auto& type : split(a.types)) {
        auto bench = std::string(kind) == "layer"
                         ? make_layer_bench(type, shape, device, bf16)
                         : make_step_bench(type, shape, device, bf16, mixer);
        BenchResult r = measure(*bench, device, a.warmup, a.iters);
        std::string label = fmt::format("{} fwd+bwd {}", kind, type);
        if (!mixer.empty()) label += " + " + mixer;
        std::cout << fmt::format("{:<{}} {:>10.3f} {:>14.0f} {:>12.3f} {:>8.1f}%\n", label, width,
                                 r.median_ms, r.tokens_per_s, r.flops_per_s / 1e12,
                                 100 * r.flops_per_s / peak.flops_per_s);
      }
  }
  return 0;
}

}  // namespace

std::vector<Command> add_bench_commands(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* bench = app.add_subcommand(
      "bench",
      "time each layer's forward + backward and a whole train step (tokens/s, FLOP "
      "utilisation)");
  bench->add_option("--device", args->device, "cpu | cuda | auto")->capture_default_str();
  bench->add_option("--shape", args->shape, "cpu (tiny) | gpu (GPU.md peers) | auto")
      ->capture_default_str();
  bench->add_option("--types", args->types, "layer types, comma-separated")->capture_default_str();
  bench
      ->add_option("--what", args->what,
                   "layers | steps | all (both) | decode (token-by-token decoding of each mixer "
                   "at n = 256, 1k, 4k, 16k: time per token, cache entries, fitted growth)")
      ->capture_default_str();
  bench
      ->add_option(
          "--mixers", args->mixers,
          "token mixers, comma-separated (steps: each layer type under each; decode: "
          "default all): attention, local_attention, diagonal_ssm, recurrence_kth, "
          "recurrence_pow2[_cache_efficient], recurrence_square_plus_one[_cache_efficient], "
          "recurrence_dense")
      ->capture_default_str();
  bench
      ->add_option("--precision", args->precision,
                   "bf16 (autocast, on the CPU too) | fp32 | auto (bf16 on CUDA)")
      ->capture_default_str();
  bench->add_option("--warmup", args->warmup, "untimed runs first")->capture_default_str();
  bench
      ->add_option("--iters", args->iters,
                   "timed runs (the median is reported; decode: timed tokens per length)")
      ->capture_default_str();
  bench
      ->add_option("--threads", args->threads,
                   "CPU threads (0: every core); see README, Performance")
      ->capture_default_str();
  bench->add_option("--experts", args->experts, "number of experts (0: the shape's own)")
      ->capture_default_str();
  bench
      ->add_option("--group-size", args->group_size,
                   "group size of MoT, Expert Choice and Soft MoE (0: the shape's own)")
      ->capture_default_str();
  return {{bench, [=] { return run_bench(*args); }}};
}

}  // namespace mixlab
