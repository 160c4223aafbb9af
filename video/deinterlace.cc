#include "video/deinterlace.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "video/simd.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace reel::av {
namespace {

// The arithmetic type for samples of type T: every intermediate of 8-bit samples fits 16
// bits (the largest, a direction score, is 3 x 255), which doubles the lanes per vector.
template <typename T>
using Work = std::conditional_t<sizeof(T) == 1, int16_t, int32_t>;

// How much sample x moves: between the frame before and this one at x, and between the
// lines above and below (`up`, `down`: offsets in samples) and the same lines in the frames
// before and after.
template <typename T, typename W = Work<T>>
REEL_ALWAYS_INLINE W TemporalDiff(const T* prev, const T* cur, const T* next, int x,
                                  std::ptrdiff_t down, std::ptrdiff_t up) {
  const W c = cur[x + up], e = cur[x + down];
  const W p = prev[x], q = cur[x];
  const W pu = prev[x + up], pd = prev[x + down], nu = next[x + up], nd = next[x + down];
  const W temporal_diff0 = static_cast<W>(std::abs(p - q));
  const W temporal_diff1 = static_cast<W>((std::abs(pu - c) + std::abs(pd - e)) >> 1);
  const W temporal_diff2 = static_cast<W>((std::abs(nu - c) + std::abs(nd - e)) >> 1);
  return std::max(std::max(static_cast<W>(temporal_diff0 >> 1), temporal_diff1), temporal_diff2);
}

// Clamps the spatial prediction around the temporal one (d = the average of prev and cur).
template <bool kSpatialCheck, typename T, typename W = Work<T>>
REEL_ALWAYS_INLINE T Clamp(const T* prev, const T* cur, int x, std::ptrdiff_t down,
                           std::ptrdiff_t up, W diff, W spatial_pred) {
  const W c = cur[x + up], e = cur[x + down];
  const W d = static_cast<W>((prev[x] + cur[x]) >> 1);
  if (kSpatialCheck) {
    const W b = static_cast<W>((prev[x + 2 * up] + cur[x + 2 * up]) >> 1);
    const W f = static_cast<W>((prev[x + 2 * down] + cur[x + 2 * down]) >> 1);
    const W de = static_cast<W>(d - e), dc = static_cast<W>(d - c);
    const W bc = static_cast<W>(b - c), fe = static_cast<W>(f - e);
    const W max = std::max(std::max(de, dc), std::min(bc, fe));
    const W min = std::min(std::min(de, dc), std::max(bc, fe));
    diff = std::max(std::max(diff, min), static_cast<W>(-max));
  }
  return static_cast<T>(
      std::min(std::max(spatial_pred, static_cast<W>(d - diff)), static_cast<W>(d + diff)));
}

// One missing line: x in [0, w). `up` and `down` are the offsets (in samples) of the
// lines above and below (mirrored at the picture's edges). In yadif's one-frame-per-frame
// mode the temporal prediction averages `prev` and `cur`. The directional (spatial)
// search runs only where three samples either side exist, as yadif's edge handling does;
// it is written without branches so that the compiler can vectorise it.
template <bool kSpatialCheck, typename T, typename W = Work<T>>
REEL_ALWAYS_INLINE void FilterLine(T* __restrict dst, const T* __restrict prev,
                                   const T* __restrict cur, const T* __restrict next, int w,
                                   std::ptrdiff_t down, std::ptrdiff_t up) {
  auto edge = [&](int x) {
    const W diff = TemporalDiff(prev, cur, next, x, down, up);
    const W pred = static_cast<W>((cur[x + up] + cur[x + down]) >> 1);
    dst[x] = Clamp<kSpatialCheck>(prev, cur, x, down, up, diff, pred);
  };
  const int inner_end = std::max(3, w - 3);
  for (int x = 0; x < std::min(3, w); ++x) edge(x);
  const T* a = cur + up;    // the line above
  const T* b = cur + down;  // the line below
  for (int x = 3; x < inner_end; ++x) {
    auto ad = [&](int i, int j) { return static_cast<W>(std::abs(W(a[i]) - W(b[j]))); };
    auto score = [&](int j) {
      return static_cast<W>(ad(x - 1 + j, x - 1 - j) + ad(x + j, x - j) + ad(x + 1 + j, x + 1 - j));
    };
    auto avg = [&](int i, int j) { return static_cast<W>((W(a[i]) + W(b[j])) >> 1); };
    W best = static_cast<W>(score(0) - 1);
    W pred = avg(x, x);
    // Direction -1, then -2 only if -1 won; +1, then +2 only if +1 won.
    const W sm1 = score(-1), sm2 = score(-2), sp1 = score(1), sp2 = score(2);
    const bool m1 = sm1 < best;
    best = m1 ? sm1 : best;
    pred = m1 ? avg(x - 1, x + 1) : pred;
    const bool m2 = m1 && sm2 < best;
    best = m2 ? sm2 : best;
    pred = m2 ? avg(x - 2, x + 2) : pred;
    const bool p1 = sp1 < best;
    best = p1 ? sp1 : best;
    pred = p1 ? avg(x + 1, x - 1) : pred;
    const bool p2 = p1 && sp2 < best;
    pred = p2 ? avg(x + 2, x - 2) : pred;
    const W diff = TemporalDiff(prev, cur, next, x, down, up);
    dst[x] = Clamp<kSpatialCheck>(prev, cur, x, down, up, diff, pred);
  }
  for (int x = inner_end; x < w; ++x) edge(x);
}

template <typename T>
REEL_ALWAYS_INLINE void FilterAnyLine(T* dst, const T* prev, const T* cur, const T* next, int w,
                                      std::ptrdiff_t down, std::ptrdiff_t up, bool spatial_check) {
  if (spatial_check) {
    FilterLine<true>(dst, prev, cur, next, w, down, up);
  } else {
    FilterLine<false>(dst, prev, cur, next, w, down, up);
  }
}

// The entry points, built for AVX2 and for the baseline (video/simd.h).
REEL_SIMD_CLONES void FilterOneLine(uint8_t* __restrict dst, const uint8_t* __restrict prev,
                                    const uint8_t* __restrict cur, const uint8_t* __restrict next,
                                    int w, std::ptrdiff_t down, std::ptrdiff_t up,
                                    bool spatial_check) {
  FilterAnyLine(dst, prev, cur, next, w, down, up, spatial_check);
}

REEL_SIMD_CLONES void FilterOneLine(uint16_t* __restrict dst, const uint16_t* __restrict prev,
                                    const uint16_t* __restrict cur, const uint16_t* __restrict next,
                                    int w, std::ptrdiff_t down, std::ptrdiff_t up,
                                    bool spatial_check) {
  FilterAnyLine(dst, prev, cur, next, w, down, up, spatial_check);
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
    const std::ptrdiff_t down = y + 1 < h ? refs : -refs;
    const std::ptrdiff_t up = y > 0 ? -refs : refs;
    const bool spatial_check = !(y == 1 || y + 2 == h);
    FilterOneLine(dst, row(prev), row(cur), row(next), w, down, up, spatial_check);
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
  // Lines above and below are found at the same offsets in all three frames.
  for (int p = 0; p < AV_NUM_DATA_POINTERS; ++p) {
    if (prev->linesize[p] != cur->linesize[p] || next->linesize[p] != cur->linesize[p]) {
      return false;
    }
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
