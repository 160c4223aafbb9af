// FVD feature-extraction benchmark (issue: eval), printed side by side:
//   pipeline   `reel eval run --metrics fvd` on a folder of N videos with the reference
//              side's features cached: decoding, clip assembly, protocol preprocessing and
//              batching on worker threads while the detector runs, then the statistics
//   detector   the same detector's forward alone on the same clips in the same batches
//              (decoded and preprocessed beforehand, not timed)
// and the pipeline's overhead over the detector alone, for each protocol. The detector is
// I3D-shaped (benchmarks/i3d_shaped.h): the real architecture and cost, random weights.
//
// Usage: bench_fvd [--clips N] [--frames T] [--size WxH] [--batch B] [--jobs J]
//                  [--device cpu|cuda] [--protocol stylegan-v|common-metrics|both]
//                  [--repeat R]
// Each figure is the best of R runs (default 2); each pipeline run uses a fresh catalog
// whose reference side is filled by an untimed pass first.
// Inputs are generated once into $REEL_BENCH_DATA/fvd (default ./bench-data/fvd).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "benchmarks/i3d_shaped.h"
#include "db/catalog.h"
#include "eval/evaluate.h"
#include "eval/fvd.h"
#include "eval/source.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Args {
  int clips = 16;
  int frames = 16;
  int width = 320;
  int height = 240;
  int batch = 4;
  int jobs = 2;
  std::string device = "cpu";
  std::string protocol = "both";
  int repeat = 2;  // each figure is the best of this many runs
};

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: bench_fvd [--clips N] [--frames T] [--size WxH] [--batch B] [--jobs J] "
               "[--device cpu|cuda] [--protocol stylegan-v|common-metrics|both] [--repeat R]\n");
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) Usage();
    const std::string v = argv[++i];
    if (k == "--clips") {
      a.clips = std::atoi(v.c_str());
    } else if (k == "--frames") {
      a.frames = std::atoi(v.c_str());
    } else if (k == "--size") {
      if (std::sscanf(v.c_str(), "%dx%d", &a.width, &a.height) != 2) Usage();
    } else if (k == "--batch") {
      a.batch = std::atoi(v.c_str());
    } else if (k == "--jobs") {
      a.jobs = std::atoi(v.c_str());
    } else if (k == "--device") {
      a.device = v;
    } else if (k == "--repeat") {
      a.repeat = std::atoi(v.c_str());
    } else if (k == "--protocol") {
      a.protocol = v;
    } else {
      Usage();
    }
  }
  if (a.clips < 2 || a.frames < 1 || a.batch < 1 || a.jobs < 1 || a.repeat < 1) Usage();
  return a;
}

SyntheticVideo Video(const Args& a, int variant) {
  SyntheticVideo v;
  v.width = a.width;
  v.height = a.height;
  v.seed = static_cast<uint64_t>(variant + 1);
  SceneSpec s;
  s.kind = variant % 2 == 0 ? SceneKind::kTexture : SceneKind::kMovingBox;
  s.frames = a.frames + 4;
  s.dx = 1 + variant % 4;
  s.dy = variant % 3;
  s.background = {static_cast<uint8_t>(37 * variant % 256), 80, 140};
  v.scenes = {s};
  return v;
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_fvd: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

std::string MakeFolder(const Args& a, const std::string& dir, int n, int first) {
  fs::create_directories(dir);
  for (int i = 0; i < n; ++i) {
    const std::string path = dir + "/v" + std::to_string(i) + ".mp4";
    if (!fs::exists(path)) Check(WriteSyntheticVideo(path, Video(a, first + i)), path.c_str());
  }
  return dir;
}

struct Measured {
  double pipeline_s = 0;
  double detector_s = 0;
  int64_t clips = 0;
};

Measured Measure(const Args& a, FvdProtocol protocol, const std::string& data,
                 const std::string& detector, const std::string& fake, const std::string& real) {
  Measured m;
  m.pipeline_s = 1e300;
  m.detector_s = 1e300;
  for (int rep = 0; rep < a.repeat; ++rep) {
    const std::string db = data + "/bench.db";
    fs::remove(db);
    fs::remove(db + "-wal");
    fs::remove(db + "-shm");
    auto catalog = Catalog::Open(db);
    Check(catalog.status(), "catalog");
    EvalOptions o;
    o.name = "bench";
    o.metrics = {"fvd"};
    o.detector = detector;
    o.protocol = std::string(FvdProtocolName(protocol));
    o.clip.frames = a.frames;
    o.batch = a.batch;
    o.jobs = a.jobs;
    o.device = a.device;
    // The reference side once, so that the timed run reads it from the cache.
    o.fake = real;
    o.real = real;
    Check(RunEvaluation(**catalog, o).status(), "reference pass");

    o.fake = fake;
    const auto t0 = Clock::now();
    auto r = RunEvaluation(**catalog, o);
    m.pipeline_s = std::min(m.pipeline_s, Seconds(t0));
    Check(r.status(), "timed pass");
    const Json* real_details = r->metrics.at(0).details.Find("real");
    if (real_details == nullptr || !real_details->Find("cached")->as_bool()) {
      std::fprintf(stderr, "bench_fvd: the reference side was not cached\n");
      std::exit(1);
    }
    m.clips = r->metrics.at(0).details.Find("fake")->Find("used")->as_int();
  }

  // The detector alone: the same clips, preprocessed beforehand, in the same batches.
  auto src = OpenEvalSource(fake);
  Check(src.status(), "source");
  ClipSpec spec;
  spec.frames = a.frames;
  std::vector<torch::Tensor> inputs;
  for (const SourceItem& item : src->items) {
    auto clip = ReadClip(item, spec);
    Check(clip.status(), item.path.c_str());
    const int64_t t = static_cast<int64_t>(clip->frames.size());
    const int64_t h = clip->frames[0].height, w = clip->frames[0].width;
    torch::Tensor thwc = torch::empty({t, h, w, 3}, torch::kByte);
    for (int64_t i = 0; i < t; ++i) {
      std::memcpy(thwc[i].data_ptr<uint8_t>(), clip->frames[static_cast<size_t>(i)].data.data(),
                  static_cast<size_t>(h * w * 3));
    }
    const torch::Tensor cthw = thwc.permute({3, 0, 1, 2}).contiguous();
    inputs.push_back(protocol == FvdProtocol::kStyleganV
                         ? cthw
                         : CommonMetricsPreprocess(cthw.to(torch::kFloat) / 255.0));
  }
  std::vector<torch::Tensor> batches;
  for (size_t i = 0; i < inputs.size(); i += static_cast<size_t>(a.batch)) {
    const size_t end = std::min(inputs.size(), i + static_cast<size_t>(a.batch));
    torch::Tensor b = torch::stack(std::vector<torch::Tensor>(
        inputs.begin() + static_cast<long>(i), inputs.begin() + static_cast<long>(end)));
    batches.push_back(a.device == "cuda" ? b.to(torch::kCUDA) : b);
  }
  auto det = FvdDetector::Load(
      detector, a.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU));
  Check(det.status(), "detector");
  for (int rep = 0; rep < a.repeat; ++rep) {
    const auto t1 = Clock::now();
    for (const torch::Tensor& b : batches) {
      auto f = (*det)->Forward(b, protocol);
      Check(f.status(), "forward");
      if (f->size(1) != 400) {
        std::fprintf(stderr, "bench_fvd: detector gave %lld features\n",
                     static_cast<long long>(f->size(1)));
        std::exit(1);
      }
    }
    if (a.device == "cuda") torch::cuda::synchronize();
    m.detector_s = std::min(m.detector_s, Seconds(t1));
  }
  return m;
}

}  // namespace
}  // namespace reel

int main(int argc, char** argv) {
  using namespace reel;
  const Args a = Parse(argc, argv);
  const char* env = std::getenv("REEL_BENCH_DATA");
  const std::string data = std::string(env != nullptr ? env : "bench-data") + "/fvd";
  fs::create_directories(data);
  const std::string detector = data + "/i3d_shaped.pt";
  if (!fs::exists(detector)) {
    const int64_t params = bench::SaveI3dShapedDetector(detector);
    std::printf("wrote %s (%.2fM parameters)\n", detector.c_str(), params / 1e6);
  }
  const std::string size = std::to_string(a.width) + "x" + std::to_string(a.height);
  const std::string fake = MakeFolder(
      a, data + "/fake_" + size + "_" + std::to_string(a.clips) + "x" + std::to_string(a.frames),
      a.clips, 0);
  const std::string real =
      MakeFolder(a, data + "/real_" + size + "_" + std::to_string(a.frames), 3, 1000);

  std::printf(
      "FVD feature extraction: %d clips of %d frames at %s, batch %d, %d decode jobs, %s, "
      "%d torch threads\n",
      a.clips, a.frames, size.c_str(), a.batch, a.jobs, a.device.c_str(), torch::get_num_threads());
  std::printf("%-16s %14s %14s %10s\n", "protocol", "pipeline c/s", "detector c/s", "overhead");
  for (FvdProtocol p : {FvdProtocol::kStyleganV, FvdProtocol::kCommonMetrics}) {
    if (a.protocol != "both" && a.protocol != FvdProtocolName(p)) continue;
    const Measured m = Measure(a, p, data, detector, fake, real);
    std::printf("%-16s %14.3f %14.3f %9.1f%%\n", std::string(FvdProtocolName(p)).c_str(),
                static_cast<double>(m.clips) / m.pipeline_s,
                static_cast<double>(m.clips) / m.detector_s,
                100.0 * (m.pipeline_s - m.detector_s) / m.detector_s);
    std::fflush(stdout);
  }
  return 0;
}
