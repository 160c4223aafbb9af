// Probe and ingest throughput on a folder of 200 small generated videos, next to ffprobe
// run once per file on the same folder.
//
// The folder is made once under $REEL_BENCH_DATA (default: ./bench-data) and reused.
// Each benchmark reports files per second (items_per_second).
//
//   ffprobe_streams     ffprobe -show_format -show_streams FILE   (headers only)
//   ffprobe_count       ffprobe -count_packets ... FILE           (reads every packet, as
//                                                                  reel's probe does)
//   reel_probe          ProbeVideo(): demux every packet, decode the first frame
//   reel_ingest/jobs:N  the whole ingest: stat, SHA-256, probe, catalog write

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "curate/ingest.h"
#include "db/catalog.h"
#include "util/sha256.h"
#include "video/probe.h"
#include "video/synthetic.h"

extern char** environ;

namespace reel {
namespace {

namespace fs = std::filesystem;
constexpr int kFiles = 200;

std::string DataDir() {
  const char* env = std::getenv("REEL_BENCH_DATA");
  return env != nullptr ? env : "bench-data";
}

// 200 videos, 160x120, 2 s at 25 fps, H.264 in MP4, distinct content.
const std::vector<std::string>& Corpus() {
  static const std::vector<std::string> files = [] {
    const std::string dir = DataDir() + "/probe200";
    fs::create_directories(dir);
    std::vector<std::string> out;
    for (int i = 0; i < kFiles; ++i) {
      char name[64];
      std::snprintf(name, sizeof(name), "/clip_%03d.mp4", i);
      const std::string path = dir + name;
      if (!fs::exists(path)) {
        SyntheticVideo v = SampleVideo(i, 160, 120);
        v.scenes.resize(1);
        v.scenes[0].frames = 50;
        v.scenes[0].kind = SceneKind::kTexture;  // seeded: every file differs
        Status s = WriteSyntheticVideo(path, v);
        if (!s.ok()) {
          std::fprintf(stderr, "cannot make benchmark data: %s\n", s.ToString().c_str());
          std::exit(1);
        }
      }
      out.push_back(fs::absolute(path).string());
    }
    return out;
  }();
  return files;
}

int Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void RunFfprobe(benchmark::State& state, const std::vector<std::string>& flags) {
  const auto& files = Corpus();
  if (Spawn({"ffprobe", "-version"}) != 0) {
    state.SkipWithError("ffprobe not installed");
    return;
  }
  for (auto _ : state) {
    for (const auto& f : files) {
      std::vector<std::string> argv = {"ffprobe", "-v", "error"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.push_back(f);
      if (Spawn(argv) != 0) {
        state.SkipWithError("ffprobe failed");
        return;
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(files.size()));
}

void BM_FfprobeStreams(benchmark::State& state) {
  RunFfprobe(state, {"-show_format", "-show_streams"});
}

void BM_FfprobeCountPackets(benchmark::State& state) {
  RunFfprobe(state, {"-count_packets", "-select_streams", "v:0", "-show_entries",
                     "stream=nb_read_packets,width,height,r_frame_rate,duration", "-show_format"});
}

void BM_ReelProbe(benchmark::State& state) {
  const auto& files = Corpus();
  for (auto _ : state) {
    for (const auto& f : files) {
      Result<VideoInfo> info = ProbeVideo(f);
      if (!info.ok()) {
        state.SkipWithError(info.status().ToString().c_str());
        return;
      }
      benchmark::DoNotOptimize(info);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(files.size()));
}

void BM_ReelIngest(benchmark::State& state) {
  const auto& files = Corpus();
  const std::string dir = fs::path(files.front()).parent_path().string();
  const std::string db = DataDir() + "/bench_ingest.db";
  for (auto _ : state) {
    state.PauseTiming();
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
    auto catalog = Catalog::Open(db);
    state.ResumeTiming();
    IngestOptions o;
    o.jobs = static_cast<int>(state.range(0));
    auto s = Ingest(**catalog, {dir}, o);
    if (!s.ok() || s->added != kFiles) {
      state.SkipWithError("ingest did not add every file");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * kFiles);
}

void BM_Sha256(benchmark::State& state) {
  const std::string data(8 << 20, 'x');
  const auto impl = state.range(0) == 0 ? Sha256::Impl::kAuto : Sha256::Impl::kPortable;
  for (auto _ : state) {
    Sha256 h(impl);
    h.Update(data);
    benchmark::DoNotOptimize(h.Finish());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.SetLabel(impl == Sha256::Impl::kAuto
                     ? (Sha256::HardwareAccelerated() ? "sha-ni" : "auto (portable)")
                     : "portable");
}

// Wall-clock time throughout: ffprobe runs in child processes, ingest on worker threads.
BENCHMARK(BM_FfprobeStreams)
    ->Name("ffprobe_streams")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_FfprobeCountPackets)
    ->Name("ffprobe_count")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_ReelProbe)
    ->Name("reel_probe")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_ReelIngest)
    ->Name("reel_ingest")
    ->ArgName("jobs")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5)
    ->UseRealTime();
BENCHMARK(BM_Sha256)->Name("sha256")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace reel

BENCHMARK_MAIN();
