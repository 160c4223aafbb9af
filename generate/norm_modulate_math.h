// The arithmetic of the fused LayerNorm + adaLN modulation, shared by the CPU loop
// (generate/norm_modulate.cc) and the CUDA kernels (generate/norm_modulate_cuda.cu). No
// libtorch here.
//
// For a row x of `dim` elements (one token of batch element b), with mean m and
// r = 1/sqrt(mean((x - m)^2) + eps), xh = (x - m) r:
//   out = xh (1 + scale[b]) + shift[b]
// Backward, given g = dL/dout: gx = g (1 + scale[b]),
//   dL/dx = r (gx - mean(gx) - xh mean(gx xh)),
//   dL/dshift[b] += g,  dL/dscale[b] += g xh   (over the rows of b).

#ifndef REEL_GENERATE_NORM_MODULATE_MATH_H_
#define REEL_GENERATE_NORM_MODULATE_MATH_H_

#include <cstdint>

#include "generate/kernel_common.h"

namespace reel::gen::norm_modulate {

// Rows are the (batch, token) pairs of a [B, N, dim] tensor with a contiguous last
// dimension; shift and scale are contiguous [B, dim] float32; the output and the input's
// gradient are contiguous.
struct Layout {
  int64_t batch = 0, tokens = 0, dim = 0;
  int64_t stride_b = 0, stride_n = 0;  // of the input, in elements
  float eps = 1e-6f;
  // The backward's chunks: the rows of one batch element are split into chunks of
  // `chunk_rows`; each chunk adds its rows' shift and scale gradients into one partial row.
  int64_t chunk_rows = 64;

  REEL_HOST_DEVICE int64_t Chunks() const { return (tokens + chunk_rows - 1) / chunk_rows; }
  REEL_HOST_DEVICE int64_t InputOffset(int64_t b, int64_t n) const {
    return b * stride_b + n * stride_n;
  }
};

template <typename Acc>
REEL_HOST_DEVICE inline Acc Forward(Acc xh, Acc shift, Acc scale) {
  return xh * (Acc(1) + scale) + shift;
}

// dL/dx for one element, given gx = g (1 + scale) and the row's mean(gx), mean(gx xh).
template <typename Acc>
REEL_HOST_DEVICE inline Acc InputGrad(Acc gx, Acc xh, Acc r, Acc mean_gx, Acc mean_gx_xh) {
  return r * (gx - mean_gx - xh * mean_gx_xh);
}

}  // namespace reel::gen::norm_modulate

#if defined(REEL_CUDA_KERNELS)
#include <cuda_runtime_api.h>

namespace reel::gen::norm_modulate {

using kernels::Dtype;

// The CUDA kernels (norm_modulate_cuda.cu): x is float32, the output and grad_out of
// `out_dtype`. Backward writes the shift and scale gradients' partial rows, [batch,
// Chunks(), dim] each, which the caller sums over the chunks.
cudaError_t LaunchForward(const float* x, const float* shift, const float* scale, void* out,
                          Dtype out_dtype, const Layout& layout, cudaStream_t stream);
cudaError_t LaunchBackward(const void* grad_out, Dtype out_dtype, const float* x,
                           const float* scale, float* grad_x, float* shift_partials,
                           float* scale_partials, const Layout& layout, cudaStream_t stream);
// The largest dim the kernels take.
constexpr int64_t kMaxDim = 1024;

}  // namespace reel::gen::norm_modulate
#endif  // REEL_CUDA_KERNELS

#endif  // REEL_GENERATE_NORM_MODULATE_MATH_H_
