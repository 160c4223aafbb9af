// CUDA kernels of the fused query/key RMSNorm + rotary positions (see qk_norm_math.h for
// the arithmetic and qk_norm.h for the operator). One warp per row (a head of a token):
// each lane takes rotary pairs lane, lane + 32, ...; the row's sums are warp shuffles.
// The forward reads the row once and writes it once; the backward reads the row and its
// gradient once and writes the input's gradient once, and the weight's gradient goes to
// one partial row per block (summed by the caller, so the result does not depend on the
// order blocks finish in).

#include <algorithm>

#ifndef REEL_CUDA_KERNELS
#define REEL_CUDA_KERNELS 1
#endif
#include "generate/qk_norm_math.h"

namespace reel::gen::qk_norm {
namespace {

constexpr int kWarps = 8;  // per block
constexpr int kThreads = 32 * kWarps;
constexpr int kPairsPerLane = static_cast<int>(kMaxDim / 64);
constexpr int64_t kMaxForwardBlocks = 65535;
constexpr int64_t kMaxBackwardBlocks = 1024;

using kernels::FromFloat;
using kernels::ToFloat;
using kernels::WarpSum;

// This lane's pairs of a row (zeros past its end) and the row's r = 1/sqrt(mean(x^2) + eps).
template <typename T>
__device__ inline float LoadRow(const T* __restrict__ xr, int lane, const Layout& l,
                                float (&x1)[kPairsPerLane], float (&x2)[kPairsPerLane]) {
  const int64_t pairs = l.dim / 2;
  float squares = 0;
#pragma unroll
  for (int k = 0; k < kPairsPerLane; ++k) {
    const int64_t p = lane + 32 * k;
    x1[k] = x2[k] = 0;
    if (p < pairs) {
      x1[k] = ToFloat(xr[2 * p]);
      x2[k] = ToFloat(xr[2 * p + 1]);
      squares += x1[k] * x1[k] + x2[k] * x2[k];
    }
  }
  return rsqrtf(WarpSum(squares) / static_cast<float>(l.dim) + l.eps);
}

template <typename T>
__global__ void ForwardKernel(const T* __restrict__ x, const float* __restrict__ w,
                              const float* __restrict__ cos, const float* __restrict__ sin,
                              T* __restrict__ out, Layout l) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t pairs = l.dim / 2;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    float x1[kPairsPerLane], x2[kPairsPerLane];
    const float r = LoadRow(x + l.InputOffset(row), lane, l, x1, x2);
    const int64_t table = l.Position(row) * pairs;
    T* o = out + row * l.dim;
#pragma unroll
    for (int k = 0; k < kPairsPerLane; ++k) {
      const int64_t p = lane + 32 * k;
      if (p >= pairs) continue;
      float c, s, o1, o2;
      Rotation(cos, sin, table + p, &c, &s);
      ForwardPair(x1[k], x2[k], r, w[2 * p], w[2 * p + 1], c, s, &o1, &o2);
      o[2 * p] = FromFloat<T>(o1);
      o[2 * p + 1] = FromFloat<T>(o2);
    }
  }
}

template <typename T>
__global__ void BackwardKernel(const T* __restrict__ grad_out, const T* __restrict__ x,
                               const float* __restrict__ w, const float* __restrict__ cos,
                               const float* __restrict__ sin, T* __restrict__ grad_x,
                               float* __restrict__ gw_partials, Layout l) {
  __shared__ float block_gw[kWarps][kMaxDim];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t pairs = l.dim / 2;
  float gw1[kPairsPerLane], gw2[kPairsPerLane];
#pragma unroll
  for (int k = 0; k < kPairsPerLane; ++k) gw1[k] = gw2[k] = 0;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < l.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const T* gr = grad_out + row * l.dim;
    float x1[kPairsPerLane], x2[kPairsPerLane];
    const float r = LoadRow(x + l.InputOffset(row), lane, l, x1, x2);
    const int64_t table = l.Position(row) * pairs;
    float n1[kPairsPerLane], n2[kPairsPerLane], gn1[kPairsPerLane], gn2[kPairsPerLane];
    float gn_n = 0;
#pragma unroll
    for (int k = 0; k < kPairsPerLane; ++k) {
      const int64_t p = lane + 32 * k;
      n1[k] = n2[k] = gn1[k] = gn2[k] = 0;
      if (p >= pairs) continue;
      float c, s;
      Rotation(cos, sin, table + p, &c, &s);
      BackwardPair(ToFloat(gr[2 * p]), ToFloat(gr[2 * p + 1]), x1[k], x2[k], r, w[2 * p],
                   w[2 * p + 1], c, s, &n1[k], &n2[k], &gn1[k], &gn2[k], &gw1[k], &gw2[k]);
      gn_n += gn1[k] * n1[k] + gn2[k] * n2[k];
    }
    const float mean_gn_n = WarpSum(gn_n) / static_cast<float>(l.dim);
    T* dx = grad_x + row * l.dim;
#pragma unroll
    for (int k = 0; k < kPairsPerLane; ++k) {
      const int64_t p = lane + 32 * k;
      if (p >= pairs) continue;
      dx[2 * p] = FromFloat<T>(InputGrad(gn1[k], n1[k], r, mean_gn_n));
      dx[2 * p + 1] = FromFloat<T>(InputGrad(gn2[k], n2[k], r, mean_gn_n));
    }
  }
  // The block's weight gradient: each warp's, then their sum, in a fixed order.
#pragma unroll
  for (int k = 0; k < kPairsPerLane; ++k) {
    const int64_t p = lane + 32 * k;
    if (p < pairs) {
      block_gw[warp][2 * p] = gw1[k];
      block_gw[warp][2 * p + 1] = gw2[k];
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < l.dim; i += kThreads) {
    float sum = 0;
    for (int v = 0; v < kWarps; ++v) sum += block_gw[v][i];
    gw_partials[static_cast<int64_t>(blockIdx.x) * l.dim + i] = sum;
  }
}

int64_t Blocks(const Layout& l, int64_t cap) {
  return std::max<int64_t>(1, std::min<int64_t>((l.rows + kWarps - 1) / kWarps, cap));
}

template <typename T>
cudaError_t Forward(const void* x, const float* w, const float* cos, const float* sin, void* out,
                    const Layout& l, cudaStream_t stream) {
  ForwardKernel<T><<<static_cast<unsigned>(Blocks(l, kMaxForwardBlocks)), kThreads, 0, stream>>>(
      static_cast<const T*>(x), w, cos, sin, static_cast<T*>(out), l);
  return cudaGetLastError();
}

template <typename T>
cudaError_t Backward(const void* grad_out, const void* x, const float* w, const float* cos,
                     const float* sin, void* grad_x, float* gw_partials, const Layout& l,
                     cudaStream_t stream) {
  BackwardKernel<T><<<static_cast<unsigned>(Blocks(l, kMaxBackwardBlocks)), kThreads, 0, stream>>>(
      static_cast<const T*>(grad_out), static_cast<const T*>(x), w, cos, sin,
      static_cast<T*>(grad_x), gw_partials, l);
  return cudaGetLastError();
}

}  // namespace

int64_t BackwardBlocks(const Layout& layout) {
  return Blocks(layout, kMaxBackwardBlocks);
}

cudaError_t LaunchForward(const void* x, Dtype dtype, const float* w, const float* cos,
                          const float* sin, void* out, const Layout& layout, cudaStream_t stream) {
  if (layout.rows == 0) return cudaSuccess;
  if (layout.dim % 2 != 0 || layout.dim > kMaxDim) return cudaErrorInvalidValue;
  switch (dtype) {
    case Dtype::kFloat:
      return Forward<float>(x, w, cos, sin, out, layout, stream);
    case Dtype::kBFloat16:
      return Forward<__nv_bfloat16>(x, w, cos, sin, out, layout, stream);
    case Dtype::kHalf:
      return Forward<__half>(x, w, cos, sin, out, layout, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchBackward(const void* grad_out, const void* x, Dtype dtype, const float* w,
                           const float* cos, const float* sin, void* grad_x, float* gw_partials,
                           const Layout& layout, cudaStream_t stream) {
  if (layout.rows == 0) return cudaSuccess;
  if (layout.dim % 2 != 0 || layout.dim > kMaxDim) return cudaErrorInvalidValue;
  switch (dtype) {
    case Dtype::kFloat:
      return Backward<float>(grad_out, x, w, cos, sin, grad_x, gw_partials, layout, stream);
    case Dtype::kBFloat16:
      return Backward<__nv_bfloat16>(grad_out, x, w, cos, sin, grad_x, gw_partials, layout, stream);
    case Dtype::kHalf:
      return Backward<__half>(grad_out, x, w, cos, sin, grad_x, gw_partials, layout, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace reel::gen::qk_norm
