#include "generate/shape_clips.h"

#include <cmath>
#include <cstdlib>

namespace reel::gen {
namespace {

struct Named {
  const char* name;
  std::array<uint8_t, 3> rgb;
};
constexpr Named kColours[] = {{"red", {230, 30, 30}},     {"green", {30, 210, 30}},
                              {"blue", {30, 30, 230}},    {"yellow", {230, 220, 30}},
                              {"white", {240, 240, 240}}, {"magenta", {220, 30, 220}},
                              {"cyan", {30, 220, 220}},   {"orange", {240, 140, 20}}};
constexpr Named kBackgrounds[] = {{"black", {20, 20, 20}},
                                  {"grey", {110, 110, 110}},
                                  {"navy", {20, 20, 90}},
                                  {"dark green", {20, 70, 30}}};

const char* NameOf(const std::array<uint8_t, 3>& rgb, bool background) {
  if (background) {
    for (const Named& n : kBackgrounds)
      if (n.rgb == rgb) return n.name;
  } else {
    for (const Named& n : kColours)
      if (n.rgb == rgb) return n.name;
  }
  return "coloured";
}

}  // namespace

torch::Tensor RenderShapeClip(const ShapeClipSpec& spec, int frames, int size) {
  torch::Tensor out = torch::empty({3, frames, size, size});
  auto a = out.accessor<float, 4>();
  const double r = spec.radius;
  for (int t = 0; t < frames; ++t) {
    const double cx = spec.x0 + spec.vx * t, cy = spec.y0 + spec.vy * t;
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const bool in = spec.shape == Shape::kSquare ? std::abs(dx) <= r && std::abs(dy) <= r
                                                     : dx * dx + dy * dy <= r * r;
        const auto& c = in ? spec.colour : spec.background;
        for (int k = 0; k < 3; ++k) a[k][t][y][x] = static_cast<float>(c[k]) / 127.5f - 1.0f;
      }
    }
  }
  return out;
}

ShapeClipSpec RandomShapeClip(std::mt19937_64& rng, int size) {
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  ShapeClipSpec s;
  s.shape = pick(2) == 0 ? Shape::kSquare : Shape::kDisc;
  const double scale = size / 32.0;
  s.radius = std::round(uniform(4, 8) * scale);
  s.background = kBackgrounds[pick(std::size(kBackgrounds))].rgb;
  do {
    s.colour = kColours[pick(std::size(kColours))].rgb;
  } while (std::abs(s.colour[0] - s.background[0]) < 80 &&
           std::abs(s.colour[1] - s.background[1]) < 80 &&
           std::abs(s.colour[2] - s.background[2]) < 80);
  s.x0 = uniform(s.radius, size - s.radius);
  s.y0 = uniform(s.radius, size - s.radius);
  s.vx = std::round(uniform(-2, 2) * 2) / 2 * scale;
  s.vy = std::round(uniform(-2, 2) * 2) / 2 * scale;
  return s;
}

std::string DescribeShapeClip(const ShapeClipSpec& spec) {
  std::string d = std::string("a ") + NameOf(spec.colour, false) +
                  (spec.shape == Shape::kSquare ? " square" : " disc");
  const double ax = std::abs(spec.vx), ay = std::abs(spec.vy);
  if (ax == 0 && ay == 0) {
    d += " standing still";
  } else if (ax >= 2 * ay) {
    d += spec.vx > 0 ? " moving right" : " moving left";
  } else if (ay >= 2 * ax) {
    d += spec.vy > 0 ? " moving down" : " moving up";
  } else {
    d += std::string(" moving ") + (spec.vy > 0 ? "down" : "up") + " and " +
         (spec.vx > 0 ? "right" : "left");
  }
  return d + " on " + NameOf(spec.background, true);
}

}  // namespace reel::gen
