// The arithmetic of the fused query/key RMSNorm + rotary positions, per rotary pair, shared
// by the CPU implementation (generate/qk_norm.cc) and the CUDA kernels
// (generate/qk_norm_cuda.cu), so that the CPU tests check the math the GPU runs. No
// libtorch here: nvcc compiles this without it.
//
// For a row x of `dim` elements (one head of one token), with r = 1/sqrt(mean(x^2) + eps):
//   y = x r w                      (RMSNorm with its weight w)
//   out[2i], out[2i+1] = (y[2i] c - y[2i+1] s, y[2i] s + y[2i+1] c)
// with c, s the cosine and sine of pair i's rotary angle (c = 1, s = 0 without rotary
// positions), which is the complex product (y[2i] + i y[2i+1]) e^(i angle).
//
// Backward, given g = dL/dout: gy = the rotation undone on g, n = x r, gn = gy w,
//   dL/dw += gy n (over all rows),  dL/dx = r (gn - n sum(gn n) / dim).

#ifndef REEL_GENERATE_QK_NORM_MATH_H_
#define REEL_GENERATE_QK_NORM_MATH_H_

#include <cstdint>

#include "generate/kernel_common.h"

namespace reel::gen::qk_norm {

// Where a row's elements are: rows are (batch, position, head) of a [B, N, H, dim] tensor
// whose last dimension is contiguous; the output and the gradients are contiguous.
struct Layout {
  int64_t rows = 0;                                  // B * N * H
  int64_t positions = 0;                             // N (the rotary tables have N rows of dim / 2)
  int64_t heads = 0;                                 // H
  int64_t dim = 0;                                   // even
  int64_t stride_b = 0, stride_n = 0, stride_h = 0;  // of the input, in elements
  bool rope = false;
  float eps = 1e-6f;
  // CUDA only: the vectorised kernels (8 elements a lane, several rows a warp) where the
  // row length and alignment allow them; else one warp per row.
  bool vector_kernels = false;

  REEL_HOST_DEVICE int64_t Position(int64_t row) const { return (row / heads) % positions; }
  REEL_HOST_DEVICE int64_t InputOffset(int64_t row) const {
    return (row / (heads * positions)) * stride_b + Position(row) * stride_n +
           (row % heads) * stride_h;
  }
};

// Pair `index` of the rotary tables, as (c, s); (1, 0) without tables (null pointers).
template <typename Acc, typename Table>
REEL_HOST_DEVICE inline void Rotation(const Table* cos, const Table* sin, int64_t index, Acc* c,
                                      Acc* s) {
  *c = cos != nullptr ? static_cast<Acc>(cos[index]) : Acc(1);
  *s = sin != nullptr ? static_cast<Acc>(sin[index]) : Acc(0);
}

// out pair from an input pair, given r and the pair's weights and rotation.
template <typename Acc>
REEL_HOST_DEVICE inline void ForwardPair(Acc x1, Acc x2, Acc r, Acc w1, Acc w2, Acc c, Acc s,
                                         Acc* out1, Acc* out2) {
  const Acc y1 = x1 * r * w1, y2 = x2 * r * w2;
  *out1 = y1 * c - y2 * s;
  *out2 = y1 * s + y2 * c;
}

// The first half of a pair's backward: n (the normalised input) and gn = dL/dn, with the
// weight's gradient accumulated into gw1, gw2.
template <typename Acc>
REEL_HOST_DEVICE inline void BackwardPair(Acc g1, Acc g2, Acc x1, Acc x2, Acc r, Acc w1, Acc w2,
                                          Acc c, Acc s, Acc* n1, Acc* n2, Acc* gn1, Acc* gn2,
                                          Acc* gw1, Acc* gw2) {
  const Acc gy1 = g1 * c + g2 * s, gy2 = g2 * c - g1 * s;
  *n1 = x1 * r;
  *n2 = x2 * r;
  *gw1 += gy1 * *n1;
  *gw2 += gy2 * *n2;
  *gn1 = gy1 * w1;
  *gn2 = gy2 * w2;
}

// The second half: dL/dx for one element, given the row's sum(gn n) / dim.
template <typename Acc>
REEL_HOST_DEVICE inline Acc InputGrad(Acc gn, Acc n, Acc r, Acc mean_gn_n) {
  return r * (gn - n * mean_gn_n);
}

}  // namespace reel::gen::qk_norm

#if defined(REEL_CUDA_KERNELS)
#include <cuda_runtime_api.h>

namespace reel::gen::qk_norm {

using kernels::Dtype;

// The CUDA kernels (generate/qk_norm_cuda.cu). `w` has dim floats, `cos` and `sin`
// positions x dim / 2 floats (unused without rope). Backward writes one row of dim
// partial weight gradients per block into `gw_partials` (BackwardBlocks(layout) rows, the
// same for either kernel), which the caller sums. Both return the launch's error. With
// layout.vector_kernels, dim a power of two from 8 to 256, strides multiples of 8 and the
// pointers aligned to their 8-element (x, out, gradients; 32 bytes for w) or 4-element
// (cos, sin) accesses, each row's dim / 8 lanes take 8 elements each; else one warp a row.
cudaError_t LaunchForward(const void* x, Dtype dtype, const float* w, const float* cos,
                          const float* sin, void* out, const Layout& layout, cudaStream_t stream);
cudaError_t LaunchBackward(const void* grad_out, const void* x, Dtype dtype, const float* w,
                           const float* cos, const float* sin, void* grad_x, float* gw_partials,
                           const Layout& layout, cudaStream_t stream);
int64_t BackwardBlocks(const Layout& layout);
// The largest dim the kernels take.
constexpr int64_t kMaxDim = 256;

}  // namespace reel::gen::qk_norm
#endif  // REEL_CUDA_KERNELS

#endif  // REEL_GENERATE_QK_NORM_MATH_H_
