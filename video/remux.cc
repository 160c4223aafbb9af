#include "video/remux.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "video/av_util.h"

namespace reel {

std::string StreamCopyContainer(const std::string& codec) {
  const AVCodecDescriptor* descriptor = avcodec_descriptor_get_by_name(codec.c_str());
  if (descriptor == nullptr) return "";
  for (const char* container : {"mp4", "mkv", "mov", "avi"}) {
    const std::string name = std::string("x.") + container;
    const AVOutputFormat* format = av_guess_format(nullptr, name.c_str(), nullptr);
    if (format != nullptr &&
        avformat_query_codec(format, descriptor->id, FF_COMPLIANCE_NORMAL) == 1) {
      return container;
    }
  }
  return "";
}

namespace {

// Whether the decoder libavcodec picks for the video of `path` (an MP4 or MOV whose edit
// list hides its first frames) leaves those frames out, as most do. In FFmpeg 5.1,
// libdav1d (AV1) returns them all. Decodes up to the first frame returned.
Result<bool> DecoderHidesEditedFrames(const std::string& path) {
  REEL_ASSIGN_OR_RETURN(av::FormatContextPtr in, av::OpenInput(path));
  const int vindex = av::PickVideoStream(in.get());
  if (vindex < 0) return Status::NotSupported(path + ": no video stream");
  const AVStream* stream = in->streams[vindex];
  REEL_ASSIGN_OR_RETURN(av::CodecContextPtr dec, av::OpenDecoder(stream, 1, false, path));
  const int64_t shown_from = stream->start_time != AV_NOPTS_VALUE ? stream->start_time : 0;
  av::PacketPtr pkt(av_packet_alloc());
  av::FramePtr frame(av_frame_alloc());
  bool flushed = false;
  while (true) {
    const int got = avcodec_receive_frame(dec.get(), frame.get());
    if (got == 0) return frame->best_effort_timestamp >= shown_from;
    if (got == AVERROR_EOF || flushed) return true;  // nothing shown at all: nothing to tell
    if (got != AVERROR(EAGAIN)) return av::ErrorStatus(got, path, "decode failed");
    const int read = av_read_frame(in.get(), pkt.get());
    if (read < 0) {
      avcodec_send_packet(dec.get(), nullptr);
      flushed = true;
      continue;
    }
    if (pkt->stream_index == vindex) avcodec_send_packet(dec.get(), pkt.get());
    av_packet_unref(pkt.get());
  }
}

// Codecs whose decoder was found to hide (true) or show (false) the frames an edit list
// hides; guarded by its mutex.
std::mutex edit_list_mu;
std::map<int, bool> edit_list_honoured;

// CopySegment; with `use_edit_list` false, an MP4 or MOV copy shows from the keyframe too.
Result<RemuxResult> CopyWithEditList(const std::string& input, const std::string& output,
                                     int64_t start_pts, int64_t end_pts, bool use_edit_list) {
  if (end_pts <= start_pts) return Status::InvalidArgument(output + ": empty segment");
  REEL_ASSIGN_OR_RETURN(av::FormatContextPtr in, av::OpenInput(input));
  const int vindex = av::PickVideoStream(in.get());
  if (vindex < 0) return Status::NotSupported(input + ": no video stream");
  AVStream* ist = in->streams[vindex];

  const std::string partial = output + ".partial";
  AVFormatContext* raw = nullptr;
  const AVOutputFormat* ofmt = av_guess_format(nullptr, output.c_str(), nullptr);
  if (ofmt == nullptr) {
    return Status::InvalidArgument(output + ": no container format for this file name");
  }
  int err = avformat_alloc_output_context2(&raw, ofmt, nullptr, partial.c_str());
  if (err < 0 || raw == nullptr) return av::ErrorStatus(err, output, "cannot create output");
  struct OutCloser {
    AVFormatContext* c;
    std::string partial;
    bool done = false;
    ~OutCloser() {
      if (c->pb != nullptr) avio_closep(&c->pb);
      avformat_free_context(c);
      if (!done) std::remove(partial.c_str());
    }
  } out{raw, partial};

  AVStream* ost = avformat_new_stream(out.c, nullptr);
  if (ost == nullptr) return Status::Internal("avformat_new_stream failed");
  err = avcodec_parameters_copy(ost->codecpar, ist->codecpar);
  if (err < 0) return av::ErrorStatus(err, output, "cannot copy codec parameters");
  // The source's codec tag is kept where the muxer takes it, as ffmpeg's stream copy does
  // (Matroska refuses raw video without one, such as the I420 of a .y4m).
  const uint32_t tag = ist->codecpar->codec_tag;
  const AVCodecTag* const* tags = out.c->oformat->codec_tag;
  unsigned int muxer_tag = 0;
  const bool keep_tag = tags == nullptr || av_codec_get_id(tags, tag) == ist->codecpar->codec_id ||
                        av_codec_get_tag2(tags, ist->codecpar->codec_id, &muxer_tag) == 0;
  ost->codecpar->codec_tag = keep_tag ? tag : 0;
  ost->time_base = ist->time_base;
  // AVI has no timestamps, only a frame period: its time base is one frame, and a finer
  // one (ASF and FLV count milliseconds; WMV2 and FLV1 copies go to AVI) is written as
  // that many frame slots, all but one empty chunks (a 3.32 s clip listed 3320 frames).
  const bool avi = std::strcmp(out.c->oformat->name, "avi") == 0;
  const AVRational rate = av_guess_frame_rate(in.get(), ist, nullptr);
  if (avi && rate.num > 0 && rate.den > 0 && av_cmp_q(av_inv_q(rate), ist->time_base) > 0) {
    ost->time_base = av_inv_q(rate);
  }
  ost->avg_frame_rate = ist->avg_frame_rate;
  // The pixel shape the container states wins over the bitstream's, as in ffmpeg's stream
  // copy; both are written the same, since MOV refuses a copy whose two differ (H.263 in
  // 3GP states 1:1 and codes 12:11).
  const AVRational sar = ist->sample_aspect_ratio.num > 0 ? ist->sample_aspect_ratio
                                                          : ist->codecpar->sample_aspect_ratio;
  ost->sample_aspect_ratio = sar;
  ost->codecpar->sample_aspect_ratio = sar;
  const uint8_t* matrix = av_stream_get_side_data(ist, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
  if (matrix != nullptr) {
    uint8_t* copy = av_stream_new_side_data(ost, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
    if (copy != nullptr) std::copy(matrix, matrix + 9 * sizeof(int32_t), copy);
  }
  err = avio_open(&out.c->pb, partial.c_str(), AVIO_FLAG_WRITE);
  if (err < 0) return av::ErrorStatus(err, output, "cannot create file");
  err = avformat_write_header(out.c, nullptr);
  if (err < 0) {
    // EINVAL here is the muxer refusing the stream (FFV1 into MP4, H.264 into WebM): the
    // file is fine, the container cannot hold it.
    Status s = av::ErrorStatus(err, output, "cannot write header");
    return err == AVERROR(EINVAL) ? Status::NotSupported(s.message()) : s;
  }

  // The copy begins at the last keyframe displayed at or before start_pts. A seek lands on
  // the packet whose dts is at or before its target, and a keyframe's dts runs ahead of
  // its pts (MPEG-TS, B-frames), so the first keyframe after a seek to start_pts may be
  // displayed after it: then the seek is tried again from earlier (1 s, 2 s, 4 s ... back,
  // at last from before the stream's start), until the first keyframe read is at or
  // before start_pts or nothing earlier exists.
  const int64_t second = std::max<int64_t>(1, av_rescale_q(1, AVRational{1, 1}, ist->time_base));
  const int64_t lowest = (ist->start_time != AV_NOPTS_VALUE ? ist->start_time : 0) - second;
  // A packet may lack a pts (MPEG-PS writes none on most keyframes): its display time is
  // then its dts plus the largest pts - dts seen so far, or 1 s when none was seen (later
  // than it can be, so the copy begins at an earlier keyframe rather than a late one).
  int64_t reorder = -1;
  auto display = [&](const AVPacket* p) {
    if (p->pts != AV_NOPTS_VALUE) {
      if (p->dts != AV_NOPTS_VALUE) reorder = std::max(reorder, p->pts - p->dts);
      return p->pts;
    }
    if (p->dts == AV_NOPTS_VALUE) return p->dts;
    return p->dts + (reorder >= 0 ? reorder : second);
  };
  RemuxResult result;
  result.time_base = av::ToRational(ist->time_base);
  av::PacketPtr pkt(av_packet_alloc());
  // Reads the next packet of the video stream into pkt: false at the end of the input.
  auto next_video_packet = [&]() -> Result<bool> {
    while (true) {
      const int e = av_read_frame(in.get(), pkt.get());
      if (e == AVERROR_EOF) return false;
      if (e < 0) return av::ReadErrorStatus(e, input, "read failed");
      if (pkt->stream_index == vindex) return true;
      av_packet_unref(pkt.get());
    }
  };
  std::vector<av::PacketPtr> held;  // from the last keyframe at or before start_pts on
  int64_t back = 0;
  int64_t first_key = AV_NOPTS_VALUE;  // pts of the first keyframe after the seek
  while (true) {
    const int64_t target = std::max(start_pts - back, lowest);
    bool last_try = target == lowest;
    err = av_seek_frame(in.get(), vindex, target, AVSEEK_FLAG_BACKWARD);
    if (err < 0 && back > 0) {  // before the first entry of an index: from the start
      err = avformat_seek_file(in.get(), vindex, INT64_MIN, target, INT64_MAX, 0);
    }
    if (err < 0) {  // a stream that cannot seek (a raw .hevc file): read from the start
      REEL_ASSIGN_OR_RETURN(in, av::OpenInput(input));
      ist = in->streams[vindex];
      last_try = true;
    }
    first_key = AV_NOPTS_VALUE;  // stays so when the seek passed the last keyframe
    while (true) {
      REEL_ASSIGN_OR_RETURN(const bool more, next_video_packet());
      if (!more) break;
      const int64_t shown = display(pkt.get());
      // Right after a seek, the dts of a packet without a pts is a guess (MPEG-PS): such a
      // keyframe cannot be placed, so the first one with a pts decides (or, reading from
      // the start, the first of all).
      if ((pkt->flags & AV_PKT_FLAG_KEY) && (pkt->pts != AV_NOPTS_VALUE || last_try)) {
        first_key = shown;
        break;  // pkt is kept: it starts the copy when the seek was early enough
      }
      av_packet_unref(pkt.get());
    }
    if ((first_key != AV_NOPTS_VALUE && first_key <= start_pts) || last_try) break;
    av_packet_unref(pkt.get());
    back = back == 0 ? second : 2 * back;
  }
  if (first_key == AV_NOPTS_VALUE) {
    if (pkt->data != nullptr && pkt->pts == AV_NOPTS_VALUE && pkt->dts == AV_NOPTS_VALUE) {
      return Status::NotSupported(input +
                                  ": its packets carry no timestamps (a raw elementary stream), "
                                  "so a stream copy cannot be cut by time; export it re-encoded "
                                  "(without --copy)");
    }
    return Status::NotFound(input + ": no keyframe to copy from");
  }

  // MP4 and QuickTime shift the copy so the start shows at time 0: the frames from the
  // keyframe up to the start get negative times, and the muxer writes an edit list that
  // hides them (as `ffmpeg -ss X -c copy` does), so players and decoders begin at the
  // start. Matroska and AVI have no such list: there the copy shows from the keyframe.
  const int codec_id = ist->codecpar->codec_id;
  const bool hevc = codec_id == AV_CODEC_ID_HEVC;
  bool edit_list = use_edit_list && (std::strcmp(out.c->oformat->name, "mp4") == 0 ||
                                     std::strcmp(out.c->oformat->name, "mov") == 0);
  std::optional<bool> honoured;
  if (edit_list) {
    std::lock_guard<std::mutex> lock(edit_list_mu);
    auto it = edit_list_honoured.find(codec_id);
    if (it != edit_list_honoured.end()) honoured = it->second;
  }
  if (honoured == false) edit_list = false;
  int64_t offset = 0;
  int64_t last_dts = AV_NOPTS_VALUE;  // written, in the output time base
  bool settled = false;  // the starting keyframe is known and written
  bool first = true;
  // Writes `p` (in the output's time base).
  auto mux = [&](AVPacket* p) -> Status {
    // A packet without a decode time after one with (a damaged PES header) takes the next,
    // a frame on (or its display time, if sooner); without any time, it shows then too.
    if (p->dts == AV_NOPTS_VALUE && last_dts != AV_NOPTS_VALUE) {
      const int64_t next = last_dts + (p->duration > 0 ? p->duration : 1);
      p->dts = p->pts == AV_NOPTS_VALUE ? next : std::max(last_dts + 1, std::min(p->pts, next));
      if (p->pts == AV_NOPTS_VALUE) p->pts = p->dts;
      ++result.retimed;
    }
    // A packet shown before it is decoded has a damaged time (a bit flipped in a PES
    // header). As ffmpeg -c copy does, both become the middle one of its two times and the
    // earliest decode time free.
    if (p->pts != AV_NOPTS_VALUE && p->dts != AV_NOPTS_VALUE && p->pts < p->dts) {
      const int64_t free = last_dts == AV_NOPTS_VALUE ? p->pts : last_dts + 1;
      p->pts = p->dts =
          std::max(std::min(p->pts, p->dts), std::min(std::max(p->pts, p->dts), free));
      ++result.retimed;
    }
    // Decode times must rise. Segments joined with `cat` whose times overlap (or a time
    // base too coarse for the frame rate) break that; the packet goes just after the one
    // before, and its display time no earlier than that, as ffmpeg -c copy does.
    if (p->dts != AV_NOPTS_VALUE && last_dts != AV_NOPTS_VALUE && p->dts <= last_dts) {
      p->dts = last_dts + 1;
      if (p->pts != AV_NOPTS_VALUE && p->pts < p->dts) p->pts = p->dts;
      ++result.retimed;
    }
    if (p->dts != AV_NOPTS_VALUE) last_dts = p->dts;
    p->pos = -1;
    const int e = av_interleaved_write_frame(out.c, p);
    if (e < 0) return av::ErrorStatus(e, output, "write failed");
    ++result.packets;
    return Status::OK();
  };
  // Matroska stores no decode times: after a seek the first packets come without one until
  // the parser works them out. Left to the muxer, it guesses them from display times, and
  // the next real one can fall on a guess ("non monotonically increasing dts"). They wait
  // here for the first real one, and are then given times counted back from it, each at
  // most its display time (one that lost its display time too, to a damaged PES header,
  // shows when it is decoded).
  constexpr size_t kMaxUndatedPackets = 256;
  std::vector<av::PacketPtr> undated;
  auto flush_undated = [&](int64_t next_dts) -> Status {
    int64_t after = next_dts;
    for (size_t i = undated.size(); i-- > 0;) {
      AVPacket* u = undated[i].get();
      const int64_t step = u->duration > 0 ? u->duration : 1;
      if (u->pts == AV_NOPTS_VALUE) {  // lost both: shown when decoded
        u->pts = u->dts = after == AV_NOPTS_VALUE ? 0 : after - step;
      } else {
        u->dts = after == AV_NOPTS_VALUE ? u->pts : std::min(u->pts, after - step);
      }
      after = u->dts;
    }
    for (av::PacketPtr& u : undated) REEL_RETURN_IF_ERROR(mux(u.get()));
    undated.clear();
    return Status::OK();
  };
  auto write = [&](AVPacket* p, int64_t pts) -> Status {
    // A missing pts is written as estimated now (Matroska refuses packets without one).
    if (p->pts == AV_NOPTS_VALUE && p->dts != AV_NOPTS_VALUE) pts = p->pts = display(p);
    if (first) {
      first = false;
      if (edit_list) {
        offset = std::max(start_pts, pts);
        result.first_pts = offset;
      } else {
        // A keyframe that lost its times (a damaged PES header) is taken to be the start.
        result.first_pts = pts != AV_NOPTS_VALUE ? pts : start_pts;
        offset = p->dts != AV_NOPTS_VALUE ? p->dts : result.first_pts;
      }
    }
    if (edit_list && pts < result.first_pts) ++result.hidden;
    // Without an edit list the copy shows from its first keyframe. An HEVC CRA's leading
    // RASL pictures predict from pictures the copy does not hold: no decoder shows them
    // (the first CRA of a stream does not output them), nor can later pictures refer to
    // them, and Matroska reads their times before the start as none. They are left out.
    if (!edit_list && hevc && pts < result.first_pts && av::IsHevcRasl(p, ist->codecpar)) {
      ++result.leading_dropped;
      return Status::OK();
    }
    result.end_pts = std::max(result.end_pts, pts + std::max<int64_t>(p->duration, 0));
    if (p->pts != AV_NOPTS_VALUE) p->pts -= offset;
    if (p->dts != AV_NOPTS_VALUE) p->dts -= offset;
    p->stream_index = ost->index;
    av_packet_rescale_ts(p, ist->time_base, ost->time_base);
    if (p->dts == AV_NOPTS_VALUE && last_dts == AV_NOPTS_VALUE) {
      // A stream that never states a decode time would be held whole: past a GOP's worth
      // they go out timed from their own display times, and later ones as mux() times
      // them.
      if (undated.size() < kMaxUndatedPackets) {
        undated.emplace_back(av_packet_alloc());
        av_packet_move_ref(undated.back().get(), p);
        return Status::OK();
      }
      REEL_RETURN_IF_ERROR(flush_undated(AV_NOPTS_VALUE));
    }
    if (!undated.empty()) REEL_RETURN_IF_ERROR(flush_undated(p->dts));
    return mux(p);
  };
  std::vector<int64_t> held_pts;  // display times of `held`
  auto settle = [&]() -> Status {
    settled = true;
    for (size_t i = 0; i < held.size(); ++i)
      REEL_RETURN_IF_ERROR(write(held[i].get(), held_pts[i]));
    held.clear();
    held_pts.clear();
    return Status::OK();
  };
  // pkt holds the first keyframe after the seek.
  while (true) {
    const int64_t pts = display(pkt.get());
    const int64_t dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pts;
    // Copy everything decoded before the end (in decode order), so B-frames keep the
    // frames they reference; the copy may therefore run a few frames past end_pts.
    if (dts >= end_pts && (settled || !held.empty())) {
      av_packet_unref(pkt.get());
      break;
    }
    if (!settled) {
      const bool key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
      if (key && (pts <= start_pts || held.empty())) {
        held.clear();  // a later keyframe at or before the start: begin there instead
        held_pts.clear();
      } else if (key) {
        REEL_RETURN_IF_ERROR(settle());
      }
    }
    if (settled) {
      REEL_RETURN_IF_ERROR(write(pkt.get(), pts));
    } else {
      held.emplace_back(av_packet_alloc());
      av_packet_move_ref(held.back().get(), pkt.get());
      held_pts.push_back(pts);
    }
    av_packet_unref(pkt.get());
    REEL_ASSIGN_OR_RETURN(const bool more, next_video_packet());
    if (!more) break;
  }
  if (!settled) REEL_RETURN_IF_ERROR(settle());
  REEL_RETURN_IF_ERROR(flush_undated(AV_NOPTS_VALUE));
  if (result.packets == 0) return Status::NotFound(input + ": no packets in the segment");
  err = av_write_trailer(out.c);
  if (err < 0) return av::ErrorStatus(err, output, "cannot write trailer");
  avio_closep(&out.c->pb);
  // The first copy of a codec that hides frames finds out whether its decoder leaves them
  // out; where it shows them, the copy is made again without the edit list (showing from
  // the keyframe, as recorded), and so are later copies of that codec.
  if (edit_list && result.hidden > 0 && !honoured.has_value()) {
    REEL_ASSIGN_OR_RETURN(const bool hides, DecoderHidesEditedFrames(partial));
    {
      std::lock_guard<std::mutex> lock(edit_list_mu);
      edit_list_honoured[codec_id] = hides;
    }
    if (!hides) {
      std::remove(partial.c_str());
      return CopyWithEditList(input, output, start_pts, end_pts, /*use_edit_list=*/false);
    }
  }
  if (std::rename(partial.c_str(), output.c_str()) != 0) {
    return Status::IOError(output + ": cannot rename the finished file into place");
  }
  out.done = true;
  return result;
}

}  // namespace

Result<RemuxResult> CopySegment(const std::string& input, const std::string& output,
                                int64_t start_pts, int64_t end_pts) {
  return CopyWithEditList(input, output, start_pts, end_pts, /*use_edit_list=*/true);
}

}  // namespace reel
