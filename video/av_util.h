// Private to the video module: RAII holders for libav objects and error text.
// Not installed, not included by public headers.

#ifndef REEL_VIDEO_AV_UTIL_H_
#define REEL_VIDEO_AV_UTIL_H_

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/rational.h"
#include "util/status.h"
#include "video/frame.h"
#include "video/probe.h"
#include "video/tone_map.h"

namespace reel::av {

struct FormatContextCloser {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
struct CodecContextFreer {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFreer {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFreer {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextCloser>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFreer>;
using FramePtr = std::unique_ptr<AVFrame, FrameFreer>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFreer>;

// Routes libav's log through reel's: messages at AV_LOG_ERROR or worse are remembered
// per thread (see LastErrorMessage) and shown at debug level. Idempotent.
void InstallLogCallback();

// Forgets the remembered libav error message of this thread.
void ClearLastError();
// The last libav error-level message logged on this thread since ClearLastError(), or "".
std::string LastErrorMessage();
// LastErrorMessage() without its "[mov,mp4,... @ 0x...] " context prefix: often the real
// cause of a failure ("moov atom not found").
std::string LastErrorCause();

// HEVC: whether a packet's picture is a RASL picture (NAL types 8 and 9), a leading
// picture of a CRA that predicts from pictures before it. Packets are Annex B (start
// codes, as in MPEG-TS) or length-prefixed (MP4's and Matroska's hvcC, whose byte 21
// gives the length size).
bool IsHevcRasl(const AVPacket* pkt, const AVCodecParameters* par);

// "what: <av_strerror text> (<last libav log message>)".
std::string ErrorText(int averror, const std::string& what);
// A Status for a failed libav call on `path`; the code depends on the error
// (AVERROR_INVALIDDATA -> kCorruption, ENOENT -> kNotFound, ...).
Status ErrorStatus(int averror, const std::string& path, const std::string& what);
// ErrorStatus for a failed read of the input `path`, except that an EIO from a file whose
// every byte reads (Matroska's demuxer says EIO for a file cut short) is kCorruption,
// "damaged or cut short". Reads the whole file to tell, on this error path only.
Status ReadErrorStatus(int averror, const std::string& path, const std::string& what);

inline Rational ToRational(AVRational r) {
  return Rational(r.num, r.den);
}
inline AVRational ToAv(Rational r) {
  return AVRational{static_cast<int>(r.num()), static_cast<int>(r.den())};
}

inline Rational RationalOr(AVRational r, Rational fallback) {
  if (r.num > 0 && r.den > 0) return Rational(r.num, r.den);
  return fallback;
}

// The video stream a file is "about": the best-ranked one that is not cover art; -1 if none.
int PickVideoStream(AVFormatContext* ctx);

// What the headers say about stream `vindex` (no packets read): container, codec, sizes,
// SAR, rotation, time base, audio presence, tags, and the header's frame count, start
// and duration where present.
VideoInfo HeaderInfo(AVFormatContext* ctx, int vindex);

// Opens `path` for demuxing and reads stream info. Errors name the path.
Result<FormatContextPtr> OpenInput(const std::string& path);

// Opens a decoder for `stream` with `threads` (0 = automatic).
Result<CodecContextPtr> OpenDecoder(const AVStream* stream, int threads, bool skip_loop_filter,
                                    const std::string& path);

// The libav pixel format of a reel PixelFormat.
AVPixelFormat ToAvPixelFormat(PixelFormat format);

// Clockwise rotation in degrees (0, 90, 180 or 270) that the stream's display matrix
// asks for, as ffmpeg's autorotate computes it.
int StreamRotation(const AVStream* stream);

// swscale's matrix (SWS_CS_*) for a Y'CbCr colour space: BT.601 for BT.470BG, SMPTE 170M
// and unstated; -1 where swscale has none (YCgCo, BT.2020 constant luminance, ...).
int SwsMatrix(AVColorSpace space);

// Bytes libswscale may touch past the end of a packed (one-plane) image it writes or
// reads: its x86 SIMD works on blocks of pixels and does not stop at the last one.
// Measured with FFmpeg 5.1 on x86-64: 42 bytes written past an exact-size RGB24
// destination (yuv420p at the same size, 2 pixels wide; 3 bytes at widths of 63 and
// 127), under 8 bytes read past an RGB24 source. So a buffer swscale writes or reads
// has this much more after its last row; SwscaleTest checks the bound.
inline constexpr size_t kSwsSlackBytes = 256;

// Converts decoded AVFrames into reel Frames: pixel format, size (swscale, using the
// frame's colour matrix and range), then rotation. With `tone_map`, frames with a PQ or
// HLG transfer are tone-mapped to SDR BT.709 (ToneMapper) after scaling. Reuses its
// scaler and scratch buffers.
class FrameConverter {
 public:
  // `out_width` x `out_height` is the size after rotation.
  // `tone_map`: PQ and HLG frames are tone-mapped (ToneMapper), at their own size and
  // then scaled when `map_full_size`, else scaled first.
  FrameConverter(int out_width, int out_height, PixelFormat format, int rotation, int sws_flags,
                 bool tone_map = false, bool map_full_size = true)
      : out_width_(out_width),
        out_height_(out_height),
        format_(format),
        rotation_(rotation),
        sws_flags_(sws_flags),
        tone_map_(tone_map),
        map_full_size_(map_full_size) {}
  Status Convert(const AVFrame* in, Frame* out);

 private:
  Status ConvertHdr(const AVFrame* in, AVPixelFormat src_fmt, const AVPixFmtDescriptor* desc,
                    bool full_range, int scaled_w, int scaled_h, Frame* out);
  // Moves the converted image (padded_, `bytes` long) into *out, rotated.
  Status Finish(int scaled_w, int scaled_h, size_t bytes, Frame* out);

  int out_width_, out_height_;
  PixelFormat format_;
  int rotation_;
  int sws_flags_;
  bool tone_map_;
  bool map_full_size_;
  SwsPtr sws_;
  const SwsContext* sws_raw_ = nullptr;  // identity of the context the colour key is for
  int color_key_ = -1;                   // colour matrix and range last set on sws_
  Frame scratch_;
  // What swscale writes into: the image and kSwsSlackBytes more; shrunk to the image, it
  // is swapped into the output frame (no copy), whose old buffer is reused next time.
  std::vector<uint8_t> padded_;
  std::unique_ptr<ToneMapper> tone_mapper_;  // for the last HDR transfer seen
  SwsPtr hdr_sws_;                           // scales HDR frames to 4:4:4 (own chroma siting)
  std::array<int, 8> hdr_sws_key_{};         // the sizes, formats and siting it is for
  std::vector<uint16_t> hdr_yuv_;            // 16-bit 4:4:4 Y'CbCr planes swscale writes for it
  SwsPtr mapped_sws_;                        // scales mapped frames (map_full_size_)
  std::array<int, 4> mapped_sws_key_{};      // the sizes it is for
  std::vector<uint8_t> mapped_;              // a mapped frame at its own size
};

}  // namespace reel::av

#endif  // REEL_VIDEO_AV_UTIL_H_
