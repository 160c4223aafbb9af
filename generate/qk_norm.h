// The denoiser's query/key normalisation as one operator: RMSNorm with its weight,
// computed in float32, then (for self-attention) the 3D rotary positions, cast back to the
// input's dtype. Written as separate ATen operators this is about ten passes over a
// [B, N, H, D] tensor forward and more backward, most in float32 (bench_step_ops counts
// them); fused, it reads the input once and writes the output once, and saves nothing
// but its input, which the attention keeps alive anyway.
//
// On the CPU the fused operator runs a loop over rows; on CUDA (in a build with reel's
// CUDA kernels, REEL_CUDA_KERNELS) one warp per row. Both share their arithmetic
// (qk_norm_math.h). The weight's gradient is summed in a fixed order, so results do not
// depend on the number of threads. Thread-safe; no state beyond the switch below.

#ifndef REEL_GENERATE_QK_NORM_H_
#define REEL_GENERATE_QK_NORM_H_

#include <torch/torch.h>

namespace reel::gen {

// x: [B, N, H, D] with any strides (a head of a token per row; a slice of a fused qkv
// projection is fine), D even. weight: [D]. cos, sin: [N, D / 2] rotary tables for the N
// positions (Rope3d), or both undefined for no rotary positions. Returns [B, N, H, D],
// contiguous, in x's dtype; differentiable in x and weight. Throws c10::Error on shapes
// that do not fit.
torch::Tensor QkNormRope(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& cos = {}, const torch::Tensor& sin = {},
                         double eps = 1e-6);

// The same as separate ATen operators (in float32, or float64 for a double input): the
// reference the fused operator is tested against, and what QkNormRope runs where the
// fused one does not apply (a CUDA tensor in a build without reel's kernels, double on
// CUDA, D above 256 on CUDA) or is switched off.
torch::Tensor QkNormRopeComposite(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& cos = {}, const torch::Tensor& sin = {},
                                  double eps = 1e-6);

// Process-wide switch between the fused operator (the default) and the composite one, for
// measuring one against the other (bench_generate --qk-norm composite).
void SetFusedQkNorm(bool fused);
bool FusedQkNorm();

// Process-wide choice between the fused operator's two CUDA kernels: false (the default)
// one warp a row; true 8 elements a lane and several rows a warp, with 16-byte accesses
// (where D is a power of two from 8 to 256 and the strides and pointers are aligned; else
// the first). Not yet measured on a GPU; for bench_generate --qk-norm vector. The CPU
// loop is the same either way.
void SetQkNormVectorKernels(bool on);

// Whether this build has reel's CUDA kernels.
bool HaveCudaKernels();

}  // namespace reel::gen

#endif  // REEL_GENERATE_QK_NORM_H_
