#include "video/probe.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <queue>
#include <set>
#include <utility>
#include <vector>

#include "util/strings.h"
#include "video/av_util.h"

namespace reel {
namespace {

bool IsImageDemuxer(const std::string& name) {
  return name == "image2" || EndsWith(name, "_pipe");
}

// A decoder shows a frame after at most this many frames decoded before it (the largest
// H.264/HEVC picture buffer), so a timestamp in decode order is below at most this many of
// the timestamps before it.
constexpr size_t kMaxReorderFrames = 16;

// The first shown packet (decode order) whose timestamp lies below more than
// kMaxReorderFrames earlier ones: time runs backwards there, as in two streams joined end
// to end (`cat a.ts b.ts`), and frame times would no longer say where a frame is. Returns
// its position and how far time fell (ticks), or position -1.
std::pair<int64_t, int64_t> FindTimeReversal(const std::vector<int64_t>& decode_order_pts) {
  // The kMaxReorderFrames + 1 largest timestamps so far, smallest on top.
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> largest;
  int64_t max_pts = INT64_MIN;
  for (size_t i = 0; i < decode_order_pts.size(); ++i) {
    const int64_t pts = decode_order_pts[i];
    if (largest.size() > kMaxReorderFrames && largest.top() > pts) {
      return {static_cast<int64_t>(i), max_pts - pts};
    }
    max_pts = std::max(max_pts, pts);
    largest.push(pts);
    if (largest.size() > kMaxReorderFrames + 1) largest.pop();
  }
  return {-1, 0};
}

// Whether sorted presentation timestamps are spaced unevenly. One tick of jitter is
// rounding (29.97 fps in a 1/1000 time base alternates 33 and 34 ms), not VFR.
bool HasVariableSpacing(const std::vector<int64_t>& sorted_pts) {
  if (sorted_pts.size() < 3) return false;
  std::vector<int64_t> deltas;
  deltas.reserve(sorted_pts.size() - 1);
  for (size_t i = 1; i < sorted_pts.size(); ++i)
    deltas.push_back(sorted_pts[i] - sorted_pts[i - 1]);
  std::vector<int64_t> tmp = deltas;
  std::nth_element(tmp.begin(), tmp.begin() + tmp.size() / 2, tmp.end());
  const int64_t median = tmp[tmp.size() / 2];
  const int64_t tolerance = std::max<int64_t>(1, median / 100);
  for (int64_t d : deltas) {
    if (d <= 0 || std::llabs(d - median) > tolerance) return true;
  }
  return false;
}

// Relative closeness of two positive rationals, as doubles (for choosing a label only).
bool Close(Rational a, Rational b, double rel) {
  if (!a.valid() || !b.valid() || b.is_zero()) return false;
  const double x = a.ToDouble(), y = b.ToDouble();
  return std::fabs(x - y) <= rel * std::fabs(y);
}

}  // namespace

void DisplaySize(int width, int height, Rational sample_aspect_ratio, int rotation,
                 int* display_width, int* display_height) {
  int w = width;
  if (sample_aspect_ratio.valid() && sample_aspect_ratio.num() > 0 &&
      sample_aspect_ratio != Rational(1, 1)) {
    w = static_cast<int>((Rational::FromInt(width) * sample_aspect_ratio).Round());
  }
  const bool turned = rotation == 90 || rotation == 270;
  *display_width = turned ? height : w;
  *display_height = turned ? w : height;
}

int VideoInfo::display_width() const {
  int w = 0, h = 0;
  DisplaySize(width, height, sample_aspect_ratio, rotation, &w, &h);
  return w;
}

int VideoInfo::display_height() const {
  int w = 0, h = 0;
  DisplaySize(width, height, sample_aspect_ratio, rotation, &w, &h);
  return h;
}

bool IsHdrTransfer(const std::string& transfer) {
  return transfer == "smpte2084" || transfer == "arib-std-b67";
}

bool IsInterlaced(const std::string& field_order) {
  return field_order == "tt" || field_order == "bb" || field_order == "tb" || field_order == "bt";
}

bool HasVideoExtension(const std::string& path) {
  static const char* kExtensions[] = {
      ".mp4",  ".m4v",  ".mov", ".mkv",  ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
      ".flv",  ".wmv",  ".3gp", ".ogv",  ".mxf",  ".y4m", ".gif", ".vob",  ".dv", ".asf", ".f4v",
      ".hevc", ".h264", ".264", ".h265", ".265",  ".m2v", ".m1v", ".ivf",  ".nut"};
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return false;
  const std::string ext = ToLower(path.substr(dot));
  for (const char* e : kExtensions) {
    if (ext == e) return true;
  }
  return false;
}

std::string LibavVersionString() {
  auto v = [](unsigned x) {
    return std::to_string(AV_VERSION_MAJOR(x)) + "." + std::to_string(AV_VERSION_MINOR(x)) + "." +
           std::to_string(AV_VERSION_MICRO(x));
  };
  return "libavformat " + v(avformat_version()) + ", libavcodec " + v(avcodec_version()) +
         ", libavutil " + v(avutil_version()) + ", libswscale " + v(swscale_version());
}

Result<VideoInfo> ProbeVideo(const std::string& path, const ProbeOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kIOError,
                  path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  if (st.st_size == 0) return Status::Corruption(path + ": empty file");

  REEL_ASSIGN_OR_RETURN(av::FormatContextPtr ctx, av::OpenInput(path));
  const int vindex = av::PickVideoStream(ctx.get());
  if (vindex < 0) {
    return Status::NotSupported(path + ": no video stream (container '" +
                                std::string(ctx->iformat->name) + "')");
  }
  VideoInfo info = av::HeaderInfo(ctx.get(), vindex);
  AVStream* vs = ctx->streams[vindex];
  if (info.width <= 0 || info.height <= 0) {
    // The demuxer reads the size from a sequence header (H.264/HEVC parameter sets, an
    // MPEG-2 sequence header), which comes with keyframes: a piece cut from a stream after
    // its last keyframe has none, and none of its frames can be decoded.
    return Status::Corruption(path +
                              ": video stream has no picture size: no sequence header "
                              "(it comes with keyframes), so no frame can be decoded "
                              "(a piece cut from a stream after its last keyframe?)");
  }

  const int64_t file_size = avio_size(ctx->pb);
  // Decoder used only to prove the first frame decodes.
  av::CodecContextPtr dec;
  if (options.check_decode) {
    REEL_ASSIGN_OR_RETURN(dec, av::OpenDecoder(vs, 1, false, path));
  }
  av::PacketPtr pkt(av_packet_alloc());
  av::FramePtr frame(av_frame_alloc());
  // The first frames the decoder returns: one proves the stream decodes; as many more as
  // the stream reorders (has_b_frames) give the earliest time it shows, whatever order
  // the decoder returns them in (see VideoDecoder).
  int64_t decoded = 0;
  bool decode_done = !options.check_decode;
  int64_t first_decoded_pts = AV_NOPTS_VALUE;  // the earliest of those frames
  // Where a cut mid-GOP leaves frames no decoder shows (see below): how many timed
  // packets came before the first keyframe, and the times of the first keyframe's
  // leading pictures (after it in decode order, before it in time).
  int64_t first_key_pts = AV_NOPTS_VALUE;
  int keys = 0;
  size_t timed_before_first_key = 0;
  std::set<int64_t> first_key_leading;
  const bool hevc = vs->codecpar->codec_id == AV_CODEC_ID_HEVC;
  int last_decode_error = 0;
  std::vector<int64_t> pts_list;
  int64_t last_duration = 0;
  // Shown packets without any timestamp (raw elementary streams: .h264, .m2v) and their
  // summed durations (-1 once one has none).
  int64_t untimed = 0, untimed_ticks = 0;
  // Decode times only rise within a stream. Where they fall, streams were joined end to
  // end: that is harmless when the second starts after the first ends (segments encoded
  // apart, each starting its decode times a reordering delay before its first frame), and
  // time runs backwards when they overlap, perhaps by less than FindTimeReversal's
  // reordering reach. So each fall records the latest display time before it and the
  // earliest after it (up to the next fall).
  struct DtsFall {
    int64_t frame;       // shown packets before it
    int64_t max_before;  // latest pts before it
    int64_t min_after = INT64_MAX;
  };
  std::vector<DtsFall> dts_falls;
  int64_t last_dts = AV_NOPTS_VALUE, max_pts = INT64_MIN;
  int64_t max_end = INT64_MIN;
  int64_t packets = 0;  // video packets shown (the frame count)
  int64_t stored = 0;   // video packets in the file, edited out or not
  int64_t last_damaged = -1;  // the last video packet the demuxer flagged corrupt

  auto try_decode = [&](const AVPacket* p) {
    if (decode_done) return;
    int err = avcodec_send_packet(dec.get(), p);
    if (err < 0 && err != AVERROR(EAGAIN) && err != AVERROR_EOF) last_decode_error = err;
    while (true) {
      err = avcodec_receive_frame(dec.get(), frame.get());
      if (err == 0) {
        const int64_t t = frame->best_effort_timestamp;
        if (decoded == 0) {
          info.decoded_field_order = !frame->interlaced_frame ? "progressive"
                                     : frame->top_field_first ? "tt"
                                                              : "bb";
        }
        if (first_decoded_pts == AV_NOPTS_VALUE || (t != AV_NOPTS_VALUE && t < first_decoded_pts)) {
          first_decoded_pts = t;
        }
        av_frame_unref(frame.get());
        if (++decoded > std::max(0, dec->has_b_frames) || !options.count_frames) {
          decode_done = true;
          return;
        }
        continue;
      }
      if (err != AVERROR(EAGAIN) && err != AVERROR_EOF) last_decode_error = err;
      return;
    }
  };

  if (options.count_frames || options.check_decode) {
    while (true) {
      const int err = av_read_frame(ctx.get(), pkt.get());
      if (err == AVERROR_EOF) break;
      if (err < 0) {
        return av::ReadErrorStatus(err, path,
                                   "read error after " + std::to_string(stored) + " video packets");
      }
      if (pkt->stream_index == vindex) {
        // The demuxer flags a packet read short at the end of the file (truncated), and in
        // MPEG-TS one whose continuity counter jumped: packets were lost, or segments were
        // joined with `cat` (the usual way to merge HLS segments), where nothing is lost.
        // Mid-stream, the decoder goes on (as ffmpeg does) and reports what it could not
        // decode; only the last packet flagged means the file is cut short.
        if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
          ++info.damaged_packets;
          last_damaged = stored;
        }
        // The container's index places the packet past the end: the file was cut short,
        // or (seen with DV in .mov/.avi) bytes before the packet are gone; the index alone
        // cannot tell which.
        if (file_size > 0 && pkt->pos >= 0 && pkt->pos + pkt->size > file_size) {
          av_packet_unref(pkt.get());
          return Status::Corruption(path + ": truncated: video frame " + std::to_string(stored) +
                                    " lies past the end of the file (cut short, or bytes "
                                    "missing before it)");
        }
        // A packet the container's edit list cuts away (an MP4 trimmed with `ffmpeg -ss X
        // -c copy` starts with the frames before X) is not shown, so it is neither a frame
        // nor a timestamp of the video; but the frames shown may be predicted from it, so
        // the decoder gets it (and drops its picture itself).
        const bool shown = !(pkt->flags & AV_PKT_FLAG_DISCARD);
        const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
        if (pkt->flags & AV_PKT_FLAG_KEY) {
          if (++keys == 1) {
            first_key_pts = ts;
            timed_before_first_key = pts_list.size();
          }
        } else if (keys == 1 && shown && ts != AV_NOPTS_VALUE && first_key_pts != AV_NOPTS_VALUE &&
                   ts < first_key_pts && (!hevc || av::IsHevcRasl(pkt.get(), vs->codecpar))) {
          first_key_leading.insert(ts);
        }
        if (pkt->dts != AV_NOPTS_VALUE) {
          if (last_dts != AV_NOPTS_VALUE && pkt->dts < last_dts && max_pts != INT64_MIN) {
            dts_falls.push_back({packets, max_pts});
          }
          last_dts = pkt->dts;
        }
        if (shown && ts != AV_NOPTS_VALUE) {
          pts_list.push_back(ts);
          if (pkt->duration > 0) {
            last_duration = pkt->duration;
            max_end = std::max(max_end, ts + pkt->duration);
          }
          max_pts = std::max(max_pts, ts);
          if (!dts_falls.empty())
            dts_falls.back().min_after = std::min(dts_falls.back().min_after, ts);
        } else if (shown) {
          ++untimed;
          untimed_ticks =
              pkt->duration > 0 && untimed_ticks >= 0 ? untimed_ticks + pkt->duration : -1;
        }
        ++stored;
        if (shown) ++packets;
        try_decode(pkt.get());
        if (!options.count_frames && decode_done) {
          av_packet_unref(pkt.get());
          break;
        }
      }
      av_packet_unref(pkt.get());
    }
    if (!decode_done) try_decode(nullptr);  // flush delayed frames
    if (options.check_decode && decoded == 0) {
      // No packet at all: Matroska cut inside its first frame says so only in its log; an
      // MP4 whose sample table was damaged lists none.
      if (stored == 0) {
        const std::string cause = av::LastErrorCause();
        return Status::Corruption(path +
                                  ": no video frame before the end of the file: empty, cut "
                                  "short or damaged" +
                                  (cause.empty() ? std::string() : " (" + cause + ")"));
      }
      if (last_decode_error < 0) {
        return av::ErrorStatus(last_decode_error, path, "no decodable video frame");
      }
      return Status::Corruption(path + ": no decodable video frame");
    }
  }

  if (options.count_frames) {
    // A capture cut anywhere (a transport stream recorded from mid-GOP) starts with
    // frames predicted from pictures it does not hold, which decoders do not show (nor
    // does ffprobe -count_frames count them), so they are not frames of the video:
    // - the packets before the first keyframe, those timed before the earliest of the
    //   first frames the decoder returned. H.264 and MPEG-2 decoders show none of them;
    //   HEVC's conceals the missing pictures and shows them (and may return the first
    //   ones only at the end, which VideoDecoder drops as too late).
    // - the first keyframe's leading pictures that predict from the GOP before (an open
    //   GOP's B-frames): those timed before the first frame returned, or in HEVC, whose
    //   decoder shows frames before its first keyframe, the RASL pictures.
    if (keys > 0 && first_decoded_pts != AV_NOPTS_VALUE) {
      const auto first_key = pts_list.begin() + static_cast<std::ptrdiff_t>(timed_before_first_key);
      const auto kept_before = std::remove_if(pts_list.begin(), first_key,
                                              [&](int64_t t) { return t < first_decoded_pts; });
      int64_t dropped = first_key - kept_before;
      pts_list.erase(kept_before, first_key);
      if (!first_key_leading.empty()) {
        const auto kept = std::remove_if(pts_list.begin(), pts_list.end(), [&](int64_t t) {
          return (hevc || t < first_decoded_pts) && first_key_leading.erase(t) > 0;
        });
        dropped += pts_list.end() - kept;
        pts_list.erase(kept, pts_list.end());
      }
      info.undecodable_lead = dropped;
      packets -= dropped;
    }
    if (packets == 0) return Status::Corruption(path + ": video stream has no frames");
    if (last_damaged >= 0 && last_damaged == stored - 1) {
      return Status::Corruption(path + ": truncated or damaged: the last video packet (frame " +
                                std::to_string(last_damaged) + ") is incomplete");
    }
    info.frame_count = packets;
    auto [reversal, fall] = FindTimeReversal(pts_list);
    for (const DtsFall& f : dts_falls) {
      if (f.min_after > f.max_before) continue;  // the next stream starts after this one
      if (reversal < 0 || f.frame < reversal) {
        reversal = f.frame;
        fall = f.max_before - f.min_after;
      }
      break;
    }
    if (reversal >= 0) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%.3f s",
                    TicksToSeconds(fall, info.time_base).ToDouble());
      return Status::NotSupported(
          path + ": video time runs backwards by " + seconds + " at frame " +
          std::to_string(reversal) +
          " (streams joined end to end, or a damaged timestamp?), so reel cannot place frames "
          "in time; re-encode it "
          "with fresh timestamps, e.g. ffmpeg -i IN -fps_mode passthrough -vf "
          "setpts=N/FRAME_RATE/TB OUT.mp4");
    }
    std::sort(pts_list.begin(), pts_list.end());
    if (!pts_list.empty()) {
      info.variable_frame_rate = HasVariableSpacing(pts_list);
      const int64_t first = pts_list.front();
      int64_t end = pts_list.back();
      if (max_end > end) {
        end = max_end;
      } else if (last_duration > 0) {
        end += last_duration;
      } else if (pts_list.size() >= 2) {
        end += (pts_list.back() - first) / static_cast<int64_t>(pts_list.size() - 1);
      }
      info.start_time = TicksToSeconds(first, info.time_base);
      info.duration = TicksToSeconds(end - first, info.time_base);
    } else if (untimed == packets) {
      // No timestamps at all (a raw elementary stream): the frames' summed durations, or
      // their count at the stated frame rate; the decoder times them from 0 the same way.
      const Rational rate = av::RationalOr(vs->r_frame_rate, Rational::Invalid());
      info.start_time = Rational(0, 1);
      if (untimed_ticks > 0) {
        info.duration = TicksToSeconds(untimed_ticks, info.time_base);
      } else if (rate.valid() && rate > Rational(0, 1)) {
        info.duration = Rational::FromInt(packets) / rate;
      }
    }
    // Fewer packets than the header lists: the file was cut short, unless the frames
    // missing are gaps in time. An AVI lists the empty chunks that stand for frames its
    // capture dropped, which the demuxer skips; its frames still span that many periods.
    if (vs->nb_frames > 0 && stored < vs->nb_frames) {
      const Rational rate = av::RationalOr(vs->r_frame_rate, Rational::Invalid());
      const bool gaps =
          rate.valid() && info.duration.valid() && (info.duration * rate).Round() >= vs->nb_frames;
      if (!gaps) {
        return Status::Corruption(path + ": truncated: header lists " +
                                  std::to_string(vs->nb_frames) + " frames, file holds " +
                                  std::to_string(stored));
      }
    }
    // Without an exact frame count in the header (Matroska, WebM), a file cut short shows
    // as video ending well before the duration the container declares.
    if (vs->nb_frames <= 0 && !info.has_audio && ctx->duration > 0 && info.duration.valid()) {
      // Containers declare either the length or the end position; compare against the
      // larger of where the video ends and its length, so neither reading misfires. (The
      // length is the larger when the video starts before 0: an MPEG-TS whose 33-bit
      // clock wraps, unwrapped by the demuxer into times before 0.)
      const Rational declared(ctx->duration, AV_TIME_BASE);
      const Rational video_end = info.start_time + info.duration;
      const Rational reach = std::max(video_end, info.duration);
      if (reach * Rational(10, 9) + Rational(1, 10) < declared) {
        return Status::Corruption(path + ": truncated: container declares " +
                                  FormatTimecode(declared) + " but video ends at " +
                                  FormatTimecode(video_end));
      }
    }
  }
  // Without count_frames, frame count, start and duration are the headers' (HeaderInfo).

  const Rational measured =
      (info.frame_count > 0 && info.duration.valid() && !info.duration.is_zero())
          ? Rational::FromInt(info.frame_count) / info.duration
          : Rational::Invalid();
  const Rational avg = av::RationalOr(vs->avg_frame_rate, Rational::Invalid());
  const Rational real = av::RationalOr(vs->r_frame_rate, Rational::Invalid());
  if (avg.valid() && (!measured.valid() || Close(avg, measured, 0.005))) {
    info.frame_rate = avg;
  } else if (real.valid() && (!measured.valid() || Close(real, measured, 0.005))) {
    info.frame_rate = real;
  } else if (measured.valid()) {
    info.frame_rate = Rational::Approximate(measured.ToDouble(), 1001000);
  } else {
    info.frame_rate = avg.valid() ? avg : real;
  }
  if (IsImageDemuxer(info.container) && info.frame_count <= 1) {
    return Status::NotSupported(path + ": a still image, not a video");
  }
  return info;
}

}  // namespace reel
