// Every difference between Debian's LibTorch 1.13 (CPU, CI) and LibTorch 2.x (CUDA, from
// PyTorch) that mixlab touches, in one place.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <string>

namespace mixlab::compat {

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Whether this LibTorch has fused causal attention (scaled_dot_product_attention: flash and
// memory-efficient kernels on CUDA, a flash kernel on the CPU from 2.1).
constexpr bool has_fused_attention() {
  return TORCH_VERSION_MAJOR >= 2;
}

// Causal attention over (B, H, S, head_dim) by scaled_dot_product_attention; only called when
// has_fused_attention() (see experiments/causal_attention.h for the other routes).
inline torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                            const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);
#else
  TORCH_CHECK(false, "no fused attention before LibTorch 2");
  return q;
#endif
}

// bf16 autocast for one forward pass on CUDA (a no-op elsewhere). The C++ API has no
// context manager: nesting and the cast cache must be handled by hand.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled) : active_(enabled && device.is_cuda()) {
    if (!active_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_;
};

// Runs a region with autocast off (routers and controllers stay in float32).
class AutocastOff {
 public:
  AutocastOff() : guard_(c10::DispatchKeySet({c10::DispatchKey::AutocastCUDA})) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

}  // namespace mixlab::compat
