// Frame: one decoded picture with its exact timestamp.

#ifndef REEL_VIDEO_FRAME_H_
#define REEL_VIDEO_FRAME_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "util/rational.h"

namespace reel {

enum class PixelFormat {
  kRgb24,  // packed R,G,B bytes
  kBgr24,  // packed B,G,R bytes (OpenCV's order)
  kGray8,  // luma only
};

int ChannelCount(PixelFormat format);

// A frame owns its pixels (tightly packed rows: stride == width * channels). Decoders
// write into a caller-provided Frame and reuse its buffer, so a loop that decodes into
// the same Frame object allocates once.
struct Frame {
  int64_t index = 0;  // 0-based position in display order among decoded frames
  int64_t pts = 0;    // presentation timestamp in the stream's time base
  Rational time;      // seconds since the stream's start: (pts - start_pts) * time_base
  bool key_frame = false;
  int width = 0;
  int height = 0;
  PixelFormat format = PixelFormat::kRgb24;
  std::vector<uint8_t> data;

  int channels() const { return ChannelCount(format); }
  int stride() const { return width * channels(); }
  uint8_t* row(int y) { return data.data() + static_cast<size_t>(y) * stride(); }
  const uint8_t* row(int y) const { return data.data() + static_cast<size_t>(y) * stride(); }
  // Resizes the buffer for width x height in `format` (contents unspecified).
  void Allocate(int w, int h, PixelFormat f);

  // Set by VideoDecoder::NextUnconverted: the decoded picture, not yet converted into
  // `data` (VideoDecoder::Convert does that); `data` is stale until then. Copies share it.
  std::shared_ptr<void> unconverted;
};

// Rotates `src` clockwise by 0, 90, 180 or 270 degrees into `dst` (which must not alias).
void RotateFrame(const Frame& src, int clockwise_degrees, Frame* dst);

}  // namespace reel

#endif  // REEL_VIDEO_FRAME_H_
