// Sidecar files: the text that comes with a video, read at ingest as the material of
// "original" captions.
//
// For a video "dir/name.ext" the sidecars are, when present:
//   dir/name.txt        the whole file is one text (video2dataset, img2dataset layout)
//   dir/name.json       string fields caption, text, description, title, summary (top
//                       level, or under "info" / "yt_meta_dict.info" as video2dataset
//                       writes yt-dlp metadata)
//   dir/name.info.json  yt-dlp's metadata file: title and description
//   dir/name.srt        SubRip subtitles, one text per cue with its time span
// Texts are UTF-8, trimmed, and capped at kMaxSidecarBytes per file. A sidecar that
// cannot be read or parsed gives a warning naming the file and the cause; the video is
// still ingested and the other sidecars still read.
//
// Thread-safety: pure functions (they read files).

#ifndef REEL_CURATE_SIDECAR_H_
#define REEL_CURATE_SIDECAR_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "db/catalog.h"
#include "util/rational.h"
#include "util/status.h"

namespace reel {

constexpr int64_t kMaxSidecarBytes = 4 << 20;

struct SidecarTexts {
  std::vector<VideoText> texts;  // video_id left 0
  std::string stamp;             // SidecarStamp() at the time of reading
  std::vector<std::string> warnings;
};

// The sidecar files that exist for `video_path`.
std::vector<std::string> SidecarFiles(const std::string& video_path);
// The identity of the present sidecars ("name:size:mtime;..."), "" when there are none.
// Cheap: only stat calls.
std::string SidecarStamp(const std::string& video_path);
SidecarTexts ReadSidecars(const std::string& video_path);

struct SubtitleCue {
  int64_t seq = 0;  // 1-based position in the file
  Rational start;   // seconds
  Rational end;
  std::string text;  // lines joined by a space, markup removed
};
// SubRip text: blocks of an optional number, "HH:MM:SS,mmm --> HH:MM:SS,mmm" and text
// lines, separated by blank lines (CRLF, a BOM, '.' for ',' and <i>/{\an8} tags are
// accepted). Fails on a malformed time line, naming its line number.
Result<std::vector<SubtitleCue>> ParseSrt(std::string_view text);

}  // namespace reel

#endif  // REEL_CURATE_SIDECAR_H_
