#include "experiments/benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>

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
  // The vocabulary of the GPU specs: a 16384-piece SentencePiece unigram model of `english`.
  s.vocab = 16384;
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
  StepBench(const std::string& type, const BenchShape& s, const torch::Device& device, bool bf16,
            const std::string& mixer) {
    torch::manual_seed(0);
    ModelConfig m = bench_model_config(s);
    if (!mixer.empty())
      m.mixer = parse_mixer(bench_mixer_config(mixer), "mixer",
                            MixerDims{m.d_model, m.n_heads, m.seq_len, m.n_layers});
    Gpt model(m, parse_ffn(bench_layer_config(type, s), "ffn", bench_model_dims(s)));
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
                                           const torch::Device& device, bool bf16,
                                           const std::string& mixer) {
  return std::make_unique<StepBench>(type, shape, device, bf16, mixer);
}

namespace {

struct BenchMixer {
  std::string name;
  Json config;
  std::string claimed_time, claimed_cache;  // growth of decode time and cache per token
};

const std::vector<BenchMixer>& bench_mixers() {
  auto recurrence = [](const std::string& pattern, bool cache_efficient) {
    Json c = {{"type", "recurrence"}, {"pattern", pattern}};
    if (pattern == "kth") c["order"] = 4;
    if (cache_efficient) c["cache_efficient"] = true;
    return c;
  };
  static const std::vector<BenchMixer> mixers = {
      {"attention", {{"type", "attention"}}, "1", "1"},
      {"local_attention", {{"type", "local_attention"}, {"window", 64}}, "0", "0"},
      {"diagonal_ssm", {{"type", "diagonal_ssm"}}, "0", "0"},
      {"recurrence_kth", recurrence("kth", false), "0", "0"},
      {"recurrence_pow2", recurrence("pow2", false), "log", "1"},
      {"recurrence_pow2_cache_efficient", recurrence("pow2", true), "log", "log"},
      {"recurrence_square_plus_one", recurrence("square_plus_one", false), "0.5", "1"},
      {"recurrence_square_plus_one_cache_efficient", recurrence("square_plus_one", true), "0.5",
       "0.5"},
      {"recurrence_dense", recurrence("dense", false), "1", "1"},
  };
  return mixers;
}

const BenchMixer& bench_mixer(const std::string& name) {
  for (const auto& m : bench_mixers())
    if (m.name == name) return m;
  std::string known;
  for (const auto& m : bench_mixers()) known += (known.empty() ? "" : ", ") + m.name;
  throw ConfigError("--mixers", name, "unknown mixer; known: " + known);
}

}  // namespace

std::vector<std::string> bench_mixer_names() {
  std::vector<std::string> names;
  for (const auto& m : bench_mixers()) names.push_back(m.name);
  return names;
}

Json bench_mixer_config(const std::string& name) {
  return bench_mixer(name).config;
}

double fitted_exponent(const std::vector<int64_t>& x, const std::vector<double>& y) {
  const double n = double(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double lx = std::log(double(x[i])), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

DecodeBench measure_decode(const std::string& name, const std::vector<int64_t>& lengths,
                           int tokens) {
  using Clock = std::chrono::steady_clock;
  const BenchMixer& spec = bench_mixer(name);
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  torch::manual_seed(0);
  TokenMixer mixer = parse_mixer(spec.config, "mixer", MixerDims{64, 2, longest, 1})();
  mixer->eval();
  torch::NoGradGuard no_grad;
  auto inputs = torch::randn({256, 1, 64});  // recycled: the values do not change the cost
  auto cache = mixer->new_cache(1);
  DecodeBench out{name, {}, {}, {}, 0, 0, spec.claimed_time, spec.claimed_cache};
  std::vector<double> timed;
  for (int64_t t = 0; t < longest; ++t) {
    const bool measured = std::any_of(lengths.begin(), lengths.end(),
                                      [&](int64_t n) { return t < n && t >= n - tokens; });
    auto start = Clock::now();
    mixer->step(inputs[t % 256], *cache);
    if (measured)
      timed.push_back(1e6 * std::chrono::duration<double>(Clock::now() - start).count());
    if (std::find(lengths.begin(), lengths.end(), t + 1) != lengths.end()) {
      std::sort(timed.begin(), timed.end());
      out.lengths.push_back(t + 1);
      out.us_per_token.push_back(timed[timed.size() / 2]);
      out.cache_entries.push_back(cache->entries());
      timed.clear();
    }
  }
  std::vector<double> entries(out.cache_entries.begin(), out.cache_entries.end());
  out.time_exponent = fitted_exponent(out.lengths, out.us_per_token);
  out.cache_exponent = fitted_exponent(out.lengths, entries);
  return out;
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
