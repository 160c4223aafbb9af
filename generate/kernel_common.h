// What reel's fused operators share between their CPU loops and their CUDA kernels: the
// host/device qualifier for arithmetic both compile, the element types the kernels take,
// and (under nvcc) the conversions, warp sums and packed loads the kernels use. No
// libtorch here.

#ifndef REEL_GENERATE_KERNEL_COMMON_H_
#define REEL_GENERATE_KERNEL_COMMON_H_

#include <cstddef>
#include <cstdint>

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

// Calls f(ElementType<T>()) with T the element type of `dtype` (float, __nv_bfloat16,
// __half) and returns its result: a launcher's one switch over the dtypes.
template <typename T>
struct ElementType {
  using type = T;
};
template <typename F>
inline auto WithElementType(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::kBFloat16:
      return f(ElementType<__nv_bfloat16>());
    case Dtype::kHalf:
      return f(ElementType<__half>());
    case Dtype::kFloat:
      break;
  }
  return f(ElementType<float>());
}

// The sum of v over the warp's 32 lanes, in every lane.
__device__ inline float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The sum of v over each aligned group of kGroup lanes (a power of two up to 32), in every
// lane of the group. Every lane of the warp must call it.
template <int kGroup>
__device__ inline float GroupSum(float v) {
#pragma unroll
  for (int offset = kGroup / 2; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Whether p is aligned to `bytes` (the packed accesses below need their size's alignment).
inline bool Aligned(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// kN elements of T loaded or stored as one aligned access (two for 32 bytes).
template <typename T, int kN>
struct alignas(sizeof(T) * kN) Pack {
  T v[kN];
};

template <int kN, typename T>
__device__ inline void Load(const T* p, float (&out)[kN]) {
  const Pack<T, kN> pack = *reinterpret_cast<const Pack<T, kN>*>(p);
#pragma unroll
  for (int k = 0; k < kN; ++k) out[k] = ToFloat(pack.v[k]);
}

template <int kN, typename T>
__device__ inline void Store(T* p, const float (&in)[kN]) {
  Pack<T, kN> pack;
#pragma unroll
  for (int k = 0; k < kN; ++k) pack.v[k] = FromFloat<T>(in[k]);
  *reinterpret_cast<Pack<T, kN>*>(p) = pack;
}
#endif  // __CUDACC__

}  // namespace reel::gen::kernels

#endif  // REEL_GENERATE_KERNEL_COMMON_H_
