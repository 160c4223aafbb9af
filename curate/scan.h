// Scan: one decode pass per video feeding every analyser, then clips.
//
// For each ingested video not yet scanned (PATHs given are ingested first), ScanFile()
// decodes the video once at the analysis size and runs the FrameAnalyzer on every frame;
// the per-frame series, the scan record and the planned clips with their signals are
// then written in one transaction per video. An interrupted scan loses only the videos
// in flight; rerunning resumes with the rest. Videos that fail to decode get a scan
// record with status error and the cause, and the batch goes on.
//
// Analysis size: like PySceneDetect, frames wider than `analysis_width` (256) are
// downscaled to that width, keeping the aspect ratio. ResizeMode::kExact (the default)
// converts at full size and resizes with OpenCV's INTER_LINEAR as PySceneDetect does, so
// its frames and scores are PySceneDetect's. ResizeMode::kFast downscales inside the
// decoder's colour conversion (swscale, area averaging): smoother frames, whose hue and
// saturation in near-black frames are too clean to compare with PySceneDetect (a fade
// in from black scores far higher).
//
// Thread-safety: Scan() uses `catalog` on the calling thread only; `on_frames` is called
// from worker threads.

#ifndef REEL_CURATE_SCAN_H_
#define REEL_CURATE_SCAN_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "curate/clips.h"
#include "curate/frame_analysis.h"
#include "curate/ingest.h"
#include "curate/shard.h"
#include "db/catalog.h"
#include "util/status.h"

namespace reel {

enum class ResizeMode { kExact, kFast };

struct ScanOptions {
  AnalysisOptions analysis;
  SplitOptions split;
  int analysis_width = 256;    // 0 = native size
  ResizeMode resize = ResizeMode::kExact;
  bool skip_loop_filter = false;
  int decode_threads = 0;      // per video; 0 = automatic
  int jobs = 1;                // videos scanned in parallel
  bool rescan = false;         // scan again videos already scanned
  bool retry_errors = false;   // scan again videos whose scan failed
  ShardSpec shard;
  IngestOptions ingest;        // for PATHs given to Scan()
  std::function<void(int64_t videos, int64_t frames)> on_start;
  std::function<void(int64_t frames)> on_frames;  // from worker threads
  std::function<void(const std::string& path, const Status& status, int64_t clips)> on_video;
  const std::atomic<bool>* cancel = nullptr;
};

struct ScanSummary {
  int64_t run_id = 0;
  int64_t videos = 0;   // selected for scanning
  int64_t scanned = 0;
  int64_t skipped = 0;  // already scanned (or outside the shard)
  int64_t failed = 0;
  int64_t frames = 0;
  int64_t clips = 0;
  bool cancelled = false;
  double seconds = 0;
  IngestSummary ingest;  // when PATHs were given
  std::vector<std::pair<std::string, std::string>> failures;

  bool all_ok() const { return failed == 0 && !cancelled && ingest.all_ok(); }
};

// The decode-and-analyse pass over one file (no catalog).
struct VideoScan {
  FrameSeries series;
  int64_t decode_errors = 0;
  Rational time_base;
  int analysis_width = 0;
  int analysis_height = 0;
};
Result<VideoScan> ScanFile(const std::string& path, const ScanOptions& options,
                           const std::function<void(int64_t)>& on_frames = {},
                           const std::atomic<bool>* cancel = nullptr);

Result<ScanSummary> Scan(Catalog& catalog, const std::vector<std::string>& paths,
                         const ScanOptions& options);

// The description of the analysis settings stored with each scan.
Json ScanParams(const ScanOptions& options);

}  // namespace reel

#endif  // REEL_CURATE_SCAN_H_
