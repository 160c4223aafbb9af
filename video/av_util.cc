#include "video/av_util.h"

extern "C" {
#include <libavutil/display.h>
#include <libavutil/mastering_display_metadata.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <optional>
#include <vector>

#include "util/log.h"
#include "util/strings.h"

namespace reel::av {
namespace {

thread_local std::string t_last_error;

void LogCallback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_ERROR && !LogEnabled(LogLevel::kDebug)) return;
  if (level > AV_LOG_VERBOSE) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
  std::string text(Trim(line));
  if (text.empty()) return;
  if (level <= AV_LOG_ERROR) t_last_error = text;
  Log(LogLevel::kDebug, "libav: " + text);
}

}  // namespace

void InstallLogCallback() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(LogCallback); });
}

void ClearLastError() {
  t_last_error.clear();
}
std::string LastErrorMessage() {
  return t_last_error;
}

std::string LastErrorCause() {
  std::string last = LastErrorMessage();
  if (!last.empty() && last.front() == '[') {
    const size_t close = last.find("] ");
    if (close != std::string::npos) last = last.substr(close + 2);
  }
  return last;
}

namespace {

std::string StrError(int averror) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(averror, buf, sizeof(buf));
  return buf;
}

// Whether `path` is a file whose every byte reads without an error.
bool ReadsToTheEnd(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  std::vector<char> buf(1 << 20);
  while (std::fread(buf.data(), 1, buf.size(), f) == buf.size()) {
  }
  const bool ok = std::ferror(f) == 0;
  std::fclose(f);
  return ok;
}

}  // namespace

std::string ErrorText(int averror, const std::string& what) {
  const std::string plain = StrError(averror);
  // Demuxers and decoders return a bare -1 for data they cannot make sense of (DV out of
  // step with its frame size), which av_strerror reads as EPERM.
  std::string text =
      what + ": " +
      (averror == AVERROR(EPERM) ? std::string("invalid data (libav error -1)") : plain);
  const std::string last = LastErrorCause();
  if (!last.empty() && last != plain) text += " (" + last + ")";
  return text;
}

bool IsHevcRasl(const AVPacket* pkt, const AVCodecParameters* par) {
  const uint8_t* d = pkt->data;
  const int n = pkt->size;
  auto vcl_type_is_rasl = [](uint8_t header) {
    const int type = (header >> 1) & 0x3f;
    return type < 32 ? std::optional<bool>(type == 8 || type == 9) : std::nullopt;
  };
  if (n >= 4 && d[0] == 0 && d[1] == 0 && (d[2] == 1 || (d[2] == 0 && d[3] == 1))) {
    for (int i = 0; i + 3 < n; ++i) {
      if (d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1) {
        if (const auto r = vcl_type_is_rasl(d[i + 3])) return *r;
        i += 2;
      }
    }
    return false;
  }
  int length_size = 4;
  if (par->extradata_size >= 23 && par->extradata[0] == 1) {
    length_size = (par->extradata[21] & 3) + 1;
  }
  for (int i = 0; i + length_size < n;) {
    int64_t len = 0;
    for (int k = 0; k < length_size; ++k) len = (len << 8) | d[i + k];
    i += length_size;
    if (len <= 0 || i + len > n) return false;
    if (const auto r = vcl_type_is_rasl(d[i])) return *r;
    i += static_cast<int>(len);
  }
  return false;
}

Status ErrorStatus(int averror, const std::string& path, const std::string& what) {
  StatusCode code = StatusCode::kCorruption;
  if (averror == AVERROR(ENOENT)) {
    code = StatusCode::kNotFound;
  } else if (averror == AVERROR(EACCES) || averror == AVERROR(EIO) || averror == AVERROR(EISDIR)) {
    code = StatusCode::kIOError;
  } else if (averror == AVERROR_DECODER_NOT_FOUND || averror == AVERROR_DEMUXER_NOT_FOUND ||
             averror == AVERROR_PATCHWELCOME) {
    code = StatusCode::kNotSupported;
  } else if (averror == AVERROR(ENOMEM)) {
    code = StatusCode::kInternal;
  }
  return Status(code, path + ": " + ErrorText(averror, what));
}

Status ReadErrorStatus(int averror, const std::string& path, const std::string& what) {
  // Some demuxers (Matroska's) return EIO for a file that ends inside its header or first
  // packets: a damaged file, not a failing disk, when every byte of it reads.
  if (averror == AVERROR(EIO) && ReadsToTheEnd(path)) {
    const std::string last = LastErrorCause();
    return Status::Corruption(path + ": " + what + ": damaged or cut short (" +
                              (last.empty() || last == StrError(averror) ? "" : last + "; ") +
                              "libav reported an input/output error, but the file reads "
                              "without one)");
  }
  return ErrorStatus(averror, path, what);
}

Result<FormatContextPtr> OpenInput(const std::string& path) {
  InstallLogCallback();
  ClearLastError();
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) return ReadErrorStatus(err, path, "cannot open");
  FormatContextPtr ctx(raw);
  err = avformat_find_stream_info(ctx.get(), nullptr);
  if (err < 0) return ReadErrorStatus(err, path, "cannot read stream info");
  return ctx;
}

Result<CodecContextPtr> OpenDecoder(const AVStream* stream, int threads, bool skip_loop_filter,
                                    const std::string& path) {
  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  if (codec == nullptr) {
    return Status::NotSupported(path + ": no decoder for codec '" +
                                avcodec_get_name(stream->codecpar->codec_id) + "'");
  }
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Status::Internal("avcodec_alloc_context3 failed");
  int err = avcodec_parameters_to_context(ctx.get(), stream->codecpar);
  if (err < 0) return ErrorStatus(err, path, "bad codec parameters");
  ctx->pkt_timebase = stream->time_base;
  ctx->thread_count = threads;
  ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  if (skip_loop_filter) ctx->skip_loop_filter = AVDISCARD_ALL;
  err = avcodec_open2(ctx.get(), codec, nullptr);
  if (err < 0) return ErrorStatus(err, path, "cannot open decoder");
  return ctx;
}

int PickVideoStream(AVFormatContext* ctx) {
  const int best = av_find_best_stream(ctx, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (best >= 0 && !(ctx->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) return best;
  for (unsigned i = 0; i < ctx->nb_streams; ++i) {
    const AVStream* st = ctx->streams[i];
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

VideoInfo HeaderInfo(AVFormatContext* ctx, int vindex) {
  VideoInfo info;
  info.container = ctx->iformat->name;
  info.bit_rate = ctx->bit_rate;
  const AVDictionaryEntry* tag = nullptr;
  // Tag names differ in case between containers (Matroska's DESCRIPTION, MP4's
  // description); keys are stored lower-case.
  while ((tag = av_dict_get(ctx->metadata, "", tag, AV_DICT_IGNORE_SUFFIX)) != nullptr) {
    std::string key = tag->key;
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    info.metadata[key] = tag->value;
  }
  for (unsigned i = 0; i < ctx->nb_streams; ++i) {
    if (ctx->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) info.has_audio = true;
  }
  AVStream* vs = ctx->streams[vindex];
  info.video_stream_index = vindex;
  const AVCodecParameters* par = vs->codecpar;
  info.codec = avcodec_get_name(par->codec_id);
  info.width = par->width;
  info.height = par->height;
  const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info.pixel_format = pix != nullptr ? pix : "unknown";
  // The colour description as ffprobe names it; "" when unstated.
  auto name = [](const char* n) { return n != nullptr ? std::string(n) : std::string(); };
  if (par->color_trc != AVCOL_TRC_UNSPECIFIED)
    info.color_transfer = name(av_color_transfer_name(par->color_trc));
  if (par->color_space != AVCOL_SPC_UNSPECIFIED)
    info.color_space = name(av_color_space_name(par->color_space));
  if (par->color_primaries != AVCOL_PRI_UNSPECIFIED)
    info.color_primaries = name(av_color_primaries_name(par->color_primaries));
  if (par->color_range != AVCOL_RANGE_UNSPECIFIED)
    info.color_range = name(av_color_range_name(par->color_range));
  switch (par->field_order) {
    case AV_FIELD_PROGRESSIVE:
      info.field_order = "progressive";
      break;
    case AV_FIELD_TT:
      info.field_order = "tt";
      break;
    case AV_FIELD_BB:
      info.field_order = "bb";
      break;
    case AV_FIELD_TB:
      info.field_order = "tb";
      break;
    case AV_FIELD_BT:
      info.field_order = "bt";
      break;
    default:
      break;
  }
  info.sample_aspect_ratio =
      RationalOr(av_guess_sample_aspect_ratio(ctx, vs, nullptr), Rational(1, 1));
  info.rotation = StreamRotation(vs);
  info.time_base = ToRational(vs->time_base);
  info.frame_count = vs->nb_frames;
  if (vs->start_time != AV_NOPTS_VALUE)
    info.start_time = TicksToSeconds(vs->start_time, info.time_base);
  if (vs->duration > 0) {
    info.duration = TicksToSeconds(vs->duration, info.time_base);
  } else if (ctx->duration > 0) {
    info.duration = Rational(ctx->duration, AV_TIME_BASE);
  }
  info.frame_rate = RationalOr(vs->avg_frame_rate, RationalOr(vs->r_frame_rate, Rational()));
  if (info.frame_count <= 0 && info.frame_rate.valid() && !info.frame_rate.is_zero()) {
    info.frame_count = (info.duration * info.frame_rate).Round();
  }
  return info;
}

AVPixelFormat ToAvPixelFormat(PixelFormat f) {
  switch (f) {
    case PixelFormat::kRgb24:
      return AV_PIX_FMT_RGB24;
    case PixelFormat::kBgr24:
      return AV_PIX_FMT_BGR24;
    case PixelFormat::kGray8:
      return AV_PIX_FMT_GRAY8;
  }
  return AV_PIX_FMT_RGB24;
}

int StreamRotation(const AVStream* stream) {
  const uint8_t* matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, nullptr);
  if (matrix == nullptr) return 0;
  double theta = -std::round(av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix)));
  if (std::isnan(theta)) return 0;
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  const int degrees = static_cast<int>(std::lround(theta / 90.0)) * 90 % 360;
  return degrees;
}

namespace {

// Deprecated full-range "J" formats confuse swscale; map them to the plain ones and
// say full range explicitly.
AVPixelFormat UnJ(AVPixelFormat f, bool* full_range) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    default:
      return f;
  }
}

}  // namespace

Status FrameConverter::Convert(const AVFrame* in, Frame* out) {
  const bool turned = rotation_ == 90 || rotation_ == 270;
  const int scaled_w = turned ? out_height_ : out_width_;
  const int scaled_h = turned ? out_width_ : out_height_;
  bool full_range = in->color_range == AVCOL_RANGE_JPEG;
  const AVPixelFormat src_fmt = UnJ(static_cast<AVPixelFormat>(in->format), &full_range);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(src_fmt);
  const bool yuv =
      desc != nullptr && !(desc->flags & AV_PIX_FMT_FLAG_RGB) && desc->nb_components >= 3;
  const bool hdr =
      tone_map_ && yuv &&
      (in->color_trc == AVCOL_TRC_SMPTE2084 || in->color_trc == AVCOL_TRC_ARIB_STD_B67);
  if (hdr) return ConvertHdr(in, src_fmt, desc, full_range, scaled_w, scaled_h, out);
  const AVPixelFormat dst_fmt = ToAvPixelFormat(format_);
  // sws_getCachedContext frees the context it is given whenever it does not return it.
  SwsContext* ctx = sws_getCachedContext(sws_.release(), in->width, in->height, src_fmt, scaled_w,
                                         scaled_h, dst_fmt, sws_flags_, nullptr, nullptr, nullptr);
  if (ctx == nullptr) {
    const char* name = av_get_pix_fmt_name(src_fmt);
    return Status::NotSupported(std::string("cannot convert pixel format ") +
                                (name != nullptr ? name : "unknown") + " to RGB");
  }
  if (ctx != sws_raw_) color_key_ = -1;
  sws_.reset(ctx);
  sws_raw_ = ctx;
  // A matrix swscale has none for is read as BT.601, its default; BT.2020's constant
  // luminance coding as its non-constant one.
  int matrix = SwsMatrix(in->colorspace);
  if (matrix < 0) matrix = in->colorspace == AVCOL_SPC_BT2020_CL ? SWS_CS_BT2020 : SWS_CS_ITU601;
  const int key = yuv ? (matrix * 2 + (full_range ? 1 : 0)) : -2;
  if (yuv && key != color_key_) {
    const int* coeffs = sws_getCoefficients(matrix);
    sws_setColorspaceDetails(ctx, coeffs, full_range ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT),
                             1, 0, 1 << 16, 1 << 16);
  }
  color_key_ = key;

  const int stride = scaled_w * ChannelCount(format_);
  const size_t bytes = static_cast<size_t>(stride) * static_cast<size_t>(scaled_h);
  padded_.resize(bytes + kSwsSlackBytes);
  uint8_t* dst_data[4] = {padded_.data(), nullptr, nullptr, nullptr};
  int dst_stride[4] = {stride, 0, 0, 0};
  const int rows = sws_scale(ctx, in->data, in->linesize, 0, in->height, dst_data, dst_stride);
  if (rows <= 0) return Status::Internal("sws_scale produced no rows");
  return Finish(scaled_w, scaled_h, bytes, out);
}

Status FrameConverter::Finish(int scaled_w, int scaled_h, size_t bytes, Frame* out) {
  padded_.resize(bytes);  // keeps the capacity
  Frame* target = (rotation_ == 0) ? out : &scratch_;
  target->width = scaled_w;
  target->height = scaled_h;
  target->format = format_;
  target->data.swap(padded_);
  if (rotation_ != 0) RotateFrame(scratch_, rotation_, out);
  return Status::OK();
}

Status FrameConverter::ConvertHdr(const AVFrame* in, AVPixelFormat src_fmt,
                                  const AVPixFmtDescriptor* desc, bool full_range, int scaled_w,
                                  int scaled_h, Frame* out) {
  // swscale only scales, to 16-bit 4:4:4 Y'CbCr, placing chroma samples where the frame
  // says they are (unstated: left, co-sited with even columns, as H.264/HEVC default to
  // and zscale assumes; swscale's own default is centred). ToneMapper then converts to
  // R'G'B' unclipped, as zscale does in floating point, and maps it.
  // Mapped at the frame's own size, then scaled (the mapping is not linear, and ffmpeg's
  // chain maps before any scale that follows it).
  const bool resized = scaled_w != in->width || scaled_h != in->height;
  const int map_w = map_full_size_ && resized ? in->width : scaled_w;
  const int map_h = map_full_size_ && resized ? in->height : scaled_h;
  int h_chr_pos = 0, v_chr_pos = 128;  // in 1/256 of a luma sample
  switch (in->chroma_location) {
    case AVCHROMA_LOC_CENTER:
      h_chr_pos = 128;
      break;
    case AVCHROMA_LOC_TOPLEFT:
      v_chr_pos = 0;
      break;
    case AVCHROMA_LOC_TOP:
      h_chr_pos = 128, v_chr_pos = 0;
      break;
    default:
      break;
  }
  const int flags = sws_flags_ | SWS_ACCURATE_RND;
  const std::array<int, 8> key = {in->width, in->height, src_fmt,   map_w,
                                  map_h,     flags,      h_chr_pos, v_chr_pos};
  if (hdr_sws_ == nullptr || key != hdr_sws_key_) {
    hdr_sws_.reset(sws_alloc_context());
    SwsContext* c = hdr_sws_.get();
    if (c == nullptr) return Status::Internal("out of memory for a scaler");
    av_opt_set_int(c, "srcw", in->width, 0);
    av_opt_set_int(c, "srch", in->height, 0);
    av_opt_set_int(c, "src_format", src_fmt, 0);
    av_opt_set_int(c, "dstw", map_w, 0);
    av_opt_set_int(c, "dsth", map_h, 0);
    av_opt_set_int(c, "dst_format", AV_PIX_FMT_YUV444P16, 0);
    av_opt_set_int(c, "sws_flags", flags, 0);
    av_opt_set_int(c, "src_h_chr_pos", h_chr_pos, 0);
    av_opt_set_int(c, "src_v_chr_pos", v_chr_pos, 0);
    if (sws_init_context(c, nullptr, nullptr) < 0) {
      hdr_sws_.reset();
      const char* name = av_get_pix_fmt_name(src_fmt);
      return Status::NotSupported(std::string("cannot scale HDR pixel format ") +
                                  (name != nullptr ? name : "unknown"));
    }
    hdr_sws_key_ = key;
  }
  const size_t pixels = static_cast<size_t>(map_w) * static_cast<size_t>(map_h);
  const size_t plane = pixels + kSwsSlackBytes / sizeof(uint16_t);
  hdr_yuv_.resize(plane * 3);
  uint8_t* dst_data[4] = {reinterpret_cast<uint8_t*>(hdr_yuv_.data()),
                          reinterpret_cast<uint8_t*>(hdr_yuv_.data() + plane),
                          reinterpret_cast<uint8_t*>(hdr_yuv_.data() + 2 * plane), nullptr};
  int dst_stride[4] = {map_w * 2, map_w * 2, map_w * 2, 0};
  const int rows =
      sws_scale(hdr_sws_.get(), in->data, in->linesize, 0, in->height, dst_data, dst_stride);
  if (rows <= 0) return Status::Internal("sws_scale produced no rows");

  const HdrTransfer transfer =
      in->color_trc == AVCOL_TRC_SMPTE2084 ? HdrTransfer::kPq : HdrTransfer::kHlg;
  if (tone_mapper_ == nullptr || tone_mapper_->transfer() != transfer) {
    tone_mapper_ = std::make_unique<ToneMapper>(transfer);
  }
  double max_cll = 0, mastering_max = 0;
  if (const AVFrameSideData* sd = av_frame_get_side_data(in, AV_FRAME_DATA_CONTENT_LIGHT_LEVEL)) {
    max_cll = reinterpret_cast<const AVContentLightMetadata*>(sd->data)->MaxCLL;
  }
  if (const AVFrameSideData* sd =
          av_frame_get_side_data(in, AV_FRAME_DATA_MASTERING_DISPLAY_METADATA)) {
    const auto* m = reinterpret_cast<const AVMasteringDisplayMetadata*>(sd->data);
    if (m->has_luminance) mastering_max = av_q2d(m->max_luminance);
  }
  ToneMapper::YuvCoding coding;
  coding.bit_depth = std::clamp(desc->comp[0].depth, 8, 16);
  coding.full_range = full_range;
  if (in->colorspace == AVCOL_SPC_BT709) {
    coding.kr = 0.2126f, coding.kb = 0.0722f;
  } else if (in->colorspace == AVCOL_SPC_BT470BG || in->colorspace == AVCOL_SPC_SMPTE170M) {
    coding.kr = 0.299f, coding.kb = 0.114f;
  }  // else BT.2020, the default
  const int channels = ChannelCount(format_);
  const double peak = ToneMapper::SignalPeak(max_cll, mastering_max);
  if (map_w == scaled_w && map_h == scaled_h) {
    const size_t bytes = pixels * static_cast<size_t>(channels);
    padded_.resize(bytes + kSwsSlackBytes);
    tone_mapper_->Map(hdr_yuv_.data(), hdr_yuv_.data() + plane, hdr_yuv_.data() + 2 * plane,
                      static_cast<int64_t>(pixels), coding, peak, format_, padded_.data());
    return Finish(scaled_w, scaled_h, bytes, out);
  }
  mapped_.resize(pixels * static_cast<size_t>(channels) + kSwsSlackBytes);
  tone_mapper_->Map(hdr_yuv_.data(), hdr_yuv_.data() + plane, hdr_yuv_.data() + 2 * plane,
                    static_cast<int64_t>(pixels), coding, peak, format_, mapped_.data());
  // The mapped frame scaled as ffmpeg's `scale` does it after the chain (8-bit samples of
  // the output format, the decoder's filter).
  const AVPixelFormat fmt = ToAvPixelFormat(format_);
  const std::array<int, 4> mapped_key = {map_w, map_h, scaled_w, scaled_h};
  if (mapped_sws_ == nullptr || mapped_key != mapped_sws_key_) {
    mapped_sws_.reset(sws_getContext(map_w, map_h, fmt, scaled_w, scaled_h, fmt, sws_flags_,
                                     nullptr, nullptr, nullptr));
    if (mapped_sws_ == nullptr) return Status::Internal("cannot scale tone-mapped frames");
    mapped_sws_key_ = mapped_key;
  }
  const int stride = scaled_w * channels;
  const size_t bytes = static_cast<size_t>(stride) * static_cast<size_t>(scaled_h);
  padded_.resize(bytes + kSwsSlackBytes);
  const uint8_t* src_data[4] = {mapped_.data(), nullptr, nullptr, nullptr};
  const int src_stride[4] = {map_w * channels, 0, 0, 0};
  uint8_t* out_data[4] = {padded_.data(), nullptr, nullptr, nullptr};
  const int out_stride[4] = {stride, 0, 0, 0};
  if (sws_scale(mapped_sws_.get(), src_data, src_stride, 0, map_h, out_data, out_stride) <= 0)
    return Status::Internal("sws_scale produced no rows");
  return Finish(scaled_w, scaled_h, bytes, out);
}

int SwsMatrix(AVColorSpace space) {
  switch (space) {
    case AVCOL_SPC_UNSPECIFIED:
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M:
      return SWS_CS_ITU601;
    case AVCOL_SPC_BT709:
      return SWS_CS_ITU709;
    case AVCOL_SPC_FCC:
      return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M:
      return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
      return SWS_CS_BT2020;
    default:
      return -1;
  }
}

}  // namespace reel::av
