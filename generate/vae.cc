#include "generate/vae.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "generate/checkpoint_files.h"
#include "util/strings.h"

namespace reel::gen {
namespace {

namespace F = torch::nn::functional;

// GroupNorm on every frame separately, so statistics never mix time steps.
torch::Tensor FrameNorm(torch::nn::GroupNorm& norm, const torch::Tensor& x) {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  torch::Tensor y = x.permute({0, 2, 1, 3, 4}).reshape({b * t, c, h, w});
  y = norm(y);
  return y.reshape({b, t, c, h, w}).permute({0, 2, 1, 3, 4});
}

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int in, int out, int groups) {
    norm1_ = register_module(
        "norm1", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, in).eps(1e-6)));
    conv1_ = register_module("conv1", CausalConv3d(in, out, 3, 3));
    norm2_ = register_module(
        "norm2", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, out).eps(1e-6)));
    conv2_ = register_module("conv2", CausalConv3d(out, out, 3, 3));
    if (in != out) skip_ = register_module("skip", CausalConv3d(in, out, 1, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = conv1_(torch::silu(FrameNorm(norm1_, x)));
    h = conv2_(torch::silu(FrameNorm(norm2_, h)));
    return (skip_ ? skip_(x) : x) + h;
  }

 private:
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  CausalConv3d conv1_{nullptr}, conv2_{nullptr}, skip_{nullptr};
};
TORCH_MODULE(ResBlock);

// The state temporal resampling needs to stream: frames are counted globally, so chunks
// fed one after another treat frame 0 of the clip, and only it, as the first frame.
class TimeResampleImpl : public torch::nn::Module {
 public:
  void SetStreaming(bool on) {
    streaming_ = on;
    seen_ = 0;
  }

 protected:
  TimeResampleImpl(bool time, CausalConv3d conv) : time_(time) {
    conv_ = register_module("conv", std::move(conv));
  }
  // The global index of the first of the `t` frames now fed; moves past them when streaming.
  int64_t Advance(int64_t t) {
    const int64_t first = seen_;
    if (streaming_) seen_ += t;
    return first;
  }
  CausalConv3d conv_{nullptr};
  bool time_;

 private:
  bool streaming_ = false;
  int64_t seen_ = 0;
};

// Spatial /2 and optionally temporal /2, residual: a strided causal conv added to the 2x2
// average of the input (a parameter-free shortcut, as in DC-AE's space-to-channel
// shortcut, so the latent carries a pooled picture from the first step of training).
// Temporal /2 keeps the frames of even global index, which the conv's causal kernel has
// let see the odd ones.
class DownImpl : public TimeResampleImpl {
 public:
  DownImpl(int ch, bool time) : TimeResampleImpl(time, CausalConv3d(ch, ch, 3, 3, 2)) {}
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
    torch::Tensor y = conv_(x) + x.view({b, c, t, h / 2, 2, w / 2, 2}).mean({4, 6});
    if (!time_) return y;
    const int64_t skip = Advance(t) % 2;
    const torch::Tensor kept = y.narrow(2, skip, t - skip);
    return kept.slice(2, 0, kept.size(2), 2);
  }
};
TORCH_MODULE(Down);

// Optionally temporal x2 by depth-to-time (a causal conv makes two frames' channels out of
// every frame, so each output phase has weights of its own, added to the frame repeated;
// frame 0 of the clip gives one frame), then spatial x2 (nearest) plus a causal conv of it.
class UpImpl : public TimeResampleImpl {
 public:
  UpImpl(int ch, bool time) : TimeResampleImpl(time, CausalConv3d(ch, ch, 3, 3)) {
    if (time) to_time_ = register_module("to_time", CausalConv3d(ch, 2 * ch, 3, 3));
  }
  torch::Tensor forward(torch::Tensor x) {
    if (time_) {
      const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
      const bool has_first = Advance(t) == 0;
      x = x.repeat_interleave(2, 2) + to_time_(x)
                                          .view({b, 2, c, t, h, w})
                                          .permute({0, 2, 3, 1, 4, 5})
                                          .reshape({b, c, 2 * t, h, w});
      if (has_first) x = x.narrow(2, 1, 2 * t - 1);
    }
    x = x.repeat_interleave(2, 3).repeat_interleave(2, 4);
    return x + conv_(x);
  }

 private:
  CausalConv3d to_time_{nullptr};
};
TORCH_MODULE(Up);

}  // namespace

// ------------------------------------------------------------------ CausalConv3d

CausalConv3dImpl::CausalConv3dImpl(int in, int out, int kt, int ks, int spatial_stride) : kt_(kt) {
  conv_ = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, {kt, ks, ks})
                                                        .stride({1, spatial_stride, spatial_stride})
                                                        .padding({0, ks / 2, ks / 2})));
}

torch::Tensor CausalConv3dImpl::forward(torch::Tensor x) {
  if (kt_ > 1) {
    torch::Tensor past = streaming_ && cache_.defined()
                             ? cache_
                             : x.narrow(2, 0, 1).expand({-1, -1, kt_ - 1, -1, -1});
    x = torch::cat({past, x}, 2);
    if (streaming_) cache_ = x.narrow(2, x.size(2) - (kt_ - 1), kt_ - 1).detach();
  }
  return conv_(x);
}

void CausalConv3dImpl::SetStreaming(bool on) {
  streaming_ = on;
  cache_ = torch::Tensor();
}

// ------------------------------------------------------------------ encoder / decoder

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& c) {
    int ch = c.base_channels * c.channel_mult[0];
    conv_in_ = register_module("conv_in", CausalConv3d(c.in_channels, ch, 3, 3));
    blocks_ = register_module("blocks", torch::nn::Sequential());
    for (size_t level = 0; level < c.channel_mult.size(); ++level) {
      const int out = c.base_channels * c.channel_mult[level];
      for (int i = 0; i < c.layers_per_level; ++i) {
        blocks_->push_back(ResBlock(ch, out, c.norm_groups));
        ch = out;
      }
      if (level + 1 < c.channel_mult.size()) blocks_->push_back(Down(ch, /*time=*/level < 2));
    }
    blocks_->push_back(ResBlock(ch, ch, c.norm_groups));
    norm_out_ = register_module(
        "norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_groups, ch).eps(1e-6)));
    conv_out_ = register_module("conv_out", CausalConv3d(ch, 2 * c.latent_channels, 3, 3));
    // Start with a narrow posterior (std about 0.02): with a small KL weight the decoder
    // otherwise spends its early training on unit-variance noise in the latents.
    torch::NoGradGuard g;
    conv_out_->conv()->bias.narrow(0, c.latent_channels, c.latent_channels).fill_(-8.0);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = blocks_->forward(conv_in_(x));
    return conv_out_(torch::silu(FrameNorm(norm_out_, h)));
  }

 private:
  CausalConv3d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::Sequential blocks_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
};

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& c) {
    const size_t levels = c.channel_mult.size();
    int ch = c.base_channels * c.channel_mult[levels - 1];
    conv_in_ = register_module("conv_in", CausalConv3d(c.latent_channels, ch, 3, 3));
    blocks_ = register_module("blocks", torch::nn::Sequential());
    blocks_->push_back(ResBlock(ch, ch, c.norm_groups));
    for (size_t k = 0; k < levels; ++k) {
      const size_t level = levels - 1 - k;
      const int out = c.base_channels * c.channel_mult[level];
      for (int i = 0; i < c.layers_per_level; ++i) {
        blocks_->push_back(ResBlock(ch, out, c.norm_groups));
        ch = out;
      }
      // Mirrors the encoder: level l was followed by a down step (temporal for l < 2).
      if (level > 0) blocks_->push_back(Up(ch, /*time=*/level - 1 < 2));
    }
    norm_out_ = register_module(
        "norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_groups, ch).eps(1e-6)));
    conv_out_ = register_module("conv_out", CausalConv3d(ch, c.in_channels, 3, 3));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    torch::Tensor h = blocks_->forward(conv_in_(z));
    return conv_out_(torch::silu(FrameNorm(norm_out_, h)));
  }

 private:
  CausalConv3d conv_in_{nullptr}, conv_out_{nullptr};
  torch::nn::Sequential blocks_{nullptr};
  torch::nn::GroupNorm norm_out_{nullptr};
};

// ------------------------------------------------------------------ VideoVae

VideoVaeImpl::VideoVaeImpl(const VaeConfig& config) : config_(config) {
  encoder_ = register_module("encoder", std::make_shared<VaeEncoderImpl>(config));
  decoder_ = register_module("decoder", std::make_shared<VaeDecoderImpl>(config));
  latent_mean_ = register_buffer("latent_mean", torch::zeros({config.latent_channels}));
  latent_std_ = register_buffer("latent_std", torch::ones({config.latent_channels}));
}

std::pair<torch::Tensor, torch::Tensor> VideoVaeImpl::Encode(const torch::Tensor& video) {
  torch::Tensor moments = encoder_->forward(video);
  auto parts = moments.chunk(2, 1);
  return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

torch::Tensor VideoVaeImpl::Decode(const torch::Tensor& latent) {
  return decoder_->forward(latent);
}

VaeLoss VideoVaeImpl::Loss(const torch::Tensor& video, torch::Tensor* reconstruction) {
  auto [mean, logvar] = Encode(video);
  torch::Tensor z =
      is_training() ? mean + torch::exp(0.5 * logvar) * torch::randn_like(mean) : mean;
  torch::Tensor rec = Decode(z);
  VaeLoss l;
  const torch::Tensor diff = rec - video;
  l.l1 = diff.abs().mean();
  l.mse = diff.pow(2).mean();
  l.kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean();
  l.total = l.l1 + config_.mse_weight * l.mse + config_.kl_weight * l.kl;
  if (reconstruction != nullptr) *reconstruction = rec;
  return l;
}

torch::Tensor VideoVaeImpl::EncodeMeanChunked(const torch::Tensor& video, int64_t chunk_frames) {
  TORCH_CHECK(chunk_frames >= 5 && (chunk_frames - 1) % 4 == 0,
              "chunk_frames must be 1 + 4k, k >= 1");
  SetStreaming(*encoder_, true);
  std::vector<torch::Tensor> parts;
  const int64_t t = video.size(2);
  int64_t start = 0;
  try {
    while (start < t) {
      const int64_t len = std::min(t - start, start == 0 ? chunk_frames : chunk_frames - 1);
      parts.push_back(encoder_->forward(video.narrow(2, start, len)).chunk(2, 1)[0]);
      start += len;
    }
  } catch (...) {
    SetStreaming(*encoder_, false);
    throw;
  }
  SetStreaming(*encoder_, false);
  return torch::cat(parts, 2);
}

torch::Tensor VideoVaeImpl::DecodeChunked(const torch::Tensor& latent, int64_t chunk_latents) {
  TORCH_CHECK(chunk_latents >= 2, "chunk_latents must be at least 2");
  SetStreaming(*decoder_, true);
  std::vector<torch::Tensor> parts;
  const int64_t t = latent.size(2);
  int64_t start = 0;
  try {
    while (start < t) {
      const int64_t len = std::min(t - start, start == 0 ? chunk_latents : chunk_latents - 1);
      parts.push_back(decoder_->forward(latent.narrow(2, start, len)));
      start += len;
    }
  } catch (...) {
    SetStreaming(*decoder_, false);
    throw;
  }
  SetStreaming(*decoder_, false);
  return torch::cat(parts, 2);
}

torch::Tensor VideoVaeImpl::Normalize(const torch::Tensor& latent) const {
  return (latent - latent_mean_.view({1, -1, 1, 1, 1})) / latent_std_.view({1, -1, 1, 1, 1});
}

torch::Tensor VideoVaeImpl::Denormalize(const torch::Tensor& latent) const {
  return latent * latent_std_.view({1, -1, 1, 1, 1}) + latent_mean_.view({1, -1, 1, 1, 1});
}

void VideoVaeImpl::SetLatentStats(const torch::Tensor& latents) {
  torch::NoGradGuard g;
  const torch::Tensor flat =
      latents.transpose(0, 1).reshape({latents.size(1), -1}).to(torch::kFloat);
  latent_mean_.copy_(flat.mean(1));
  latent_std_.copy_(flat.std(1).clamp_min(1e-5));
}

void SetStreaming(torch::nn::Module& module, bool on) {
  module.apply([on](torch::nn::Module& m) {
    if (auto* c = dynamic_cast<CausalConv3dImpl*>(&m)) c->SetStreaming(on);
    if (auto* r = dynamic_cast<TimeResampleImpl*>(&m)) r->SetStreaming(on);
  });
}

Status SaveVae(const VideoVae& vae, const ModelConfig& config, const std::string& dir,
               const VaeFolderExtra& extra) {
  REEL_ASSIGN_OR_RETURN(const std::string tmp, BeginFolder(dir));
  Json j = Json::MakeObject();
  j["format"] = "reel-vae 2";
  j["model"] = config.ToJson();
  if (extra) REEL_RETURN_IF_ERROR(extra(tmp, j));
  REEL_RETURN_IF_ERROR(WriteJsonFile(tmp, "config.json", j));
  try {
    torch::serialize::OutputArchive a;
    vae->save(a);
    a.save_to(tmp + "/vae.pt");
  } catch (const c10::Error& e) {
    return Status::IOError(tmp +
                           "/vae.pt: " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
  return CommitFolder(tmp, dir);
}

Result<LoadedVae> LoadVae(const std::string& dir, torch::Device device) {
  REEL_ASSIGN_OR_RETURN(LoadedVae out, LoadVaeForTraining(dir, device));
  const Json* step = out.train.is_object() ? out.train.Find("step") : nullptr;
  const Json* steps = out.train.is_object() ? out.train.Find("steps") : nullptr;
  if (step != nullptr && steps != nullptr && step->as_int() < steps->as_int()) {
    return Status::FailedPrecondition(
        dir + ": VAE training stopped at step " + std::to_string(step->as_int()) + " of " +
        std::to_string(steps->as_int()) +
        " (not finished; `reel generate train-vae --resume --out " + dir + "` finishes it)");
  }
  return out;
}

Result<SavedTraining> ReadVaeCheckpoint(const std::string& dir) {
  REEL_ASSIGN_OR_RETURN(
      const Json j,
      ReadConfigJson(dir, "reel-vae 2", "reel VAE checkpoint (reel generate train-vae)"));
  REEL_ASSIGN_OR_RETURN(SavedTraining saved, SavedTrainingFromJson(dir, j));
  const Json* step = saved.train.Find("step");
  saved.step = step != nullptr ? step->as_int() : 0;
  return saved;
}

Result<LoadedVae> LoadVaeForTraining(const std::string& dir, torch::Device device) {
  namespace fs = std::filesystem;
  REEL_ASSIGN_OR_RETURN(SavedTraining saved, ReadVaeCheckpoint(dir));
  LoadedVae out;
  out.config = std::move(saved.config);
  out.train = std::move(saved.train);
  out.vae = VideoVae(out.config.vae);
  const std::string weights = dir + "/vae.pt";
  if (!fs::exists(weights)) return Status::NotFound(weights + ": missing from the checkpoint");
  try {
    torch::serialize::InputArchive a;
    a.load_from(weights, device);
    out.vae->load(a);
  } catch (const c10::Error& e) {
    return Status::Corruption(weights + ": unreadable (" + FirstLine(e.what_without_backtrace()) +
                              ")");
  }
  out.vae->to(device);
  out.vae->eval();
  return out;
}

}  // namespace reel::gen
