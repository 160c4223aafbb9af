#include "video/encoder.h"

extern "C" {
#include <libavutil/cpu.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <cstdio>

#include "video/av_util.h"

namespace reel {
namespace {

AVPixelFormat ChoosePixelFormat(const AVCodec* codec, const std::string& wanted) {
  if (!wanted.empty()) return av_get_pix_fmt(wanted.c_str());
  if (codec->pix_fmts == nullptr) return AV_PIX_FMT_YUV420P;
  for (const AVPixelFormat* p = codec->pix_fmts; *p != AV_PIX_FMT_NONE; ++p) {
    if (*p == AV_PIX_FMT_YUV420P) return *p;
  }
  return codec->pix_fmts[0];
}

// A failure to set up the output: an EINVAL there is the options' fault (a pixel format
// the encoder lacks, a codec the container cannot hold), not a damaged file's.
Status SetupError(int err, const std::string& path, const std::string& what) {
  Status s = av::ErrorStatus(err, path, what);
  return err == AVERROR(EINVAL) ? Status::InvalidArgument(s.message()) : s;
}

// Sets the encoder's colour description from the options' names.
Status SetColourDescription(const std::string& path, const EncodeOptions& o, AVCodecContext* c) {
  auto unknown = [&](const char* what, const std::string& name) {
    return Status::InvalidArgument(path + ": unknown " + what + " '" + name + "'");
  };
  if (!o.color_space.empty()) {
    const int v = av_color_space_from_name(o.color_space.c_str());
    if (v < 0) return unknown("colour space", o.color_space);
    c->colorspace = static_cast<AVColorSpace>(v);
    if (av::SwsMatrix(c->colorspace) < 0) {
      return Status::NotSupported(path + ": cannot convert RGB frames to colour space '" +
                                  o.color_space + "'");
    }
  }
  if (!o.color_primaries.empty()) {
    const int v = av_color_primaries_from_name(o.color_primaries.c_str());
    if (v < 0) return unknown("colour primaries", o.color_primaries);
    c->color_primaries = static_cast<AVColorPrimaries>(v);
  }
  if (!o.color_transfer.empty()) {
    const int v = av_color_transfer_from_name(o.color_transfer.c_str());
    if (v < 0) return unknown("colour transfer", o.color_transfer);
    c->color_trc = static_cast<AVColorTransferCharacteristic>(v);
  }
  c->color_range = AVCOL_RANGE_MPEG;
  if (!o.color_range.empty()) {
    const int v = av_color_range_from_name(o.color_range.c_str());
    if (v != AVCOL_RANGE_MPEG && v != AVCOL_RANGE_JPEG)
      return unknown("colour range", o.color_range);
    c->color_range = static_cast<AVColorRange>(v);
  }
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(c->pix_fmt);
  if (d != nullptr && (d->flags & AV_PIX_FMT_FLAG_RGB) != 0) {
    // An RGB codec format (ffv1 or libx264rgb with gbrp/bgr0) has neither a matrix nor a
    // range: it is stated as RGB.
    c->colorspace = AVCOL_SPC_RGB;
    c->color_range = AVCOL_RANGE_UNSPECIFIED;
  }
  return Status::OK();
}

}  // namespace

std::string DefaultVideoCodec() {
  return avcodec_find_encoder_by_name("libx264") != nullptr ? "libx264" : "mpeg4";
}

bool CanEncodeColorSpace(const std::string& space) {
  if (space.empty()) return true;
  const int v = av_color_space_from_name(space.c_str());
  return v >= 0 && av::SwsMatrix(static_cast<AVColorSpace>(v)) >= 0;
}

struct VideoEncoder::Impl {
  std::string path;
  std::string partial_path;
  EncodeOptions options;
  AVFormatContext* oc = nullptr;  // owned; freed in the destructor
  av::CodecContextPtr enc;
  AVStream* stream = nullptr;
  av::SwsPtr sws;
  AVPixelFormat sws_source = AV_PIX_FMT_NONE;  // the frame format `sws` was set up for
  std::vector<uint8_t> padded_source;  // the frame and kSwsSlackBytes, which swscale reads
  av::FramePtr frame{av_frame_alloc()};
  av::PacketPtr packet{av_packet_alloc()};
  int64_t next_pts = 0;
  int64_t last_pts = INT64_MIN;
  int64_t written = 0;
  bool header_written = false;
  bool finished = false;
  std::string codec_name;

  ~Impl() {
    if (oc != nullptr) {
      if (oc->pb != nullptr) avio_closep(&oc->pb);
      avformat_free_context(oc);
    }
    if (!finished && !partial_path.empty()) std::remove(partial_path.c_str());
  }

  Status Drain(bool flushing) {
    while (true) {
      int err = avcodec_receive_packet(enc.get(), packet.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return Status::OK();
      if (err < 0) return av::ErrorStatus(err, path, "encode failed");
      av_packet_rescale_ts(packet.get(), enc->time_base, stream->time_base);
      packet->stream_index = stream->index;
      err = av_interleaved_write_frame(oc, packet.get());
      if (err < 0) return av::ErrorStatus(err, path, "write failed");
      (void)flushing;
    }
  }
};

VideoEncoder::VideoEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoEncoder::~VideoEncoder() = default;

int64_t VideoEncoder::frames_written() const {
  return impl_->written;
}
const std::string& VideoEncoder::codec_name() const {
  return impl_->codec_name;
}

Result<std::unique_ptr<VideoEncoder>> VideoEncoder::Open(const std::string& path,
                                                         const EncodeOptions& options) {
  av::InstallLogCallback();
  av::ClearLastError();
  if (options.width <= 0 || options.height <= 0) {
    return Status::InvalidArgument(path + ": encoder needs a positive width and height");
  }
  if (!options.frame_rate.valid() || options.frame_rate <= Rational()) {
    return Status::InvalidArgument(path + ": encoder needs a positive frame rate");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->partial_path = path + ".partial";
  impl->options = options;

  const AVOutputFormat* ofmt = av_guess_format(
      options.format.empty() ? nullptr : options.format.c_str(), path.c_str(), nullptr);
  if (ofmt == nullptr) {
    return Status::InvalidArgument(path + ": no container format for this file name");
  }
  int err = avformat_alloc_output_context2(&impl->oc, ofmt, nullptr, impl->partial_path.c_str());
  if (err < 0) return SetupError(err, path, "cannot create output");

  const std::string codec_name = options.codec.empty() ? DefaultVideoCodec() : options.codec;
  const AVCodec* codec = avcodec_find_encoder_by_name(codec_name.c_str());
  if (codec == nullptr) {
    return Status::NotSupported(path + ": this FFmpeg has no encoder '" + codec_name + "'");
  }
  impl->codec_name = codec_name;
  impl->enc.reset(avcodec_alloc_context3(codec));
  AVCodecContext* c = impl->enc.get();
  const Rational tb = options.time_base.value_or(options.frame_rate.Inverse());
  c->width = options.width;
  c->height = options.height;
  c->time_base = av::ToAv(tb);
  c->framerate = av::ToAv(options.frame_rate);
  c->pix_fmt = ChoosePixelFormat(codec, options.pixel_format);
  if (c->pix_fmt == AV_PIX_FMT_NONE) {
    return Status::InvalidArgument(path + ": unknown pixel format '" + options.pixel_format + "'");
  }
  c->sample_aspect_ratio = av::ToAv(options.sample_aspect_ratio);
  c->thread_count = options.threads;
  if (options.gop > 0) c->gop_size = options.gop;
  if (options.b_frames >= 0) c->max_b_frames = options.b_frames;
  if (options.bit_rate > 0) c->bit_rate = options.bit_rate;
  if (impl->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  REEL_RETURN_IF_ERROR(SetColourDescription(path, options, c));

  AVDictionary* opts = nullptr;
  if (codec_name == "libx264" || codec_name == "libx265") {
    av_dict_set(&opts, "preset", options.preset.c_str(), 0);
    // x264 0.164's AVX-512 code (measured on an AMD EPYC with AVX-512, Debian 12's
    // libx264-164) makes the same frames encode to different files from run to run, as if
    // it read memory it had not written: 13 of 16 in-process repeats of a sampled clip
    // differed, 0 of 16 with its AVX2 code, which every AVX-512 CPU has. Same input, same
    // file matters here (sampling with a seed is reproducible to the byte).
    if (codec_name == "libx264" && (av_get_cpu_flags() & AV_CPU_FLAG_AVX512) != 0)
      av_dict_set(&opts, "x264-params", "asm=AVX2,Cache64", 0);
    if (options.bit_rate <= 0) av_dict_set_int(&opts, "crf", options.crf, 0);
  } else if (codec_name == "libvpx-vp9" || codec_name == "libvpx") {
    if (options.bit_rate <= 0) {
      av_dict_set_int(&opts, "crf", options.crf, 0);
      c->bit_rate = 0;
    }
    av_dict_set(&opts, "deadline", "realtime", 0);
    av_dict_set_int(&opts, "cpu-used", 8, 0);
  } else if (options.bit_rate <= 0 && (codec_name == "mpeg4" || codec_name == "mpeg2video" ||
                                       codec_name == "mjpeg" || codec_name == "mpeg1video")) {
    c->flags |= AV_CODEC_FLAG_QSCALE;
    c->global_quality = FF_QP2LAMBDA * 3;
  }
  err = avcodec_open2(c, codec, &opts);
  av_dict_free(&opts);
  if (err < 0) return SetupError(err, path, "cannot open encoder " + codec_name);

  impl->stream = avformat_new_stream(impl->oc, nullptr);
  if (impl->stream == nullptr) return Status::Internal("avformat_new_stream failed");
  impl->stream->time_base = c->time_base;
  impl->stream->avg_frame_rate = c->framerate;
  impl->stream->sample_aspect_ratio = c->sample_aspect_ratio;
  err = avcodec_parameters_from_context(impl->stream->codecpar, c);
  if (err < 0) return SetupError(err, path, "bad encoder parameters");
  if (options.rotation % 360 != 0) {
    auto* matrix = reinterpret_cast<int32_t*>(
        av_stream_new_side_data(impl->stream, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t)));
    if (matrix == nullptr) return Status::Internal("cannot attach display matrix");
    // FFmpeg 5.1 reads a matrix set with angle A back as a clockwise display rotation of
    // A (checked against the ffmpeg CLI's autorotate in video_test).
    av_display_rotation_set(matrix, static_cast<double>(options.rotation));
  }
  for (const auto& [k, v] : options.metadata)
    av_dict_set(&impl->oc->metadata, k.c_str(), v.c_str(), 0);

  if (!(impl->oc->oformat->flags & AVFMT_NOFILE)) {
    err = avio_open(&impl->oc->pb, impl->partial_path.c_str(), AVIO_FLAG_WRITE);
    if (err < 0) return av::ErrorStatus(err, path, "cannot create file");
  }
  AVDictionary* mux_opts = nullptr;
  for (const auto& [k, v] : options.muxer_options) av_dict_set(&mux_opts, k.c_str(), v.c_str(), 0);
  err = avformat_write_header(impl->oc, &mux_opts);
  const bool unused_option = av_dict_count(mux_opts) > 0;
  const std::string first_unused =
      unused_option ? av_dict_get(mux_opts, "", nullptr, AV_DICT_IGNORE_SUFFIX)->key : "";
  av_dict_free(&mux_opts);
  if (err < 0) return SetupError(err, path, "cannot write header");
  if (unused_option) {
    return Status::InvalidArgument(path + ": the muxer does not know option '" + first_unused +
                                   "'");
  }
  impl->header_written = true;

  AVFrame* f = impl->frame.get();
  f->format = c->pix_fmt;
  f->width = c->width;
  f->height = c->height;
  f->colorspace = c->colorspace;
  f->color_primaries = c->color_primaries;
  f->color_trc = c->color_trc;
  f->color_range = c->color_range;
  err = av_frame_get_buffer(f, 0);
  if (err < 0) return av::ErrorStatus(err, path, "cannot allocate frame");
  return std::unique_ptr<VideoEncoder>(new VideoEncoder(std::move(impl)));
}

Status VideoEncoder::Write(const Frame& frame, std::optional<int64_t> pts) {
  Impl& e = *impl_;
  if (e.finished) return Status::FailedPrecondition(e.path + ": write after Finish()");
  AVCodecContext* c = e.enc.get();
  if (frame.width != c->width || frame.height != c->height) {
    return Status::InvalidArgument(e.path + ": frame is " + std::to_string(frame.width) + "x" +
                                   std::to_string(frame.height) + ", encoder expects " +
                                   std::to_string(c->width) + "x" + std::to_string(c->height));
  }
  if (frame.data.size() != static_cast<size_t>(frame.stride()) * frame.height) {
    return Status::InvalidArgument(
        e.path + ": frame holds " + std::to_string(frame.data.size()) + " bytes, not the " +
        std::to_string(frame.width) + "x" + std::to_string(frame.height) + " image's " +
        std::to_string(static_cast<size_t>(frame.stride()) * frame.height));
  }
  const int64_t ts = pts.value_or(e.next_pts);
  if (ts <= e.last_pts) {
    return Status::InvalidArgument(e.path + ": timestamps must increase (got " +
                                   std::to_string(ts) + " after " + std::to_string(e.last_pts) +
                                   ")");
  }
  const AVPixelFormat src = av::ToAvPixelFormat(frame.format);
  SwsContext* previous = e.sws.release();
  SwsContext* s =
      sws_getCachedContext(previous, frame.width, frame.height, src, c->width, c->height,
                           c->pix_fmt, SWS_BICUBIC, nullptr, nullptr, nullptr);
  if (s == nullptr) return Status::NotSupported(e.path + ": cannot convert frame for encoder");
  e.sws.reset(s);
  if ((s != previous || src != e.sws_source) && frame.format != PixelFormat::kGray8) {
    // RGB into the stated matrix and range.
    const int matrix = av::SwsMatrix(c->colorspace);  // -1 for an RGB stream
    const int* table = sws_getCoefficients(matrix >= 0 ? matrix : SWS_CS_DEFAULT);
    sws_setColorspaceDetails(s, table, 1, table, c->color_range == AVCOL_RANGE_JPEG ? 1 : 0, 0,
                             1 << 16, 1 << 16);
  }
  e.sws_source = src;
  int err = av_frame_make_writable(e.frame.get());
  if (err < 0) return av::ErrorStatus(err, e.path, "frame not writable");
  // swscale reads a few bytes past the last row of a packed image (kSwsSlackBytes).
  e.padded_source.resize(frame.data.size() + av::kSwsSlackBytes);
  std::copy(frame.data.begin(), frame.data.end(), e.padded_source.begin());
  const uint8_t* src_data[4] = {e.padded_source.data(), nullptr, nullptr, nullptr};
  const int src_stride[4] = {frame.stride(), 0, 0, 0};
  sws_scale(s, src_data, src_stride, 0, frame.height, e.frame->data, e.frame->linesize);
  e.frame->pts = ts;
  e.last_pts = ts;
  e.next_pts = ts + 1;
  if (e.options.time_base.has_value()) {
    // With an explicit time base, "next" means one nominal frame duration later.
    e.next_pts =
        ts + std::max<int64_t>(1, (e.options.frame_rate.Inverse() / *e.options.time_base).Round());
  }
  err = avcodec_send_frame(c, e.frame.get());
  if (err < 0) return av::ErrorStatus(err, e.path, "encode failed");
  ++e.written;
  return e.Drain(false);
}

Status VideoEncoder::Finish() {
  Impl& e = *impl_;
  if (e.finished) return Status::OK();
  int err = avcodec_send_frame(e.enc.get(), nullptr);
  if (err < 0 && err != AVERROR_EOF) return av::ErrorStatus(err, e.path, "flush failed");
  REEL_RETURN_IF_ERROR(e.Drain(true));
  err = av_write_trailer(e.oc);
  if (err < 0) return av::ErrorStatus(err, e.path, "cannot write trailer");
  if (e.oc->pb != nullptr) {
    err = avio_closep(&e.oc->pb);
    if (err < 0) return av::ErrorStatus(err, e.path, "close failed");
  }
  if (std::rename(e.partial_path.c_str(), e.path.c_str()) != 0) {
    return Status::IOError(e.path + ": cannot rename " + e.partial_path + " into place");
  }
  e.finished = true;
  return Status::OK();
}

}  // namespace reel
