// Shot-boundary detectors over per-frame series.
//
// Each detector reproduces the decision rule of PySceneDetect 0.7.1's detector of the
// same name with the same parameters and defaults, but runs over the stored per-frame
// metrics (FrameSeries) instead of frames, so cuts can be recomputed with other
// thresholds without decoding:
//
//   content    ContentDetector: weighted mean of the HSV(+edge) deltas >= threshold (27),
//              with the flash filter enforcing min_scene_len (merge mode by default)
//   adaptive   AdaptiveDetector: content score over the mean of the `window_width`
//              frames either side >= threshold (3.0) and content score >= min_content (15)
//   threshold  ThresholdDetector: fades through a frame average below threshold (12); the
//              cut goes into the dark stretch, placed by fade_bias
//   histogram  HistogramDetector: luma-histogram correlation <= 1 - threshold (0.05)
//   hash       HashDetector: normalised DCT-hash distance >= threshold (0.395)
//
// A cut is the index of the first frame of a new scene. min_scene_len is in frames and,
// as in PySceneDetect, is turned into seconds with the nominal frame rate and compared
// against presentation times, which keeps it right for variable-frame-rate video.
//
// Thread-safety: pure functions.

#ifndef REEL_CURATE_DETECTORS_H_
#define REEL_CURATE_DETECTORS_H_

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "curate/frame_analysis.h"
#include "util/rational.h"
#include "util/status.h"

namespace reel {

enum class DetectorKind { kContent, kAdaptive, kThreshold, kHistogram, kHash };
Result<DetectorKind> ParseDetectorKind(std::string_view name);
std::string_view DetectorKindName(DetectorKind kind);

enum class FlashMode { kMerge, kSuppress };

struct DetectorParams {
  DetectorKind kind = DetectorKind::kContent;
  // The detector's main threshold; NaN means the detector's default (27, 3.0, 12, 0.05,
  // 0.395 for content, adaptive, threshold, histogram, hash).
  double threshold = std::numeric_limits<double>::quiet_NaN();
  int64_t min_scene_len = 15;  // frames
  // content and adaptive
  std::array<double, 4> weights{1, 1, 1, 0};  // hue, saturation, luma, edges
  bool luma_only = false;
  FlashMode flash_mode = FlashMode::kMerge;
  // adaptive
  int window_width = 2;
  double min_content_val = 15.0;
  // threshold
  double fade_bias = 0.0;
  bool add_final_scene = false;

  double EffectiveThreshold() const;
  // A one-line description stored with the clips, e.g. "content threshold=27 ...".
  std::string Describe() const;
  Status Validate() const;
};

// Frame times in seconds since the stream start, from the stored timestamps.
std::vector<Rational> FrameTimes(const std::vector<int64_t>& pts, Rational time_base);

// ContentDetector's frame score (the weighted mean of the components).
std::vector<double> ContentScores(const FrameSeries& series, const DetectorParams& params);

// Runs the detector; `frame_rate` is the video's nominal rate (for min_scene_len).
Result<std::vector<int64_t>> DetectCuts(const FrameSeries& series,
                                        const std::vector<Rational>& times, Rational frame_rate,
                                        const DetectorParams& params);

struct GradualParams {
  double threshold = 20.0;      // content distance over `long_range` frames
  double max_motion = 0.004;    // camera speed in the window, fraction of the frame diagonal
  int long_range = 8;           // must match the analysis' long_range
};

// Gradual transitions (dissolves, slow fades) that no per-frame score catches: the
// picture changes a lot over `long_range` frames while the camera does not move (a pan
// or a zoom changes the picture too, but the global motion fit of the optical flow,
// translation plus zoom at the frame's half diagonal, explains it). One cut per transition,
// at its middle; transitions within min_scene_len of a cut in `existing` are skipped.
// Needs the motion series (flow); returns no cuts without them.
std::vector<int64_t> DetectGradual(const FrameSeries& series, const std::vector<Rational>& times,
                                   Rational frame_rate, int64_t min_scene_len,
                                   const std::vector<int64_t>& existing, const GradualParams& params);

}  // namespace reel

#endif  // REEL_CURATE_DETECTORS_H_
