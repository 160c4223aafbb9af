#include "video/sampler.h"

#include <algorithm>
#include <utility>

namespace reel {

Result<std::unique_ptr<VideoDecoder>> OpenVideoAt(const std::string& path,
                                                  const DecodeOptions& options, int64_t target_pts,
                                                  Frame* first) {
  REEL_ASSIGN_OR_RETURN(auto decoder, VideoDecoder::Open(path, options));
  const Rational time_base = decoder->info().time_base;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt == 2) {
      REEL_ASSIGN_OR_RETURN(decoder, VideoDecoder::Open(path, options));  // from the start
    } else {
      const int64_t back = attempt == 0 || !time_base.valid() || time_base <= Rational()
                               ? 0
                               : (Rational(10, 1) / time_base).Round();
      // A stream that cannot seek (a raw .h264 or .hevc file) is read from the start.
      if (!decoder->SeekToPts(target_pts - back).ok()) {
        attempt = 1;
        continue;
      }
    }
    REEL_ASSIGN_OR_RETURN(bool more, decoder->Next(first));
    if (!more) {
      if (attempt == 2) return Status::Corruption(path + ": no frames");
      continue;
    }
    if (first->pts <= target_pts || attempt == 2) return decoder;
  }
  return Status::Internal(path + ": positioning failed");
}

Result<std::vector<Frame>> ReadFramesAtPts(const std::string& path,
                                           const std::vector<int64_t>& target_pts,
                                           const DecodeOptions& options, double seek_gap_seconds) {
  std::vector<Frame> out;
  if (target_pts.empty()) return out;
  if (!std::is_sorted(target_pts.begin(), target_pts.end())) {
    return Status::InvalidArgument("ReadFramesAtPts: targets must be in ascending order");
  }
  Frame frame;
  REEL_ASSIGN_OR_RETURN(auto decoder, OpenVideoAt(path, options, target_pts.front(), &frame));
  const Rational time_base = decoder->info().time_base;
  const int64_t gap =
      time_base.valid() && time_base > Rational()
          ? (Rational(static_cast<int64_t>(seek_gap_seconds * 1000), 1000) / time_base).Round()
          : INT64_MAX;
  bool have = true;  // `frame` holds an undelivered decoded frame
  for (size_t i = 0; i < target_pts.size(); ++i) {
    const int64_t target = target_pts[i];
    if (i > 0 && have && target - frame.pts > gap) {
      REEL_ASSIGN_OR_RETURN(decoder, OpenVideoAt(path, options, target, &frame));
    }
    while (have && frame.pts < target) {
      Frame next;
      REEL_ASSIGN_OR_RETURN(bool more, decoder->Next(&next));
      if (!more) {
        have = false;
        break;
      }
      frame = std::move(next);
    }
    if (!have && frame.data.empty()) {
      return Status::Corruption(path + ": no frame at or after pts " + std::to_string(target));
    }
    // Past the end: the last frame stands in (a target rounded beyond the stream).
    out.push_back(frame);
  }
  return out;
}

int64_t ConvertedFrameCount(Rational duration, Rational fps) {
  return std::max<int64_t>(1, (duration * fps).Round());
}

int64_t FrameRateConverter::FillUntil(int64_t slot) {
  if (!holding_) return 0;
  const int64_t n = std::max<int64_t>(0, std::min(slot, frames_) - emitted_);
  emitted_ += n;
  return n;
}

int64_t FrameRateConverter::Add(Rational t) {
  const int64_t n = FillUntil((t * fps_).Round());
  holding_ = true;
  return n;
}

int64_t FrameRateConverter::Finish() {
  return FillUntil(frames_);
}

Result<int64_t> ReadAtRate(
    VideoDecoder& decoder, Frame* frame, int64_t start_pts, int64_t end_pts, Rational time_base,
    FrameRateConverter& rate,
    const std::function<Status(const Frame& f, int64_t first, int64_t n)>& emit) {
  // The last frame of the range, which fills its slots when the next comes. Frames are
  // converted only when they fill one: a frame the next replaces in its slot never is.
  Frame held;
  auto put_held = [&](int64_t n) -> Status {
    if (n == 0) return Status::OK();
    REEL_RETURN_IF_ERROR(decoder.Convert(&held));
    return emit(held, rate.emitted() - n, n);
  };
  int64_t in_range = 0;
  while (!rate.done() && frame->pts < end_pts) {
    if (frame->pts >= start_pts) {
      ++in_range;
      REEL_RETURN_IF_ERROR(put_held(rate.Add(TicksToSeconds(frame->pts - start_pts, time_base))));
      std::swap(held, *frame);  // (the next frame is converted into the buffer held had)
    }
    REEL_ASSIGN_OR_RETURN(const bool more, decoder.NextUnconverted(frame));
    if (!more) break;
  }
  REEL_RETURN_IF_ERROR(put_held(rate.Finish()));
  return in_range;
}

}  // namespace reel
