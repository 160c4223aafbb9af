#include "video/frame.h"

#include <cstring>

namespace reel {

int ChannelCount(PixelFormat format) {
  switch (format) {
    case PixelFormat::kRgb24:
    case PixelFormat::kBgr24:
      return 3;
    case PixelFormat::kGray8:
      return 1;
  }
  return 3;
}

void Frame::Allocate(int w, int h, PixelFormat f) {
  width = w;
  height = h;
  format = f;
  data.resize(static_cast<size_t>(w) * h * ChannelCount(f));
}

void RotateFrame(const Frame& src, int clockwise_degrees, Frame* dst) {
  const int c = src.channels();
  const int deg = ((clockwise_degrees % 360) + 360) % 360;
  dst->index = src.index;
  dst->pts = src.pts;
  dst->time = src.time;
  dst->key_frame = src.key_frame;
  if (deg == 90 || deg == 270) {
    dst->Allocate(src.height, src.width, src.format);
  } else {
    dst->Allocate(src.width, src.height, src.format);
  }
  if (deg == 0) {
    std::memcpy(dst->data.data(), src.data.data(), src.data.size());
    return;
  }
  const int sw = src.width, sh = src.height, dw = dst->width;
  for (int y = 0; y < sh; ++y) {
    const uint8_t* in = src.row(y);
    for (int x = 0; x < sw; ++x) {
      int dx, dy;
      if (deg == 90) {  // (x, y) -> (sh - 1 - y, x)
        dx = sh - 1 - y;
        dy = x;
      } else if (deg == 180) {
        dx = sw - 1 - x;
        dy = sh - 1 - y;
      } else {  // 270: (x, y) -> (y, sw - 1 - x)
        dx = y;
        dy = sw - 1 - x;
      }
      uint8_t* out = dst->data.data() + (static_cast<size_t>(dy) * dw + dx) * c;
      for (int k = 0; k < c; ++k) out[k] = in[x * c + k];
    }
  }
}

}  // namespace reel
