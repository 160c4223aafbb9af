// The denoiser: a diffusion transformer over spacetime latent patches, conditioned on the
// timestep (adaLN-Zero) and on text (cross-attention), as in DiT / PixArt / Open-Sora STDiT.
//
//   patches    latent [B, C, T, H, W] -> tokens [B, T * H/p * W/p, width] (1 x p x p patches)
//   timestep   sinusoidal features of 1000 t -> MLP -> c [B, width]
//   block      x += g1 * SelfAttn(modulate(LN(x), shift1, scale1))
//              x += CrossAttn(LN(x), text, text mask)
//              x += g2 * MLP(modulate(LN(x), shift2, scale2))
//              (shift, scale, gate) from Linear(SiLU(c)), zero-initialised, so every
//              block starts as the identity (adaLN-Zero)
//   attention  RMSNorm on queries and keys per head; 3D rotary positions (the head
//              dimension split into time 1/4, height 3/8, width 3/8); full attention over
//              all tokens, or factorised (even blocks within each frame, odd blocks across
//              frames at each position) for long clips (config: full, factorized, or auto
//              by token count)
//   output     adaLN (shift, scale) then a zero-initialised Linear back to patches, so the
//              untrained model predicts 0
//
// Thread-safety: a module is used by one thread at a time.

#ifndef REEL_GENERATE_DIT_H_
#define REEL_GENERATE_DIT_H_

#include <torch/torch.h>

#include "generate/config.h"

namespace reel::gen {

class DitBlockImpl;

class DiffusionTransformerImpl : public torch::nn::Module {
 public:
  DiffusionTransformerImpl(const DitConfig& config, int latent_channels, int text_width);

  // latent [B, C, T, H, W], t [B] in [0, 1], text [B, L, text_width], text_mask [B, L]
  // -> velocity [B, C, T, H, W].
  torch::Tensor forward(const torch::Tensor& latent, const torch::Tensor& t,
                        const torch::Tensor& text, const torch::Tensor& text_mask);

  // Whether a clip of `tokens` tokens uses factorised attention under this config.
  bool Factorized(int64_t tokens) const;

  // Activation checkpointing: when on, training forwards keep only each block's input and
  // the backward recomputes the block (less activation memory, about one more forward of
  // compute). The gradients are the same; they reach the parameters through backward(),
  // not through autograd::grad(). Off by default.
  void SetActivationCheckpointing(bool on) { activation_checkpointing_ = on; }
  bool activation_checkpointing() const { return activation_checkpointing_; }
  const DitConfig& config() const { return config_; }

 private:
  DitConfig config_;
  int latent_channels_;
  bool activation_checkpointing_ = false;
  torch::nn::Linear patch_embed_{nullptr};
  torch::nn::Sequential time_mlp_{nullptr};
  torch::nn::Linear text_proj_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::Linear final_mod_{nullptr}, final_out_{nullptr};
  // The rotary tables of the last grid seen, on the device they were made for: made on
  // the host, and copied to the device once, not at every forward (a copy from pageable
  // memory waits for the device's queued work).
  struct RopeTables {
    int64_t t = -1, h = -1, w = -1;
    torch::Device device = torch::kCPU;
    torch::Tensor cos, sin;
  };
  RopeTables rope_;
};
TORCH_MODULE(DiffusionTransformer);

// Sinusoidal features [B, dim] of timesteps t [B] (scaled by 1000, as DiT).
torch::Tensor TimestepFeatures(const torch::Tensor& t, int dim);
// cos and sin tables [N, head_dim / 2] for tokens on a T x H x W grid (3D RoPE).
std::pair<torch::Tensor, torch::Tensor> Rope3d(int64_t t, int64_t h, int64_t w, int head_dim,
                                               torch::Device device);
// Rotates pairs (x[2i], x[2i+1]) of x [..., N, head_dim] by the tables (or by tables
// broadcastable to x's pairs); float32 out (float64 for a double x).
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace reel::gen

#endif  // REEL_GENERATE_DIT_H_
