// On a CUDA device: every layer in bf16 autocast against its float32 CPU result on the same
// weights and inputs. Skipped where LibTorch sees no GPU (CI, the CPU machine).
#include <doctest/doctest.h>

#include "experiments/benchmark.h"
#include "layers/registry.h"
#include "layers/torch_compat.h"

using namespace mixlab;

TEST_CASE("every layer in bf16 on CUDA is within 1e-2 of float32 on the CPU" *
          doctest::skip(!torch::cuda::is_available())) {
  BenchShape shape = cpu_bench_shape();
  shape.d_ff = 128;
  const torch::Device cuda(torch::kCUDA, 0);
  for (const auto& type : ffn_types()) {
    Json config = bench_layer_config(type, shape);
    if (type == "transition") config["switch_at_step"] = 1000;
    torch::manual_seed(0);
    FfnLayer cpu = parse_ffn(
        config, "ffn", ModelDims{shape.d_model, shape.batch, shape.seq_len, shape.n_layers, 0})();
    auto x = torch::randn({shape.batch, shape.seq_len, shape.d_model});
    torch::NoGradGuard no_grad;
    auto expected = cpu->forward(x);
    cpu->to(cuda);
    torch::Tensor got;
    {
      compat::AutocastGuard autocast(cuda, true);
      got = cpu->forward(x.to(cuda));
    }
    const double relative = (got.to(torch::kCPU, torch::kFloat) - expected).norm().item<double>() /
                            expected.norm().item<double>();
    INFO(type);
    CHECK(relative < 1e-2);
  }
}
