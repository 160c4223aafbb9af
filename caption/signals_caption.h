// The "signals" captioner's sentence: a readable description of a clip from the signals
// `reel curate scan` stored, with no model at all.
//
//   "A bright, slow 4-second shot; the camera pans left; mostly green and blue."
//
// Words and the thresholds behind them (signals as defined in curate/clips.h):
//   pace        motion (% of the frame diagonal per frame) < 0.1 or static_ratio >= 0.9:
//               static (with a static camera, which then needs no clause) or still;
//               < 0.75: slow; < 2.5: lively; otherwise fast-moving
//   light       brightness < 0.15: very dark; < 0.3: dark; < 0.42: dim; >= 0.62: bright
//   time cues   brightness < 0.25 with little black: "in low light, possibly at night";
//               orange/yellow/brown covering >= 35% at brightness 0.3-0.8: "in warm light";
//               blue/cyan covering >= 40% at brightness >= 0.45: "in cool light"
//   camera      static: "the camera is still" (unless the shot is static); pan_left/pan_right: "the
//   camera pans
//               left/right"; tilt_up/down: "tilts up/down"; zoom_in/out: "zooms in/out";
//               shaky: "the camera is handheld and shaky"
//   colours     dominant colours covering >= 15%: one ("mostly green") when the first
//               covers >= 60%, else the first two ("mostly green and blue");
//               colorfulness < 8: "nearly monochrome"; > 70: "vivid colours"
//   focus       sharpness < 80: blurry; < 300: soft-focus; otherwise not mentioned
//   other       black_ratio >= 0.5: "mostly black frames"; text_area >= 0.15: "with
//               on-screen text" (the text detector is a heuristic: real footage without
//               text measures up to ~0.1)
// Signals that were not computed are left out of the sentence.
//
// Thread-safety: a pure function.

#ifndef REEL_CAPTION_SIGNALS_CAPTION_H_
#define REEL_CAPTION_SIGNALS_CAPTION_H_

#include <string>

#include "db/catalog.h"
#include "util/rational.h"

namespace reel {

// Bumped whenever the wording rules change, so old sentences can be told apart.
constexpr const char* kSignalsCaptionModel = "reel-signals-1";

std::string SignalsSentence(const ClipSignals& signals, Rational duration);

}  // namespace reel

#endif  // REEL_CAPTION_SIGNALS_CAPTION_H_
