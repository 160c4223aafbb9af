#include "eval/video_metrics.h"

#include <cfenv>
#include <cmath>

#include "nets/clip.h"

namespace reel {

torch::Tensor L2Normalize(const torch::Tensor& x) {
  return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12);
}

ClipScoreSum ClipScoreOfVideo(const torch::Tensor& frame_features,
                              const torch::Tensor& text_feature) {
  const torch::Tensor f = L2Normalize(frame_features.to(torch::kDouble));
  const torch::Tensor t = L2Normalize(text_feature.to(torch::kDouble).reshape({-1}));
  ClipScoreSum out;
  out.sum = (100.0 * f.matmul(t)).sum().item<double>();
  out.frames = frame_features.size(0);
  return out;
}

double ClipTemp(const torch::Tensor& frame_features) {
  const torch::Tensor f = L2Normalize(frame_features.to(torch::kDouble));
  const int64_t t = f.size(0);
  if (t < 2) return 0.0;
  return (f.slice(0, 0, t - 1) * f.slice(0, 1, t)).sum(-1).mean().item<double>();
}

ConsistencySum BackgroundConsistency(const torch::Tensor& frame_features) {
  const torch::Tensor f = L2Normalize(frame_features.to(torch::kDouble));
  const int64_t t = f.size(0);
  ConsistencySum out;
  if (t < 2) return out;
  const torch::Tensor prev = (f.slice(0, 0, t - 1) * f.slice(0, 1, t)).sum(-1).clamp_min(0);
  const torch::Tensor first = f.slice(0, 1, t).matmul(f[0]).clamp_min(0);
  out.sum = ((prev + first) / 2).sum().item<double>();
  out.pairs = t - 1;
  return out;
}

double Flicker(const torch::Tensor& frames_uint8) {
  const int64_t t = frames_uint8.size(0);
  if (t < 2) return 1.0;
  const torch::Tensor x = frames_uint8.to(torch::kFloat);
  // np.mean(cv2.absdiff(float32, float32)) per pair, then the mean over pairs.
  const torch::Tensor per_pair =
      (x.slice(0, 1, t) - x.slice(0, 0, t - 1)).abs().flatten(1).to(torch::kDouble).mean(1);
  return (255.0 - per_pair.mean().item<double>()) / 255.0;
}

torch::Tensor VbenchClipPreprocess(const torch::Tensor& frames_uint8, int n_px) {
  namespace F = torch::nn::functional;
  const int64_t h = frames_uint8.size(2), w = frames_uint8.size(3);
  int64_t nh, nw;
  if (w <= h) {
    nw = n_px;
    nh = static_cast<int64_t>(static_cast<double>(n_px) * h / w);
  } else {
    nh = n_px;
    nw = static_cast<int64_t>(static_cast<double>(n_px) * w / h);
  }
  torch::Tensor x =
      F::interpolate(frames_uint8.to(torch::kFloat), F::InterpolateFuncOptions()
                                                         .size(std::vector<int64_t>{nh, nw})
                                                         .mode(torch::kBicubic)
                                                         .align_corners(false));
  x = x.clamp(0, 255).round();  // back to uint8 values
  // CenterCrop: int(round((size - n) / 2.0)) with round half to even.
  const int prev = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const int64_t top = static_cast<int64_t>(std::nearbyint((nh - n_px) / 2.0));
  const int64_t left = static_cast<int64_t>(std::nearbyint((nw - n_px) / 2.0));
  std::fesetround(prev);
  x = x.slice(2, top, top + n_px).slice(3, left, left + n_px) / 255.0;
  const torch::Tensor mean =
      torch::tensor({kClipMean[0], kClipMean[1], kClipMean[2]}).view({1, 3, 1, 1});
  const torch::Tensor std =
      torch::tensor({kClipStd[0], kClipStd[1], kClipStd[2]}).view({1, 3, 1, 1});
  return ((x - mean) / std).contiguous();
}

}  // namespace reel
