#include "curate/clips.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace reel {
namespace {

double Mean(const std::vector<float>& v, int64_t from, int64_t to) {
  if (v.empty() || to <= from) return 0;
  double s = 0;
  for (int64_t i = from; i < to; ++i) s += v[static_cast<size_t>(i)];
  return s / static_cast<double>(to - from);
}

std::optional<double> MeanOr(const std::vector<float>& v, int64_t from, int64_t to, double scale = 1.0) {
  if (v.empty() || to <= from) return std::nullopt;
  return Mean(v, from, to) * scale;
}

struct CameraMotion {
  std::string label;
  Json details = Json::MakeObject();
};

// Classifies the camera from the per-frame global motion fits of frames (from, to).
CameraMotion ClassifyCamera(const FrameSeries& s, int64_t from, int64_t to) {
  CameraMotion out;
  const int64_t n = to - from;
  if (n <= 0 || s.cam_tx.empty()) return out;
  const double diag = std::hypot(s.width, s.height);
  const double half = diag / 2.0;
  double tx = 0, ty = 0, zoom = 0, speed = 0;
  int64_t pos_x = 0, neg_x = 0, pos_y = 0, neg_y = 0, pos_z = 0, neg_z = 0;
  const double eps = 0.0005 * diag;
  for (int64_t i = from; i < to; ++i) {
    const double x = s.cam_tx[i], y = s.cam_ty[i], z = s.cam_zoom[i];
    tx += x;
    ty += y;
    zoom += z;
    speed += std::hypot(x, y) + std::abs(z) * half;
    pos_x += x > eps;
    neg_x += x < -eps;
    pos_y += y > eps;
    neg_y += y < -eps;
    pos_z += z * half > eps;
    neg_z += z * half < -eps;
  }
  tx /= n;
  ty /= n;
  zoom /= n;
  speed /= n;
  out.details["tx"] = tx / s.width;  // picture shift per frame, fraction of width
  out.details["ty"] = ty / s.height;
  out.details["zoom"] = zoom;        // relative scale change per frame
  out.details["speed"] = speed / diag;
  if (speed < 0.0015 * diag) {
    out.label = "static";
    return out;
  }
  // The dominant component must be consistent in sign across most frames.
  const double zoom_px = std::abs(zoom) * half;
  auto consistent = [n](int64_t agree) { return agree >= 0.6 * n; };
  if (zoom_px > std::abs(tx) && zoom_px > std::abs(ty)) {
    if (zoom > 0 && consistent(pos_z)) {
      out.label = "zoom_in";
    } else if (zoom < 0 && consistent(neg_z)) {
      out.label = "zoom_out";
    }
  } else if (std::abs(tx) >= std::abs(ty)) {
    // The picture moving right means the camera turns left.
    if (tx > 0 && consistent(pos_x)) {
      out.label = "pan_left";
    } else if (tx < 0 && consistent(neg_x)) {
      out.label = "pan_right";
    }
  } else {
    // The picture moving down means the camera tilts up.
    if (ty > 0 && consistent(pos_y)) {
      out.label = "tilt_up";
    } else if (ty < 0 && consistent(neg_y)) {
      out.label = "tilt_down";
    }
  }
  if (out.label.empty()) out.label = "shaky";
  return out;
}

Rational BoundaryTime(const std::vector<Rational>& times, const VideoTiming& timing, int64_t frame) {
  if (frame < static_cast<int64_t>(times.size())) return times[static_cast<size_t>(frame)];
  return timing.end_time;
}

}  // namespace

bool IsBlackFrame(const FrameSeries& s, size_t i, double black_luma) {
  const double mean = s.luma_mean[i], std = s.luma_std[i];
  return (mean <= black_luma && std < 12.0) || std < 2.0;
}

Result<ClipPlan> PlanClips(const FrameSeries& s, const VideoTiming& recorded,
                           const SplitOptions& options) {
  ClipPlan plan;
  const int64_t n = static_cast<int64_t>(s.size());
  if (n == 0) return plan;
  if (!recorded.time_base.valid() || recorded.time_base <= Rational()) {
    return Status::InvalidArgument("video has no time base");
  }
  const std::vector<Rational> times = FrameTimes(s.pts, recorded.time_base);
  // The last clip ends where the video does; a recorded end at or before the last frame's
  // time (a length the container did not give) would make it empty: one frame period on.
  VideoTiming timing = recorded;
  if (!timing.end_time.valid() || timing.end_time <= times.back()) {
    const Rational period =
        timing.frame_rate.valid() && timing.frame_rate > Rational()
            ? timing.frame_rate.Inverse()
            : (n > 1 ? (times.back() - times.front()) / Rational::FromInt(n - 1) : Rational(1, 25));
    timing.end_time = times.back() + period;
  }
  REEL_ASSIGN_OR_RETURN(std::vector<int64_t> cuts,
                        DetectCuts(s, times, timing.frame_rate, options.detector));
  if (options.fades && options.detector.kind != DetectorKind::kThreshold) {
    DetectorParams fade = options.detector;
    fade.kind = DetectorKind::kThreshold;
    fade.threshold = std::numeric_limits<double>::quiet_NaN();
    REEL_ASSIGN_OR_RETURN(std::vector<int64_t> fade_cuts,
                          DetectCuts(s, times, timing.frame_rate, fade));
    cuts.insert(cuts.end(), fade_cuts.begin(), fade_cuts.end());
  }
  if (options.gradual) {
    const std::vector<int64_t> gradual =
        DetectGradual(s, times, timing.frame_rate, options.detector.min_scene_len, cuts,
                      options.gradual_params);
    cuts.insert(cuts.end(), gradual.begin(), gradual.end());
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  cuts.erase(std::remove_if(cuts.begin(), cuts.end(), [n](int64_t c) { return c <= 0 || c >= n; }),
             cuts.end());
  plan.cuts = cuts;

  std::vector<std::pair<int64_t, int64_t>> scenes;
  int64_t start = 0;
  for (int64_t c : cuts) {
    scenes.emplace_back(start, c);
    start = c;
  }
  scenes.emplace_back(start, n);

  for (auto [a, b] : scenes) {
    if (options.fades) {
      while (a < b && IsBlackFrame(s, static_cast<size_t>(a), options.black_luma)) ++a;
      while (b > a && IsBlackFrame(s, static_cast<size_t>(b - 1), options.black_luma)) --b;
      if (a >= b) continue;  // all black
    }
    const Rational t0 = BoundaryTime(times, timing, a);
    const Rational t1 = BoundaryTime(times, timing, b);
    const Rational length = t1 - t0;
    if (length < options.min_seconds) {
      ++plan.dropped_short;
      continue;
    }
    int64_t parts = 1;
    if (options.max_seconds > Rational() && length > options.max_seconds) {
      parts = (length / options.max_seconds).Ceil();
      parts = std::min<int64_t>(parts, b - a);
      ++plan.split_long;
    }
    for (int64_t k = 0; k < parts; ++k) {
      PlannedClip c;
      c.start_frame = a + (b - a) * k / parts;
      c.end_frame = a + (b - a) * (k + 1) / parts;
      c.start_time = BoundaryTime(times, timing, c.start_frame);
      c.end_time = BoundaryTime(times, timing, c.end_frame);
      plan.clips.push_back(c);
    }
  }
  return plan;
}

ClipSignals ComputeClipSignals(const FrameSeries& s, int64_t start, int64_t end, double black_luma) {
  ClipSignals g;
  const int64_t n = end - start;
  if (n <= 0 || static_cast<size_t>(end) > s.size()) return g;
  g.brightness = MeanOr(s.luma_mean, start, end, 1.0 / 255.0);
  g.contrast = MeanOr(s.luma_std, start, end, 1.0 / 255.0);
  int64_t black = 0;
  for (int64_t i = start; i < end; ++i) black += IsBlackFrame(s, static_cast<size_t>(i), black_luma);
  g.black_ratio = static_cast<double>(black) / n;
  g.phash = HashToHex(static_cast<uint64_t>(s.phash[static_cast<size_t>(start + n / 2)]));
  g.extra["phash_first"] = HashToHex(static_cast<uint64_t>(s.phash[static_cast<size_t>(start)]));
  g.extra["phash_last"] = HashToHex(static_cast<uint64_t>(s.phash[static_cast<size_t>(end - 1)]));
  // Each signal needs its analysis group; a group not computed leaves its signals unset.
  g.sharpness = MeanOr(s.sharpness, start, end);
  g.colorfulness = MeanOr(s.colorfulness, start, end);
  g.text_area = MeanOr(s.text_area, start, end);
  // Flow of frame i is measured against frame i-1; the clip's first frame looks across
  // the cut, so motion uses frames (start, end).
  const double diag = std::hypot(s.width, s.height);
  const int64_t from = start + 1;
  if (s.has_motion() && end > from && diag > 0) {
    g.motion = Mean(s.flow_mag, from, end) / diag * 100.0;
    int64_t still = 0;
    for (int64_t i = from; i < end; ++i) still += s.flow_mag[static_cast<size_t>(i)] < 0.001 * diag;
    g.static_ratio = static_cast<double>(still) / static_cast<double>(end - from);
    CameraMotion cam = ClassifyCamera(s, from, end);
    g.camera_motion = cam.label;
    g.extra["camera"] = cam.details;
  } else if (s.has_motion()) {
    g.motion = 0.0;
    g.static_ratio = 1.0;
    g.camera_motion = "static";
  }
  if (s.colors.empty()) return g;
  // Colours: average the per-frame histograms.
  std::array<double, kColorBins> avg{};
  for (int64_t i = start; i < end; ++i) {
    for (int k = 0; k < kColorBins; ++k) avg[k] += s.colors[static_cast<size_t>(i) * kColorBins + k];
  }
  std::vector<int> order(kColorBins);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return avg[a] > avg[b]; });
  Json colors = Json::MakeArray();
  for (int k : order) {
    const double fraction = avg[k] / n;
    if (fraction < 0.08 || colors.size() >= 4) break;
    Json c = Json::MakeObject();
    c["name"] = kColorNames[k];
    c["fraction"] = std::round(fraction * 1000.0) / 1000.0;
    colors.push_back(c);
  }
  g.dominant_colors = colors;
  return g;
}

}  // namespace reel
