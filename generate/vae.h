// A causal 3D-convolution video autoencoder (libtorch only): 8x8 in space and 4x in time,
// 1 + 4k frames -> 1 + k latent frames, so a single image is a one-frame video.
//
// Causal: every convolution pads time on the past side only (the first frame repeated),
// normalisation is per frame (GroupNorm over channels and space), and temporal
// down/upsampling keeps frame 0 on its own (down: keep the even frames of a causal
// convolution's output; up: depth-to-time, a causal convolution making two frames'
// channels of every frame, one for frame 0). Output frame t depends only on input frames
// <= t. The resamplers are residual around parameter-free shortcuts (2x2 average down,
// repetition up), which lets the latent carry a pooled picture from the first step.
//
// Because of that, long clips can be encoded and decoded in chunks with state carried
// between them (each causal convolution keeps its last k - 1 input frames; the temporal
// resamplers count frames): EncodeChunked/DecodeChunked give the same result as one pass,
// to float rounding, with memory bounded by the chunk.
//
// Video tensors are float [B, 3, T, H, W] in [-1, 1]; latents [B, C, 1 + (T-1)/4, H/8, W/8].
// Loss: L1 + mse_weight x squared error + kl_weight x KL(q(z|x) || N(0, I)) (means over
// elements). The squared-error term is there because L1 alone sits at the per-pixel median:
// on footage where a small object moves over a plain background it reconstructs the
// background only for hundreds of steps (measured on the synthetic clips of the tests);
// weighted 10x (the default), it gets the moving objects sooner.
// Latent channel statistics (mean and std per channel, measured on training data) are
// kept as buffers and saved with the weights; Normalize/Denormalize use them.
//
// Thread-safety: a module is used by one thread at a time (chunked calls hold state).

#ifndef REEL_GENERATE_VAE_H_
#define REEL_GENERATE_VAE_H_

#include <functional>
#include <string>

#include <torch/torch.h>

#include "generate/config.h"
#include "util/status.h"

namespace reel::gen {

// A 3D convolution padded causally in time (kernel kt) and symmetrically in space.
class CausalConv3dImpl : public torch::nn::Module {
 public:
  CausalConv3dImpl(int in, int out, int kt, int ks, int spatial_stride = 1);
  torch::Tensor forward(torch::Tensor x);
  // Streaming: the past comes from the previous call's input instead of padding.
  void SetStreaming(bool on);
  torch::nn::Conv3d& conv() { return conv_; }

 private:
  torch::nn::Conv3d conv_{nullptr};
  int kt_;
  bool streaming_ = false;
  torch::Tensor cache_;
};
TORCH_MODULE(CausalConv3d);

class VaeEncoderImpl;
class VaeDecoderImpl;

struct VaeLoss {
  torch::Tensor total, l1, mse, kl;
};

class VideoVaeImpl : public torch::nn::Module {
 public:
  explicit VideoVaeImpl(const VaeConfig& config);

  // Mean and log-variance of q(z|x).
  std::pair<torch::Tensor, torch::Tensor> Encode(const torch::Tensor& video);
  torch::Tensor Decode(const torch::Tensor& latent);
  // Reconstruction (sampling z when training) and the loss against `video`.
  VaeLoss Loss(const torch::Tensor& video, torch::Tensor* reconstruction = nullptr);

  // In chunks of `chunk_frames` input frames (1 + 4k: the first chunk has 1 + 4k, later
  // ones 4k) / `chunk_latents` latent frames (first 1 + k, then k).
  torch::Tensor EncodeMeanChunked(const torch::Tensor& video, int64_t chunk_frames);
  torch::Tensor DecodeChunked(const torch::Tensor& latent, int64_t chunk_latents);

  // (z - mean) / std per channel, and back.
  torch::Tensor Normalize(const torch::Tensor& latent) const;
  torch::Tensor Denormalize(const torch::Tensor& latent) const;
  // Sets the latent statistics from a batch of latents [N, C, ...].
  void SetLatentStats(const torch::Tensor& latents);

  const VaeConfig& config() const { return config_; }

 private:
  VaeConfig config_;
  std::shared_ptr<VaeEncoderImpl> encoder_;
  std::shared_ptr<VaeDecoderImpl> decoder_;
  torch::Tensor latent_mean_, latent_std_;
};
TORCH_MODULE(VideoVae);

// Sets streaming mode on every causal layer inside `module` (and resets their state).
void SetStreaming(torch::nn::Module& module, bool on);

// A VAE checkpoint folder: config.json (the whole model configuration; the VAE part is
// what matters) and vae.pt (weights and latent statistics). Written to a temporary folder
// and renamed into place; loading names the missing or unreadable file.
//
// `extra`, when given, may add files to the temporary folder and fields to config.json
// before either is committed (training keeps its resumable state there). A config.json
// whose "train" object has "step" below "steps" is a training that has not finished (its
// latent statistics are not set): LoadVae refuses it, saying how to finish it.
using VaeFolderExtra = std::function<Status(const std::string& tmp_dir, Json& config)>;
Status SaveVae(const VideoVae& vae, const ModelConfig& config, const std::string& dir,
               const VaeFolderExtra& extra = nullptr);
struct LoadedVae {
  ModelConfig config;
  VideoVae vae{nullptr};
  Json train;  // the "train" object of config.json (null when absent)
};
Result<LoadedVae> LoadVae(const std::string& dir, torch::Device device);
// As LoadVae, also when the training has not finished.
Result<LoadedVae> LoadVaeForTraining(const std::string& dir, torch::Device device);
// The configuration, "train" object (VaeTrainOptions::ToJson with the step reached and
// the clip-picking generator; null when absent) and step of the VAE folder `dir`, from its
// config.json alone: what train-vae --resume continues with.
Result<SavedTraining> ReadVaeCheckpoint(const std::string& dir);

}  // namespace reel::gen

#endif  // REEL_GENERATE_VAE_H_
