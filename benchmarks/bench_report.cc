// `reel report` at scale: a catalog of 100k clips (1,000 videos x 100 clips, a caption and
// an aesthetic score each, a filtered subset), 50 eval runs with every metric, a training
// run with a 2,000-point loss curve and 4 generation runs of 12 prompts with real sample
// files. Prints the time to build the catalog (not part of the figure), the time to write
// the report (best of --repeat) and the size of each file.
//
// Usage: bench_report [--clips-per-video N] [--videos N] [--runs N] [--repeat R]
// Data goes to $REEL_BENCH_DATA/report (default ./bench-data/report), rebuilt each time.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "curate/filter.h"
#include "db/catalog.h"
#include "eval/report.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_report: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace
}  // namespace reel

int main(int argc, char** argv) {
  using namespace reel;
  int videos = 1000, per_video = 100, runs = 50, repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--videos")
      videos = v;
    else if (k == "--clips-per-video")
      per_video = v;
    else if (k == "--runs")
      runs = v;
    else if (k == "--repeat")
      repeat = v;
    else {
      std::fprintf(
          stderr,
          "usage: bench_report [--videos N] [--clips-per-video N] [--runs N] [--repeat R]\n");
      return 2;
    }
  }
  const char* env = std::getenv("REEL_BENCH_DATA");
  const std::string data = std::string(env != nullptr ? env : "bench-data") + "/report";
  fs::remove_all(data);
  fs::create_directories(data + "/videos");

  // One real 2-second file; every catalog video is a link to it, so thumbnails decode.
  SyntheticVideo sample = SampleVideo(1, 320, 180);
  Check(WriteSyntheticVideo(data + "/sample.mp4", sample), "sample video");
  SyntheticVideo gen_sample = SampleVideo(2, 256, 256);
  Check(WriteSyntheticVideo(data + "/generated.mp4", gen_sample), "generated video");

  const auto t_build = Clock::now();
  auto opened = Catalog::Open(data + "/catalog.db");
  Check(opened.status(), "catalog");
  Catalog& cat = **opened;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int64_t> first_clips;
  {
    auto txn = cat.Begin();
    Check(txn.status(), "begin");
    for (int v = 0; v < videos; ++v) {
      const std::string path = data + "/videos/v" + std::to_string(v) + ".mp4";
      fs::create_symlink(fs::absolute(data + "/sample.mp4"), path);
      VideoRecord rec;
      rec.path = fs::absolute(path).string();
      rec.size_bytes = 1000;
      rec.content_hash = std::to_string(v);
      rec.container = "mp4";
      rec.codec = "h264";
      rec.width = 320;
      rec.height = 180;
      rec.frame_rate = Rational(25, 1);
      rec.time_base = Rational(1, 12800);
      rec.frame_count = 25 * 60 * per_video / 10;
      rec.duration = Rational(rec.frame_count, 25);
      auto vid = cat.UpsertVideo(rec);
      Check(vid.status(), "video");
      std::vector<ClipRecord> clips;
      int64_t start = 0;
      for (int c = 0; c < per_video; ++c) {
        ClipRecord clip;
        clip.video_id = *vid;
        const int64_t len = 25 + static_cast<int64_t>(u(rng) * 250);
        clip.start_frame = start;
        clip.end_frame = start + len;
        clip.start_time = Rational(start, 25);
        clip.end_time = Rational(start + len, 25);
        clip.signals.motion = u(rng) * 2;
        clip.signals.brightness = u(rng);
        clips.push_back(clip);
        start += len;
      }
      auto ids = cat.ReplaceClips(*vid, clips);
      Check(ids.status(), "clips");
      first_clips.push_back((*ids)[0]);
      for (size_t c = 0; c < ids->size(); ++c) {
        Check(cat.SetClipAesthetic((*ids)[c], 3 + 4 * u(rng)), "aesthetic");
        CaptionRecord k;
        k.clip_id = (*ids)[c];
        k.source = "signals";
        k.model = "signals-v1";
        k.text = "A bright, slow shot; the camera pans left; mostly green and blue" +
                 std::string(static_cast<size_t>(u(rng) * 40), '.');
        Check(cat.AddCaption(k).status(), "caption");
      }
    }
    Check(txn->Commit(), "commit");
  }
  Check(ApplyFilter(cat, "duration >= 2 and motion > 0.3", "train").status(), "filter");
  for (int r = 0; r < runs; ++r) {
    const int64_t id = *cat.BeginRun("eval", Json::MakeObject(), "model-" + std::to_string(r));
    for (const char* m : {"fvd", "kvd", "clipsim", "clip-temp", "background-consistency", "flicker",
                          "dynamic-degree", "warp-error"}) {
      const double scale = std::string(m) == "fvd"          ? 1000
                           : std::string(m) == "kvd"        ? 100
                           : std::string(m) == "clipsim"    ? 35
                           : std::string(m) == "warp-error" ? 0.05
                                                            : 1;
      Check(cat.AddMetric(id, m, u(rng) * scale, Json::MakeObject()).status(), "metric");
    }
    Check(cat.FinishRun(id, RunStatus::kOk), "finish");
  }
  {
    const int64_t train = *cat.BeginRun("train", Json::MakeObject(), "dit-b");
    Json curve = Json::MakeObject(), step = Json::MakeArray(), loss = Json::MakeArray();
    for (int i = 0; i < 2000; ++i) {
      step.push_back(i * 50);
      loss.push_back(1.0 / std::sqrt(1 + i) + 0.02 * u(rng));
    }
    curve["step"] = step;
    curve["loss"] = loss;
    Check(cat.AddMetric(train, "loss_curve", 0, curve).status(), "loss");
  }
  for (int g = 0; g < 4; ++g) {
    const int64_t gen = *cat.BeginRun("generate", Json::MakeObject(), "dit-b@" + std::to_string(g));
    for (int p = 0; p < 12; ++p) {
      GenerationRecord rec;
      rec.run_id = gen;
      rec.path = data + "/gen" + std::to_string(g) + "_" + std::to_string(p) + ".mp4";
      fs::create_symlink(fs::absolute(data + "/generated.mp4"), rec.path);
      rec.prompt = "prompt number " + std::to_string(p);
      rec.clip_id = first_clips[static_cast<size_t>(p) % first_clips.size()];
      rec.seed = p;
      Check(cat.AddGeneration(rec).status(), "generation");
    }
  }
  std::printf("catalog: %d videos, %lld clips, %d eval runs (built in %.1f s)\n", videos,
              static_cast<long long>(videos) * per_video, runs, Since(t_build));

  double best = 1e300;
  ReportSummary last;
  for (int r = 0; r < repeat; ++r) {
    ReportOptions o;
    o.out_dir = data + "/out";
    const auto t0 = Clock::now();
    auto s = WriteReport(cat, o);
    best = std::min(best, Since(t0));
    Check(s.status(), "report");
    last = *s;
  }
  std::printf(
      "report: best of %d: %.2f s; index.html %.1f KiB (%d runs, %d charts, %d thumbnails), "
      "report.md %.1f KiB, report.json %.1f KiB\n",
      repeat, best, last.html_bytes / 1024.0, last.runs, last.charts, last.thumbnails,
      fs::file_size(last.markdown_path) / 1024.0, fs::file_size(last.json_path) / 1024.0);
  return 0;
}
