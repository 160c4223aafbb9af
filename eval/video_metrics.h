// Per-video metrics on CLIP features and on frames (libtorch only), and how each is
// aggregated over a dataset. Features are CLIP image embeddings of a video's frames in
// order, [T, D]; text features [D]. Cosines are of L2-normalised vectors.
//
//   clipsim     per video: mean over frames of 100 * cos(text, frame); dataset: mean over
//               videos. torchmetrics mode (torchmetrics' CLIPScore): max(0, the mean over
//               every (frame, text) pair of the dataset).
//   clip-temp   EvalCrafter's CLIP-Temp: per video the mean cosine of consecutive frames;
//               dataset: mean over videos.
//   background-consistency  VBench: s_i = (max(0, cos(f_i-1, f_i)) + max(0, cos(f_0, f_i)))
//               / 2 for i >= 1; per video sum s_i / (T - 1); dataset: sum over all videos
//               of sum s_i / sum of (T - 1) (frame-weighted, as VBench).
//   flicker     VBench temporal flickering on uint8 frames at their own size:
//               (255 - mean_t mean |x_t - x_t+1|) / 255; dataset: mean over videos.
//
// VbenchClipPreprocess reproduces VBench's clip_transform on uint8 tensors: torchvision
// Resize(224, bicubic, antialias=False) (shorter side to 224, the other int(224 * long /
// short), clamped and rounded back to uint8), CenterCrop(224) (offsets rounded half to
// even, as Python's round), /255, CLIP's mean and std.
//
// Thread-safety: pure functions.

#ifndef REEL_EVAL_VIDEO_METRICS_H_
#define REEL_EVAL_VIDEO_METRICS_H_

#include <cstdint>

#include <torch/torch.h>

namespace reel {

torch::Tensor L2Normalize(const torch::Tensor& x);  // along the last dimension

// Sum over frames of 100 * cos(text, frame), and the frame count.
struct ClipScoreSum {
  double sum = 0;
  int64_t frames = 0;
  double mean() const { return frames > 0 ? sum / static_cast<double>(frames) : 0.0; }
};
ClipScoreSum ClipScoreOfVideo(const torch::Tensor& frame_features,
                              const torch::Tensor& text_feature);

double ClipTemp(const torch::Tensor& frame_features);  // needs T >= 2

struct ConsistencySum {
  double sum = 0;     // sum of s_i
  int64_t pairs = 0;  // T - 1
  double mean() const { return pairs > 0 ? sum / static_cast<double>(pairs) : 0.0; }
};
ConsistencySum BackgroundConsistency(const torch::Tensor& frame_features);

// frames: uint8 [T, H, W, C] (or [T, C, H, W]; only the pairwise differences matter).
double Flicker(const torch::Tensor& frames_uint8);

// frames: uint8 [T, 3, H, W] -> float [T, 3, n_px, n_px].
torch::Tensor VbenchClipPreprocess(const torch::Tensor& frames_uint8, int n_px = 224);

}  // namespace reel

#endif  // REEL_EVAL_VIDEO_METRICS_H_
