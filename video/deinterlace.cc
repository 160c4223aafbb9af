#include "video/deinterlace.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace reel::av {
namespace {

// One missing line: x in [0, w). `up` and `down` are the offsets (in samples) of the
// lines above and below (mirrored at the picture's edges). `prev2`/`next2` are the frames
// whose average is the temporal prediction. Directional (spatial) search only where three
// samples either side exist, as yadif's edge handling does.
template <typename T>
void FilterLine(T* dst, const T* prev, const T* cur, const T* next, int w, std::ptrdiff_t down,
                std::ptrdiff_t up, bool spatial_check) {
  const T* prev2 = prev;  // yadif's one-frame-per-frame mode: prev and cur
  const T* next2 = cur;
  for (int x = 0; x < w; ++x) {
    const int c = cur[x + up];
    const int d = (prev2[x] + next2[x]) >> 1;
    const int e = cur[x + down];
    const int temporal_diff0 = std::abs(prev2[x] - next2[x]);
    const int temporal_diff1 = (std::abs(prev[x + up] - c) + std::abs(prev[x + down] - e)) >> 1;
    const int temporal_diff2 = (std::abs(next[x + up] - c) + std::abs(next[x + down] - e)) >> 1;
    int diff = std::max({temporal_diff0 >> 1, temporal_diff1, temporal_diff2});
    int spatial_pred = (c + e) >> 1;
    if (x >= 3 && x < w - 3) {
      auto score_at = [&](int j) {
        return std::abs(cur[x + up - 1 + j] - cur[x + down - 1 - j]) +
               std::abs(cur[x + up + j] - cur[x + down - j]) +
               std::abs(cur[x + up + 1 + j] - cur[x + down + 1 - j]);
      };
      int spatial_score = std::abs(cur[x + up - 1] - cur[x + down - 1]) + std::abs(c - e) +
                          std::abs(cur[x + up + 1] - cur[x + down + 1]) - 1;
      // Directions -1 then -2 (only if -1 was better), then +1 then +2 likewise.
      for (int sign : {-1, 1}) {
        for (int j = sign; std::abs(j) <= 2; j += sign) {
          const int score = score_at(j);
          if (score >= spatial_score) break;
          spatial_score = score;
          spatial_pred = (cur[x + up + j] + cur[x + down - j]) >> 1;
        }
      }
    }
    if (spatial_check) {
      const int b = (prev2[x + 2 * up] + next2[x + 2 * up]) >> 1;
      const int f = (prev2[x + 2 * down] + next2[x + 2 * down]) >> 1;
      const int max = std::max({d - e, d - c, std::min(b - c, f - e)});
      const int min = std::min({d - e, d - c, std::max(b - c, f - e)});
      diff = std::max({diff, min, -max});
    }
    if (spatial_pred > d + diff) {
      spatial_pred = d + diff;
    } else if (spatial_pred < d - diff) {
      spatial_pred = d - diff;
    }
    dst[x] = static_cast<T>(spatial_pred);
  }
}

template <typename T>
void FilterPlane(const AVFrame* prev, const AVFrame* cur, const AVFrame* next, AVFrame* out,
                 int plane, int w, int h, bool top_field_first) {
  const std::ptrdiff_t refs = cur->linesize[plane] / static_cast<int>(sizeof(T));
  // The kept field's lines are copied; the others (odd lines when the top field is
  // first) are rebuilt.
  const int parity = top_field_first ? 0 : 1;
  for (int y = 0; y < h; ++y) {
    auto row = [&](const AVFrame* f) {
      return reinterpret_cast<const T*>(f->data[plane] +
                                        static_cast<std::ptrdiff_t>(y) * f->linesize[plane]);
    };
    T* dst = reinterpret_cast<T*>(out->data[plane] +
                                  static_cast<std::ptrdiff_t>(y) * out->linesize[plane]);
    if (((y ^ parity) & 1) == 0) {
      std::memcpy(dst, row(cur), static_cast<size_t>(w) * sizeof(T));
      continue;
    }
    if (prev->linesize[plane] != cur->linesize[plane] ||
        next->linesize[plane] != cur->linesize[plane]) {
      std::memcpy(dst, row(cur), static_cast<size_t>(w) * sizeof(T));  // cannot happen
      continue;
    }
    const std::ptrdiff_t down = y + 1 < h ? refs : -refs;
    const std::ptrdiff_t up = y > 0 ? -refs : refs;
    const bool spatial_check = !(y == 1 || y + 2 == h);
    FilterLine<T>(dst, row(prev), row(cur), row(next), w, down, up, spatial_check);
  }
}

}  // namespace

bool CanDeinterlace(int pixel_format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(pixel_format));
  if (desc == nullptr) return false;
  if (desc->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM |
                     AV_PIX_FMT_FLAG_FLOAT)) {
    return false;
  }
  if (!(desc->flags & AV_PIX_FMT_FLAG_PLANAR) && desc->nb_components > 1) return false;
  for (int i = 0; i < desc->nb_components; ++i) {
    const AVComponentDescriptor& c = desc->comp[i];
    if (c.shift != 0 || c.depth < 8 || c.depth > 16) return false;
    if (c.step != (c.depth > 8 ? 2 : 1)) return false;
  }
  return !(desc->flags & AV_PIX_FMT_FLAG_BE) || desc->comp[0].depth == 8;
}

bool Yadif(const AVFrame* prev, const AVFrame* cur, const AVFrame* next, bool top_field_first,
           AVFrame* out) {
  if (!CanDeinterlace(cur->format) || prev->format != cur->format || next->format != cur->format ||
      prev->width != cur->width || prev->height != cur->height || next->width != cur->width ||
      next->height != cur->height) {
    return false;
  }
  av_frame_unref(out);
  out->format = cur->format;
  out->width = cur->width;
  out->height = cur->height;
  if (av_frame_get_buffer(out, 0) < 0) return false;
  if (av_frame_copy_props(out, cur) < 0) return false;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(cur->format));
  const int planes = av_pix_fmt_count_planes(static_cast<AVPixelFormat>(cur->format));
  const bool wide = desc->comp[0].depth > 8;
  for (int p = 0; p < planes; ++p) {
    const bool chroma = (p == 1 || p == 2) && !(desc->flags & AV_PIX_FMT_FLAG_RGB);
    const int w = chroma ? AV_CEIL_RSHIFT(cur->width, desc->log2_chroma_w) : cur->width;
    const int h = chroma ? AV_CEIL_RSHIFT(cur->height, desc->log2_chroma_h) : cur->height;
    if (wide) {
      FilterPlane<uint16_t>(prev, cur, next, out, p, w, h, top_field_first);
    } else {
      FilterPlane<uint8_t>(prev, cur, next, out, p, w, h, top_field_first);
    }
  }
  out->interlaced_frame = 0;
  return true;
}

}  // namespace reel::av
