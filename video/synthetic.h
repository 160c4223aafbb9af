// Synthetic videos with known content: the inputs of reel's tests, benchmarks and demo.
//
// A SyntheticVideo is a list of scenes; scene boundaries are hard cuts at known frame
// indices (cut_frames()). Every pixel is a pure function of (seed, scene, frame, x, y),
// so the same spec renders the same frames on every machine.
//
// Thread-safety: Render() is const and may be called concurrently.

#ifndef REEL_VIDEO_SYNTHETIC_H_
#define REEL_VIDEO_SYNTHETIC_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "util/rational.h"
#include "util/status.h"
#include "video/encoder.h"
#include "video/frame.h"

namespace reel {

enum class SceneKind {
  kSolid,       // one flat colour
  kMovingBox,   // a box of `foreground` moving by (dx, dy) per frame over a gradient
  kTexture,     // value noise in two colours, shifted by (dx, dy) per frame (camera pan)
  kBars,        // vertical colour bars scrolling by dx per frame
  kStillImage,  // a camera over a fixed picture: pans by (dx, dy) px and zooms by `zoom`
};

using Rgb = std::array<uint8_t, 3>;

struct SceneSpec {
  SceneKind kind = SceneKind::kMovingBox;
  int64_t frames = 30;
  Rgb background{40, 40, 40};
  Rgb foreground{230, 230, 230};
  // Motion per frame in pixels. For kTexture and kStillImage it is the camera's: positive
  // dx pans right (the picture moves left), positive dy tilts down.
  double dx = 4;
  double dy = 0;
  double zoom = 1.0;     // kStillImage: scale factor per frame (> 1 zooms in)
  int fade_in = 0;       // frames rising from black at the start
  int fade_out = 0;      // frames falling to black at the end
  int dissolve_in = 0;   // frames cross-dissolving from the previous scene (which keeps moving)
  int blur = 0;          // box-blur radius in pixels
};

struct SyntheticVideo {
  int width = 320;
  int height = 240;
  Rational frame_rate{25, 1};
  std::vector<SceneSpec> scenes;
  uint64_t seed = 1;

  int64_t frame_count() const;
  // The first frame index of every scene after the first.
  std::vector<int64_t> cut_frames() const;
  // The first frame index of every scene after the first that starts with a hard cut
  // (no dissolve).
  std::vector<int64_t> hard_cut_frames() const;
  // Renders frame `index` (0 <= index < frame_count()) as RGB24.
  void Render(int64_t index, Frame* out) const;
};

// Renders every frame of `video` and encodes it to `path`. `options` supplies the codec
// and container settings; its width, height and frame rate are taken from `video`.
Status WriteSyntheticVideo(const std::string& path, const SyntheticVideo& video,
                           EncodeOptions options = {});

// A varied, deterministic sample: 2-4 scenes of different kinds and colours, 2-5 s long.
// `variant` selects the sample; the same variant always gives the same video.
SyntheticVideo SampleVideo(int variant, int width = 320, int height = 240,
                           Rational frame_rate = Rational(25, 1));

}  // namespace reel

#endif  // REEL_VIDEO_SYNTHETIC_H_
