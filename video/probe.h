// Probing: what a video file holds, checked rather than trusted.
//
// ProbeVideo() opens the container, picks the best video stream, demuxes every packet of
// it (no decoding) to count frames exactly and measure timestamps, decodes the first
// frame to prove the stream is decodable, and checks that no packet claims bytes past
// the end of the file. A file that is not a video, truncated or corrupt gives a Status
// naming the path and the cause; nothing is logged and swallowed.
//
// Thread-safety: ProbeVideo() may run concurrently on different files.

#ifndef REEL_VIDEO_PROBE_H_
#define REEL_VIDEO_PROBE_H_

#include <cstdint>
#include <map>
#include <string>

#include "util/rational.h"
#include "util/status.h"

namespace reel {

struct VideoInfo {
  std::string container;     // demuxer name as ffprobe's format_name ("mov,mp4,m4a,3gp,3g2,mj2")
  std::string codec;         // decoder name ("h264", "vp9", "mpeg4")
  std::string pixel_format;  // "yuv420p", ...
  int width = 0;             // coded picture size
  int height = 0;
  Rational sample_aspect_ratio{1, 1};  // pixel shape; 1/1 when square or unknown
  int rotation = 0;     // clockwise degrees the picture is turned for display: 0/90/180/270
  Rational frame_rate;  // average frame rate (frames per second)
  Rational time_base;   // stream time base
  bool variable_frame_rate = false;
  int64_t frame_count = 0;  // exact, from the packets (demuxer-discarded ones excluded)
  Rational start_time;      // seconds: presentation time of the first frame
  Rational duration;        // seconds: last frame's end minus first frame's start
  // Video packets the demuxer flagged damaged before the last one (count_frames only):
  // MPEG-TS packets lost, or segments joined with `cat`. The file is still read; the
  // decoder conceals or reports what it cannot decode (a flagged last packet is refused
  // as truncation).
  int64_t damaged_packets = 0;
  // Leading video packets no decoder can show (count_frames with check_decode only): a
  // capture cut mid-GOP starts with frames predicted from pictures before the cut. They
  // are not counted in frame_count, start_time or duration.
  int64_t undecodable_lead = 0;
  // Transfer characteristic as ffprobe's color_transfer ("bt709", "smpte2084" for HDR10
  // and Dolby Vision's PQ, "arib-std-b67" for HLG, as phones record); "" when unstated.
  std::string color_transfer;
  // The rest of the colour description, also in ffprobe's names, "" when unstated:
  // color_space is the Y'CbCr matrix ("bt709"; "smpte170m" and "bt470bg" are BT.601's;
  // "bt2020nc"), color_primaries the RGB primaries ("bt709", "bt2020"), color_range
  // "tv" (limited, 16-235) or "pc" (full).
  std::string color_space;
  std::string color_primaries;
  std::string color_range;
  // Field order as ffprobe's field_order: "progressive"; interlaced: "tt" (top field
  // first), "bb" (bottom first, as DV), "tb" and "bt" (coded in one order, shown in the
  // other); "" when unknown.
  std::string field_order;
  // The field order the first decoded frame states ("tt", "bb" or "progressive"; "" when
  // the probe decoded none): what shows DV interlaced, whose stream states no order.
  std::string decoded_field_order;
  bool has_audio = false;
  int64_t bit_rate = 0;  // container bit rate (bits/s), 0 when unknown
  int video_stream_index = -1;
  std::map<std::string, std::string> metadata;  // container tags (title, comment, ...)

  // Size as shown: non-square pixels stretched (width * SAR), then rotation applied.
  int display_width() const;
  int display_height() const;
};

// Whether `transfer` (VideoInfo::color_transfer) is a high-dynamic-range one (PQ, HLG).
bool IsHdrTransfer(const std::string& transfer);

// Whether `field_order` (VideoInfo::field_order) says the video is interlaced.
bool IsInterlaced(const std::string& field_order);

// The size a picture is shown at: non-square pixels stretched horizontally (width x
// SAR), then turned by `rotation` (0/90/180/270).
void DisplaySize(int width, int height, Rational sample_aspect_ratio, int rotation,
                 int* display_width, int* display_height);

struct ProbeOptions {
  // Demux all packets to count frames and detect variable frame rate. When false, the
  // counts come from the container header (fast, but may be estimates).
  bool count_frames = true;
  // Decode the first frame to prove the stream decodes.
  bool check_decode = true;
};

Result<VideoInfo> ProbeVideo(const std::string& path, const ProbeOptions& options = {});

// File extensions (lower case, with the dot) that directory walks treat as videos.
bool HasVideoExtension(const std::string& path);

// Versions of the libav* libraries reel runs on ("libavformat 59.27.100, ...").
std::string LibavVersionString();

}  // namespace reel

#endif  // REEL_VIDEO_PROBE_H_
