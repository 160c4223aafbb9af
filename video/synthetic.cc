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

void SyntheticVideo::Render(int64_t index, Frame* out) const {
  out->Allocate(width, height, PixelFormat::kRgb24);
  out->index = index;
  out->pts = index;
  out->time = Rational::FromInt(index) / frame_rate;
  out->key_frame = false;
  size_t scene_index = 0;
  int64_t local = index;
  while (scene_index + 1 < scenes.size() && local >= scenes[scene_index].frames) {
    local -= scenes[scene_index].frames;
    ++scene_index;
  }
  if (scenes.empty()) {
    std::fill(out->data.begin(), out->data.end(), 0);
    return;
  }
  const SceneSpec& s = scenes[scene_index];
  const uint64_t scene_seed = Mix(seed * 1315423911ULL + scene_index);
  const int64_t ox = s.dx * local, oy = s.dy * local;
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
          const int64_t bx = ((width / 8 + ox) % width + width) % width;
          const int64_t by = ((height / 3 + oy) % height + height) % height;
          const int64_t rx = ((x - bx) % width + width) % width;
          const int64_t ry = ((y - by) % height + height) % height;
          const bool inside = rx < bw && ry < bh;
          for (int k = 0; k < 3; ++k) {
            px[k] = inside ? s.foreground[k] : Lerp(0, s.background[k], t * 2);
          }
          break;
        }
        case SceneKind::kTexture: {
          const double v = 0.65 * ValueNoise(scene_seed, x + ox, y + oy, 24) +
                           0.35 * ValueNoise(scene_seed + 7, x + ox, y + oy, 6);
          for (int k = 0; k < 3; ++k) px[k] = Lerp(s.background[k], s.foreground[k], v);
          break;
        }
        case SceneKind::kBars: {
          static const Rgb kBars[] = {{235, 235, 235}, {235, 235, 16}, {16, 235, 235},
                                      {16, 235, 16},   {235, 16, 235}, {235, 16, 16},
                                      {16, 16, 235},   {16, 16, 16}};
          const int64_t bar_w = std::max(1, width / 8);
          const int64_t pos = ((x + ox) % (8 * bar_w) + 8 * bar_w) % (8 * bar_w);
          const Rgb& c = kBars[pos / bar_w];
          px[0] = c[0];
          px[1] = c[1];
          px[2] = c[2];
          break;
        }
      }
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
