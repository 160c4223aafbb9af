// `reel eval run`: metrics of a set of videos (the "fake" side: a model's samples) against
// an optional reference set (the "real" side), stored as a run in the catalog.
//
// Metrics (see eval/frechet.h, eval/fvd.h, eval/video_metrics.h, eval/flow_metrics.h):
//   fvd, kvd                  need --real; I3D features under a named protocol
//   clipsim                   needs captions
//   clip-temp, background-consistency, flicker, dynamic-degree, warp-error
// Every metric reports the videos it used and the ones it skipped, with the reasons.
//
// Pipeline: worker threads decode each clip, preprocess it for every metric that needs it
// (protocol resizing, CLIP preprocessing, flicker and optical flow) and hand it to the
// calling thread, which runs the networks in batches; at most 2 x jobs prepared clips
// wait at a time, and frames are dropped once their batch has run, so memory does not
// grow with the number of videos beyond one I3D feature row (400 floats, kept for KVD,
// bootstrap and the cache: 16 MB for 10k clips) and a few running sums per metric. The real side's
// I3D features are cached in the catalog under a key made of the detector's SHA-256, the
// protocol, the clip settings and the exact list of videos (with their sizes and mtimes or
// content hashes), so evaluating another model against the same reference decodes only
// the fake side.
//
// Thread-safety: RunEvaluation uses the catalog on the calling thread only.

#ifndef REEL_EVAL_EVALUATE_H_
#define REEL_EVAL_EVALUATE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "db/catalog.h"
#include "eval/source.h"
#include "util/json.h"
#include "util/status.h"

namespace reel {

// The metric names `reel eval run --metrics` accepts.
const std::vector<std::string>& KnownMetrics();

struct EvalOptions {
  std::string name;           // the run's name (e.g. the model and checkpoint)
  std::string fake;           // source spec (see eval/source.h)
  std::string real;           // "" when no reference
  SourceOptions fake_source;  // captions for the fake side
  SourceOptions real_source;
  std::vector<std::string> metrics;
  ClipSpec clip;
  int64_t max_clips = 0;  // per side, 0 = all
  std::string protocol = "stylegan-v";
  std::string detector = "i3d";  // registry name or TorchScript path
  std::string clip_model = "clip-vit-b-32";
  std::string clip_vocab;  // "" = the installed clip-vocab
  bool torchmetrics_clipsim = false;
  int bootstrap = 0;  // FVD confidence interval resamples (0 = none)
  uint64_t bootstrap_seed = 0;
  int kvd_subsets = 100;
  int64_t kvd_subset_size = 1000;
  std::string device = "cpu";
  int jobs = 2;   // decoding threads
  int batch = 8;  // clips per detector call
  bool use_cache = true;
  // Progress: a stage starts ("fake", "real") with its number of videos; videos done.
  std::function<void(const std::string& stage, int64_t total)> on_stage;
  std::function<void()> on_video;
  const std::atomic<bool>* cancel = nullptr;
};

struct MetricValue {
  std::string name;
  double value = 0;
  Json details = Json::MakeObject();
};

struct EvalReport {
  int64_t run_id = 0;
  Json config = Json::MakeObject();
  std::vector<MetricValue> metrics;
  std::vector<std::string> warnings;
  bool cancelled = false;
};

Result<EvalReport> RunEvaluation(Catalog& catalog, const EvalOptions& options);

}  // namespace reel

#endif  // REEL_EVAL_EVALUATE_H_
