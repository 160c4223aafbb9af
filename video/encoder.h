// VideoEncoder: writes frames to a video file (MP4 with H.264 by default).
//
// The codec is libx264 when FFmpeg has it, else MPEG-4 part 2; any other libav encoder
// can be named. Frames may carry explicit timestamps (for variable frame rate); without
// them frame i is at i / frame_rate. Rotation (display matrix), sample aspect ratio and
// container tags can be set. Output goes to "<path>.partial" and is renamed to `path` by
// Finish(), so an interrupted write never leaves a file that looks complete.
//
// Failure: every method returns a Status naming the output path.
// Thread-safety: one thread at a time; the codec may use its own threads internally.

#ifndef REEL_VIDEO_ENCODER_H_
#define REEL_VIDEO_ENCODER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "util/rational.h"
#include "util/status.h"
#include "video/frame.h"

namespace reel {

struct EncodeOptions {
  int width = 0;                      // required
  int height = 0;                     // required
  Rational frame_rate{25, 1};         // nominal rate; the time base when none is given
  std::optional<Rational> time_base;  // for explicit timestamps (e.g. 1/1000 for VFR)
  std::string codec;                  // "" = libx264 if available, else mpeg4
  std::string pixel_format;           // "" = the codec's preferred 4:2:0 format
  int crf = 18;                       // x264/x265/vpx quality (lower is better)
  int64_t bit_rate = 0;               // used when the codec has no CRF (mpeg4); 0 = auto
  int gop = 0;                        // keyframe interval; 0 = codec default
  int b_frames = -1;                  // most B-frames in a row; -1 = codec default
  std::string preset = "veryfast";    // x264/x265 preset
  int threads = 0;                    // 0 = automatic
  int rotation = 0;                   // clockwise display rotation stored as metadata
  Rational sample_aspect_ratio{1, 1};
  // The colour description, in ffprobe's names (VideoInfo's color_* fields); "" leaves a
  // field unstated. RGB frames are converted to Y'CbCr with the matrix `color_space`
  // names ("bt709", "smpte170m" or "bt470bg" for BT.601, "bt2020nc", "fcc", "smpte240m";
  // unstated: BT.601, swscale's default and how FFmpeg-based readers read untagged video)
  // into `color_range` ("tv", limited, when unstated; "pc", full). Primaries and transfer
  // are only stored. All four go into the stream (H.264's VUI, MP4's colr box) so that
  // players show the colours the frames had. An RGB `pixel_format` (ffv1's bgr0) is
  // stated as RGB, with no matrix or range.
  std::string color_space;
  std::string color_primaries;
  std::string color_transfer;
  std::string color_range;
  std::map<std::string, std::string> metadata;  // container tags, e.g. title, comment
  std::string format;                           // container; "" = from the file extension
  // Muxer private options, e.g. {"movflags", "+faststart"} for MP4 with the index first.
  std::map<std::string, std::string> muxer_options;
};

class VideoEncoder {
 public:
  static Result<std::unique_ptr<VideoEncoder>> Open(const std::string& path,
                                                    const EncodeOptions& options);
  ~VideoEncoder();  // abandons an unfinished file (removes the .partial)

  // Encodes one frame (its size must match the options; any PixelFormat). `pts` is in the
  // time base (time_base, or 1/frame_rate); without it the frame follows the previous.
  Status Write(const Frame& frame, std::optional<int64_t> pts = std::nullopt);
  // Flushes, writes the trailer and renames the file into place.
  Status Finish();

  int64_t frames_written() const;
  const std::string& codec_name() const;

 private:
  struct Impl;
  explicit VideoEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The encoder reel uses by default on this FFmpeg build ("libx264" or "mpeg4").
std::string DefaultVideoCodec();

// Whether EncodeOptions::color_space may name `space` ("" included).
bool CanEncodeColorSpace(const std::string& space);

}  // namespace reel

#endif  // REEL_VIDEO_ENCODER_H_
