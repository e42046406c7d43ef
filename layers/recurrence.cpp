#include "layers/recurrence.h"

#include <cmath>
#include <limits>

#include "layers/structured_mix.h"

namespace mixlab {

RecurrenceImpl::RecurrenceImpl(const MixerDims& dims, RecurrencePattern pattern)
    : dims_(dims), pattern_(pattern), heads_(*this, dims) {}

const torch::Tensor& RecurrenceImpl::table(int64_t n) {
  auto it = tables_.find(n);
  if (it == tables_.end()) it = tables_.emplace(n, pattern_.predecessor_table(n)).first;
  return it->second;
}

torch::Tensor RecurrenceImpl::mix(const torch::Tensor& x, MixForm form) {
  auto qkv = heads_.split(x);
  const int64_t b = x.size(0), s = x.size(1), h = dims_.n_heads, hd = dims_.d_model / h;
  auto flat = [&](const torch::Tensor& t) { return t.reshape({b * h, s, hd}); };
  auto q = flat(qkv[0]), k = flat(qkv[1]), v = flat(qkv[2]);
  const double scale = 1 / std::sqrt(double(hd));
  const torch::Tensor& predecessors = table(s);  // (S, K)
  const bool dense = form == MixForm::dense || (form == MixForm::automatic &&
                                                pattern_.kind() == RecurrencePattern::Kind::dense);
  torch::Tensor y;
  if (dense) {
    auto allowed = index_mask(predecessors, s).logical_or(torch::eye(s, torch::kBool));
    auto scores = torch::matmul(q, k.transpose(1, 2)) * scale;
    auto w = torch::softmax(scores.masked_fill(allowed.logical_not().to(x.device()),
                                               -std::numeric_limits<double>::infinity()),
                            -1);
    y = structured_mix_dense(v, torch::diag_embed(w.diagonal(0, -2, -1)), w.tril(-1));
  } else {
    auto self = torch::arange(s, torch::kLong).unsqueeze(1);
    auto positions = torch::cat({self, predecessors}, 1);  // (S, K + 1): i first
    auto scores = (q.unsqueeze(2) * gather_positions(k, positions)).sum(-1) * scale;
    auto w = masked_softmax(scores, positions);
    y = structured_mix_sparse(v, w.narrow(2, 0, 1), self, w.narrow(2, 1, predecessors.size(1)),
                              predecessors);
  }
  return heads_.merge(y.view({b, h, s, hd}));
}

std::unique_ptr<MixerCache> RecurrenceImpl::new_cache(int64_t) const {
  return std::make_unique<PositionCache>();
}

torch::Tensor RecurrenceImpl::step(const torch::Tensor& x, MixerCache& base) {
  auto& cache = dynamic_cast<PositionCache&>(base);
  auto qkv = heads_.split_step(x);  // each (B, H, hd)
  const auto &q = qkv[0], &k = qkv[1], &v = qkv[2];
  const int64_t t = cache.position++;
  const auto predecessors = pattern_.predecessors(t);
  torch::Tensor y = v;
  if (!predecessors.empty()) {
    auto [keys, outputs] = cache.gather(predecessors);  // (B, H, m, hd)
    const double scale = 1 / std::sqrt(double(q.size(-1)));
    auto self_score = (q * k).sum(-1, /*keepdim=*/true) * scale;  // (B, H, 1)
    auto past_scores = cached_scores(q, keys) * scale;            // (B, H, m)
    auto w = torch::softmax(torch::cat({self_score, past_scores}, -1), -1);
    y = w.narrow(-1, 0, 1) * v +
        cached_weighted_sum(w.narrow(-1, 1, int64_t(predecessors.size())), outputs);
  }
  cache.add(t, k, y);
  if (!pattern_.keeps_everything()) cache.retain(pattern_.retained_after(t));
  return heads_.merge_step(y);
}

double RecurrenceImpl::forward_flops_per_token() const {
  // Scores and the weighted sum over {i} and P_i at the last position of the training length.
  const double reads = 1 + double(pattern_.predecessors(dims_.seq_len - 1).size());
  return heads_.flops_per_token() + 4 * reads * double(dims_.d_model);
}

MixerBuilder parse_recurrence(const ConfigReader& cfg, const MixerDims& dims) {
  if (!cfg.has("pattern"))
    cfg.fail("pattern", "required for recurrence: kth, pow2, square_plus_one or dense");
  const std::string name = cfg.get_string("pattern");
  using Kind = RecurrencePattern::Kind;
  const std::map<std::string, Kind> kinds = {{"kth", Kind::kth},
                                             {"pow2", Kind::pow2},
                                             {"square_plus_one", Kind::square_plus_one},
                                             {"dense", Kind::dense}};
  auto it = kinds.find(name);
  if (it == kinds.end())
    cfg.fail("pattern", "unknown pattern; known: kth, pow2, square_plus_one, dense");
  int64_t order = 0;
  if (it->second == Kind::kth) {
    if (!cfg.has("order")) cfg.fail("order", "required for the kth pattern (a positive integer)");
    order = cfg.get_positive_int("order", 0);
  }
  const bool cache_efficient = cfg.get_bool("cache_efficient", false);
  if (cache_efficient && it->second != Kind::pow2 && it->second != Kind::square_plus_one)
    cfg.fail("cache_efficient",
             "only the pow2 and square_plus_one patterns have a cache-efficient variant");
  RecurrencePattern pattern(it->second, order, cache_efficient);
  return [dims, pattern] { return std::make_shared<RecurrenceImpl>(dims, pattern); };
}

}  // namespace mixlab
