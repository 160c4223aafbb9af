#include "curate/detectors.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "util/strings.h"

namespace reel {
namespace {

// PySceneDetect's FlashFilter (scenedetect/detector.py, 0.7.1), on exact frame times.
class FlashFilter {
 public:
  FlashFilter(FlashMode mode, Rational length_secs, const std::vector<Rational>& times)
      : mode_(mode), length_(length_secs), times_(times) {}

  // Cuts released by frame `i` with its above-threshold flag.
  std::vector<int64_t> Filter(int64_t i, bool above) {
    if (length_ <= Rational()) {
      if (above) return {i};
      return {};
    }
    if (!last_above_.has_value()) last_above_ = i;
    const bool min_length_met = Elapsed(*last_above_, i) >= length_;
    if (mode_ == FlashMode::kSuppress) {
      if (!(above && min_length_met)) return {};
      last_above_ = i;
      return {i};
    }
    if (above) last_above_ = i;
    if (merge_triggered_) {
      if (min_length_met && !above && Elapsed(merge_start_, *last_above_) >= length_) {
        merge_triggered_ = false;
        return {*last_above_};
      }
      return {};
    }
    if (!above) return {};
    if (min_length_met) {
      merge_enabled_ = true;
      return {i};
    }
    if (merge_enabled_) {
      merge_triggered_ = true;
      merge_start_ = i;
    }
    return {};
  }

 private:
  Rational Elapsed(int64_t from, int64_t to) const { return times_[to] - times_[from]; }

  FlashMode mode_;
  Rational length_;
  const std::vector<Rational>& times_;
  std::optional<int64_t> last_above_;
  bool merge_enabled_ = false;
  bool merge_triggered_ = false;
  int64_t merge_start_ = 0;
};

Rational MinLengthSeconds(int64_t frames, Rational frame_rate) {
  if (frames <= 0 || !frame_rate.valid() || frame_rate <= Rational()) return Rational();
  return Rational::FromInt(frames) / frame_rate;
}

std::vector<int64_t> ContentCuts(const FrameSeries& s, const std::vector<Rational>& times,
                                 Rational frame_rate, const DetectorParams& p) {
  const std::vector<double> scores = ContentScores(s, p);
  const double threshold = p.EffectiveThreshold();
  FlashFilter filter(p.flash_mode, MinLengthSeconds(p.min_scene_len, frame_rate), times);
  std::vector<int64_t> cuts;
  for (size_t i = 0; i < scores.size(); ++i) {
    for (int64_t c : filter.Filter(static_cast<int64_t>(i), scores[i] >= threshold)) {
      cuts.push_back(c);
    }
  }
  return cuts;
}

std::vector<int64_t> AdaptiveCuts(const FrameSeries& s, const std::vector<Rational>& times,
                                  Rational frame_rate, const DetectorParams& p) {
  const std::vector<double> scores = ContentScores(s, p);
  const int w = p.window_width;
  const Rational min_len = MinLengthSeconds(p.min_scene_len, frame_rate);
  const double threshold = p.EffectiveThreshold();
  std::vector<int64_t> cuts;
  int64_t last_cut = 0;
  const int64_t n = static_cast<int64_t>(scores.size());
  for (int64_t i = 2 * w; i < n; ++i) {
    const int64_t target = i - w;
    double sum = 0;
    for (int64_t k = i - 2 * w; k <= i; ++k) {
      if (k != target) sum += scores[k];
    }
    const double average = sum / (2.0 * w);
    const double target_score = scores[target];
    double ratio = 0.0;
    if (std::abs(average) >= 0.00001) {
      ratio = std::min(target_score / average, 255.0);
    } else if (target_score >= p.min_content_val) {
      ratio = 255.0;
    }
    const bool threshold_met = ratio >= threshold && target_score >= p.min_content_val;
    const bool min_length_met = times[i] - times[last_cut] >= min_len;
    if (threshold_met && min_length_met) {
      last_cut = target;
      cuts.push_back(target);
    }
  }
  return cuts;
}

std::vector<int64_t> ThresholdCuts(const FrameSeries& s, const std::vector<Rational>& times,
                                   Rational frame_rate, const DetectorParams& p) {
  // The frame average is compared with an integer threshold, as ThresholdDetector does.
  const double threshold = static_cast<double>(static_cast<int64_t>(p.EffectiveThreshold()));
  const Rational min_len = MinLengthSeconds(p.min_scene_len, frame_rate);
  std::vector<int64_t> cuts;
  const int64_t n = static_cast<int64_t>(s.mean_bgr.size());
  if (n == 0) return cuts;
  int64_t last_scene_cut = 0;
  bool fade_out = s.mean_bgr[0] < threshold;  // the state of the last fade
  int64_t fade_frame = 0;
  for (int64_t i = 1; i < n; ++i) {
    const double avg = s.mean_bgr[i];
    if (!fade_out && avg < threshold) {
      fade_out = true;
      fade_frame = i;
    } else if (fade_out && avg >= threshold) {
      if (times[i] - times[last_scene_cut] >= min_len) {
        const int64_t duration = i - fade_frame;
        // Python's round(): halves go to the even neighbour.
        const int64_t offset =
            static_cast<int64_t>(std::nearbyint(duration * (1.0 + p.fade_bias) / 2.0));
        cuts.push_back(fade_frame + offset);
        last_scene_cut = i;
      }
      fade_out = false;
      fade_frame = i;
    }
  }
  if (p.add_final_scene && fade_out && times[n - 1] - times[last_scene_cut] >= min_len) {
    cuts.push_back(fade_frame);
  }
  return cuts;
}

template <typename Above>
std::vector<int64_t> SimpleCuts(size_t n, const std::vector<Rational>& times, Rational frame_rate,
                                const DetectorParams& p, Above above) {
  const Rational min_len = MinLengthSeconds(p.min_scene_len, frame_rate);
  std::vector<int64_t> cuts;
  int64_t last_cut = 0;
  for (size_t i = 1; i < n; ++i) {
    if (above(i) && times[i] - times[last_cut] >= min_len) {
      cuts.push_back(static_cast<int64_t>(i));
      last_cut = static_cast<int64_t>(i);
    }
  }
  return cuts;
}

}  // namespace

Result<DetectorKind> ParseDetectorKind(std::string_view name) {
  if (name == "content") return DetectorKind::kContent;
  if (name == "adaptive") return DetectorKind::kAdaptive;
  if (name == "threshold") return DetectorKind::kThreshold;
  if (name == "histogram") return DetectorKind::kHistogram;
  if (name == "hash") return DetectorKind::kHash;
  return Status::InvalidArgument("unknown detector '" + std::string(name) +
                                 "' (expected content, adaptive, threshold, histogram or hash)");
}

std::string_view DetectorKindName(DetectorKind kind) {
  switch (kind) {
    case DetectorKind::kContent:
      return "content";
    case DetectorKind::kAdaptive:
      return "adaptive";
    case DetectorKind::kThreshold:
      return "threshold";
    case DetectorKind::kHistogram:
      return "histogram";
    case DetectorKind::kHash:
      return "hash";
  }
  return "content";
}

double DetectorParams::EffectiveThreshold() const {
  if (!std::isnan(threshold)) return threshold;
  switch (kind) {
    case DetectorKind::kContent:
      return 27.0;
    case DetectorKind::kAdaptive:
      return 3.0;
    case DetectorKind::kThreshold:
      return 12.0;
    case DetectorKind::kHistogram:
      return 0.05;
    case DetectorKind::kHash:
      return 0.395;
  }
  return 27.0;
}

std::string DetectorParams::Describe() const {
  std::ostringstream s;
  s << DetectorKindName(kind) << " threshold=" << EffectiveThreshold()
    << " min_scene_len=" << min_scene_len;
  if (kind == DetectorKind::kContent || kind == DetectorKind::kAdaptive) {
    if (luma_only) {
      s << " luma_only";
    } else if (weights != std::array<double, 4>{1, 1, 1, 0}) {
      s << " weights=" << weights[0] << "," << weights[1] << "," << weights[2] << ","
        << weights[3];
    }
  }
  if (kind == DetectorKind::kContent && flash_mode == FlashMode::kSuppress) s << " filter=suppress";
  if (kind == DetectorKind::kAdaptive) {
    s << " window_width=" << window_width << " min_content_val=" << min_content_val;
  }
  if (kind == DetectorKind::kThreshold && fade_bias != 0) s << " fade_bias=" << fade_bias;
  return s.str();
}

Status DetectorParams::Validate() const {
  const double t = EffectiveThreshold();
  if (!std::isfinite(t) || t < 0) return Status::InvalidArgument("threshold must be >= 0");
  if ((kind == DetectorKind::kHistogram || kind == DetectorKind::kHash) && t > 1) {
    return Status::InvalidArgument(std::string(DetectorKindName(kind)) +
                                   " threshold must be within [0, 1]");
  }
  if (min_scene_len < 0) return Status::InvalidArgument("min scene length must be >= 0");
  if (window_width < 1) return Status::InvalidArgument("window width must be at least 1");
  if (fade_bias < -1 || fade_bias > 1) {
    return Status::InvalidArgument("fade bias must be within [-1, 1]");
  }
  double total = 0;
  for (double w : weights) total += std::abs(w);
  if (!luma_only && total == 0) return Status::InvalidArgument("all content weights are zero");
  return Status::OK();
}

std::vector<Rational> FrameTimes(const std::vector<int64_t>& pts, Rational time_base) {
  std::vector<Rational> t;
  t.reserve(pts.size());
  const int64_t origin = pts.empty() ? 0 : pts.front();
  for (int64_t p : pts) t.push_back(TicksToSeconds(p - origin, time_base));
  return t;
}

std::vector<double> ContentScores(const FrameSeries& s, const DetectorParams& p) {
  const std::array<double, 4> w = p.luma_only ? std::array<double, 4>{0, 0, 1, 0} : p.weights;
  double total = 0;
  for (double x : w) total += std::abs(x);
  const size_t n = s.delta_hue.size();
  std::vector<double> scores(n, 0.0);
  if (total == 0) return scores;
  const bool edges = !s.delta_edges.empty();
  for (size_t i = 0; i < n; ++i) {
    double v = w[0] * s.delta_hue[i] + w[1] * s.delta_sat[i] + w[2] * s.delta_lum[i];
    if (edges) v += w[3] * s.delta_edges[i];
    scores[i] = v / total;
  }
  return scores;
}

Result<std::vector<int64_t>> DetectCuts(const FrameSeries& s, const std::vector<Rational>& times,
                                        Rational frame_rate, const DetectorParams& p) {
  REEL_RETURN_IF_ERROR(p.Validate());
  if (times.size() != s.size()) {
    return Status::InvalidArgument("frame times and series differ in length");
  }
  const bool uses_edges = (p.kind == DetectorKind::kContent || p.kind == DetectorKind::kAdaptive) &&
                          !p.luma_only && p.weights[3] != 0;
  if (uses_edges && s.delta_edges.empty()) {
    return Status::FailedPrecondition(
        "the edge weight needs edge data, which this scan did not compute (scan with --edges)");
  }
  switch (p.kind) {
    case DetectorKind::kContent:
      return ContentCuts(s, times, frame_rate, p);
    case DetectorKind::kAdaptive:
      return AdaptiveCuts(s, times, frame_rate, p);
    case DetectorKind::kThreshold:
      return ThresholdCuts(s, times, frame_rate, p);
    case DetectorKind::kHistogram: {
      const double limit = std::max(0.0, std::min(1.0, 1.0 - p.EffectiveThreshold()));
      return SimpleCuts(s.hist_corr.size(), times, frame_rate, p,
                        [&](size_t i) { return s.hist_corr[i] <= limit; });
    }
    case DetectorKind::kHash: {
      const double limit = p.EffectiveThreshold();
      return SimpleCuts(s.hash_dist.size(), times, frame_rate, p,
                        [&](size_t i) { return s.hash_dist[i] >= limit; });
    }
  }
  return Status::Internal("unhandled detector");
}

std::vector<int64_t> DetectGradual(const FrameSeries& s, const std::vector<Rational>& times,
                                   Rational frame_rate, int64_t min_scene_len,
                                   const std::vector<int64_t>& existing, const GradualParams& p) {
  std::vector<int64_t> cuts;
  const int64_t n = static_cast<int64_t>(s.size());
  if (!s.has_motion() || s.delta_long.size() != static_cast<size_t>(n) || n < 2) return cuts;
  const double diagonal = std::hypot(s.width, s.height);
  const int k = std::max(1, p.long_range);
  // Candidate frames: a large change over k frames with little motion across them.
  std::vector<bool> candidate(static_cast<size_t>(n), false);
  for (int64_t i = k; i < n; ++i) {
    if (s.delta_long[i] < p.threshold) continue;
    double speed = 0;
    for (int64_t j = i - k + 1; j <= i; ++j) {
      speed += std::hypot(s.cam_tx[j], s.cam_ty[j]) + std::abs(s.cam_zoom[j]) * diagonal / 2;
    }
    speed /= k;
    if (speed <= p.max_motion * diagonal) candidate[static_cast<size_t>(i)] = true;
  }
  const Rational min_len = MinLengthSeconds(min_scene_len, frame_rate);
  std::vector<int64_t> all = existing;
  std::sort(all.begin(), all.end());
  auto near_existing = [&](int64_t f) {
    for (int64_t c : all) {
      const Rational d = times[std::max(c, f)] - times[std::min(c, f)];
      if (d < min_len) return true;
    }
    return false;
  };
  for (int64_t i = 0; i < n;) {
    if (!candidate[static_cast<size_t>(i)]) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j + 1 < n && candidate[static_cast<size_t>(j + 1)]) ++j;
    // delta_long is high from the transition's second frame until k frames after its
    // end, so the transition's middle lies k/2 before the middle of the run.
    const int64_t cut = std::clamp<int64_t>((i + j) / 2 - k / 2 + 1, 1, n - 1);
    if (!near_existing(cut)) {
      cuts.push_back(cut);
      all.push_back(cut);
    }
    i = j + 1;
  }
  return cuts;
}

}  // namespace reel
