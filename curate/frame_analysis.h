// Per-frame analysis: everything the shot detectors and clip signals need, computed in
// one pass over decoded frames and kept as columnar series.
//
// FrameAnalyzer::Add() takes frames in display order at the analysis size (BGR24) and
// appends one value per frame to each series of a FrameSeries. The series are what
// `reel curate scan` stores in the catalog (table frame_data), so detectors can re-cut
// and clip signals can be recomputed later without decoding the video again.
//
// The detector series reproduce PySceneDetect 0.7.1's per-frame metrics:
//   delta_hue/sat/lum/edges  ContentDetector components (OpenCV 8-bit HSV, mean |a-b|)
//   mean_bgr                 ThresholdDetector's frame average (mean of all channels)
//   hist_corr                HistogramDetector: HISTCMP_CORREL of L2-normalised luma hists
//   hash_dist                HashDetector: normalised Hamming distance of DCT hashes
// For the first frame the deltas are 0, hist_corr is 1 and hash_dist is 0, as in
// PySceneDetect (which computes no score for it).
//
// Thread-safety: a FrameAnalyzer is used by one thread; separate analyzers are
// independent.

#ifndef REEL_CURATE_FRAME_ANALYSIS_H_
#define REEL_CURATE_FRAME_ANALYSIS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"
#include "video/frame.h"

namespace reel {

// The 12 colour names of the per-frame colour histogram, in series order.
constexpr int kColorBins = 12;
extern const char* const kColorNames[kColorBins];

// Groups of per-frame analysis; each can be switched off.
enum AnalysisGroup : unsigned {
  kAnalyzeShots = 1,      // detector series, luma statistics, hashes
  kAnalyzeMotion = 2,     // optical flow and the global motion fit
  kAnalyzeSharpness = 4,  // variance of the Laplacian
  kAnalyzeColor = 8,      // colourfulness and the colour histogram
  kAnalyzeText = 16,      // text area
};
constexpr unsigned kAnalyzeAll = 31;
constexpr unsigned kAnalyzeSignals = kAnalyzeMotion | kAnalyzeSharpness | kAnalyzeColor | kAnalyzeText;

// Parses "all", "none" (shots only) or a comma list of motion, sharpness, color, text.
Result<unsigned> ParseSignalGroups(std::string_view text);

struct AnalysisOptions {
  unsigned groups = kAnalyzeAll;
  bool edges = false;    // ContentDetector's edge component (Canny + dilate)
  int edge_kernel = 0;   // dilation kernel for edges; 0 = PySceneDetect's estimate
  int hist_bins = 256;   // HistogramDetector bins
  int hash_size = 16;    // HashDetector size
  int hash_lowpass = 2;  // HashDetector lowpass factor
  int long_range = 8;    // frames back for delta_long (gradual-transition detection)
  int text_every = 5;    // text detection on every Nth frame (held in between)
  int color_every = 5;   // colour histogram on every Nth frame (held in between)
};

// Columnar per-frame data of one video. All series have size() entries except those
// not computed (empty): delta_edges without `edges`, and the series of analysis groups
// switched off. `colors` holds kColorBins values per frame.
struct FrameSeries {
  std::vector<int64_t> pts;  // presentation timestamps (stream time base)
  std::vector<float> delta_hue, delta_sat, delta_lum, delta_edges;
  std::vector<float> delta_long;  // content distance to the frame long_range back
  std::vector<float> mean_bgr;
  std::vector<float> hist_corr;
  std::vector<float> hash_dist;
  std::vector<int64_t> phash;  // 64-bit DCT perceptual hash (imagehash.phash layout)
  std::vector<float> luma_mean, luma_std;
  std::vector<float> sharpness, colorfulness;
  std::vector<float> flow_mag;  // mean optical-flow magnitude to the previous frame (px)
  std::vector<float> cam_tx, cam_ty, cam_zoom, cam_rot, cam_residual;  // global motion fit
  std::vector<float> text_area;
  std::vector<float> colors;
  int width = 0;   // analysis frame size
  int height = 0;

  size_t size() const { return pts.size(); }
  bool has_motion() const { return !flow_mag.empty(); }
};

class FrameAnalyzer {
 public:
  explicit FrameAnalyzer(const AnalysisOptions& options = {});
  ~FrameAnalyzer();
  FrameAnalyzer(const FrameAnalyzer&) = delete;
  FrameAnalyzer& operator=(const FrameAnalyzer&) = delete;

  // Analyses the next frame. It must be BGR24 and all frames the same size. Any size from
  // 1x1 up is analysed. An error (wrong format; OpenCV failing, as kInternal naming the
  // frame) leaves the series part-written: the analyzer should then be dropped.
  Status Add(const Frame& bgr);
  const FrameSeries& series() const;
  FrameSeries TakeSeries();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Stores every non-empty series of `series` under its name, and loads them back.
Status SaveFrameSeries(Catalog& catalog, int64_t video_id, const FrameSeries& series);
Result<FrameSeries> LoadFrameSeries(Catalog& catalog, int64_t video_id);

// 64-bit hashes as 16 lower-case hex digits, and their Hamming distance.
std::string HashToHex(uint64_t hash);
Result<uint64_t> HashFromHex(const std::string& hex);
int HammingDistance(uint64_t a, uint64_t b);

}  // namespace reel

#endif  // REEL_CURATE_FRAME_ANALYSIS_H_
