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
// FrameRateConverter picks the frames of a stream converted to a constant frame rate as
// ffmpeg's fps filter does it (round=near, its default, which video2dataset uses): the
// frame t seconds after the start takes output slot round(t * fps), and output frame k
// shows the last frame whose slot is at most k (later frames of one slot win; a slot no
// frame takes repeats the frame before). `curate export --fps` and `generate prepare`
// both read their frames with it (through ReadAtRate), so a clip trained on is the clip
// exported.
//
// Failure: Status naming the path (unopenable, no frame at or after a target).
// Thread-safety: independent calls may run concurrently; a FrameRateConverter is used by
// one thread.

#ifndef REEL_VIDEO_SAMPLER_H_
#define REEL_VIDEO_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/rational.h"
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

// Output frames a stretch of `duration` seconds has at `fps`: the slot its end rounds to,
// at least one (ffmpeg's fps filter gives a 0.64 s clip round(6.4) = 6 frames at 10 fps).
int64_t ConvertedFrameCount(Rational duration, Rational fps);

class FrameRateConverter {
 public:
  // `frames` output frames at `fps` (> 0).
  FrameRateConverter(Rational fps, int64_t frames) : fps_(fps), frames_(frames) {}

  // A frame `t` seconds after the start arrives (t >= 0, not decreasing). Returns how many
  // output frames the frame before it (the one held) fills now: 0 for the first frame, or
  // when this one replaces the held frame in its slot.
  int64_t Add(Rational t);
  // The input has ended (or the caller stops reading): how many output frames the last
  // frame fills, up to `frames`; 0 when no frame came.
  int64_t Finish();

  // Output frames filled so far.
  int64_t emitted() const { return emitted_; }
  // Whether every output frame is filled: later input changes nothing.
  bool done() const { return emitted_ >= frames_; }

 private:
  int64_t FillUntil(int64_t slot);

  Rational fps_;
  int64_t frames_;
  int64_t emitted_ = 0;
  bool holding_ = false;
};

// Reads the frames of [start_pts, end_pts) (in `time_base`) from `decoder`, whose next
// frame is `*frame` (as OpenVideoAt leaves it), converted by `rate`: emit(f, first, n) is
// called when frame `f` fills output frames [first, first + n). Stops when `rate` is done,
// at end_pts or at the end of the stream. Returns how many frames of the range were
// decoded (0: none could be). A decode failure, or emit's, is returned as it is.
Result<int64_t> ReadAtRate(
    VideoDecoder& decoder, Frame* frame, int64_t start_pts, int64_t end_pts, Rational time_base,
    FrameRateConverter& rate,
    const std::function<Status(const Frame& f, int64_t first, int64_t n)>& emit);

}  // namespace reel

#endif  // REEL_VIDEO_SAMPLER_H_
