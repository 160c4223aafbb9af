// CUDA kernels of the fused LayerNorm + adaLN modulation (see norm_modulate_math.h for the
// arithmetic and norm_modulate.h for the operator). One warp per row; lane l takes the
// row's elements l, l + 32, ...; the row's sums are warp shuffles. The backward's blocks
// each take one chunk of one batch element's rows, so the shift and scale gradients of a
// block belong to one batch element: each warp adds them up in shared memory, and the
// block writes their sum as one partial row (the caller sums the chunks, in a fixed order).

#include <algorithm>

#ifndef REEL_CUDA_KERNELS
#define REEL_CUDA_KERNELS 1
#endif
#include "generate/norm_modulate_math.h"

namespace reel::gen::norm_modulate {
namespace {

using kernels::FromFloat;
using kernels::ToFloat;
using kernels::WarpSum;

constexpr int kPerLane = static_cast<int>(kMaxDim / 32);
constexpr int kForwardWarps = 8;
constexpr int kBackwardWarps = 4;  // 4 x 2 x kMaxDim floats of shared memory: 32 KB
constexpr int64_t kMaxForwardBlocks = 65535;

// The row's xh (normalised) values in this lane's slots, and its r.
__device__ inline float Normalise(const float* __restrict__ xr, int lane, int64_t dim, float eps,
                                  float (&xh)[kPerLane]) {
  float sum = 0;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int64_t i = lane + 32 * k;
    xh[k] = i < dim ? xr[i] : 0.f;
    sum += xh[k];
  }
  const float mean = WarpSum(sum) / static_cast<float>(dim);
  float squares = 0;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int64_t i = lane + 32 * k;
    xh[k] = i < dim ? xh[k] - mean : 0.f;
    squares += xh[k] * xh[k];
  }
  const float r = rsqrtf(WarpSum(squares) / static_cast<float>(dim) + eps);
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) xh[k] *= r;
  return r;
}

template <typename OutT>
__global__ void ForwardKernel(const float* __restrict__ x, const float* __restrict__ shift,
                              const float* __restrict__ scale, OutT* __restrict__ out, Layout l) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t rows = l.batch * l.tokens;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kForwardWarps + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kForwardWarps) {
    const int64_t b = row / l.tokens, n = row % l.tokens;
    float xh[kPerLane];
    Normalise(x + l.InputOffset(b, n), lane, l.dim, l.eps, xh);
    const float* sh = shift + b * l.dim;
    const float* sc = scale + b * l.dim;
    OutT* o = out + row * l.dim;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + 32 * k;
      if (i < l.dim) o[i] = FromFloat<OutT>(Forward(xh[k], sh[i], sc[i]));
    }
  }
}

template <typename GradT>
__global__ void BackwardKernel(const GradT* __restrict__ grad_out, const float* __restrict__ x,
                               const float* __restrict__ scale, float* __restrict__ grad_x,
                               float* __restrict__ shift_partials,
                               float* __restrict__ scale_partials, Layout l) {
  __shared__ float sums[kBackwardWarps][2][kMaxDim];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t chunk = blockIdx.x, b = blockIdx.y;
  for (int64_t i = lane; i < l.dim; i += 32) sums[warp][0][i] = sums[warp][1][i] = 0.f;
  const float* sc = scale + b * l.dim;
  const int64_t first = chunk * l.chunk_rows;
  const int64_t last = first + l.chunk_rows < l.tokens ? first + l.chunk_rows : l.tokens;
  for (int64_t n = first + warp; n < last; n += kBackwardWarps) {
    float xh[kPerLane], gx[kPerLane];
    const float r = Normalise(x + l.InputOffset(b, n), lane, l.dim, l.eps, xh);
    const GradT* g = grad_out + (b * l.tokens + n) * l.dim;
    float sum_gx = 0, sum_gx_xh = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + 32 * k;
      gx[k] = 0.f;
      if (i >= l.dim) continue;
      const float gi = ToFloat(g[i]);
      sums[warp][0][i] += gi;
      sums[warp][1][i] += gi * xh[k];
      gx[k] = gi * (1.f + sc[i]);
      sum_gx += gx[k];
      sum_gx_xh += gx[k] * xh[k];
    }
    const float mean_gx = WarpSum(sum_gx) / static_cast<float>(l.dim);
    const float mean_gx_xh = WarpSum(sum_gx_xh) / static_cast<float>(l.dim);
    float* dx = grad_x + (b * l.tokens + n) * l.dim;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int64_t i = lane + 32 * k;
      if (i < l.dim) dx[i] = InputGrad(gx[k], xh[k], r, mean_gx, mean_gx_xh);
    }
  }
  __syncthreads();
  const int64_t partial = (b * l.Chunks() + chunk) * l.dim;
  for (int64_t i = threadIdx.x; i < l.dim; i += 32 * kBackwardWarps) {
    float sh = 0, sc_sum = 0;
    for (int w = 0; w < kBackwardWarps; ++w) {
      sh += sums[w][0][i];
      sc_sum += sums[w][1][i];
    }
    shift_partials[partial + i] = sh;
    scale_partials[partial + i] = sc_sum;
  }
}

template <typename OutT>
cudaError_t Forward(const float* x, const float* shift, const float* scale, void* out,
                    const Layout& l, cudaStream_t stream) {
  const int64_t rows = l.batch * l.tokens;
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((rows + kForwardWarps - 1) / kForwardWarps, kMaxForwardBlocks));
  ForwardKernel<OutT><<<static_cast<unsigned>(blocks), 32 * kForwardWarps, 0, stream>>>(
      x, shift, scale, static_cast<OutT*>(out), l);
  return cudaGetLastError();
}

template <typename GradT>
cudaError_t Backward(const void* grad_out, const float* x, const float* scale, float* grad_x,
                     float* shift_partials, float* scale_partials, const Layout& l,
                     cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(l.Chunks()), static_cast<unsigned>(l.batch));
  BackwardKernel<GradT><<<grid, 32 * kBackwardWarps, 0, stream>>>(
      static_cast<const GradT*>(grad_out), x, scale, grad_x, shift_partials, scale_partials, l);
  return cudaGetLastError();
}

bool Fits(const Layout& l) {
  return l.dim >= 1 && l.dim <= kMaxDim && l.batch <= 65535 && l.chunk_rows >= 1;
}

}  // namespace

cudaError_t LaunchForward(const float* x, const float* shift, const float* scale, void* out,
                          Dtype out_dtype, const Layout& layout, cudaStream_t stream) {
  if (layout.batch * layout.tokens == 0) return cudaSuccess;
  if (!Fits(layout)) return cudaErrorInvalidValue;
  return kernels::WithElementType(out_dtype, [&](auto t) {
    return Forward<typename decltype(t)::type>(x, shift, scale, out, layout, stream);
  });
}

cudaError_t LaunchBackward(const void* grad_out, Dtype out_dtype, const float* x,
                           const float* scale, float* grad_x, float* shift_partials,
                           float* scale_partials, const Layout& layout, cudaStream_t stream) {
  if (layout.batch * layout.tokens == 0) return cudaSuccess;
  if (!Fits(layout)) return cudaErrorInvalidValue;
  return kernels::WithElementType(out_dtype, [&](auto t) {
    return Backward<typename decltype(t)::type>(grad_out, x, scale, grad_x, shift_partials,
                                                scale_partials, layout, stream);
  });
}

}  // namespace reel::gen::norm_modulate
