#include "experiments/benchmark.h"

#include <algorithm>
#include <chrono>

#include "layers/registry.h"
#include "layers/torch_compat.h"

namespace mixlab {

BenchShape cpu_bench_shape() {
  BenchShape s;
  s.name = "cpu";
  return s;
}

BenchShape gpu_bench_shape() {
  BenchShape s;
  s.name = "gpu";
  s.batch = 256;
  s.seq_len = 256;
  s.d_model = 512;
  s.n_layers = 8;
  s.n_heads = 8;
  s.vocab = 32000;
  s.d_ff = 2048;
  s.n_experts = 32;
  s.group_size = 32;
  return s;
}

Json bench_layer_config(const std::string& type, const BenchShape& s) {
  if (type == "dense") return {{"type", "dense"}, {"d_ff", s.d_ff}};
  Json c = {{"type", type},
            {"n_experts", s.n_experts},
            {"expert_size", "flop_matched"},
            {"d_ff", s.d_ff}};
  if (type == "mot" || type == "expert_choice" || type == "soft_moe" || type == "transition")
    c["group_size"] = s.group_size;
  return c;
}

ModelConfig bench_model_config(const BenchShape& s) {
  ModelConfig m;
  m.d_model = s.d_model;
  m.n_layers = s.n_layers;
  m.n_heads = s.n_heads;
  m.seq_len = s.seq_len;
  m.vocab_size = s.vocab;
  return m;
}

ModelDims bench_model_dims(const BenchShape& s) {
  return ModelDims{s.d_model, s.batch, s.seq_len, s.n_layers, 0};
}

namespace {

class LayerBench : public BenchCase {
 public:
  LayerBench(const std::string& type, const BenchShape& s, const torch::Device& device, bool bf16)
      : device_(device), bf16_(bf16) {
    layer_ = parse_ffn(bench_layer_config(type, s), "ffn", bench_model_dims(s))();
    layer_->to(device);
    layer_->train();
    x_ = torch::randn({s.batch, s.seq_len, s.d_model}, torch::TensorOptions().device(device))
             .requires_grad_(true);
    upstream_ = torch::randn_like(x_);
    tokens_per_run = double(s.batch * s.seq_len);
    flops_per_run = 3 * layer_->cost().forward_flops * tokens_per_run;
  }
  void run_once() override {
    torch::Tensor y;
    {
      compat::AutocastGuard autocast(device_, bf16_);
      y = layer_->forward(x_);
    }
    y.backward(upstream_.to(y.scalar_type()));
  }

 private:
  torch::Device device_;
  bool bf16_;
  FfnLayer layer_;
  torch::Tensor x_, upstream_;
};

class StepBench : public BenchCase {
 public:
  StepBench(const std::string& type, const BenchShape& s, const torch::Device& device, bool bf16) {
    torch::manual_seed(0);
    Gpt model(bench_model_config(s),
              parse_ffn(bench_layer_config(type, s), "ffn", bench_model_dims(s)));
    model->to(device);
    model->train();
    TrainConfig t;
    t.batch_size = s.batch;
    t.precision = bf16 ? "bf16" : "fp32";
    step_ = std::make_unique<TrainStep>(model, t, device);
    auto options = torch::TensorOptions().dtype(torch::kLong).device(device);
    inputs_ = torch::randint(0, s.vocab, {s.batch, s.seq_len}, options);
    targets_ = torch::randint(0, s.vocab, {s.batch, s.seq_len}, options);
    tokens_per_run = double(s.batch * s.seq_len);
    flops_per_run = model->cost().train_flops_per_token() * tokens_per_run;
  }
  void run_once() override { step_->run(inputs_, targets_, 1e-4); }

 private:
  std::unique_ptr<TrainStep> step_;
  torch::Tensor inputs_, targets_;
};

}  // namespace

std::unique_ptr<BenchCase> make_layer_bench(const std::string& type, const BenchShape& shape,
                                            const torch::Device& device, bool bf16) {
  return std::make_unique<LayerBench>(type, shape, device, bf16);
}

std::unique_ptr<BenchCase> make_step_bench(const std::string& type, const BenchShape& shape,
                                           const torch::Device& device, bool bf16) {
  return std::make_unique<StepBench>(type, shape, device, bf16);
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

BenchResult measure(BenchCase& bench, const torch::Device& device, int warmup, int iters) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) bench.run_once();
  synchronize(device);
  std::vector<double> seconds;
  for (int i = 0; i < iters; ++i) {
    auto start = Clock::now();
    bench.run_once();
    synchronize(device);
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  return {1000 * median, bench.tokens_per_run / median, bench.flops_per_run / median};
}

Roofline roofline(const torch::Device& device, bool bf16) {
  // CUDA: the measured bf16 matmul peak of the H100s here (GPU.md); float32 without tensor
  // cores: the H100 SXM datasheet figure.
  if (device.is_cuda())
    return bf16 ? Roofline{790e12, "bf16 matmul peak measured on the H100"}
                : Roofline{67e12, "H100 float32 datasheet peak"};
  torch::NoGradGuard no_grad;
  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  auto a = torch::randn({1024, 1024}).to(dtype), b = torch::randn({1024, 1024}).to(dtype);
  for (int i = 0; i < 2; ++i) torch::mm(a, b);
  auto start = std::chrono::steady_clock::now();
  const int n = 8;
  for (int i = 0; i < n; ++i) torch::mm(a, b);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {n * 2.0 * 1024 * 1024 * 1024 / s,
          bf16 ? "measured 1024^3 bf16 matmul" : "measured 1024^3 sgemm"};
}

}  // namespace mixlab
