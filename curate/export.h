// Export: writing a subset's clips as files with manifests for training.
//
// Re-encoding (the default) cuts frame-exactly: the clip's first and last frames are
// found by their stored presentation timestamps, so the file holds exactly frames
// [start_frame, end_frame) of the source, optionally scaled to `height` (width follows
// the display aspect ratio, rounded to even) and resampled to `fps` picking the frames
// ffmpeg's fps filter picks: a frame at t takes output slot round(t * fps), each slot
// shows the last frame that took it or an earlier one, and the clip holds
// round(duration * fps) frames. `copy` instead copies packets without
// re-encoding; that can only start at a keyframe, so the clip starts at the keyframe at
// or before its start and may end a few frames late: the span actually written is
// recorded and shown. A copy keeps the source codec, so its container is the first of
// mp4, mkv, mov and avi that can hold it.
//
// Each written clip is probed and recorded in the catalog (clip_exports). A rerun skips
// recorded clips whose file is present and never overwrites a finished file (output is
// written to "<file>.partial" and renamed when complete). Manifests list every exported
// clip of the subset in DIR: manifest.csv in Open-Sora's format (path, text, num_frames,
// height, width, aspect_ratio = height / width, fps, resolution = height x width, then
// reel's scores) and manifest.jsonl with the same fields and the exact times. With a
// shard, the manifests are manifest-I-of-N.csv/.jsonl and hold that shard's clips.
//
// The caption in `text` is the one the caption policy `prefer` selects (see
// SelectedCaptionSql; by default vlm, merged, clip, signals, original); empty when none.
//
// Thread-safety: uses the catalog on the calling thread only.

#ifndef REEL_CURATE_EXPORT_H_
#define REEL_CURATE_EXPORT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "curate/shard.h"
#include "db/catalog.h"
#include "util/rational.h"

namespace reel {

// The largest side of an exported clip, libx264's limit (16400x16 is refused).
inline constexpr int kMaxExportSide = 16384;

struct ExportOptions {
  std::string out_dir;
  std::string subset;  // clips that passed this subset
  int height = 0;      // 0: the source height
  Rational fps;        // 0: keep the source timing
  bool copy = false;   // stream copy at keyframes instead of re-encoding
  std::string codec;   // "" = libx264 (or mpeg4)
  int crf = 20;
  std::string preset = "veryfast";
  int jobs = 1;
  int threads_per_clip = 1;
  ShardSpec shard;
  bool manifest_only = false;  // write manifests for what is exported, encode nothing
  std::vector<std::string> prefer = DefaultCaptionPreference();  // caption policy
  std::function<void(int64_t total)> on_start;
  std::function<void(const std::string& file, const Status& status)> on_clip;
  const std::atomic<bool>* cancel = nullptr;
};

struct ExportSummary {
  int64_t run_id = 0;
  int64_t clips = 0;  // selected (in the subset and the shard)
  int64_t exported = 0;
  int64_t skipped = 0;  // already exported
  int64_t failed = 0;
  int64_t manifest_rows = 0;
  // Rows holding text that is not UTF-8 (a source file name in Latin-1): manifest.csv
  // shows those bytes as U+FFFD so that UTF-8 readers (pandas) still read it,
  // manifest.jsonl writes them as \udcXX escapes (Python's surrogateescape: exact).
  int64_t manifest_rows_not_utf8 = 0;
  std::string manifest_csv;
  std::string manifest_jsonl;
  std::vector<std::pair<std::string, std::string>> failures;
  bool cancelled = false;
};

Result<ExportSummary> Export(Catalog& catalog, const ExportOptions& options);

// The file name of an exported clip: "<stem>_<video id>_<start>-<end>.<extension>". Export
// uses "mp4" for re-encoded clips and StreamCopyContainer(video.codec) (video/remux.h) for
// stream copies, so a copy of FFV1 or ProRes goes into .mkv, one of a GIF into .mov.
std::string ExportFileName(const VideoRecord& video, const ClipRecord& clip,
                           const std::string& extension = "mp4");

}  // namespace reel

#endif  // REEL_CURATE_EXPORT_H_
