// The DiT block's gated residual add as one operator:
//   out = residual + gate[b] y
// with residual [B, N, D] (the float32 residual stream), gate [B, D] (an adaLN gate) and y
// [B, N, D] (the attention's or the MLP's output, bfloat16 under CUDA autocast), out in
// residual's dtype. ATen's addcmul does the forward in one kernel, but its backward takes
// four passes over whole activations: g gate, its cast to y's dtype, g y, and the sum of
// that over the tokens. The fused backward reads g and y once, writes y's gradient once in
// y's dtype, and sums the gate's gradient in partial rows of fixed chunks of tokens, added
// up in a fixed order (the result does not depend on thread or block scheduling). The
// residual's gradient is g itself. Fused on the CPU (loops over rows) and, in builds with
// reel's CUDA kernels, on CUDA; both share their layout (gated_residual_math.h).
// Thread-safe; no state beyond the switch below.

#ifndef REEL_GENERATE_GATED_RESIDUAL_H_
#define REEL_GENERATE_GATED_RESIDUAL_H_

#include <torch/torch.h>

namespace reel::gen {

// Shapes as above (any strides; copied to contiguous where needed). Differentiable in all
// three. Throws c10::Error on shapes or devices that do not fit.
torch::Tensor GatedResidual(const torch::Tensor& residual, const torch::Tensor& gate,
                            const torch::Tensor& y);

// The same as ATen's addcmul(residual, gate.unsqueeze(1), y): the reference, and what runs
// where the fused operator does not apply (CUDA without reel's kernels or with a residual
// that is not float32; on the CPU, y of another dtype than residual's) or is switched off.
torch::Tensor GatedResidualComposite(const torch::Tensor& residual, const torch::Tensor& gate,
                                     const torch::Tensor& y);

// Process-wide switch between the fused operator (the default) and the composite one, for
// measuring one against the other (bench_generate --gated-residual composite).
void SetFusedGatedResidual(bool fused);

}  // namespace reel::gen

#endif  // REEL_GENERATE_GATED_RESIDUAL_H_
