// CLIP in C++: OpenAI's vision-transformer CLIP models on libtorch.
//
// ClipModel::Load() reads an OpenAI CLIP archive (ViT-B-32.pt, ViT-B-16.pt, ViT-L-14.pt:
// TorchScript files) by its parameters and runs them in a native implementation of the
// two towers, so fp32 on CPU and bf16 on CUDA both work and no TorchScript code runs.
// The architecture is inferred from the parameter shapes, as OpenAI's build_model does,
// so any width, depth, patch size or resolution loads. A missing or mis-shaped
// parameter fails the load with its name.
//
//   image tower:  patch conv -> [class token; patches] + positions -> ln_pre ->
//                 residual attention blocks -> ln_post(class token) @ proj
//   text tower:   token embedding + positions -> causal residual blocks -> ln_final ->
//                 the end token's features @ text_projection
//   blocks:       x + attn(ln_1(x)), then x + mlp(ln_2(x)); mlp = c_fc, QuickGELU, c_proj;
//                 layer norms computed in fp32 (as OpenAI's LayerNorm subclass)
//
// PreprocessImage() reproduces OpenAI's preprocessing: shorter side to the resolution
// with Pillow's bicubic resampling (antialiased, 8-bit between the horizontal and
// vertical passes), centre crop (torchvision's rounding), /255, CLIP's mean and std.
//
// Thread-safety: a loaded model may run from several threads (inference only).

#ifndef REEL_NETS_CLIP_H_
#define REEL_NETS_CLIP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "util/status.h"

namespace reel {

struct ClipConfig {
  int embed_dim = 0;
  int image_resolution = 0;
  int vision_layers = 0;
  int vision_width = 0;
  int vision_patch_size = 0;
  int context_length = 0;
  int vocab_size = 0;
  int transformer_width = 0;
  int transformer_heads = 0;
  int transformer_layers = 0;
  int vision_heads() const { return vision_width / 64; }
  std::string ToString() const;
};

struct ClipLoadOptions {
  torch::Device device = torch::kCPU;
  // kFloat on CPU; kBFloat16 (or kHalf) on CUDA. Layer norms and softmax run in fp32.
  torch::Dtype dtype = torch::kFloat;
  // On `device` in reel's dtype for it: float32 on CPU, bf16 on CUDA.
  static ClipLoadOptions ForDevice(torch::Device device) {
    ClipLoadOptions o;
    o.device = device;
    if (device.is_cuda()) o.dtype = torch::kBFloat16;
    return o;
  }
};

class ClipModel {
 public:
  // From an OpenAI archive (TorchScript) file.
  static Result<std::unique_ptr<ClipModel>> Load(const std::string& path,
                                                 const ClipLoadOptions& options = {});
  // From named tensors (the archive's state dict); `source` names them in errors.
  static Result<std::unique_ptr<ClipModel>> FromStateDict(
      const std::map<std::string, torch::Tensor>& state, const ClipLoadOptions& options,
      const std::string& source);

  const ClipConfig& config() const { return config_; }
  torch::Device device() const { return options_.device; }

  // images: [N, 3, R, R] preprocessed (float). Returns [N, embed_dim] (not normalised).
  torch::Tensor EncodeImage(const torch::Tensor& images) const;
  // tokens: [N, context_length] int64. Returns [N, embed_dim] (not normalised).
  torch::Tensor EncodeText(const torch::Tensor& tokens) const;
  // tokens: [N, L] int64 with L <= context_length. Returns every token's features after
  // ln_final, [N, L, transformer_width] float (the text tower is causal: token i's
  // features depend on tokens 0..i only, so a shorter L changes none of them).
  torch::Tensor EncodeTextTokens(const torch::Tensor& tokens) const;
  double logit_scale() const { return logit_scale_; }

 private:
  ClipModel() = default;
  const torch::Tensor& W(const std::string& name) const { return weights_.at(name); }
  torch::Tensor Transformer(torch::Tensor x, const std::string& prefix, int layers, int heads,
                            const torch::Tensor& mask) const;
  torch::Tensor LayerNorm(const torch::Tensor& x, const std::string& prefix) const;

  ClipConfig config_;
  ClipLoadOptions options_;
  std::map<std::string, torch::Tensor> weights_;
  torch::Tensor causal_mask_;
  double logit_scale_ = 100.0;
};

// CLIP's normalisation constants.
constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// OpenAI's preprocessing of one packed RGB image: returns [3, resolution, resolution].
torch::Tensor PreprocessImage(const uint8_t* rgb, int width, int height, int resolution);

// Pillow's Image.resize(..., BICUBIC) on packed RGB (exposed for tests).
void PillowResizeBicubic(const uint8_t* src, int src_w, int src_h, uint8_t* dst, int dst_w,
                         int dst_h);

}  // namespace reel

#endif  // REEL_NETS_CLIP_H_
