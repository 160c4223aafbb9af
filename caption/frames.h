// Frames of a clip for captioners: which frames, decoded how, and as JPEG.
//
// SampleClipFrames() decodes the frames of a clip at fractions of its length: frame
// start + floor(p * n) for each point p in [0, 1) (clamped to the last frame), found by
// its exact presentation timestamp (from the scan's per-frame timestamps when stored,
// else from the clip's start time and the nominal frame rate). Frames come out RGB, the
// longer side scaled down to `max_side` (0 = full size) with area averaging.
//
// Thread-safety: independent calls may run concurrently.

#ifndef REEL_CAPTION_FRAMES_H_
#define REEL_CAPTION_FRAMES_H_

#include <string>
#include <vector>

#include "caption/captioner.h"
#include "util/status.h"
#include "video/frame.h"

namespace reel {

// (i + 0.5) / n for i < n: n evenly spaced points.
std::vector<double> EvenPoints(int n);
// Open-Sora's frame points for 1, 2 and 3 frames (0.5; 0.25, 0.5; 0.1, 0.5, 0.9), evenly
// spaced points beyond.
std::vector<double> OpenSoraPoints(int n);

Result<std::vector<Frame>> SampleClipFrames(const ClipInput& in, const std::vector<double>& points,
                                            int max_side);

// Baseline JPEG of an RGB frame (quality 1-100).
Result<std::string> EncodeJpeg(const Frame& rgb, int quality);
// "data:image/jpeg;base64,..."
std::string JpegDataUri(const std::string& jpeg);

}  // namespace reel

#endif  // REEL_CAPTION_FRAMES_H_
