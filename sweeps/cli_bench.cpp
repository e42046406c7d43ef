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

int run_bench(const BenchArgs& a) {
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
    throw ConfigError("--what", a.what, "must be layers, steps or all");
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
  std::cout << fmt::format("{:<28} {:>10} {:>14} {:>12} {:>9}\n", "case", "ms", "tokens/s",
                           "TFLOP/s", "of peak");
  for (const char* kind : {"layer", "step"}) {
    if (a.what == (std::string(kind) == "layer" ? "steps" : "layers")) continue;
    for (const auto& type : split(a.types)) {
      auto bench = std::string(kind) == "layer" ? make_layer_bench(type, shape, device, bf16)
                                                : make_step_bench(type, shape, device, bf16);
      BenchResult r = measure(*bench, device, a.warmup, a.iters);
      std::cout << fmt::format("{:<28} {:>10.3f} {:>14.0f} {:>12.3f} {:>8.1f}%\n",
                               fmt::format("{} fwd+bwd {}", kind, type), r.median_ms,
                               r.tokens_per_s, r.flops_per_s / 1e12,
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
  bench->add_option("--what", args->what, "layers | steps | all")->capture_default_str();
  bench
      ->add_option("--precision", args->precision,
                   "bf16 (autocast, on the CPU too) | fp32 | auto (bf16 on CUDA)")
      ->capture_default_str();
  bench->add_option("--warmup", args->warmup, "untimed runs first")->capture_default_str();
  bench->add_option("--iters", args->iters, "timed runs (the median is reported)")
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
