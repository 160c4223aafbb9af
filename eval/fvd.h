// FVD feature extraction: an I3D TorchScript detector and the two named protocols.
//
// The detector is any TorchScript module whose forward is
//   forward(x: Tensor, rescale: bool, resize: bool, return_features: bool) -> Tensor
// as StyleGAN-V's i3d_torchscript.pt (Kinetics-400 I3D; 400 features per clip).
//
// Protocols (what reaches the detector, and how the statistics are formed):
//   stylegan-v      StyleGAN-V's compute_fvd: clips as uint8 [B, 3, T, H, W] at their own
//                   size; rescale, resize and return_features all true (the detector
//                   scales to [-1, 1] and resizes to 224 itself); mean and covariance with
//                   the 1/N normaliser from raw float64 moments.
//   common-metrics  JunyaoHu/common_metrics_on_video_quality, method 'styleganv': frames
//                   as float in [0, 1]; the shorter side resized to 224 with bilinear
//                   interpolation (align_corners false; the other side ceil(side * 224 /
//                   shorter)), a centre crop of 224 at offset (size - 224) // 2, then
//                   x * 2 - 1; the detector called with rescale and resize false and
//                   return_features true; covariance with N - 1 (numpy.cov).
//
// Thread-safety: Preprocess() is a pure function. A loaded FvdDetector may be called from
// one thread at a time (TorchScript modules are not re-entrant for us to assume).

#ifndef REEL_EVAL_FVD_H_
#define REEL_EVAL_FVD_H_

#include <memory>
#include <string>
#include <string_view>

#include <torch/script.h>
#include <torch/torch.h>

#include "util/status.h"

namespace reel {

enum class FvdProtocol { kStyleganV, kCommonMetrics };
std::string_view FvdProtocolName(FvdProtocol p);
Result<FvdProtocol> ParseFvdProtocol(std::string_view name);
// Whether the protocol's covariance uses N - 1.
inline bool UnbiasedCovariance(FvdProtocol p) {
  return p == FvdProtocol::kCommonMetrics;
}

// The detector's input for uint8 clips [B, 3, T, H, W] under `protocol`.
torch::Tensor PreprocessClips(const torch::Tensor& clips_uint8, FvdProtocol protocol);
// common-metrics' preprocess_single on one float clip [3, T, H, W] in [0, 1].
torch::Tensor CommonMetricsPreprocess(const torch::Tensor& clip, int resolution = 224);

class FvdDetector {
 public:
  // Loads a TorchScript file; the SHA-256 of the file identifies it in results and caches.
  static Result<std::unique_ptr<FvdDetector>> Load(const std::string& path,
                                                   torch::Device device = torch::kCPU);
  // Features [B, D] (float32, CPU) of uint8 clips [B, 3, T, H, W].
  Result<torch::Tensor> Features(const torch::Tensor& clips_uint8, FvdProtocol protocol);
  // The detector call alone on an already preprocessed batch (for benchmarks).
  Result<torch::Tensor> Forward(const torch::Tensor& input, FvdProtocol protocol);

  const std::string& sha256() const { return sha256_; }
  const std::string& path() const { return path_; }
  torch::Device device() const { return device_; }

 private:
  FvdDetector() = default;
  torch::jit::Module module_;
  std::string sha256_;
  std::string path_;
  torch::Device device_ = torch::kCPU;
};

}  // namespace reel

#endif  // REEL_EVAL_FVD_H_
