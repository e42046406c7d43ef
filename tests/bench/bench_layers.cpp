// Google Benchmark: each layer's forward + backward and a whole train step at the CPU shape
// (batch 32 x 64, d 64, 2 layers, d_ff 256, 16 experts, group 16), float32, with tokens/s and
// the fraction of a measured sgemm peak as counters. `sweep bench` prints the same cases at
// either shape, on either device.
#include <benchmark/benchmark.h>

#include "experiments/benchmark.h"
#include "experiments/cpu_runtime.h"
#include "layers/registry.h"

using namespace mixlab;

namespace {

double cpu_peak() {
  static const double peak = roofline(torch::kCPU, false).flops_per_s;
  return peak;
}

void run(benchmark::State& state, BenchCase& bench) {
  for (int i = 0; i < 3; ++i) bench.run_once();
  for (auto _ : state) bench.run_once();
  state.counters["tokens/s"] = benchmark::Counter(bench.tokens_per_run * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["FLOP_util"] = benchmark::Counter(
      bench.flops_per_run * double(state.iterations()) / cpu_peak(), benchmark::Counter::kIsRate);
}

void layer(benchmark::State& state, const std::string& type) {
  auto bench = make_layer_bench(type, cpu_bench_shape(), torch::kCPU, false);
  run(state, *bench);
}

void step(benchmark::State& state, const std::string& type) {
  auto bench = make_step_bench(type, cpu_bench_shape(), torch::kCPU, false);
  run(state, *bench);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_in_process();
  set_cpu_threads(0);
  for (const std::string type : {"dense", "mot", "expert_choice", "switch", "top_k", "soft_moe"}) {
    const auto known = ffn_types();
    if (std::find(known.begin(), known.end(), type) == known.end()) continue;
    benchmark::RegisterBenchmark(("layer_fwd_bwd/" + type).c_str(), layer, type)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("train_step/" + type).c_str(), step, type)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
