// The bf16 path of every layer and of the train step, against float32 on the same weights and
// inputs. The bf16 autocast that CUDA runs use is the same code on the CPU (layers/
// torch_compat.h), so the CPU cases check it everywhere, CI included; the CUDA case runs
// where LibTorch sees a GPU and is skipped elsewhere.
#include <doctest/doctest.h>

#include "experiments/benchmark.h"
#include "experiments/train_step.h"
#include "layers/ffn_layer.h"
#include "layers/registry.h"
#include "layers/torch_compat.h"

using namespace mixlab;

namespace {

double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return (got.to(torch::kCPU, torch::kFloat) - expected).norm().item<double>() /
         expected.norm().item<double>();
}

// Each layer's forward in bf16 autocast on `device` against its float32 forward on the CPU.
void check_layers_in_bf16(const torch::Device& device) {
  BenchShape shape = cpu_bench_shape();
  shape.d_ff = 128;
  for (const auto& type : ffn_types()) {
    Json config = bench_layer_config(type, shape);
    if (type == "transition") config["switch_at_step"] = 1000;
    torch::manual_seed(0);
    FfnLayer layer = parse_ffn(config, "ffn", bench_model_dims(shape))();
    auto x = torch::randn({shape.batch, shape.seq_len, shape.d_model});
    torch::NoGradGuard no_grad;
    auto expected = layer->forward(x);
    layer->to(device);
    torch::Tensor got;
    {
      compat::AutocastGuard autocast(device, true);
      got = layer->forward(x.to(device));
    }
    INFO(type);
    // bf16 did run: the output is not float32 (or the layer cast it back, which dense does
    // not), and it is close to float32 but not equal.
    if (type == "dense") CHECK((got.scalar_type() == torch::kBFloat16));
    const double relative = relative_error(got, expected);
    CHECK(relative < 1e-2);
    CHECK(relative > 0.0);
  }
}

}  // namespace

TEST_CASE("every layer in bf16 autocast on the CPU is within 1e-2 of float32") {
  check_layers_in_bf16(torch::kCPU);
}

TEST_CASE("every layer in bf16 on CUDA is within 1e-2 of float32 on the CPU" *
          doctest::skip(!torch::cuda::is_available())) {
  check_layers_in_bf16(torch::Device(torch::kCUDA, 0));
}

TEST_CASE("router logits stay float32 under bf16 autocast") {
  torch::manual_seed(0);
  auto x = torch::randn({8, 16});
  auto router = torch::randn({16, 4});
  compat::AutocastGuard autocast(torch::kCPU, true);
  // Autocast is really on: a plain matmul comes out in bf16 ...
  CHECK((torch::matmul(x, router).scalar_type() == torch::kBFloat16));
  // ... but the router's does not, and it equals the float32 product exactly.
  auto logits = router_logits(x, router);
  CHECK((logits.scalar_type() == torch::kFloat));
  compat::AutocastOff off;
  CHECK(torch::equal(logits, torch::matmul(x, router)));
}

TEST_CASE("autocast guards nest and restore the state they found") {
  CHECK_FALSE(compat::detail::autocast_enabled(c10::DeviceType::CPU));
  {
    compat::AutocastGuard outer(torch::kCPU, true);
    {
      compat::AutocastGuard inner(torch::kCPU, true);
      CHECK(compat::detail::autocast_enabled(c10::DeviceType::CPU));
    }
    // The inner guard's end leaves the outer region in bf16.
    CHECK(compat::detail::autocast_enabled(c10::DeviceType::CPU));
    CHECK((torch::matmul(torch::ones({2, 2}), torch::ones({2, 2})).scalar_type() ==
           torch::kBFloat16));
  }
  CHECK_FALSE(compat::detail::autocast_enabled(c10::DeviceType::CPU));
  CHECK((torch::matmul(torch::ones({2, 2}), torch::ones({2, 2})).scalar_type() == torch::kFloat));
  compat::AutocastGuard disabled(torch::kCPU, false);
  CHECK_FALSE(compat::detail::autocast_enabled(c10::DeviceType::CPU));
}

TEST_CASE("a bf16 train step on the CPU follows the float32 step") {
  // The whole step (attention, every FFN type, the loss, AdamW) under autocast, as on CUDA.
  BenchShape shape = cpu_bench_shape();
  shape.batch = 16;
  shape.seq_len = 32;
  for (const std::string type : {"dense", "mot", "expert_choice", "switch"}) {
    auto inputs = torch::randint(0, shape.vocab, {shape.batch, shape.seq_len});
    auto targets = torch::randint(0, shape.vocab, {shape.batch, shape.seq_len});
    std::vector<double> losses[2];
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      torch::manual_seed(0);
      Gpt model(bench_model_config(shape),
                parse_ffn(bench_layer_config(type, shape), "ffn", bench_model_dims(shape)));
      TrainConfig t;
      t.batch_size = shape.batch;
      t.precision = bf16 ? "bf16" : "fp32";
      TrainStep step(model, t, torch::kCPU);
      for (int i = 0; i < 3; ++i) {
        step.reset_sums();
        step.run(inputs, targets, 1e-3);
        losses[bf16].push_back(step.loss_sum.item<double>());
      }
      // Autocast casts copies: the parameters the optimizer updates stay float32.
      for (const auto& p : model->parameters()) CHECK((p.scalar_type() == torch::kFloat));
    }
    INFO(type);
    for (size_t i = 0; i < losses[0].size(); ++i) {
      CHECK(std::abs(losses[1][i] - losses[0][i]) / losses[0][i] < 1e-2);
      if (i > 0) CHECK(losses[1][i] < losses[1][0]);  // and it learns
    }
    CHECK((losses[1] != losses[0]));  // bf16 really ran
  }
}
