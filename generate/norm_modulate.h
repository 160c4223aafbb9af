// The DiT block's LayerNorm (no affine) and adaLN modulation as one operator:
//   out = LayerNorm(x) (1 + scale[b]) + shift[b]
// computed in float32 and written in the dtype the next matmul takes (bfloat16 under CUDA
// autocast), so that a [B, N, D] float32 residual stream is read once and written once,
// where separate operators read and write it three times forward (norm, modulation,
// autocast's cast) and more backward. Fused on the CPU (a loop over rows) and, in builds
// with reel's CUDA kernels, on CUDA (one warp per row); both share their arithmetic
// (norm_modulate_math.h), and the shift and scale gradients are summed in a fixed order.
// Thread-safe; no state beyond the switch below.

#ifndef REEL_GENERATE_NORM_MODULATE_H_
#define REEL_GENERATE_NORM_MODULATE_H_

#include <torch/torch.h>

namespace reel::gen {

// x [B, N, D] (last dimension contiguous), shift and scale [B, D]. Returns [B, N, D],
// contiguous, in `out_dtype`; differentiable in x, shift and scale. Throws c10::Error on
// shapes that do not fit.
torch::Tensor NormModulate(const torch::Tensor& x, const torch::Tensor& shift,
                           const torch::Tensor& scale, torch::ScalarType out_dtype,
                           double eps = 1e-6);

// The same as separate ATen operators (layer_norm, addcmul, a cast): the reference, and
// what runs where the fused operator does not apply (CUDA without reel's kernels, x not
// float32 on CUDA, D above 1024 on CUDA) or is switched off.
torch::Tensor NormModulateComposite(const torch::Tensor& x, const torch::Tensor& shift,
                                    const torch::Tensor& scale, torch::ScalarType out_dtype,
                                    double eps = 1e-6);

// LayerNorm with torch::nn::LayerNorm's elementwise weight and bias ([D] each), in
// `out_dtype`. On CUDA, as the same operator: NormModulate with shift = bias and scale =
// weight - 1 for every batch element, so that the float32 stream is read once and written
// once in the next matmul's dtype, and the weight and bias gradients come from the fused
// backward's partial sums instead of LayerNorm's separate affine backward. On the CPU, with
// the switch below on, ATen's layer_norm (faster there than the fused loop). Switched off:
// NormModulateComposite with that shift and scale. Differentiable in x, weight and bias.
// Throws c10::Error on shapes that do not fit.
torch::Tensor AffineLayerNorm(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, torch::ScalarType out_dtype,
                              double eps = 1e-6);
// AffineLayerNorm as NormModulate computes it (shift = bias, scale = weight - 1), on any
// device: what AffineLayerNorm runs on CUDA, callable on the CPU to test and measure it.
torch::Tensor AffineLayerNormAsNormModulate(const torch::Tensor& x, const torch::Tensor& weight,
                                            const torch::Tensor& bias, torch::ScalarType out_dtype,
                                            double eps = 1e-6);

// Process-wide switch between the fused operator (the default) and the composite one, for
// measuring one against the other (bench_generate --norm-modulate composite).
void SetFusedNormModulate(bool fused);
bool FusedNormModulate();

}  // namespace reel::gen

#endif  // REEL_GENERATE_NORM_MODULATE_H_
