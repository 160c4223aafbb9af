// Configurations of reel's text-to-video model: the video autoencoder, the text encoder,
// the diffusion transformer and the clip shape it trains on, by name or from JSON (the
// form stored with every checkpoint).
//
// Named configurations:
//   cpu-tiny   9 frames of 32x32 at 8 fps; VAE 16 base channels, 4 latent channels;
//              DiT width 96, depth 4, 6 heads; text encoder width 64, depth 2; about
//              1.6M parameters in all. For tests and the demo on a CPU.
//   cpu-small  17 frames of 64x64; DiT width 192, depth 6, 6 heads; about 4M.
//   h100-b     17 frames of 256x256 at 8 fps; VAE 64 base channels, 16 latent channels;
//              DiT-B width (768, depth 12, 12 heads); text encoder width 512, depth 6.
//
// Shapes: frames = 1 + 4k (an image is a one-frame video); height and width multiples of
// 8 x patch (the VAE compresses 8x8 in space and 4x in time: 1 + 4k frames -> 1 + k
// latent frames). Validate() names the first field that breaks a rule.
//
// Thread-safety: plain values.

#ifndef REEL_GENERATE_CONFIG_H_
#define REEL_GENERATE_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/json.h"
#include "util/status.h"

namespace reel::gen {

struct VaeConfig {
  int in_channels = 3;
  int base_channels = 16;
  std::vector<int> channel_mult = {1, 2, 2, 2};  // 4 levels: 3 spatial downs, 2 temporal
  int layers_per_level = 1;
  int latent_channels = 4;
  int norm_groups = 8;
  // Squared error beside L1 (see vae.h). 10 rather than 1: on the tests' four clips 500
  // steps reach 25.7 dB against 23.6 dB, and held out +0.4 dB at 600 steps.
  double mse_weight = 10.0;
  double kl_weight = 1e-6;
};

struct TextConfig {
  // "reel": the BPE tokenizer and text encoder below, trained with the denoiser. Otherwise
  // a CLIP model's name or file ("clip-vit-b-32"), whose text tower is used frozen: then
  // vocab_size and width are that tower's, depth and heads are unused, and max_tokens is
  // at most its context length (77).
  std::string encoder = "reel";
  int vocab_size = 512;  // BPE vocabulary learned from the catalog's captions
  int max_tokens = 24;   // captions are cut to this many tokens (end token included)
  int width = 64;
  int depth = 2;
  int heads = 2;
};

enum class AttentionMode { kFull, kFactorized, kAuto };

struct DitConfig {
  int width = 96;
  int depth = 4;
  int heads = 6;
  int patch_size = 2;  // spatial; 1 in time
  double mlp_ratio = 4.0;
  AttentionMode attention = AttentionMode::kAuto;
  // kAuto: full attention up to this many tokens, factorised spatial/temporal beyond.
  int64_t full_attention_max_tokens = 4096;
};

struct ClipShape {
  int frames = 9;
  int height = 32;
  int width = 32;
  int fps = 8;
};
// "17 frames 256x256 @ 8 fps" (width x height), as messages name a clip shape.
std::string DescribeClipShape(const ClipShape& shape);
// InvalidArgument "WHAT VALUE: must be RANGE" (the value as short as it reads back: "-1",
// "0.5", "nan", "inf"): the refusal of an option out of range.
Status OutOfRange(const std::string& what, double value, const std::string& range);

struct ModelConfig {
  std::string name;
  VaeConfig vae;
  TextConfig text;
  DitConfig dit;
  ClipShape clip;

  static Result<ModelConfig> Named(std::string_view name);
  static std::vector<std::string> Names();
  static Result<ModelConfig> FromJson(const Json& j);
  Json ToJson() const;
  Status Validate() const;

  int64_t latent_frames() const { return 1 + (clip.frames - 1) / 4; }
  int64_t latent_height() const { return clip.height / 8; }
  int64_t latent_width() const { return clip.width / 8; }
  bool frozen_text() const { return text.encoder != "reel"; }
  int64_t tokens() const {
    return latent_frames() * (latent_height() / dit.patch_size) * (latent_width() / dit.patch_size);
  }
};

std::string_view AttentionModeName(AttentionMode m);

// The fields of `given` that differ from `saved` within `sections` ("vae", "text", "dit",
// "clip"), each as "dit.width 64 (saved: 128)", in ToJson's order; empty when they agree.
// The name is not compared (a file may name a configuration anything). When `saved` has a
// frozen text encoder only text.encoder is compared: its other text fields come from the
// tower.
std::vector<std::string> ConfigDifferences(const ModelConfig& saved, const ModelConfig& given,
                                           const std::vector<std::string>& sections);

// A training saved in a folder as its config.json tells it, its weights not read: the
// model configuration, the options that shape its trajectory (the folder's `train`
// object: TrainOptions::ToJson for a denoiser, VaeTrainOptions::ToJson for a VAE) and the
// step it reached. What a resume continues with.
struct SavedTraining {
  ModelConfig config;
  Json train;
  int64_t step = 0;
};

}  // namespace reel::gen

#endif  // REEL_GENERATE_CONFIG_H_
