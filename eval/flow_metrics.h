// Motion metrics from OpenCV optical flow (DIS, medium preset, on grey frames): no
// learned weights, so the numbers are reel's own, not VBench's or EvalCrafter's (which
// use RAFT); the definitions follow theirs.
//
//   dynamic-degree  VBench's rule: for each consecutive pair, the mean of the largest 5%
//                   of flow magnitudes; a video is dynamic when at least
//                   round(4 * T / 16) pairs exceed 6 * min(H, W) / 256 pixels. Per video
//                   1 or 0; dataset: the fraction of dynamic videos.
//   warp-error      for each consecutive pair, frame t warped onto t+1 with the backward
//                   flow, compared where the forward-backward check finds no occlusion
//                   (|F(p + B(p)) + B(p)|^2 < 0.01 (|F|^2 + |B|^2) + 0.5): the mean squared
//                   RGB difference in [0, 1] units; per video the mean over pairs; dataset:
//                   mean over videos. Lower is steadier.
//
// Thread-safety: pure functions.

#ifndef REEL_EVAL_FLOW_METRICS_H_
#define REEL_EVAL_FLOW_METRICS_H_

#include <vector>

#include "video/frame.h"

namespace reel {

struct DynamicDegree {
  std::vector<double> pair_scores;  // top-5% mean flow magnitude per pair, pixels
  double threshold = 0;
  int count_needed = 0;
  bool dynamic = false;
};
DynamicDegree ComputeDynamicDegree(const std::vector<Frame>& rgb_frames);

double ComputeWarpError(const std::vector<Frame>& rgb_frames);

}  // namespace reel

#endif  // REEL_EVAL_FLOW_METRICS_H_
