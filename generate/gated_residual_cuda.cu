// CUDA kernels of the fused gated residual add (see gated_residual_math.h for the
// arithmetic and gated_residual.h for the operator). Each thread takes kVec consecutive
// elements of a row: four (one 16-byte load of float32, 8 bytes of bfloat16) where the row
// length and the pointers' alignment allow, else one. The forward is a grid-stride loop
// over the elements. In the backward a block takes a slice of the columns of one chunk of
// one batch element's tokens; each thread walks its columns down the chunk's rows, writing
// y's gradient and keeping the gate's sums in registers, and writes them as the chunk's
// partial row (no shared memory, no atomics: the caller sums the chunks in a fixed order).

#include <algorithm>
#include <cstdint>

#ifndef REEL_CUDA_KERNELS
#define REEL_CUDA_KERNELS 1
#endif
#include "generate/gated_residual_math.h"

namespace reel::gen::gated_residual {
namespace {

using kernels::Aligned;
using kernels::Load;
using kernels::Store;

constexpr int kForwardThreads = 256;
constexpr int kBackwardThreads = 128;
constexpr int64_t kMaxForwardBlocks = 65535;
constexpr int64_t kMaxGridYZ = 65535;

template <typename T, int kVec>
__global__ void ForwardKernel(const float* __restrict__ residual, const float* __restrict__ gate,
                              const T* __restrict__ y, float* __restrict__ out, Layout l) {
  const int64_t groups = l.dim / kVec;  // per row
  const int64_t total = l.batch * l.tokens * groups;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < total;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = v / groups, i = (v - row * groups) * kVec;
    const int64_t e = row * l.dim + i;
    float r[kVec], g[kVec], yv[kVec], o[kVec];
    Load<kVec>(residual + e, r);
    Load<kVec>(gate + (row / l.tokens) * l.dim + i, g);
    Load<kVec>(y + e, yv);
#pragma unroll
    for (int k = 0; k < kVec; ++k) o[k] = r[k] + g[k] * yv[k];
    Store<kVec>(out + e, o);
  }
}

template <typename T, int kVec>
__global__ void BackwardKernel(const float* __restrict__ grad_out, const float* __restrict__ gate,
                               const T* __restrict__ y, T* __restrict__ grad_y,
                               float* __restrict__ gate_partials, Layout l) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kVec;
  if (i >= l.dim) return;
  const int64_t chunk = blockIdx.y, b = blockIdx.z;
  float gt[kVec], sum[kVec];
  Load<kVec>(gate + b * l.dim + i, gt);
#pragma unroll
  for (int k = 0; k < kVec; ++k) sum[k] = 0.f;
  const int64_t first = chunk * l.chunk_rows;
  const int64_t last = first + l.chunk_rows < l.tokens ? first + l.chunk_rows : l.tokens;
#pragma unroll 4
  for (int64_t n = first; n < last; ++n) {
    const int64_t e = (b * l.tokens + n) * l.dim + i;
    float g[kVec], yv[kVec], dy[kVec];
    Load<kVec>(grad_out + e, g);
    Load<kVec>(y + e, yv);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      dy[k] = g[k] * gt[k];
      sum[k] += g[k] * yv[k];
    }
    Store<kVec>(grad_y + e, dy);
  }
  Store<kVec>(gate_partials + (b * l.Chunks() + chunk) * l.dim + i, sum);
}

template <typename T, int kVec>
cudaError_t Forward(const float* residual, const float* gate, const void* y, float* out,
                    const Layout& l, cudaStream_t stream) {
  const int64_t total = l.batch * l.tokens * (l.dim / kVec);
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((total + kForwardThreads - 1) / kForwardThreads, kMaxForwardBlocks));
  ForwardKernel<T, kVec><<<static_cast<unsigned>(blocks), kForwardThreads, 0, stream>>>(
      residual, gate, static_cast<const T*>(y), out, l);
  return cudaGetLastError();
}

template <typename T, int kVec>
cudaError_t Backward(const float* grad_out, const float* gate, const void* y, void* grad_y,
                     float* gate_partials, const Layout& l, cudaStream_t stream) {
  const int64_t groups = l.dim / kVec;
  const dim3 grid(static_cast<unsigned>((groups + kBackwardThreads - 1) / kBackwardThreads),
                  static_cast<unsigned>(l.Chunks()), static_cast<unsigned>(l.batch));
  BackwardKernel<T, kVec><<<grid, kBackwardThreads, 0, stream>>>(
      grad_out, gate, static_cast<const T*>(y), static_cast<T*>(grad_y), gate_partials, l);
  return cudaGetLastError();
}

bool Fits(const Layout& l) {
  return l.dim >= 1 && l.chunk_rows >= 1 && l.batch <= kMaxGridYZ && l.Chunks() <= kMaxGridYZ;
}

template <typename T>
cudaError_t ForwardOf(const float* residual, const float* gate, const void* y, float* out,
                      const Layout& l, cudaStream_t stream) {
  const bool vec = l.dim % 4 == 0 && Aligned(residual, 16) && Aligned(gate, 16) &&
                   Aligned(out, 16) && Aligned(y, 4 * sizeof(T));
  return vec ? Forward<T, 4>(residual, gate, y, out, l, stream)
             : Forward<T, 1>(residual, gate, y, out, l, stream);
}

template <typename T>
cudaError_t BackwardOf(const float* grad_out, const float* gate, const void* y, void* grad_y,
                       float* gate_partials, const Layout& l, cudaStream_t stream) {
  const bool vec = l.dim % 4 == 0 && Aligned(grad_out, 16) && Aligned(gate, 16) &&
                   Aligned(gate_partials, 16) && Aligned(y, 4 * sizeof(T)) &&
                   Aligned(grad_y, 4 * sizeof(T));
  return vec ? Backward<T, 4>(grad_out, gate, y, grad_y, gate_partials, l, stream)
             : Backward<T, 1>(grad_out, gate, y, grad_y, gate_partials, l, stream);
}

}  // namespace

cudaError_t LaunchForward(const float* residual, const float* gate, const void* y, Dtype y_dtype,
                          float* out, const Layout& layout, cudaStream_t stream) {
  if (layout.batch * layout.tokens == 0) return cudaSuccess;
  if (!Fits(layout)) return cudaErrorInvalidValue;
  return kernels::WithElementType(y_dtype, [&](auto t) {
    return ForwardOf<typename decltype(t)::type>(residual, gate, y, out, layout, stream);
  });
}

cudaError_t LaunchBackward(const float* grad_out, const float* gate, const void* y, Dtype y_dtype,
                           void* grad_y, float* gate_partials, const Layout& layout,
                           cudaStream_t stream) {
  if (layout.batch * layout.tokens == 0) return cudaSuccess;
  if (!Fits(layout)) return cudaErrorInvalidValue;
  return kernels::WithElementType(y_dtype, [&](auto t) {
    return BackwardOf<typename decltype(t)::type>(grad_out, gate, y, grad_y, gate_partials, layout,
                                                  stream);
  });
}

}  // namespace reel::gen::gated_residual
