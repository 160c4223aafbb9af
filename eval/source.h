// Where evaluated videos come from, and which frames of each are used.
//
// Source specs:
//   DIR                  a folder of video files (recursively), or a folder of frame
//                        folders (StyleGAN-V / VideoGPT layout: DIR/video/frame_0001.png);
//                        "frames:DIR" forces the frame-folder reading
//   db:CATALOG#SUBSET    the clips that passed a subset of a catalog (frame-exact, from
//                        their stored timestamps); captions by the caption policy
//   run:CATALOG#RUN      the videos of a generation run (id or name), with their prompts
// Captions for a folder source come from a CSV of "file,caption" rows (--captions; the
// file matched by path relative to DIR or by file name).
//
// Clips: T frames taken every `stride` frames, starting at the first frame or at a seeded
// random offset (per video: the seed mixed with the video's key, so the choice does not
// depend on the order or the number of threads). A video shorter than (T - 1) * stride + 1
// frames is skipped and counted with the reason, never padded.
//
// Thread-safety: a loaded EvalSource is immutable; ReadClip may run concurrently.

#ifndef REEL_EVAL_SOURCE_H_
#define REEL_EVAL_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"
#include "video/frame.h"

namespace reel {

enum class SourceKind { kVideoFolder, kFrameFolders, kCatalogSubset, kGenerationRun };

struct SourceItem {
  std::string key;    // identity: a path relative to the source, or "clip:ID"
  std::string path;   // video file or frame folder
  std::string stamp;  // size and mtime of the file, for cache keys
  // Catalog clips: frames [start_frame, end_frame) of the file and their pts (may be empty).
  int64_t start_frame = 0;
  int64_t end_frame = -1;
  std::vector<int64_t> pts;
  std::string caption;  // "" when none
  // Catalog clips whose file was replaced since it was ingested: why (the clip is
  // skipped as "changed since ingest"); "" otherwise.
  std::string changed;
};

struct EvalSource {
  SourceKind kind = SourceKind::kVideoFolder;
  std::string spec;
  std::vector<SourceItem> items;
};

struct SourceOptions {
  std::string captions_csv;  // folder sources: file,caption rows
  std::vector<std::string> prefer = DefaultCaptionPreference();  // catalog sources
};

Result<EvalSource> OpenEvalSource(const std::string& spec, const SourceOptions& options = {});

struct ClipSpec {
  int frames = 16;
  int stride = 1;
  bool random_offset = false;
  uint64_t seed = 0;
  int64_t needed() const { return static_cast<int64_t>(frames - 1) * stride + 1; }
};

// Either frames (RGB, display size) or why the item was skipped.
struct ClipFrames {
  std::vector<Frame> frames;
  int64_t offset = 0;       // first frame used, within the item
  std::string skip_reason;  // "" when frames were read
};
// Reads the clip of `item`. A video too short is a skip; an unreadable one is an error.
Result<ClipFrames> ReadClip(const SourceItem& item, const ClipSpec& spec);

}  // namespace reel

#endif  // REEL_EVAL_SOURCE_H_
