// Scan benchmarks (issue: curate scan), printed side by side:
//   (a) content-detector scan throughput on a 720p H.264 file vs `ffmpeg -i FILE -f null -`
//   (b) full scan with every signal in one pass vs shot detection and each signal group as
//       separate decode passes
//   (c) peak memory of `reel curate scan` on a 1-minute and a 10-minute video
//
// Usage: bench_scan [--video FILE] [--skip-memory]
// Without --video it uses ../shared/data/video/testvideo.mp4 (1280x720 H.264) when
// present, else generates a 720p H.264 clip with the ffmpeg CLI. Inputs for (c) are
// generated once into $REEL_BENCH_DATA (default ./bench-data).

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "curate/scan.h"
#include "video/probe.h"

extern char** environ;

namespace reel {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ChildResult {
  int exit_code = -1;
  double seconds = 0;
  long max_rss_kib = 0;
};

ChildResult RunChild(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  ChildResult r;
  const auto t0 = Clock::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) return r;
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.max_rss_kib = usage.ru_maxrss;
  return r;
}

std::string DataDir() {
  const char* env = std::getenv("REEL_BENCH_DATA");
  const std::string dir = env != nullptr ? env : "bench-data";
  fs::create_directories(dir);
  return dir;
}

// A test-pattern video made with the ffmpeg CLI (cached).
std::string Generated(const std::string& name, const std::string& size, int seconds, int fps) {
  const std::string path = DataDir() + "/" + name;
  if (fs::exists(path)) return path;
  std::fprintf(stderr, "generating %s (%s, %d s)...\n", path.c_str(), size.c_str(), seconds);
  const ChildResult r = RunChild(
      {"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
       "testsrc2=size=" + size + ":rate=" + std::to_string(fps), "-t", std::to_string(seconds),
       "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", path});
  if (r.exit_code != 0) {
    std::fprintf(stderr, "ffmpeg failed to generate %s\n", path.c_str());
    std::exit(1);
  }
  return path;
}

double Best(int runs, const std::function<double()>& run) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) best = std::min(best, run());
  return best;
}

double ScanSeconds(const std::string& path, unsigned groups, bool skip_loop_filter,
                   int64_t* frames) {
  ScanOptions o;
  o.analysis.groups = groups;
  o.skip_loop_filter = skip_loop_filter;
  const auto t0 = Clock::now();
  auto r = ScanFile(path, o);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "scan failed: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  *frames = static_cast<int64_t>(r->series.size());
  return s;
}

}  // namespace
}  // namespace reel

int main(int argc, char** argv) {
  using namespace reel;
  std::string video;
  bool memory = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--video") == 0 && i + 1 < argc) video = argv[++i];
    if (std::strcmp(argv[i], "--skip-memory") == 0) memory = false;
  }
  if (video.empty()) {
    const std::string shared = std::string(REEL_SOURCE_DIR) + "/../shared/data/video/testvideo.mp4";
    video = fs::exists(shared) ? shared : Generated("testsrc2_720p.mp4", "1280x720", 24, 30);
  }
  auto info = ProbeVideo(video);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
    return 1;
  }
  std::printf("input: %s  %dx%d %s, %lld frames\n\n", video.c_str(), info->width, info->height,
              info->codec.c_str(), static_cast<long long>(info->frame_count));
  const double frames = static_cast<double>(info->frame_count);
  constexpr int kRuns = 3;

  // (a)
  const double ffmpeg_s = Best(kRuns, [&] {
    return RunChild({"ffmpeg", "-v", "error", "-i", video, "-f", "null", "-"}).seconds;
  });
  int64_t n = 0;
  const double shots_s = Best(kRuns, [&] { return ScanSeconds(video, kAnalyzeShots, false, &n); });
  const double shots_fast_s =
      Best(kRuns, [&] { return ScanSeconds(video, kAnalyzeShots, true, &n); });
  std::printf("(a) content-detector scan vs decode-only (best of %d, wall clock)\n", kRuns);
  std::printf("    %-46s %8.1f fps\n", "ffmpeg -i FILE -f null -", frames / ffmpeg_s);
  std::printf("    %-46s %8.1f fps  = %.2f x ffmpeg\n", "reel scan, shot detection only",
              frames / shots_s, ffmpeg_s / shots_s);
  std::printf("    %-46s %8.1f fps  = %.2f x ffmpeg\n",
              "reel scan, shot detection, --skip-loop-filter", frames / shots_fast_s,
              ffmpeg_s / shots_fast_s);

  // (b)
  const double all_s = Best(kRuns, [&] { return ScanSeconds(video, kAnalyzeAll, false, &n); });
  struct Pass {
    const char* name;
    unsigned groups;
  };
  const Pass passes[] = {{"shots", kAnalyzeShots},
                         {"motion", kAnalyzeMotion},
                         {"sharpness", kAnalyzeSharpness},
                         {"color", kAnalyzeColor},
                         {"text", kAnalyzeText}};
  double separate = 0;
  std::printf("\n(b) full scan: one pass vs one decode pass per analysis (best of %d)\n", kRuns);
  for (const Pass& p : passes) {
    const double s = Best(kRuns, [&] { return ScanSeconds(video, p.groups, false, &n); });
    separate += s;
    std::printf("    separate pass %-32s %8.2f s\n", p.name, s);
  }
  std::printf("    %-46s %8.2f s (%.1f fps)\n", "separate passes, total", separate,
              frames / separate);
  std::printf("    %-46s %8.2f s (%.1f fps)\n", "one pass, everything", all_s, frames / all_s);
  std::printf("    one pass is %.2f x faster\n", separate / all_s);

  // (c)
  if (memory) {
    const std::string one = Generated("testsrc2_360p_1min.mp4", "640x360", 60, 30);
    const std::string ten = Generated("testsrc2_360p_10min.mp4", "640x360", 600, 30);
    std::printf("\n(c) peak memory of `reel curate scan` (child process, max RSS)\n");
    for (const auto& [label, path] : {std::pair<const char*, std::string>{"1 minute", one},
                                      {"10 minutes", ten}}) {
      const std::string db = DataDir() + "/mem.db";
      for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
      const ChildResult r = RunChild({REEL_BINARY, "curate", "scan", "--db", db, path, "-q"});
      std::printf("    %-12s %6.1f MiB peak, %.1f s, exit %d\n", label, r.max_rss_kib / 1024.0,
                  r.seconds, r.exit_code);
    }
  }
  return 0;
}
