// Decoding frames with exact timestamps: video files (libavformat/libavcodec) and
// folders of numbered images (the StyleGAN-V / VideoGPT dataset layout).
//
// A FrameSource yields frames in display order. Each frame carries its index, its
// presentation timestamp in the stream time base and its time in seconds since the
// stream's start as an exact Rational, so variable-frame-rate input and files whose
// first timestamp is not zero are handled without drift. Conversion to RGB/BGR/gray,
// downscaling (in the same pass, through swscale), square-pixel correction and rotation
// from the display matrix all happen before the frame is returned.
//
// Failure: Open() returns a Status naming the path; Next() returns an error only for
// an unreadable stream (or any decode error with `strict`); otherwise damaged packets
// are skipped and counted in decode_errors().
//
// Thread-safety: a FrameSource is used by one thread at a time. With threads != 1 the
// codec decodes on its own worker threads internally.

#ifndef REEL_VIDEO_DECODER_H_
#define REEL_VIDEO_DECODER_H_

#include <memory>
#include <string>

#include "util/status.h"
#include "video/frame.h"
#include "video/probe.h"

namespace reel {

enum class ResizeFilter { kFastBilinear, kBilinear, kBicubic, kArea };

struct DecodeOptions {
  PixelFormat format = PixelFormat::kRgb24;
  // Output size after rotation. 0 x 0 keeps the display size; one of them 0 keeps the
  // display aspect ratio with the other fixed.
  int width = 0;
  int height = 0;
  ResizeFilter filter = ResizeFilter::kBilinear;
  bool autorotate = true;         // apply the display matrix, as ffmpeg's CLI does
  bool square_pixels = true;      // stretch non-square pixels to the display aspect ratio
  int threads = 0;                // codec threads; 0 = automatic
  bool skip_loop_filter = false;  // H.264/HEVC: skip deblocking (faster; for analysis passes)
  bool keyframes_only = false;
  bool strict = false;  // fail on the first damaged packet instead of skipping it
  // High-dynamic-range video (PQ: HDR10, Dolby Vision; HLG: what phones record) comes out
  // tone-mapped to SDR BT.709, as ffmpeg's zscale + tonemap=hable chain makes it (see
  // video/tone_map.h); false gives its R'G'B' values unmapped (washed out).
  bool tone_map_hdr = true;
  // Tone-mapped frames are mapped at their decoded size and then scaled to the output
  // size, as that chain followed by ffmpeg's `scale` makes them (the mapping is not
  // linear: scaled first, edges between bright saturated colours come out off by up to
  // 239 of 255). false scales first: cheaper by the square of the scale factor, for
  // analysis passes that downscale far (scan's fast resize).
  bool tone_map_full_size = true;
  // Interlaced frames (two fields woven together) come out deinterlaced as FFmpeg's
  // `yadif=deint=interlaced` makes them (see video/deinterlace.h); progressive ones as
  // decoded. Costs one frame of delay and two held frames.
  bool deinterlace = true;
  // Image folders only: the frame rate to assign (frame i is at i / frame_rate seconds).
  Rational image_frame_rate{25, 1};
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Stream description (for files, from the headers: frame_count may be an estimate;
  // use ProbeVideo() for exact counts).
  virtual const VideoInfo& info() const = 0;
  virtual int width() const = 0;  // size of the frames Next() returns
  virtual int height() const = 0;
  // Decodes the next frame into *frame. Returns true with a frame, false at the end.
  virtual Result<bool> Next(Frame* frame) = 0;
  // Packets or images that could not be decoded and were skipped.
  virtual int64_t decode_errors() const { return 0; }
};

class VideoDecoder : public FrameSource {
 public:
  static Result<std::unique_ptr<VideoDecoder>> Open(const std::string& path,
                                                    const DecodeOptions& options = {});
  ~VideoDecoder() override;

  const VideoInfo& info() const override;
  int width() const override;
  int height() const override;
  Result<bool> Next(Frame* frame) override;
  int64_t decode_errors() const override;
  // Next() without the conversion: `frame` gets its index, times, key flag and the output
  // size, and holds the decoded picture (Frame::unconverted) until Convert(frame) makes
  // its pixels. For readers that keep some frames only (a frame rate converted): the
  // conversion (scaling, tone mapping) of the frames dropped is never done.
  Result<bool> NextUnconverted(Frame* frame);
  // Converts a frame NextUnconverted gave (of this decoder) into pixels; nothing to do
  // for a frame already converted.
  Status Convert(Frame* frame);

  // Seeks to the keyframe at or before `pts` (stream time base); the next frames come
  // from there, so callers skip frames before the one they want. Frame indices count
  // again from 0 after a seek. Some containers land after `pts`: callers that need an
  // exact start check the first frame's pts and seek earlier if needed. Frames without a
  // pts of their own are dropped until one with a pts arrives (after a seek in MPEG-PS,
  // their times are guesses). Fails with kNotSupported on a stream without timestamps (a
  // raw .h264 or .hevc file) and with the demuxer's error where it cannot seek: read such
  // a stream from the start (OpenVideoAt does).
  Status SeekToPts(int64_t pts);

 private:
  struct Impl;
  explicit VideoDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A folder of images (png, jpg, bmp, webp, tiff, ppm) read in natural order
// ("2.png" before "10.png") as one video at `image_frame_rate`. All frames come out at
// the first image's size (or the requested size).
class ImageSequence : public FrameSource {
 public:
  static Result<std::unique_ptr<ImageSequence>> Open(const std::string& dir,
                                                     const DecodeOptions& options = {});
  ~ImageSequence() override;

  const VideoInfo& info() const override;
  int width() const override;
  int height() const override;
  Result<bool> Next(Frame* frame) override;
  int64_t decode_errors() const override;

 private:
  struct Impl;
  explicit ImageSequence(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A folder -> ImageSequence, a file -> VideoDecoder.
Result<std::unique_ptr<FrameSource>> OpenFrameSource(const std::string& path,
                                                     const DecodeOptions& options = {});

// Output size for a display size and the requested width/height (see DecodeOptions).
void ResolveOutputSize(int display_width, int display_height, int want_width, int want_height,
                       int* out_width, int* out_height);

}  // namespace reel

#endif  // REEL_VIDEO_DECODER_H_
