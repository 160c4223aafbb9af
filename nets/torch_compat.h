// The one place where reel's code differs between libtorch 1.13 (Debian's, CPU) and 2.x
// (the CUDA PyTorch on GPU machines). Everything else is written against the API both
// versions share.

#ifndef REEL_NETS_TORCH_COMPAT_H_
#define REEL_NETS_TORCH_COMPAT_H_

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

namespace reel::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// No autograd bookkeeping for inference code (c10::InferenceMode exists in both).
using InferenceGuard = c10::InferenceMode;

// "1.13.1" etc.
inline std::string TorchVersion() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// softmax(q k^T / sqrt(d)) v over the last two dimensions of [..., L, d] tensors; `mask`
// (optional) is boolean, broadcastable to [..., Lq, Lk], true where attention is allowed
// (every query row needs at least one true). libtorch 2.x runs its fused kernels (flash
// or memory-efficient attention on CUDA); 1.13 has none, so it is written out.
inline torch::Tensor Attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask = {}) {
#if TORCH_VERSION_MAJOR >= 2
  // (No optional spelled out: it is c10::optional before 2.3 and std::optional after.)
  if (mask.defined()) return at::scaled_dot_product_attention(q, k, v, mask);
  return at::scaled_dot_product_attention(q, k, v);
#else
  torch::Tensor s =
      torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (mask.defined())
    s = s.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(s, -1), v);
#endif
}

// Which of libtorch's attention implementations Attention() runs for these operands:
// "flash", "efficient", "cudnn" or "math" (libtorch 2.x's own choice, which depends on the
// device, dtype, layout and mask), or "written out" on 1.13.
inline std::string AttentionBackend(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const torch::Tensor& mask = {}) {
#if TORCH_VERSION_MAJOR >= 2
  const int64_t choice =
      mask.defined() ? at::_fused_sdp_choice(q, k, v, mask) : at::_fused_sdp_choice(q, k, v);
  switch (choice) {
    case 0:
      return "math";
    case 1:
      return "flash";
    case 2:
      return "efficient";
    case 3:
      return "cudnn";
    default:
      return "backend " + std::to_string(choice);
  }
#else
  (void)q, (void)k, (void)v, (void)mask;
  return "written out";
#endif
}

// Multiplies each tensor of `list` in place by the scalar tensor `scalar` (0-dim, on their
// device), without reading it on the host. libtorch 2.1 has a multi-tensor kernel for it;
// 1.13 multiplies tensor by tensor.
inline void ForeachMulInPlace(const std::vector<torch::Tensor>& list, const torch::Tensor& scalar) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  torch::_foreach_mul_(list, scalar);
#else
  for (const torch::Tensor& t : list) t.mul_(scalar);
#endif
}

// Whether CUDA can be used by this build on this machine.
inline bool CudaAvailable() {
  return torch::cuda::is_available();
}

// The dtype a matmul on x computes in: autocast's where autocast is on for x's device
// (CUDA), x's own elsewhere.
inline torch::ScalarType AutocastDtypeFor(const torch::Tensor& x) {
  if (!x.is_cuda()) return x.scalar_type();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (at::autocast::is_autocast_enabled(at::kCUDA))
    return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  if (at::autocast::is_enabled()) return at::autocast::get_autocast_gpu_dtype();
#endif
  return x.scalar_type();
}

// Whether CUDA bf16 autocast (CudaBf16Autocast below) is on in this thread.
inline bool CudaBf16AutocastOn() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCUDA) &&
         at::autocast::get_autocast_dtype(at::kCUDA) == at::kBFloat16;
#else
  return at::autocast::is_enabled() && at::autocast::get_autocast_gpu_dtype() == at::kBFloat16;
#endif
}

// bf16 autocast on CUDA for the guard's scope when `on` (matmuls and convolutions run in
// bfloat16, reductions and norms in float32, as torch.autocast("cuda", torch.bfloat16));
// the previous state is restored after. Nothing happens when `on` is false (CPU runs fp32).
// libtorch 2.4 moved the per-device calls to functions taking the device type.
class CudaBf16Autocast {
 public:
  explicit CudaBf16Autocast(bool on) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    was_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    was_enabled_ = at::autocast::is_enabled();
    was_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaBf16Autocast() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
#else
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
#endif
  }
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool on_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

}  // namespace reel::compat

#endif  // REEL_NETS_TORCH_COMPAT_H_
