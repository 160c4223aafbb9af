// What reading a VAE training batch costs when the clips are in a ClipFile (8-bit, on
// disk, here in the page cache) instead of in memory as float32, as `reel generate
// train-vae` read them before: the time per batch of 4 clips of 17 x 256 x 256 (the
// h100 configurations' clip) and of 17 x 64 x 64 (cpu-tiny's).
//
// Usage: bench_clip_file [Google Benchmark flags]

#include <cstdlib>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "generate/clip_file.h"

namespace {

using reel::gen::ClipFile;
using reel::gen::ClipShape;

constexpr int kClips = 32;
constexpr int kBatch = 4;

ClipShape ShapeOf(const benchmark::State& state) {
  const int side = static_cast<int>(state.range(0));
  return ClipShape{17, side, side, 8};
}

std::vector<torch::Tensor> RandomPixels(const ClipShape& s) {
  std::vector<torch::Tensor> out;
  for (int i = 0; i < kClips; ++i) {
    out.push_back(
        torch::randint(0, 256, {3, s.frames, s.height, s.width}, torch::kLong).to(torch::kByte));
  }
  return out;
}

// kBatch clips of a temporary ClipFile of kClips, read and stacked (as TrainVae does).
void BM_BatchFromClipFile(benchmark::State& state) {
  torch::set_num_threads(1);
  const ClipShape shape = ShapeOf(state);
  const char* tmp = std::getenv("TMPDIR");
  auto file = ClipFile::CreateTemporary(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", shape);
  if (!file.ok()) {
    state.SkipWithError(file.status().ToString().c_str());
    return;
  }
  const std::vector<torch::Tensor> pixels = RandomPixels(shape);
  for (int i = 0; i < kClips; ++i) {
    if (!(*file)->Append({i, 0, 0, 0}, pixels[static_cast<size_t>(i)]).ok()) {
      state.SkipWithError("append failed");
      return;
    }
  }
  int64_t next = 0;
  for (auto _ : state) {
    std::vector<torch::Tensor> batch;
    for (int b = 0; b < kBatch; ++b) batch.push_back(*(*file)->Read(next++ % kClips));
    benchmark::DoNotOptimize(torch::stack(batch));
  }
  state.SetBytesProcessed(state.iterations() * kBatch *
                          static_cast<int64_t>(reel::gen::ClipPixelBytes(shape)));
}

// The same batch from float32 clips held in memory.
void BM_BatchFromMemory(benchmark::State& state) {
  torch::set_num_threads(1);
  const ClipShape shape = ShapeOf(state);
  std::vector<torch::Tensor> videos;
  for (const torch::Tensor& p : RandomPixels(shape))
    videos.push_back(reel::gen::VideoFromPixels(p));
  int64_t next = 0;
  for (auto _ : state) {
    std::vector<torch::Tensor> batch;
    for (int b = 0; b < kBatch; ++b) batch.push_back(videos[static_cast<size_t>(next++ % kClips)]);
    benchmark::DoNotOptimize(torch::stack(batch));
  }
  state.SetBytesProcessed(state.iterations() * kBatch *
                          static_cast<int64_t>(reel::gen::ClipPixelBytes(shape)));
}

BENCHMARK(BM_BatchFromClipFile)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BatchFromMemory)->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
