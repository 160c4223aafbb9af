// What reel's fused operators share between their CPU loops and their CUDA kernels: the
// host/device qualifier for arithmetic both compile, the element types the kernels take,
// and (under nvcc) the conversions and warp sums the kernels use. No libtorch here.

#ifndef REEL_GENERATE_KERNEL_COMMON_H_
#define REEL_GENERATE_KERNEL_COMMON_H_

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define REEL_HOST_DEVICE __host__ __device__
#else
#define REEL_HOST_DEVICE
#endif

namespace reel::gen::kernels {

// Element types of the tensors a kernel reads or writes (its arithmetic is float32).
enum class Dtype { kFloat, kBFloat16, kHalf };

#if defined(__CUDACC__)
__device__ inline float ToFloat(float v) {
  return v;
}
__device__ inline float ToFloat(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ inline float ToFloat(__half v) {
  return __half2float(v);
}
template <typename T>
__device__ inline T FromFloat(float v);
template <>
__device__ inline float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ inline __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <>
__device__ inline __half FromFloat<__half>(float v) {
  return __float2half(v);
}

// The sum of v over the warp's 32 lanes, in every lane.
__device__ inline float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
#endif  // __CUDACC__

}  // namespace reel::gen::kernels

#endif  // REEL_GENERATE_KERNEL_COMMON_H_
