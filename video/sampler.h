// Reading chosen frames of a video by presentation timestamp.
//
// OpenVideoAt() opens a video positioned so that the first frame it returns is at or
// before a target timestamp (seeking to the keyframe before it; if the container lands
// late, seeking further back, and at worst decoding from the start). Callers then decode
// forward to the exact frame: cuts and samples land on the frame asked for.
//
// ReadFramesAtPts() returns, for each target timestamp, the first frame whose pts is at
// or after it, decoding forward and seeking again across gaps of more than
// `seek_gap_seconds`.
//
// Failure: Status naming the path (unopenable, no frame at or after a target).
// Thread-safety: independent calls may run concurrently.

#ifndef REEL_VIDEO_SAMPLER_H_
#define REEL_VIDEO_SAMPLER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"
#include "video/decoder.h"

namespace reel {

Result<std::unique_ptr<VideoDecoder>> OpenVideoAt(const std::string& path,
                                                  const DecodeOptions& options, int64_t target_pts,
                                                  Frame* first);

Result<std::vector<Frame>> ReadFramesAtPts(const std::string& path,
                                           const std::vector<int64_t>& target_pts,
                                           const DecodeOptions& options,
                                           double seek_gap_seconds = 4.0);

}  // namespace reel

#endif  // REEL_VIDEO_SAMPLER_H_
