#include "video/decoder.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <set>
#include <utility>
#include <vector>

#include "util/strings.h"
#include "video/av_util.h"
#include "video/deinterlace.h"

namespace reel {
namespace {

int SwsFlags(ResizeFilter f) {
  switch (f) {
    case ResizeFilter::kFastBilinear:
      return SWS_FAST_BILINEAR;
    case ResizeFilter::kBilinear:
      return SWS_BILINEAR;
    case ResizeFilter::kBicubic:
      return SWS_BICUBIC;
    case ResizeFilter::kArea:
      return SWS_AREA;
  }
  return SWS_BILINEAR;
}

bool IsImageFile(const std::string& name) {
  static const char* kExt[] = {".png", ".jpg",  ".jpeg", ".bmp", ".webp",
                               ".tif", ".tiff", ".ppm",  ".pgm"};
  const std::string lower = ToLower(name);
  for (const char* e : kExt) {
    if (EndsWith(lower, e)) return true;
  }
  return false;
}

// Decodes the single picture in an image file.
Result<av::FramePtr> DecodeImageFile(const std::string& path, std::string* codec_name) {
  REEL_ASSIGN_OR_RETURN(av::FormatContextPtr fmt, av::OpenInput(path));
  const int vindex = av::PickVideoStream(fmt.get());
  if (vindex < 0) return Status::Corruption(path + ": not an image");
  REEL_ASSIGN_OR_RETURN(av::CodecContextPtr dec,
                        av::OpenDecoder(fmt->streams[vindex], 1, false, path));
  if (codec_name != nullptr) *codec_name = avcodec_get_name(dec->codec_id);
  av::PacketPtr pkt(av_packet_alloc());
  av::FramePtr frame(av_frame_alloc());
  bool sent_eof = false;
  while (true) {
    int err = avcodec_receive_frame(dec.get(), frame.get());
    if (err == 0) return frame;
    if (err == AVERROR_EOF || sent_eof) {
      return Status::Corruption(path + ": no decodable picture");
    }
    if (err != AVERROR(EAGAIN)) return av::ErrorStatus(err, path, "cannot decode image");
    err = av_read_frame(fmt.get(), pkt.get());
    if (err == AVERROR_EOF) {
      avcodec_send_packet(dec.get(), nullptr);
      sent_eof = true;
      continue;
    }
    if (err < 0) return av::ErrorStatus(err, path, "cannot read image");
    if (pkt->stream_index == vindex) {
      err = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (err < 0 && err != AVERROR(EAGAIN)) {
        return av::ErrorStatus(err, path, "cannot decode image");
      }
    } else {
      av_packet_unref(pkt.get());
    }
  }
}

}  // namespace

void ResolveOutputSize(int display_width, int display_height, int want_width, int want_height,
                       int* out_width, int* out_height) {
  if (want_width > 0 && want_height > 0) {
    *out_width = want_width;
    *out_height = want_height;
  } else if (want_width > 0) {
    *out_width = want_width;
    *out_height = std::max<int>(
        1, static_cast<int>(
               (Rational(want_width, 1) * Rational(display_height, display_width)).Round()));
  } else if (want_height > 0) {
    *out_height = want_height;
    *out_width = std::max<int>(
        1, static_cast<int>(
               (Rational(want_height, 1) * Rational(display_width, display_height)).Round()));
  } else {
    *out_width = display_width;
    *out_height = display_height;
  }
}

// ---------------------------------------------------------------------------------------
// VideoDecoder

struct VideoDecoder::Impl {
  std::string path;
  DecodeOptions options;
  av::FormatContextPtr fmt;
  av::CodecContextPtr dec;
  AVStream* stream = nullptr;
  int vindex = -1;
  VideoInfo info;
  int out_width = 0;
  int out_height = 0;
  std::unique_ptr<av::FrameConverter> converter;
  av::PacketPtr packet{av_packet_alloc()};
  av::FramePtr frame{av_frame_alloc()};
  bool input_eof = false;
  int64_t next_index = 0;
  int64_t origin = AV_NOPTS_VALUE;
  int64_t last_pts = AV_NOPTS_VALUE;
  // After a seek, until a frame with a pts of its own: frames timed only by a guessed dts
  // (MPEG-PS leaves the pts off keyframes, and its dts after a seek is a guess) are dropped.
  bool after_seek = false;
  int64_t default_duration = 0;  // ticks per frame, for frames without a timestamp
  int64_t errors = 0;
  int64_t packets_sent = 0;
  // Times of the packets sent that the container's edit list hides (AV_PKT_FLAG_DISCARD).
  // Most decoders drop their frames; FFmpeg 5.1's libdav1d (AV1) returns them, and they
  // are dropped here, so every decoder shows the frames the probe counts.
  std::set<int64_t> hidden_pts;
  // Decoded frames not yet returned, in display order (by pts). Decoders return frames in
  // display order themselves, but FFmpeg 5.1's HEVC decoder, given a stream cut mid-GOP,
  // can return every frame in decode order; holding as many frames as the stream reorders
  // (has_b_frames) puts them back in order. Frames it returns so late that they belong
  // before the first frame returned are dropped: they are the cut's undecodable lead, which
  // the probe does not count either.
  std::deque<std::pair<int64_t, av::FramePtr>> pending;
  bool decoder_drained = false;
  int64_t first_returned_pts = AV_NOPTS_VALUE;

  // Deinterlacing (yadif) needs the frame after the one it rebuilds: frames in display
  // order wait here, the one before kept as its reference.
  av::FramePtr deint_prev, deint_cur;
  int64_t deint_cur_pts = 0;
  av::FramePtr deinterlaced{av_frame_alloc()};

  // Converts `f` (at `pts`) into *out as the next frame; unless `convert` is off, which
  // leaves *out a reference to `f` to convert later.
  bool convert = true;
  Result<bool> Emit(int64_t pts, const AVFrame* f, Frame* out) {
    if (origin == AV_NOPTS_VALUE) origin = pts;
    if (first_returned_pts == AV_NOPTS_VALUE) first_returned_pts = pts;
    if (convert) {
      out->unconverted.reset();
      Status s = converter->Convert(f, out);
      if (!s.ok()) return s.WithContext(path);
    } else {
      AVFrame* ref = av_frame_clone(f);
      if (ref == nullptr) return Status::Internal("out of memory for a frame reference");
      out->unconverted = std::shared_ptr<void>(ref, [](void* p) {
        AVFrame* frame = static_cast<AVFrame*>(p);
        av_frame_free(&frame);
      });
      out->width = out_width;
      out->height = out_height;
      out->format = options.format;
    }
    out->index = next_index++;
    out->pts = pts;
    out->time = TicksToSeconds(pts - origin, info.time_base);
    out->key_frame = f->key_frame != 0;
    return true;
  }

  // Emits deint_cur, rebuilt from the frames around it when it is interlaced.
  Result<bool> EmitDeinterlaced(const AVFrame* next, Frame* out) {
    const AVFrame* cur = deint_cur.get();
    const AVFrame* prev = deint_prev != nullptr ? deint_prev.get() : cur;
    if (cur->interlaced_frame &&
        av::Yadif(prev, cur, next, cur->top_field_first != 0, deinterlaced.get())) {
      return Emit(deint_cur_pts, deinterlaced.get(), out);
    }
    return Emit(deint_cur_pts, cur, out);
  }

  size_t ReorderDepth() const {
    return options.keyframes_only ? 0 : static_cast<size_t>(std::max(0, dec->has_b_frames));
  }
};

VideoDecoder::VideoDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoDecoder::~VideoDecoder() = default;

Result<std::unique_ptr<VideoDecoder>> VideoDecoder::Open(const std::string& path,
                                                         const DecodeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  REEL_ASSIGN_OR_RETURN(impl->fmt, av::OpenInput(path));
  impl->vindex = av::PickVideoStream(impl->fmt.get());
  if (impl->vindex < 0) {
    return Status::NotSupported(path + ": no video stream (container '" +
                                std::string(impl->fmt->iformat->name) + "')");
  }
  impl->stream = impl->fmt->streams[impl->vindex];
  // Only the chosen stream is demuxed into packets we look at; others are discarded early.
  for (unsigned i = 0; i < impl->fmt->nb_streams; ++i) {
    if (static_cast<int>(i) != impl->vindex) impl->fmt->streams[i]->discard = AVDISCARD_ALL;
  }
  impl->info = av::HeaderInfo(impl->fmt.get(), impl->vindex);
  if (impl->info.width <= 0 || impl->info.height <= 0) {
    return Status::Corruption(path + ": video stream has no picture size");
  }
  REEL_ASSIGN_OR_RETURN(
      impl->dec, av::OpenDecoder(impl->stream, options.threads, options.skip_loop_filter, path));
  if (options.keyframes_only) impl->dec->skip_frame = AVDISCARD_NONKEY;

  VideoInfo display = impl->info;
  if (!options.square_pixels) display.sample_aspect_ratio = Rational(1, 1);
  if (!options.autorotate) display.rotation = 0;
  ResolveOutputSize(display.display_width(), display.display_height(), options.width,
                    options.height, &impl->out_width, &impl->out_height);
  impl->converter = std::make_unique<av::FrameConverter>(
      impl->out_width, impl->out_height, options.format, display.rotation, SwsFlags(options.filter),
      options.tone_map_hdr, options.tone_map_full_size);
  if (impl->stream->start_time != AV_NOPTS_VALUE) impl->origin = impl->stream->start_time;
  const Rational fr = impl->info.frame_rate;
  if (fr.valid() && !fr.is_zero()) {
    impl->default_duration = std::max<int64_t>(1, (fr.Inverse() / impl->info.time_base).Round());
  }
  return std::unique_ptr<VideoDecoder>(new VideoDecoder(std::move(impl)));
}

const VideoInfo& VideoDecoder::info() const {
  return impl_->info;
}
int VideoDecoder::width() const {
  return impl_->out_width;
}
int VideoDecoder::height() const {
  return impl_->out_height;
}
int64_t VideoDecoder::decode_errors() const {
  return impl_->errors;
}

Result<bool> VideoDecoder::NextUnconverted(Frame* out) {
  impl_->convert = false;
  Result<bool> r = Next(out);
  impl_->convert = true;
  return r;
}

Status VideoDecoder::Convert(Frame* frame) {
  if (frame->unconverted == nullptr) return Status::OK();
  const std::shared_ptr<void> picture = std::move(frame->unconverted);
  frame->unconverted.reset();
  // The conversion (a rotation) may remake the frame: its times are kept.
  const int64_t index = frame->index, pts = frame->pts;
  const Rational time = frame->time;
  const bool key_frame = frame->key_frame;
  Status s = impl_->converter->Convert(static_cast<const AVFrame*>(picture.get()), frame);
  if (!s.ok()) return s.WithContext(impl_->path);
  frame->index = index;
  frame->pts = pts;
  frame->time = time;
  frame->key_frame = key_frame;
  return Status::OK();
}

Result<bool> VideoDecoder::Next(Frame* out) {
  Impl& d = *impl_;
  while (true) {
    if (!d.pending.empty() && (d.decoder_drained || d.pending.size() > d.ReorderDepth())) {
      auto [pts, held] = std::move(d.pending.front());
      d.pending.pop_front();
      if (!d.options.deinterlace) return d.Emit(pts, held.get(), out);
      if (d.deint_cur == nullptr) {
        d.deint_cur = std::move(held);
        d.deint_cur_pts = pts;
        continue;
      }
      Result<bool> r = d.EmitDeinterlaced(held.get(), out);
      d.deint_prev = std::move(d.deint_cur);
      d.deint_cur = std::move(held);
      d.deint_cur_pts = pts;
      return r;
    }
    if (d.decoder_drained) {
      if (d.deint_cur == nullptr) return false;
      Result<bool> r = d.EmitDeinterlaced(d.deint_cur.get(), out);  // the last: no next
      d.deint_prev.reset();
      d.deint_cur.reset();
      return r;
    }
    int err = avcodec_receive_frame(d.dec.get(), d.frame.get());
    if (err == 0) {
      AVFrame* f = d.frame.get();
      if (!d.hidden_pts.empty() && d.hidden_pts.erase(f->best_effort_timestamp) > 0) {
        av_frame_unref(f);
        continue;
      }
      if ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags != 0) {
        ++d.errors;
        if (d.options.strict) {
          av_frame_unref(f);
          return Status::Corruption(d.path + ": damaged frame " + std::to_string(d.next_index));
        }
      }
      if (d.after_seek) {
        if (f->pts == AV_NOPTS_VALUE) {
          av_frame_unref(f);
          continue;
        }
        d.after_seek = false;
      }
      int64_t pts = f->best_effort_timestamp;
      if (pts == AV_NOPTS_VALUE) {
        pts = d.last_pts == AV_NOPTS_VALUE ? 0 : d.last_pts + d.default_duration;
      }
      d.last_pts = pts;
      if (d.first_returned_pts != AV_NOPTS_VALUE && pts < d.first_returned_pts) {
        av_frame_unref(f);
        continue;
      }
      av::FramePtr held(av_frame_alloc());
      av_frame_move_ref(held.get(), f);
      const auto at = std::upper_bound(
          d.pending.begin(), d.pending.end(), pts,
          [](int64_t t, const std::pair<int64_t, av::FramePtr>& p) { return t < p.first; });
      d.pending.emplace(at, pts, std::move(held));
      continue;
    }
    if (err == AVERROR_EOF) {
      d.decoder_drained = true;
      continue;
    }
    if (err != AVERROR(EAGAIN)) {
      ++d.errors;
      if (d.options.strict) return av::ErrorStatus(err, d.path, "decode error");
      continue;
    }
    if (d.input_eof) {  // the decoder wants input but there is none left
      d.decoder_drained = true;
      continue;
    }
    av::ClearLastError();
    err = av_read_frame(d.fmt.get(), d.packet.get());
    if (err == AVERROR_EOF) {
      d.input_eof = true;
      avcodec_send_packet(d.dec.get(), nullptr);
      continue;
    }
    if (err < 0) {
      return av::ReadErrorStatus(err, d.path,
                                 "read error after " + std::to_string(d.next_index) + " frames");
    }
    if (d.packet->stream_index != d.vindex) {
      av_packet_unref(d.packet.get());
      continue;
    }
    if ((d.packet->flags & AV_PKT_FLAG_DISCARD) && d.packet->pts != AV_NOPTS_VALUE) {
      d.hidden_pts.insert(d.packet->pts);
    }
    err = avcodec_send_packet(d.dec.get(), d.packet.get());
    av_packet_unref(d.packet.get());
    ++d.packets_sent;
    if (err < 0 && err != AVERROR(EAGAIN)) {
      ++d.errors;
      if (d.options.strict) {
        return av::ErrorStatus(err, d.path,
                               "decode error at packet " + std::to_string(d.packets_sent - 1));
      }
    }
  }
}

Status VideoDecoder::SeekToPts(int64_t pts) {
  Impl& d = *impl_;
  // A raw stream (.h264, .hevc) has no timestamps to seek by or to check the frames after a
  // seek against: the caller reads it from the start.
  if (d.fmt->iformat->flags & AVFMT_NOTIMESTAMPS) {
    return Status::NotSupported(d.path + ": a stream without timestamps cannot seek");
  }
  av::ClearLastError();
  const int err = av_seek_frame(d.fmt.get(), d.vindex, pts, AVSEEK_FLAG_BACKWARD);
  if (err < 0) return av::ErrorStatus(err, d.path, "seek failed");
  avcodec_flush_buffers(d.dec.get());
  d.hidden_pts.clear();
  d.pending.clear();
  d.deint_prev.reset();
  d.deint_cur.reset();
  d.decoder_drained = false;
  d.first_returned_pts = AV_NOPTS_VALUE;
  d.input_eof = false;
  d.next_index = 0;
  d.last_pts = AV_NOPTS_VALUE;
  d.after_seek = true;
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// ImageSequence

struct ImageSequence::Impl {
  std::string dir;
  DecodeOptions options;
  std::vector<std::string> files;
  VideoInfo info;
  int out_width = 0;
  int out_height = 0;
  std::unique_ptr<av::FrameConverter> converter;
  size_t next = 0;
  int64_t errors = 0;
  int64_t produced = 0;
};

ImageSequence::ImageSequence(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageSequence::~ImageSequence() = default;

Result<std::unique_ptr<ImageSequence>> ImageSequence::Open(const std::string& dir,
                                                           const DecodeOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound(dir + ": not a folder");
  if (!options.image_frame_rate.valid() || options.image_frame_rate <= Rational()) {
    return Status::InvalidArgument(dir + ": image frame rate must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && IsImageFile(it->path().filename().string())) {
      impl->files.push_back(it->path().string());
    }
  }
  if (ec) return Status::IOError(dir + ": " + ec.message());
  if (impl->files.empty()) return Status::NotFound(dir + ": no image files");
  std::sort(impl->files.begin(), impl->files.end(),
            [](const std::string& a, const std::string& b) { return NaturalLess(a, b); });

  std::string codec;
  REEL_ASSIGN_OR_RETURN(av::FramePtr first, DecodeImageFile(impl->files.front(), &codec));
  VideoInfo& info = impl->info;
  info.container = "image-folder";
  info.codec = codec;
  const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(first->format));
  info.pixel_format = pix != nullptr ? pix : "unknown";
  info.width = first->width;
  info.height = first->height;
  info.frame_rate = options.image_frame_rate;
  info.time_base = options.image_frame_rate.Inverse();
  info.frame_count = static_cast<int64_t>(impl->files.size());
  info.duration = Rational::FromInt(info.frame_count) / options.image_frame_rate;
  ResolveOutputSize(info.width, info.height, options.width, options.height, &impl->out_width,
                    &impl->out_height);
  impl->converter = std::make_unique<av::FrameConverter>(
      impl->out_width, impl->out_height, options.format, 0, SwsFlags(options.filter));
  return std::unique_ptr<ImageSequence>(new ImageSequence(std::move(impl)));
}

const VideoInfo& ImageSequence::info() const {
  return impl_->info;
}
int ImageSequence::width() const {
  return impl_->out_width;
}
int ImageSequence::height() const {
  return impl_->out_height;
}
int64_t ImageSequence::decode_errors() const {
  return impl_->errors;
}

Result<bool> ImageSequence::Next(Frame* out) {
  Impl& s = *impl_;
  while (s.next < s.files.size()) {
    const size_t i = s.next++;
    auto frame = DecodeImageFile(s.files[i], nullptr);
    if (!frame.ok()) {
      ++s.errors;
      if (s.options.strict) return frame.status();
      continue;
    }
    REEL_RETURN_IF_ERROR(s.converter->Convert(frame->get(), out).WithContext(s.files[i]));
    // The position in the folder fixes the time, so a skipped image leaves a gap.
    out->index = s.produced++;
    out->pts = static_cast<int64_t>(i);
    out->time = TicksToSeconds(out->pts, s.info.time_base);
    out->key_frame = true;
    return true;
  }
  return false;
}

Result<std::unique_ptr<FrameSource>> OpenFrameSource(const std::string& path,
                                                     const DecodeOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    REEL_ASSIGN_OR_RETURN(auto seq, ImageSequence::Open(path, options));
    return std::unique_ptr<FrameSource>(std::move(seq));
  }
  REEL_ASSIGN_OR_RETURN(auto dec, VideoDecoder::Open(path, options));
  return std::unique_ptr<FrameSource>(std::move(dec));
}

}  // namespace reel
