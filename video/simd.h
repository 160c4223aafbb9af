// Internal to reel_video: building a hot loop for more than one x86-64 ISA.
//
// REEL_SIMD_CLONES on a (non-template, non-inline) function builds it twice on x86-64
// with GCC or Clang, for AVX2 and for the baseline (SSE2); the dynamic loader picks the
// one the CPU runs. Helpers it calls should be REEL_ALWAYS_INLINE so that they are
// compiled into each clone.

#ifndef REEL_VIDEO_SIMD_H_
#define REEL_VIDEO_SIMD_H_

#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define REEL_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef REEL_SIMD_CLONES
#define REEL_SIMD_CLONES
#endif

#define REEL_ALWAYS_INLINE inline __attribute__((always_inline))

#endif  // REEL_VIDEO_SIMD_H_
