// The layout the fused gated residual add's CPU loops (generate/gated_residual.cc) and CUDA
// kernels (generate/gated_residual_cuda.cu) share. No libtorch here.
//
// For element i of token n of batch element b:
//   out = residual + gate[b, i] y
// Backward, given g = dL/dout: dL/dresidual = g, dL/dy = g gate[b, i],
//   dL/dgate[b, i] = sum over n of g y   (in partial rows, one per chunk of tokens).

#ifndef REEL_GENERATE_GATED_RESIDUAL_MATH_H_
#define REEL_GENERATE_GATED_RESIDUAL_MATH_H_

#include <cstdint>

#include "generate/kernel_common.h"

namespace reel::gen::gated_residual {

// residual, y, out and their gradients are contiguous [batch, tokens, dim]; gate is
// contiguous [batch, dim] float32.
struct Layout {
  int64_t batch = 0, tokens = 0, dim = 0;
  // The backward's chunks: the tokens of one batch element are split into chunks of
  // `chunk_rows`; each chunk sums its tokens' gate gradients into one partial row.
  int64_t chunk_rows = 64;

  REEL_HOST_DEVICE int64_t Chunks() const { return (tokens + chunk_rows - 1) / chunk_rows; }
};

}  // namespace reel::gen::gated_residual

#if defined(REEL_CUDA_KERNELS)
#include <cuda_runtime_api.h>

namespace reel::gen::gated_residual {

using kernels::Dtype;

// The CUDA kernels (gated_residual_cuda.cu): residual, out and grad_out float32, y and
// grad_y of `y_dtype`. Backward writes the gate's gradient as [batch, Chunks(), dim]
// partial rows, which the caller sums over the chunks.
cudaError_t LaunchForward(const float* residual, const float* gate, const void* y, Dtype y_dtype,
                          float* out, const Layout& layout, cudaStream_t stream);
cudaError_t LaunchBackward(const float* grad_out, const float* gate, const void* y, Dtype y_dtype,
                           void* grad_y, float* gate_partials, const Layout& layout,
                           cudaStream_t stream);

}  // namespace reel::gen::gated_residual
#endif  // REEL_CUDA_KERNELS

#endif  // REEL_GENERATE_GATED_RESIDUAL_MATH_H_
