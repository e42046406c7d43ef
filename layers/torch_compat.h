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

namespace detail {
// Autocast's per-device switches: one call taking the device type from LibTorch 2.4, a
// function per device (CUDA's unprefixed) before it.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool autocast_enabled(c10::DeviceType type) {
  return at::autocast::is_autocast_enabled(type);
}
inline at::ScalarType autocast_dtype(c10::DeviceType type) {
  return at::autocast::get_autocast_dtype(type);
}
inline void set_autocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
}
#else
inline bool autocast_enabled(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                       : at::autocast::is_cpu_enabled();
}
inline at::ScalarType autocast_dtype(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
}
inline void set_autocast(c10::DeviceType type, bool enabled, at::ScalarType dtype) {
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
}
#endif
}  // namespace detail

// bf16 autocast over a region, on the device's type (CUDA or CPU; a no-op elsewhere). The CPU
// case is what lets the tests check the mixed-precision path where no GPU is. The C++ API has
// no context manager: the previous state, the nesting count and the cast cache are handled
// by hand.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled)
      : type_(device.type()), active_(enabled && (device.is_cuda() || device.is_cpu())) {
    if (!active_) return;
    was_enabled_ = detail::autocast_enabled(type_);
    previous_dtype_ = detail::autocast_dtype(type_);
    detail::set_autocast(type_, true, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    detail::set_autocast(type_, was_enabled_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType type_;
  bool active_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

// Runs a region with autocast off on every device (routers and controllers stay in float32).
class AutocastOff {
 public:
  AutocastOff()
      : guard_(
            c10::DispatchKeySet({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA})) {}

 private:
  c10::impl::ExcludeDispatchKeyGuard guard_;
};

}  // namespace mixlab::compat
