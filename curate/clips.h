// From per-frame series to clips: cut planning and clip signals.
//
// PlanClips() turns a video's series into candidate clips: the chosen detector's cuts,
// plus (with `fades`) cuts inside fades to black and the trimming of black frames from
// clip ends, plus (with `gradual`) cuts in dissolves; then clips outside
// [min_seconds, max_seconds] are dropped or split into equal parts. Every boundary is a
// frame index with its exact presentation time.
//
// ComputeClipSignals() aggregates the per-frame signals over a clip:
//   motion        mean optical-flow magnitude per frame, in percent of the frame diagonal
//   static_ratio  fraction of frames whose flow is below 0.1% of the diagonal
//   camera_motion static | pan_left | pan_right | tilt_up | tilt_down | zoom_in | zoom_out |
//                 shaky, from the global similarity fit of the flow (a camera panning
//                 left moves the picture right)
//   sharpness     mean variance of the Laplacian (analysis resolution)
//   brightness    mean luma / 255;  contrast: mean luma standard deviation / 255
//   black_ratio   fraction of frames that are black (luma <= black_luma, std < 12) or blank
//                 (luma std < 2)
//   text_area     mean fraction covered by overlaid text (heuristic detector)
//   colorfulness  mean Hasler-Suesstrunk colourfulness
//   dominant_colors the basic colour terms covering at least 8% of the clip, largest first
//   phash         perceptual hash of the middle frame
//
// Thread-safety: pure functions.

#ifndef REEL_CURATE_CLIPS_H_
#define REEL_CURATE_CLIPS_H_

#include <cstdint>
#include <vector>

#include "curate/detectors.h"
#include "curate/frame_analysis.h"
#include "db/catalog.h"
#include "util/rational.h"

namespace reel {

struct SplitOptions {
  DetectorParams detector;
  bool fades = true;     // cut inside fades to black, trim black frames at clip ends
  bool gradual = true;   // cut inside dissolves (needs the signal series)
  GradualParams gradual_params;
  double black_luma = 20.0;        // a frame at or below this mean luma can be black
  Rational min_seconds{1, 1};      // shorter clips are dropped
  Rational max_seconds;            // longer clips are split evenly; 0 = no limit
};

// How a video's frames map to time.
struct VideoTiming {
  Rational time_base;
  Rational frame_rate;  // nominal
  Rational end_time;    // end of the last frame, seconds since the stream start
};

struct PlannedClip {
  int64_t start_frame = 0;
  int64_t end_frame = 0;  // exclusive
  Rational start_time;
  Rational end_time;
};

struct ClipPlan {
  std::vector<int64_t> cuts;  // scene boundaries before trimming and length rules
  std::vector<PlannedClip> clips;
  int64_t dropped_short = 0;
  int64_t split_long = 0;  // clips that were split
};

Result<ClipPlan> PlanClips(const FrameSeries& series, const VideoTiming& timing,
                           const SplitOptions& options);

ClipSignals ComputeClipSignals(const FrameSeries& series, int64_t start_frame, int64_t end_frame,
                               double black_luma = 20.0);

// Whether frame i of the series is black or blank.
bool IsBlackFrame(const FrameSeries& series, size_t i, double black_luma);

}  // namespace reel

#endif  // REEL_CURATE_CLIPS_H_
