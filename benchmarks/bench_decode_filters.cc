// What the decoder's filters cost, per core: HDR tone mapping (video/tone_map.h) and
// deinterlacing (video/deinterlace.h).
//
//   tone_map/T/W/H     ToneMapper::Map alone on a W x H frame of 10-bit 4:4:4 Y'CbCr
//                      (T: 0 PQ, 1 HLG), frames per second
//   decode_hdr/M/W/H   VideoDecoder on a 10-bit HEVC file with a PQ transfer, one codec
//                      thread, RGB24 output at W x H; M: 1 tone-mapped (at full size,
//                      then scaled), 2 tone-mapped after the scale (scan's fast resize),
//                      0 read as SDR
//   yadif/D            av::Yadif alone on a 1920x1080 4:2:0 frame of D (8, 10) bits,
//                      frames per second
//   decode_interlaced/M  VideoDecoder on a 1920x1080 interlaced H.264 file, one codec
//                      thread, RGB24; M: 1 deinterlaced, 0 as coded
//   ReadAtRate/lazy:L/hdr:H  a 2 s 1080p file (H: 1 PQ HEVC, 0 H.264) read at 8 fps and
//                      256x144 as export --fps reads it; L: 1 only the frames kept are
//                      converted (ReadAtRate), 0 every decoded frame is
//
// For comparison, ffmpeg's own filters on the same files (one thread):
//   ffmpeg -threads 1 -i FILE -vf zscale=t=linear:npl=100,format=gbrpf32le,
//     zscale=p=bt709,tonemap=hable,zscale=t=bt709,format=gbrp -f null -
//   ffmpeg -threads 1 -i FILE -vf yadif=deint=interlaced -f null -
// which bench_decode_filters prints once before the benchmarks (needs the ffmpeg CLI with
// zscale; the inputs are made with it into $REEL_BENCH_DATA).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "video/decoder.h"
#include "video/deinterlace.h"
#include "video/sampler.h"
#include "video/tone_map.h"

namespace reel {
namespace {

void BM_ToneMap(benchmark::State& state) {
  const auto transfer = state.range(0) == 0 ? HdrTransfer::kPq : HdrTransfer::kHlg;
  const int64_t pixels = state.range(1) * state.range(2);
  // R' across, G' down, B' in diagonal bands, coded with the BT.2020 matrix in 10 bits.
  const int width = static_cast<int>(state.range(1)), height = static_cast<int>(state.range(2));
  std::vector<uint16_t> y(pixels), cb(pixels), cr(pixels);
  for (int row = 0; row < height; ++row) {
    for (int col = 0; col < width; ++col) {
      const double r = static_cast<double>(col) / width, g = static_cast<double>(row) / height;
      const double b = ((col + row) % 256) / 255.0;
      const double luma = 0.2627 * r + 0.6780 * g + 0.0593 * b;
      const size_t i = static_cast<size_t>(row) * width + col;
      y[i] = static_cast<uint16_t>(std::lround(64 + 876 * luma)) << 6;
      cb[i] = static_cast<uint16_t>(std::lround(512 + 896 * (b - luma) / 1.8814)) << 6;
      cr[i] = static_cast<uint16_t>(std::lround(512 + 896 * (r - luma) / 1.4746)) << 6;
    }
  }
  const ToneMapper mapper(transfer);
  std::vector<uint8_t> out(pixels * 3);
  for (auto _ : state) {
    mapper.Map(y.data(), cb.data(), cr.data(), pixels, {}, 10.0, PixelFormat::kRgb24, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ToneMap)->Args({0, 1920, 1080})->Args({1, 1920, 1080})->Unit(benchmark::kMillisecond);

// A 2-second 1080p input made with the ffmpeg CLI (cached); "" when it cannot be made.
std::string Input(const std::string& name, const std::string& encode) {
  const char* env = std::getenv("REEL_BENCH_DATA");
  const std::string dir = env != nullptr ? env : "bench-data";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  if (!std::filesystem::exists(path)) {
    const std::string cmd =
        "ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=25:duration=2 " + encode +
        " " + path;
    if (std::system(cmd.c_str()) != 0) return "";
  }
  return path;
}

// yadif alone on 1920x1080 4:2:0 frames of noise-free gradients that move; 8-bit
// (yuv420p) or 10-bit (yuv420p10le) as the argument says.
void BM_Yadif(benchmark::State& state) {
  const bool ten_bit = state.range(0) == 10;
  AVFrame* frames[3];
  for (int i = 0; i < 3; ++i) {
    frames[i] = av_frame_alloc();
    frames[i]->format = ten_bit ? AV_PIX_FMT_YUV420P10LE : AV_PIX_FMT_YUV420P;
    frames[i]->width = 1920;
    frames[i]->height = 1080;
    av_frame_get_buffer(frames[i], 0);
    for (int p = 0; p < 3; ++p) {
      const int w = p ? 960 : 1920, h = p ? 540 : 1080;
      for (int y = 0; y < h; ++y) {
        uint8_t* row = frames[i]->data[p] + y * frames[i]->linesize[p];
        for (int x = 0; x < w; ++x) {
          const int v = x * 3 + y * 5 + i * 7 * (y & 1 ? 2 : 1);
          if (ten_bit) {
            reinterpret_cast<uint16_t*>(row)[x] = static_cast<uint16_t>(v & 1023);
          } else {
            row[x] = static_cast<uint8_t>(v & 255);
          }
        }
      }
    }
  }
  AVFrame* out = av_frame_alloc();
  for (auto _ : state) {
    av::Yadif(frames[0], frames[1], frames[2], true, out);
    benchmark::DoNotOptimize(out->data[0]);
  }
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  for (AVFrame*& f : frames) av_frame_free(&f);
  av_frame_free(&out);
}
BENCHMARK(BM_Yadif)->Arg(8)->Arg(10)->Unit(benchmark::kMillisecond);

std::string HdrFile() {
  return Input("hdr_pq_1080p.mp4",
               "-c:v libx265 -preset ultrafast -pix_fmt yuv420p10le -x265-params "
               "log-level=none:colorprim=bt2020:colormatrix=bt2020nc:transfer=smpte2084");
}

std::string InterlacedFile() {
  return Input("interlaced_1080i.mp4",
               "-vf tinterlace=interleave_top,fieldorder=tff -c:v libx264 -preset ultrafast "
               "-flags +ilme+ildct -x264-params tff=1");
}

// Decodes `path` (made by Input(); "" when it could not be) once per iteration with one
// codec thread; reports frames per second.
void DecodeEveryFrame(const std::string& path, DecodeOptions options, benchmark::State& state) {
  if (path.empty()) {
    state.SkipWithError("the ffmpeg CLI (with libx264/libx265) could not make the input");
    return;
  }
  options.threads = 1;
  int64_t frames = 0;
  for (auto _ : state) {
    auto dec = VideoDecoder::Open(path, options);
    if (!dec.ok()) {
      state.SkipWithError(dec.status().ToString().c_str());
      return;
    }
    Frame f;
    while (true) {
      auto more = (*dec)->Next(&f);
      if (!more.ok() || !*more) break;
      ++frames;
    }
  }
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(frames), benchmark::Counter::kIsRate);
}

void BM_DecodeInterlaced(benchmark::State& state) {
  DecodeOptions options;
  options.deinterlace = state.range(0) != 0;
  DecodeEveryFrame(InterlacedFile(), options, state);
}
BENCHMARK(BM_DecodeInterlaced)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_DecodeHdr(benchmark::State& state) {
  DecodeOptions options;
  options.tone_map_hdr = state.range(0) != 0;
  options.tone_map_full_size = state.range(0) != 2;
  options.width = static_cast<int>(state.range(1));
  options.height = static_cast<int>(state.range(2));
  DecodeEveryFrame(HdrFile(), options, state);
}
BENCHMARK(BM_DecodeHdr)
    ->Args({0, 1920, 1080})
    ->Args({1, 1920, 1080})
    ->Args({0, 256, 144})
    ->Args({1, 256, 144})
    ->Args({2, 256, 144})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

std::string SdrFile() {
  return Input("sdr_1080p.mp4", "-c:v libx264 -preset ultrafast");
}

// A 2-second 1080p file at 25 fps read at 8 fps and 256x144, one codec thread, as
// export --fps and generate prepare read clips: M 1 ReadAtRate (only the 16 frames kept
// are converted), M 0 the same picks with every decoded frame converted (before).
void BM_ReadAtRate(benchmark::State& state) {
  const std::string path = state.range(1) != 0 ? HdrFile() : SdrFile();
  if (path.empty()) {
    state.SkipWithError("the ffmpeg CLI (with libx264/libx265) could not make the input");
    return;
  }
  DecodeOptions options;
  options.height = 144;
  options.filter = ResizeFilter::kArea;
  options.threads = 1;
  const Rational fps(8, 1);
  for (auto _ : state) {
    Frame frame;
    auto decoder = OpenVideoAt(path, options, 0, &frame);
    if (!decoder.ok()) {
      state.SkipWithError(decoder.status().ToString().c_str());
      return;
    }
    FrameRateConverter rate(fps, 16);
    const Rational time_base = (*decoder)->info().time_base;
    int64_t kept = 0;
    if (state.range(0) != 0) {
      auto read = ReadAtRate(**decoder, &frame, 0, INT64_MAX, time_base, rate,
                             [&](const Frame&, int64_t, int64_t n) {
                               kept += n;
                               return Status::OK();
                             });
      if (!read.ok()) state.SkipWithError(read.status().ToString().c_str());
    } else {
      Frame held;
      while (!rate.done()) {
        kept += rate.Add(TicksToSeconds(frame.pts, time_base));
        std::swap(held, frame);
        auto more = (*decoder)->Next(&frame);
        if (!more.ok() || !*more) break;
      }
      kept += rate.Finish();
    }
    if (kept != 16) state.SkipWithError("not 16 frames");
  }
}
BENCHMARK(BM_ReadAtRate)
    ->ArgNames({"lazy", "hdr"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond);

void TimeFfmpeg(const std::string& what, const std::string& path, const std::string& filter,
                int frames) {
  if (path.empty()) return;
  const std::string cmd = "ffmpeg -v error -threads 1 -filter_threads 1 -i " + path + " -vf " +
                          filter + " -f null - 2>/dev/null";
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc == 0) {
    std::printf("ffmpeg %s, 1 thread, %d frames 1920x1080: %.2f s (%.1f frames/s)\n", what.c_str(),
                frames, s, frames / s);
  } else {
    std::printf("ffmpeg %s: failed\n", what.c_str());
  }
}

void PrintFfmpegChain() {
  TimeFfmpeg("zscale+tonemap chain", HdrFile(),
             "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,"
             "zscale=t=bt709,format=gbrp",
             50);
  TimeFfmpeg("yadif=deint=interlaced, to rgb24", InterlacedFile(),
             "yadif=deint=interlaced,format=rgb24", 25);
  TimeFfmpeg("no filter, to rgb24", InterlacedFile(), "format=rgb24", 25);
}

}  // namespace
}  // namespace reel

int main(int argc, char** argv) {
  reel::PrintFfmpegChain();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
