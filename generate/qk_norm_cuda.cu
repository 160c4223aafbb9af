// CUDA kernels of the fused query/key RMSNorm + rotary positions (see qk_norm_math.h for
// the arithmetic and qk_norm.h for the operator). One warp per row (a head of a token):
// each lane takes rotary pairs lane, lane + 32, ...; the row's sums are warp shuffles.
// The forward reads the row once and writes it once; the backward reads the row and its
// gradient once and writes the input's gradient once, and the weight's gradient goes to
// one partial row per block (summed by the caller, so the result does not depend on the
// order blocks finish in).

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

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

using kernels::Aligned;
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

// The vectorised kernels: kGroup = dim / 8 lanes a row, each taking 8 consecutive elements
// (4 rotary pairs) in one 16-byte access of bfloat16 (two of float32), so a warp takes
// 32 / kGroup rows at a time and a row's sum is log2(kGroup) shuffles. Each lane's weights
// are loaded once. Lanes past the last row compute on zeros (they take part in the
// shuffles) and store nothing.
constexpr int kVecElems = 8;

// This lane's rotation of its 4 pairs of row `row`.
__device__ inline void VecRotation(const float* __restrict__ cos, const float* __restrict__ sin,
                                   int64_t index, float (&c)[kVecElems / 2],
                                   float (&s)[kVecElems / 2]) {
  if (cos != nullptr) {
    kernels::Load<kVecElems / 2>(cos + index, c);
    kernels::Load<kVecElems / 2>(sin + index, s);
  } else {
#pragma unroll
    for (int k = 0; k < kVecElems / 2; ++k) c[k] = 1.f, s[k] = 0.f;
  }
}

template <typename T, int kGroup>
__global__ void VecForwardKernel(const T* __restrict__ x, const float* __restrict__ w,
                                 const float* __restrict__ cos, const float* __restrict__ sin,
                                 T* __restrict__ out, Layout l) {
  constexpr int kRowsPerWarp = 32 / kGroup;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / kGroup, e0 = (lane % kGroup) * kVecElems;
  const int64_t pairs = l.dim / 2;
  float wv[kVecElems];
  kernels::Load<kVecElems>(w + e0, wv);
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
       base < l.rows; base += static_cast<int64_t>(gridDim.x) * kWarps * kRowsPerWarp) {
    const int64_t row = base + sub;
    const bool valid = row < l.rows;
    float xv[kVecElems] = {};
    if (valid) kernels::Load<kVecElems>(x + l.InputOffset(row) + e0, xv);
    float squares = 0;
#pragma unroll
    for (int k = 0; k < kVecElems; ++k) squares += xv[k] * xv[k];
    const float r = rsqrtf(kernels::GroupSum<kGroup>(squares) / static_cast<float>(l.dim) + l.eps);
    if (!valid) continue;
    float c[kVecElems / 2], sn[kVecElems / 2], o[kVecElems];
    VecRotation(cos, sin, l.Position(row) * pairs + e0 / 2, c, sn);
#pragma unroll
    for (int k = 0; k < kVecElems / 2; ++k)
      ForwardPair(xv[2 * k], xv[2 * k + 1], r, wv[2 * k], wv[2 * k + 1], c[k], sn[k], &o[2 * k],
                  &o[2 * k + 1]);
    kernels::Store<kVecElems>(out + row * l.dim + e0, o);
  }
}

template <typename T, int kGroup>
__global__ void VecBackwardKernel(const T* __restrict__ grad_out, const T* __restrict__ x,
                                  const float* __restrict__ w, const float* __restrict__ cos,
                                  const float* __restrict__ sin, T* __restrict__ grad_x,
                                  float* __restrict__ gw_partials, Layout l) {
  constexpr int kRowsPerWarp = 32 / kGroup;
  __shared__ float block_gw[kWarps][kMaxDim];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / kGroup, e0 = (lane % kGroup) * kVecElems;
  const int64_t pairs = l.dim / 2;
  float wv[kVecElems], gw[kVecElems] = {};
  kernels::Load<kVecElems>(w + e0, wv);
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp;
       base < l.rows; base += static_cast<int64_t>(gridDim.x) * kWarps * kRowsPerWarp) {
    const int64_t row = base + sub;
    const bool valid = row < l.rows;
    float xv[kVecElems] = {}, gv[kVecElems] = {};
    if (valid) {
      kernels::Load<kVecElems>(x + l.InputOffset(row) + e0, xv);
      kernels::Load<kVecElems>(grad_out + row * l.dim + e0, gv);
    }
    float squares = 0;
#pragma unroll
    for (int k = 0; k < kVecElems; ++k) squares += xv[k] * xv[k];
    const float r = rsqrtf(kernels::GroupSum<kGroup>(squares) / static_cast<float>(l.dim) + l.eps);
    float c[kVecElems / 2], sn[kVecElems / 2];
    VecRotation(valid ? cos : nullptr, sin, l.Position(valid ? row : 0) * pairs + e0 / 2, c, sn);
    float n[kVecElems], gn[kVecElems], gn_n = 0;
#pragma unroll
    for (int k = 0; k < kVecElems / 2; ++k) {
      BackwardPair(gv[2 * k], gv[2 * k + 1], xv[2 * k], xv[2 * k + 1], r, wv[2 * k], wv[2 * k + 1],
                   c[k], sn[k], &n[2 * k], &n[2 * k + 1], &gn[2 * k], &gn[2 * k + 1], &gw[2 * k],
                   &gw[2 * k + 1]);
      gn_n += gn[2 * k] * n[2 * k] + gn[2 * k + 1] * n[2 * k + 1];
    }
    const float mean_gn_n = kernels::GroupSum<kGroup>(gn_n) / static_cast<float>(l.dim);
    if (!valid) continue;
    float dx[kVecElems];
#pragma unroll
    for (int k = 0; k < kVecElems; ++k) dx[k] = InputGrad(gn[k], n[k], r, mean_gn_n);
    kernels::Store<kVecElems>(grad_x + row * l.dim + e0, dx);
  }
  // The warp's weight gradient: the lanes that hold the same elements (one per row slot)
  // summed by shuffles; then the block's, warp by warp in a fixed order.
#pragma unroll
  for (int k = 0; k < kVecElems; ++k) {
#pragma unroll
    for (int offset = kGroup; offset < 32; offset <<= 1)
      gw[k] += __shfl_xor_sync(0xffffffffu, gw[k], offset);
  }
  if (sub == 0) {
#pragma unroll
    for (int k = 0; k < kVecElems; ++k) block_gw[warp][e0 + k] = gw[k];
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < l.dim; i += kThreads) {
    float sum = 0;
    for (int v = 0; v < kWarps; ++v) sum += block_gw[v][i];
    gw_partials[static_cast<int64_t>(blockIdx.x) * l.dim + i] = sum;
  }
}

// Whether the vectorised kernels take this layout and these pointers (nullptr: unused).
template <typename T>
bool VecFits(const Layout& l, std::initializer_list<const void*> rows, const float* w,
             const float* cos, const float* sin) {
  if (!l.vector_kernels || l.dim < kVecElems || l.dim > kMaxDim || (l.dim & (l.dim - 1)) != 0)
    return false;
  if (l.stride_b % kVecElems != 0 || l.stride_n % kVecElems != 0 || l.stride_h % kVecElems != 0)
    return false;
  for (const void* p : rows)
    if (!Aligned(p, sizeof(T) * kVecElems)) return false;
  if (!Aligned(w, sizeof(float) * kVecElems)) return false;
  return cos == nullptr || (Aligned(cos, 16) && Aligned(sin, 16));
}

int64_t Blocks(const Layout& l, int64_t cap) {
  return std::max<int64_t>(1, std::min<int64_t>((l.rows + kWarps - 1) / kWarps, cap));
}

template <typename T, int kGroup>
void VecForward(const void* x, const float* w, const float* cos, const float* sin, void* out,
                const Layout& l, cudaStream_t stream) {
  constexpr int64_t kRowsPerBlock = kWarps * (32 / kGroup);
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((l.rows + kRowsPerBlock - 1) / kRowsPerBlock, kMaxForwardBlocks));
  VecForwardKernel<T, kGroup><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const T*>(x), w, cos, sin, static_cast<T*>(out), l);
}

// The same number of blocks as the one-warp-a-row kernel (BackwardBlocks): blocks with no
// rows write zero partial rows.
template <typename T, int kGroup>
void VecBackward(const void* grad_out, const void* x, const float* w, const float* cos,
                 const float* sin, void* grad_x, float* gw_partials, const Layout& l,
                 cudaStream_t stream) {
  VecBackwardKernel<T, kGroup>
      <<<static_cast<unsigned>(Blocks(l, kMaxBackwardBlocks)), kThreads, 0, stream>>>(
          static_cast<const T*>(grad_out), static_cast<const T*>(x), w, cos, sin,
          static_cast<T*>(grad_x), gw_partials, l);
}

// Calls f.template operator()<kGroup>() for the layout's dim / 8 (a power of two, 1 to 32).
template <typename F>
void WithGroup(int64_t dim, F&& f) {
  switch (dim / kVecElems) {
    case 1:
      return f(std::integral_constant<int, 1>());
    case 2:
      return f(std::integral_constant<int, 2>());
    case 4:
      return f(std::integral_constant<int, 4>());
    case 8:
      return f(std::integral_constant<int, 8>());
    case 16:
      return f(std::integral_constant<int, 16>());
    default:
      return f(std::integral_constant<int, 32>());
  }
}

template <typename T>
cudaError_t Forward(const void* x, const float* w, const float* cos, const float* sin, void* out,
                    const Layout& l, cudaStream_t stream) {
  if (VecFits<T>(l, {x, out}, w, cos, sin)) {
    WithGroup(l.dim, [&](auto group) {
      VecForward<T, decltype(group)::value>(x, w, cos, sin, out, l, stream);
    });
    return cudaGetLastError();
  }
  ForwardKernel<T><<<static_cast<unsigned>(Blocks(l, kMaxForwardBlocks)), kThreads, 0, stream>>>(
      static_cast<const T*>(x), w, cos, sin, static_cast<T*>(out), l);
  return cudaGetLastError();
}

template <typename T>
cudaError_t Backward(const void* grad_out, const void* x, const float* w, const float* cos,
                     const float* sin, void* grad_x, float* gw_partials, const Layout& l,
                     cudaStream_t stream) {
  if (VecFits<T>(l, {grad_out, x, grad_x}, w, cos, sin)) {
    WithGroup(l.dim, [&](auto group) {
      VecBackward<T, decltype(group)::value>(grad_out, x, w, cos, sin, grad_x, gw_partials, l,
                                             stream);
    });
    return cudaGetLastError();
  }
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
  return kernels::WithElementType(dtype, [&](auto t) {
    return Forward<typename decltype(t)::type>(x, w, cos, sin, out, layout, stream);
  });
}

cudaError_t LaunchBackward(const void* grad_out, const void* x, Dtype dtype, const float* w,
                           const float* cos, const float* sin, void* grad_x, float* gw_partials,
                           const Layout& layout, cudaStream_t stream) {
  if (layout.rows == 0) return cudaSuccess;
  if (layout.dim % 2 != 0 || layout.dim > kMaxDim) return cudaErrorInvalidValue;
  return kernels::WithElementType(dtype, [&](auto t) {
    return Backward<typename decltype(t)::type>(grad_out, x, w, cos, sin, grad_x, gw_partials,
                                                layout, stream);
  });
}

}  // namespace reel::gen::qk_norm
