#include "eval/fvd.h"

#include <cmath>

#include "nets/torch_compat.h"
#include "util/sha256.h"

namespace reel {

std::string_view FvdProtocolName(FvdProtocol p) {
  return p == FvdProtocol::kStyleganV ? "stylegan-v" : "common-metrics";
}

Result<FvdProtocol> ParseFvdProtocol(std::string_view name) {
  if (name == "stylegan-v") return FvdProtocol::kStyleganV;
  if (name == "common-metrics") return FvdProtocol::kCommonMetrics;
  return Status::InvalidArgument("unknown FVD protocol '" + std::string(name) +
                                 "' (known: stylegan-v, common-metrics)");
}

torch::Tensor CommonMetricsPreprocess(const torch::Tensor& clip, int resolution) {
  const int64_t h = clip.size(2), w = clip.size(3);
  const double scale = static_cast<double>(resolution) / static_cast<double>(std::min(h, w));
  int64_t th, tw;
  if (h < w) {
    th = resolution;
    tw = static_cast<int64_t>(std::ceil(w * scale));
  } else {
    th = static_cast<int64_t>(std::ceil(h * scale));
    tw = resolution;
  }
  namespace F = torch::nn::functional;
  // [C, T, H, W] read as a batch of C images with T channels, as F.interpolate does there.
  torch::Tensor x = F::interpolate(clip, F::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{th, tw})
                                             .mode(torch::kBilinear)
                                             .align_corners(false));
  const int64_t hs = (x.size(2) - resolution) / 2, ws = (x.size(3) - resolution) / 2;
  x = x.slice(2, hs, hs + resolution).slice(3, ws, ws + resolution);
  return ((x - 0.5) * 2).contiguous();
}

torch::Tensor PreprocessClips(const torch::Tensor& clips_uint8, FvdProtocol protocol) {
  if (protocol == FvdProtocol::kStyleganV) return clips_uint8;
  const torch::Tensor x = clips_uint8.to(torch::kFloat) / 255.0;
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < x.size(0); ++b) out.push_back(CommonMetricsPreprocess(x[b]));
  return torch::stack(out);
}

Result<std::unique_ptr<FvdDetector>> FvdDetector::Load(const std::string& path,
                                                       torch::Device device) {
  std::unique_ptr<FvdDetector> d(new FvdDetector());
  REEL_ASSIGN_OR_RETURN(d->sha256_, Sha256File(path));
  d->path_ = path;
  d->device_ = device;
  try {
    d->module_ = torch::jit::load(path, device);
    d->module_.eval();
  } catch (const c10::Error& e) {
    return Status::Corruption(path + ": not a TorchScript detector: " + e.what_without_backtrace());
  }
  auto method = d->module_.find_method("forward");
  if (!method.has_value()) return Status::Corruption(path + ": the detector has no forward method");
  // forward(self, x, rescale, resize, return_features)
  const auto& schema = method->function().getSchema();
  if (schema.arguments().size() != 5) {
    return Status::Corruption(path + ": the detector's forward takes " +
                              std::to_string(schema.arguments().size() - 1) +
                              " arguments; expected forward(x, rescale: bool, resize: bool, "
                              "return_features: bool) as StyleGAN-V's i3d_torchscript.pt");
  }
  return d;
}

Result<torch::Tensor> FvdDetector::Forward(const torch::Tensor& input, FvdProtocol protocol) {
  const bool inside = protocol == FvdProtocol::kStyleganV;
  try {
    compat::InferenceGuard guard;
    std::vector<c10::IValue> args = {input.to(device_), c10::IValue(inside), c10::IValue(inside),
                                     c10::IValue(true)};
    torch::Tensor out = module_.forward(args).toTensor();
    if (out.dim() != 2 || out.size(0) != input.size(0)) {
      return Status::Corruption(path_ + ": the detector returned a tensor of " +
                                std::to_string(out.dim()) +
                                " dimensions; expected [batch, features]");
    }
    return out.to(torch::kCPU, torch::kFloat).contiguous();
  } catch (const c10::Error& e) {
    return Status::Internal(path_ + ": detector failed: " + e.what_without_backtrace());
  }
}

Result<torch::Tensor> FvdDetector::Features(const torch::Tensor& clips_uint8,
                                            FvdProtocol protocol) {
  if (clips_uint8.dim() != 5 || clips_uint8.size(1) != 3 ||
      clips_uint8.scalar_type() != torch::kByte) {
    return Status::InvalidArgument("FVD clips must be uint8 [B, 3, T, H, W]");
  }
  torch::Tensor input;
  {
    compat::InferenceGuard guard;
    input = PreprocessClips(clips_uint8, protocol);
  }
  return Forward(input, protocol);
}

}  // namespace reel
