#include "video/synthetic.h"

#include <algorithm>
#include <cmath>

namespace reel {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Smooth value noise in [0, 1] with a cell size of `cell` pixels.
double ValueNoise(uint64_t seed, int64_t x, int64_t y, int cell) {
  auto lattice = [&](int64_t i, int64_t j) {
    return static_cast<double>(Mix(seed ^ Mix(static_cast<uint64_t>(i) * 0x100000001b3ULL ^
                                              static_cast<uint64_t>(j))) >>
                               11) /
           static_cast<double>(1ULL << 53);
  };
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  const int64_t i = floor_div(x, cell), j = floor_div(y, cell);
  const double fx = static_cast<double>(x - i * cell) / cell;
  const double fy = static_cast<double>(y - j * cell) / cell;
  const double sx = fx * fx * (3 - 2 * fx), sy = fy * fy * (3 - 2 * fy);
  const double a = lattice(i, j), b = lattice(i + 1, j);
  const double c = lattice(i, j + 1), d = lattice(i + 1, j + 1);
  return (a + (b - a) * sx) * (1 - sy) + (c + (d - c) * sx) * sy;
}

// Smooth value noise in [0, 1] at a real-valued position, cell size `cell`.
double ValueNoiseAt(uint64_t seed, double x, double y, double cell) {
  auto lattice = [&](int64_t i, int64_t j) {
    return static_cast<double>(Mix(seed ^ Mix(static_cast<uint64_t>(i) * 0x100000001b3ULL ^
                                               static_cast<uint64_t>(j))) >>
                               11) /
           static_cast<double>(1ULL << 53);
  };
  const double gx = x / cell, gy = y / cell;
  const double fx = std::floor(gx), fy = std::floor(gy);
  const int64_t i = static_cast<int64_t>(fx), j = static_cast<int64_t>(fy);
  const double ax = gx - fx, ay = gy - fy;
  const double sx = ax * ax * (3 - 2 * ax), sy = ay * ay * (3 - 2 * ay);
  const double a = lattice(i, j), b = lattice(i + 1, j);
  const double c = lattice(i, j + 1), d = lattice(i + 1, j + 1);
  return (a + (b - a) * sx) * (1 - sy) + (c + (d - c) * sx) * sy;
}

// The fixed picture a kStillImage camera looks at: three octaves of coloured noise, so
// it has detail at every scale for optical flow and sharpness to measure.
void StillPicture(uint64_t seed, const Rgb& lo, const Rgb& hi, double u, double v, uint8_t* px) {
  const double n = 0.5 * ValueNoiseAt(seed, u, v, 40) + 0.3 * ValueNoiseAt(seed + 1, u, v, 12) +
                   0.2 * ValueNoiseAt(seed + 2, u, v, 4);
  const double hue = ValueNoiseAt(seed + 3, u, v, 60);
  for (int k = 0; k < 3; ++k) {
    const double base = lo[k] + (hi[k] - lo[k]) * n;
    const double tint = (k == static_cast<int>(hue * 3) % 3) ? 25.0 : -10.0;
    px[k] = static_cast<uint8_t>(std::clamp(base + tint * hue, 0.0, 255.0));
  }
}

void BoxBlur(Frame* f, int radius) {
  if (radius <= 0) return;
  const int w = f->width, h = f->height;
  std::vector<uint8_t> tmp(f->data.size());
  auto pass = [&](const uint8_t* src, uint8_t* dst, bool horizontal) {
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        int sum[3] = {0, 0, 0}, count = 0;
        for (int k = -radius; k <= radius; ++k) {
          const int xx = horizontal ? std::clamp(x + k, 0, w - 1) : x;
          const int yy = horizontal ? y : std::clamp(y + k, 0, h - 1);
          const uint8_t* p = src + (static_cast<size_t>(yy) * w + xx) * 3;
          sum[0] += p[0];
          sum[1] += p[1];
          sum[2] += p[2];
          ++count;
        }
        uint8_t* q = dst + (static_cast<size_t>(y) * w + x) * 3;
        for (int c = 0; c < 3; ++c) q[c] = static_cast<uint8_t>(sum[c] / count);
      }
    }
  };
  pass(f->data.data(), tmp.data(), true);
  pass(tmp.data(), f->data.data(), false);
}

uint8_t Lerp(uint8_t a, uint8_t b, double t) {
  return static_cast<uint8_t>(std::lround(a + (b - a) * std::clamp(t, 0.0, 1.0)));
}

}  // namespace

int64_t SyntheticVideo::frame_count() const {
  int64_t n = 0;
  for (const auto& s : scenes) n += s.frames;
  return n;
}

std::vector<int64_t> SyntheticVideo::cut_frames() const {
  std::vector<int64_t> cuts;
  int64_t start = 0;
  for (size_t i = 0; i < scenes.size(); ++i) {
    if (i > 0) cuts.push_back(start);
    start += scenes[i].frames;
  }
  return cuts;
}

std::vector<int64_t> SyntheticVideo::hard_cut_frames() const {
  std::vector<int64_t> cuts;
  int64_t start = 0;
  for (size_t i = 0; i < scenes.size(); ++i) {
    if (i > 0 && scenes[i].dissolve_in == 0) cuts.push_back(start);
    start += scenes[i].frames;
  }
  return cuts;
}

namespace {

// Frame `local` of `s` (before fades and dissolves).
void RenderScene(const SceneSpec& s, uint64_t scene_seed, int64_t local, int width, int height,
                 Frame* out) {
  const double ox = s.dx * static_cast<double>(local), oy = s.dy * static_cast<double>(local);
  for (int y = 0; y < height; ++y) {
    uint8_t* row = out->row(y);
    for (int x = 0; x < width; ++x) {
      uint8_t* px = row + 3 * x;
      switch (s.kind) {
        case SceneKind::kSolid:
          px[0] = s.background[0];
          px[1] = s.background[1];
          px[2] = s.background[2];
          break;
        case SceneKind::kMovingBox: {
          // A vertical gradient background with a box that wraps around the frame.
          const double t = 0.35 + 0.3 * y / std::max(1, height - 1);
          const int bw = std::max(4, width / 5), bh = std::max(4, height / 4);
          const int64_t bx = ((width / 8 + static_cast<int64_t>(std::lround(ox))) % width + width) % width;
          const int64_t by = ((height / 3 + static_cast<int64_t>(std::lround(oy))) % height + height) % height;
          const int64_t rx = ((x - bx) % width + width) % width;
          const int64_t ry = ((y - by) % height + height) % height;
          const bool inside = rx < bw && ry < bh;
          for (int k = 0; k < 3; ++k) {
            px[k] = inside ? s.foreground[k] : Lerp(0, s.background[k], t * 2);
          }
          break;
        }
        case SceneKind::kTexture: {
          const int64_t ix = x + static_cast<int64_t>(std::lround(ox));
          const int64_t iy = y + static_cast<int64_t>(std::lround(oy));
          const double v = 0.65 * ValueNoise(scene_seed, ix, iy, 24) +
                           0.35 * ValueNoise(scene_seed + 7, ix, iy, 6);
          for (int k = 0; k < 3; ++k) px[k] = Lerp(s.background[k], s.foreground[k], v);
          break;
        }
        case SceneKind::kBars: {
          static const Rgb kBars[] = {{235, 235, 235}, {235, 235, 16}, {16, 235, 235},
                                      {16, 235, 16},   {235, 16, 235}, {235, 16, 16},
                                      {16, 16, 235},   {16, 16, 16}};
          const int64_t bar_w = std::max(1, width / 8);
          const int64_t pos =
              ((x + static_cast<int64_t>(std::lround(ox))) % (8 * bar_w) + 8 * bar_w) % (8 * bar_w);
          const Rgb& c = kBars[pos / bar_w];
          px[0] = c[0];
          px[1] = c[1];
          px[2] = c[2];
          break;
        }
        case SceneKind::kStillImage: {
          // The camera's view: centred on (ox, oy) of the picture, magnified zoom^local.
          const double scale = std::pow(s.zoom, -static_cast<double>(local));
          const double u = ox + (x - width / 2.0) * scale;
          const double v = oy + (y - height / 2.0) * scale;
          StillPicture(scene_seed, s.background, s.foreground, u, v, px);
          break;
        }
      }
    }
  }
  BoxBlur(out, s.blur);
}

void Scale(Frame* f, double alpha) {
  for (uint8_t& v : f->data) v = static_cast<uint8_t>(std::lround(v * std::clamp(alpha, 0.0, 1.0)));
}

}  // namespace

void SyntheticVideo::Render(int64_t index, Frame* out) const {
  out->Allocate(width, height, PixelFormat::kRgb24);
  out->index = index;
  out->pts = index;
  out->time = Rational::FromInt(index) / frame_rate;
  out->key_frame = false;
  if (scenes.empty()) {
    std::fill(out->data.begin(), out->data.end(), 0);
    return;
  }
  size_t scene_index = 0;
  int64_t local = index;
  while (scene_index + 1 < scenes.size() && local >= scenes[scene_index].frames) {
    local -= scenes[scene_index].frames;
    ++scene_index;
  }
  auto seed_of = [this](size_t i) { return Mix(seed * 1315423911ULL + i); };
  const SceneSpec& s = scenes[scene_index];
  RenderScene(s, seed_of(scene_index), local, width, height, out);
  if (s.fade_in > 0 && local < s.fade_in) Scale(out, static_cast<double>(local) / s.fade_in);
  const int64_t from_end = s.frames - 1 - local;
  if (s.fade_out > 0 && from_end < s.fade_out) Scale(out, static_cast<double>(from_end) / s.fade_out);
  if (s.dissolve_in > 0 && scene_index > 0 && local < s.dissolve_in) {
    // The previous scene keeps playing under the dissolve.
    const SceneSpec& prev = scenes[scene_index - 1];
    Frame under;
    under.Allocate(width, height, PixelFormat::kRgb24);
    RenderScene(prev, seed_of(scene_index - 1), prev.frames + local, width, height, &under);
    const double alpha = static_cast<double>(local + 1) / (s.dissolve_in + 1);
    for (size_t i = 0; i < out->data.size(); ++i) {
      out->data[i] = static_cast<uint8_t>(std::lround(alpha * out->data[i] + (1 - alpha) * under.data[i]));
    }
  }
}

Status WriteSyntheticVideo(const std::string& path, const SyntheticVideo& video,
                           EncodeOptions options) {
  options.width = video.width;
  options.height = video.height;
  options.frame_rate = video.frame_rate;
  REEL_ASSIGN_OR_RETURN(auto encoder, VideoEncoder::Open(path, options));
  Frame frame;
  const int64_t n = video.frame_count();
  for (int64_t i = 0; i < n; ++i) {
    video.Render(i, &frame);
    REEL_RETURN_IF_ERROR(encoder->Write(frame));
  }
  return encoder->Finish();
}

SyntheticVideo SampleVideo(int variant, int width, int height, Rational frame_rate) {
  static const Rgb kPalette[] = {{200, 60, 50},  {50, 140, 210},  {60, 170, 80}, {230, 190, 60},
                                 {150, 80, 180}, {240, 240, 240}, {30, 30, 30},  {220, 120, 40}};
  SyntheticVideo v;
  v.width = width;
  v.height = height;
  v.frame_rate = frame_rate;
  v.seed = 1000 + static_cast<uint64_t>(variant);
  uint64_t r = Mix(v.seed);
  auto next = [&r](uint64_t mod) {
    r = Mix(r);
    return r % mod;
  };
  const int scene_count = 2 + static_cast<int>(next(3));
  const int64_t fps = std::max<int64_t>(1, frame_rate.Round());
  for (int i = 0; i < scene_count; ++i) {
    SceneSpec s;
    s.kind = static_cast<SceneKind>(1 + next(3));  // moving box, texture or bars
    s.frames = fps + static_cast<int64_t>(next(static_cast<uint64_t>(fps) * 3 / 4 + 1));
    s.background = kPalette[next(8)];
    s.foreground = kPalette[next(8)];
    if (s.foreground == s.background) s.foreground = kPalette[(next(7) + 1) % 8];
    s.dx = static_cast<int>(next(9)) - 4;
    s.dy = static_cast<int>(next(5)) - 2;
    v.scenes.push_back(s);
  }
  return v;
}

}  // namespace reel
