#include "video/remux.h"

#include <cstdio>

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

Result<RemuxResult> CopySegment(const std::string& input, const std::string& output,
                                int64_t start_pts, int64_t end_pts) {
  if (end_pts <= start_pts) return Status::InvalidArgument(output + ": empty segment");
  REEL_ASSIGN_OR_RETURN(av::FormatContextPtr in, av::OpenInput(input));
  const int vindex = av::PickVideoStream(in.get());
  if (vindex < 0) return Status::NotSupported(input + ": no video stream");
  AVStream* ist = in->streams[vindex];

  const std::string partial = output + ".partial";
  AVFormatContext* raw = nullptr;
  const AVOutputFormat* ofmt = av_guess_format(nullptr, output.c_str(), nullptr);
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
  ost->codecpar->codec_tag = 0;
  ost->time_base = ist->time_base;
  ost->avg_frame_rate = ist->avg_frame_rate;
  ost->sample_aspect_ratio = ist->sample_aspect_ratio;
  const uint8_t* matrix = av_stream_get_side_data(ist, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
  if (matrix != nullptr) {
    uint8_t* copy = av_stream_new_side_data(ost, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
    if (copy != nullptr) std::copy(matrix, matrix + 9 * sizeof(int32_t), copy);
  }
  err = avio_open(&out.c->pb, partial.c_str(), AVIO_FLAG_WRITE);
  if (err < 0) return av::ErrorStatus(err, output, "cannot create file");
  err = avformat_write_header(out.c, nullptr);
  if (err < 0) return av::ErrorStatus(err, output, "cannot write header");

  err = av_seek_frame(in.get(), vindex, start_pts, AVSEEK_FLAG_BACKWARD);
  if (err < 0) return av::ErrorStatus(err, input, "seek failed");
  av::PacketPtr pkt(av_packet_alloc());
  RemuxResult result;
  result.time_base = av::ToRational(ist->time_base);
  bool started = false;
  int64_t offset = 0;
  while (true) {
    err = av_read_frame(in.get(), pkt.get());
    if (err == AVERROR_EOF) break;
    if (err < 0) return av::ErrorStatus(err, input, "read failed");
    if (pkt->stream_index != vindex) {
      av_packet_unref(pkt.get());
      continue;
    }
    const int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    if (!started) {
      // Begin at the keyframe the seek found (the last one at or before the start).
      if (!(pkt->flags & AV_PKT_FLAG_KEY)) {
        av_packet_unref(pkt.get());
        continue;
      }
      started = true;
      result.first_pts = pts;
      offset = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pts;
    }
    // Copy everything decoded before the end (in decode order), so B-frames keep the
    // frames they reference; the copy may therefore run a few frames past end_pts.
    const int64_t dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pts;
    if (dts >= end_pts) {
      av_packet_unref(pkt.get());
      break;
    }
    result.end_pts = std::max(result.end_pts, pts + std::max<int64_t>(pkt->duration, 0));
    if (pkt->pts != AV_NOPTS_VALUE) pkt->pts -= offset;
    if (pkt->dts != AV_NOPTS_VALUE) pkt->dts -= offset;
    pkt->stream_index = ost->index;
    av_packet_rescale_ts(pkt.get(), ist->time_base, ost->time_base);
    pkt->pos = -1;
    err = av_interleaved_write_frame(out.c, pkt.get());
    if (err < 0) return av::ErrorStatus(err, output, "write failed");
    ++result.packets;
  }
  if (result.packets == 0) return Status::NotFound(input + ": no packets in the segment");
  err = av_write_trailer(out.c);
  if (err < 0) return av::ErrorStatus(err, output, "cannot write trailer");
  avio_closep(&out.c->pb);
  if (std::rename(partial.c_str(), output.c_str()) != 0) {
    return Status::IOError(output + ": cannot rename the finished file into place");
  }
  out.done = true;
  return result;
}

}  // namespace reel
