// What VideoEncoder::Write costs per frame, next to the part of it that only guards
// swscale's over-read (the copy of the frame into a buffer with kSwsSlackBytes after it).
//
//   encode_write/W/H    Write() of an RGB24 frame to libx264 (veryfast, crf 18, one
//                       thread, so the figure is per core), frames per second
//   source_copy/W/H     the padded copy Write() makes of each frame, alone
//
// Frames are a moving gradient with noise, so x264 does real work on every one.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "video/av_util.h"
#include "video/encoder.h"
#include "video/frame.h"

namespace reel {
namespace {

std::vector<Frame> MakeFrames(int width, int height, int count) {
  std::vector<Frame> frames(count);
  uint32_t state = 12345;
  for (int i = 0; i < count; ++i) {
    Frame& f = frames[i];
    f.Allocate(width, height, PixelFormat::kRgb24);
    for (int y = 0; y < height; ++y) {
      uint8_t* row = f.row(y);
      for (int x = 0; x < width; ++x) {
        state = state * 1664525u + 1013904223u;
        const int noise = static_cast<int>(state >> 28);
        row[3 * x + 0] = static_cast<uint8_t>((x + 4 * i + noise) & 255);
        row[3 * x + 1] = static_cast<uint8_t>((y + 2 * i) & 255);
        row[3 * x + 2] = static_cast<uint8_t>((x + y + noise) & 255);
      }
    }
  }
  return frames;
}

void BM_EncodeWrite(benchmark::State& state) {
  const int width = static_cast<int>(state.range(0));
  const int height = static_cast<int>(state.range(1));
  const std::vector<Frame> frames = MakeFrames(width, height, 16);
  const std::string path =
      (std::filesystem::temp_directory_path() / "reel_bench_encode.mp4").string();
  EncodeOptions options;
  options.width = width;
  options.height = height;
  options.threads = 1;
  int64_t written = 0;
  while (state.KeepRunningBatch(64)) {
    state.PauseTiming();
    auto encoder = VideoEncoder::Open(path, options);
    if (!encoder.ok()) {
      state.SkipWithError(encoder.status().ToString().c_str());
      return;
    }
    state.ResumeTiming();
    for (int i = 0; i < 64; ++i) {
      const Status s = (*encoder)->Write(frames[i % frames.size()]);
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    const Status s = (*encoder)->Finish();  // flushes x264's look-ahead: part of the cost
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    written += 64;
  }
  std::filesystem::remove(path);
  state.SetItemsProcessed(written);
}

void BM_SourceCopy(benchmark::State& state) {
  const int width = static_cast<int>(state.range(0));
  const int height = static_cast<int>(state.range(1));
  const std::vector<Frame> frames = MakeFrames(width, height, 16);
  std::vector<uint8_t> padded;
  int64_t copied = 0;
  for (auto _ : state) {
    const Frame& frame = frames[copied % frames.size()];
    padded.resize(frame.data.size() + av::kSwsSlackBytes);
    std::copy(frame.data.begin(), frame.data.end(), padded.begin());
    benchmark::DoNotOptimize(padded.data());
    benchmark::ClobberMemory();
    ++copied;
  }
  state.SetItemsProcessed(copied);
}

BENCHMARK(BM_EncodeWrite)
    ->Name("encode_write")
    ->Args({256, 256})
    ->Args({1280, 720})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SourceCopy)
    ->Name("source_copy")
    ->Args({256, 256})
    ->Args({1280, 720})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace reel

BENCHMARK_MAIN();
