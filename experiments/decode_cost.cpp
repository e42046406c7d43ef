#include "experiments/decode_cost.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "experiments/benchmark.h"  // synchronize

namespace mixlab {

namespace {

// The model's parts by their registered names (GptImpl and BlockImpl register them under the
// names every checkpoint carries: "wte", "wpe", "blocks", "ln_final" and "head" where the model
// has them; a block's "ln_attention", "attention" or "mixer", "ln_ffn", "ffn"), so decoding needs
// no second copy of the model's structure in its public interface.
torch::Tensor parameter(torch::nn::Module& module, const std::string& name) {
  auto* p = module.named_parameters(/*recurse=*/false).find(name);
  TORCH_CHECK(p != nullptr, "decode: the model has no parameter ", name);
  return *p;
}

std::shared_ptr<torch::nn::Module> child(torch::nn::Module& module, const std::string& name) {
  for (const auto& item : module.named_children())
    if (item.key() == name) return item.value();
  return nullptr;
}

torch::Tensor layer_norm(torch::nn::Module& module, const std::string& name,
                         const torch::Tensor& x) {
  auto m = child(module, name);
  TORCH_CHECK(m != nullptr, "decode: no ", name);
  return m->as<torch::nn::LayerNormImpl>()->forward(x);
}

}  // namespace

torch::Tensor decode_logits(GptImpl& model, const torch::Tensor& tokens,
                            std::vector<int64_t>* cache_entries, double* mixer_seconds) {
  using Clock = std::chrono::steady_clock;
  torch::NoGradGuard no_grad;
  const int64_t n = tokens.size(0);
  TORCH_CHECK(tokens.dim() == 1 && n <= model.config().seq_len,
              "decode: tokens must be (S) with S <= model.seq_len");
  const torch::Tensor wte = parameter(model, "wte"), wpe = parameter(model, "wpe");
  std::vector<BlockImpl*> blocks;
  for (const auto& b : *child(model, "blocks")->as<torch::nn::ModuleListImpl>())
    blocks.push_back(b->as<BlockImpl>());
  // model.final_norm false: no "ln_final"; model.tied_head false: a "head" of its own.
  const auto final_norm = child(model, "ln_final"), head = child(model, "head");
  std::vector<std::unique_ptr<MixerCache>> caches;
  for (auto* b : blocks) caches.push_back(b->mixer()->new_cache(1));

  const auto device = wte.device();
  const auto ids = tokens.to(device);
  double in_mixers = 0;
  std::vector<torch::Tensor> logits;
  for (int64_t t = 0; t < n; ++t) {
    auto x = wte.index_select(0, ids.slice(0, t, t + 1)) + wpe.slice(0, t, t + 1);  // (1, d)
    for (size_t i = 0; i < blocks.size(); ++i) {
      BlockImpl& block = *blocks[i];
      const auto normed = layer_norm(block, "ln_attention", x);
      if (mixer_seconds) synchronize(device);
      const auto start = Clock::now();
      const auto mixed = block.mixer()->step(normed, *caches[i]);
      if (mixer_seconds) {
        synchronize(device);
        in_mixers += std::chrono::duration<double>(Clock::now() - start).count();
      }
      x = x + mixed;
      // The FFN takes (B, S, d): one position of one sequence.
      x = x + block.ffn()->forward(layer_norm(block, "ln_ffn", x).unsqueeze(1)).squeeze(1);
    }
    if (final_norm) x = final_norm->as<torch::nn::LayerNormImpl>()->forward(x);
    logits.push_back(head ? head->as<torch::nn::LinearImpl>()->forward(x)
                          : torch::matmul(x, wte.t()));  // tied: output = embedding
  }
  if (mixer_seconds) *mixer_seconds = in_mixers;
  if (cache_entries) {
    cache_entries->clear();
    for (const auto& c : caches) cache_entries->push_back(c->entries());
  }
  return torch::cat(logits, 0);
}

DecodeCost measure_decode_cost(GptImpl& model, int repeats) {
  using Clock = std::chrono::steady_clock;
  const bool was_training = model.is_training();
  model.eval();
  // A decode is not a logging step: it must not replace the statistics the layers recorded.
  std::vector<bool> recording;
  for (const auto& layer : model.ffn_layers()) {
    recording.push_back(layer->recording_stats());
    layer->record_stats(false);
  }
  const auto device = model.parameters().front().device();
  const int64_t n = model.config().seq_len;
  const auto tokens = (torch::arange(n, torch::kLong) % model.config().vocab_size).to(device);

  DecodeCost out;
  std::vector<int64_t> entries;
  decode_logits(model, tokens, &entries);          // untimed: first-call allocations
  std::vector<std::pair<double, double>> seconds;  // (whole decode, in the mixers)
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    double in_mixers = 0;
    synchronize(device);
    const auto start = Clock::now();
    decode_logits(model, tokens, nullptr, &in_mixers);
    synchronize(device);
    seconds.emplace_back(std::chrono::duration<double>(Clock::now() - start).count(), in_mixers);
  }
  std::sort(seconds.begin(), seconds.end());
  const auto& median = seconds[seconds.size() / 2];
  out.ms_per_token = 1000.0 * median.first / double(n);
  out.mixer_ms_per_token = 1000.0 * median.second / double(n);
  double total = 0;
  for (int64_t e : entries) total += double(e);
  out.cache_entries = entries.empty() ? 0.0 : total / double(entries.size());

  for (size_t i = 0; i < recording.size(); ++i) model.ffn_layers()[i]->record_stats(recording[i]);
  model.train(was_training);
  return out;
}

}  // namespace mixlab
