// Synthetic training clips with known content: a flat-coloured square or disc moving in a
// straight line over a flat background (libtorch only). The generator's tests, benchmarks
// and quality measurements train on them, because what a model should reproduce is then
// exact.
//
// Thread-safety: plain functions.

#ifndef REEL_GENERATE_SHAPE_CLIPS_H_
#define REEL_GENERATE_SHAPE_CLIPS_H_

#include <array>
#include <cstdint>
#include <random>
#include <string>

#include <torch/torch.h>

namespace reel::gen {

enum class Shape { kSquare, kDisc };

struct ShapeClipSpec {
  Shape shape = Shape::kSquare;
  std::array<uint8_t, 3> colour{230, 30, 30};
  std::array<uint8_t, 3> background{20, 20, 20};
  double x0 = 16, y0 = 16;  // centre at frame 0, pixels from the top-left corner
  double vx = 0, vy = 0;    // pixels per frame
  double radius = 6;        // half the square's side, or the disc's radius
};

// [3, frames, size, size] float in [-1, 1]; a pixel is inside when its centre is.
torch::Tensor RenderShapeClip(const ShapeClipSpec& spec, int frames, int size);

// A random spec (shape, colours at least 80 apart in some channel, start inside the frame,
// speed up to 2 pixels per frame, radius 4-8 pixels for a 32-pixel frame, scaled with
// `size`) and a caption that names it ("a red disc moving left on grey").
ShapeClipSpec RandomShapeClip(std::mt19937_64& rng, int size);
std::string DescribeShapeClip(const ShapeClipSpec& spec);

}  // namespace reel::gen

#endif  // REEL_GENERATE_SHAPE_CLIPS_H_
