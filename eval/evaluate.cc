#include "eval/evaluate.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "eval/flow_metrics.h"
#include "eval/frechet.h"
#include "eval/fvd.h"
#include "eval/video_metrics.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "nets/models.h"
#include "nets/torch_compat.h"
#include "util/parallel.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {
namespace {

constexpr int64_t kRecommendedClips = 256;
constexpr size_t kExamplesKept = 10;

struct Needs {
  bool fvd = false;  // I3D features (fvd or kvd)
  bool clip_openai = false;
  bool clip_vbench = false;
  bool flicker = false;
  bool dynamic = false;
  bool warp = false;
  bool any() const { return fvd || clip_openai || clip_vbench || flicker || dynamic || warp; }
};

// One clip, decoded and prepared on a worker thread.
struct Prepared {
  size_t index = 0;
  std::string skip;           // why it is not used ("" when used)
  std::string error;          // for unreadable videos: the cause
  torch::Tensor fvd_input;    // [3, T, H, W]: uint8 (stylegan-v) or float (common-metrics)
  torch::Tensor clip_openai;  // [T, 3, R, R]
  torch::Tensor clip_vbench;  // [T, 3, 224, 224]
  std::optional<double> flicker;
  std::optional<DynamicDegree> dynamic;
  std::optional<double> warp;
};

// What one side accumulates.
struct Side {
  std::string spec;
  int64_t videos = 0;
  int64_t used = 0;
  std::map<std::string, int64_t> skipped;  // reason -> count
  std::vector<std::string> examples;       // "path: cause" of unreadable videos
  std::vector<torch::Tensor> fvd_batches;  // [B, D] float32
  torch::Tensor features;                  // [N, D] once done
  bool from_cache = false;
  std::string cache_key;
  // clipsim
  double clipsim_video_sum = 0;
  std::vector<double> clipsim_per_video;          // each video's mean, in index order
  std::vector<int64_t> clipsim_per_video_frames;  // and its frame count
  int64_t clipsim_videos = 0;
  ClipScoreSum clipsim_pairs;
  int64_t clipsim_no_caption = 0;
  int64_t clipsim_captions_cut = 0;     // videos whose caption CLIP read cut to its context
  int64_t clipsim_longest_caption = 0;  // in CLIP tokens, start and end included
  // clip-temp, background consistency, flicker, dynamic degree, warp error
  double clip_temp_sum = 0;
  int64_t clip_temp_videos = 0;
  ConsistencySum background;
  int64_t background_videos = 0;
  double flicker_sum = 0;
  int64_t flicker_videos = 0;
  int64_t dynamic_videos = 0;
  int64_t dynamic_yes = 0;
  double warp_sum = 0;
  int64_t warp_videos = 0;
};

Json SkippedJson(const Side& s) {
  Json j = Json::MakeObject();
  for (const auto& [reason, n] : s.skipped) j[reason] = n;
  return j;
}

struct Networks {
  std::unique_ptr<FvdDetector> detector;
  FvdProtocol protocol = FvdProtocol::kStyleganV;
  std::unique_ptr<ClipModel> clip;
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::string clip_name;
};

Result<torch::Device> ParseDevice(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "cuda") {
    if (!compat::CudaAvailable()) {
      return Status::FailedPrecondition("--device cuda: this build or machine has no CUDA");
    }
    return torch::Device(torch::kCUDA);
  }
  return Status::InvalidArgument("--device must be cpu or cuda, not '" + device + "'");
}

// Frames [T] RGB -> uint8 tensor [T, H, W, 3] (a copy).
torch::Tensor FramesTensor(const std::vector<Frame>& frames) {
  const int64_t t = static_cast<int64_t>(frames.size());
  const int64_t h = frames[0].height, w = frames[0].width;
  torch::Tensor out = torch::empty({t, h, w, 3}, torch::kByte);
  for (int64_t i = 0; i < t; ++i) {
    std::memcpy(out[i].data_ptr<uint8_t>(), frames[static_cast<size_t>(i)].data.data(),
                static_cast<size_t>(h * w * 3));
  }
  return out;
}

Prepared Prepare(const EvalSource& src, size_t index, const ClipSpec& spec, const Needs& needs,
                 const Networks& nets) {
  Prepared p;
  p.index = index;
  const SourceItem& item = src.items[index];
  if (!item.changed.empty()) {
    p.skip = "changed since ingest";
    p.error = item.changed;
    return p;
  }
  Result<ClipFrames> clip = ReadClip(item, spec);
  if (!clip.ok()) {
    p.skip = "unreadable";
    p.error = item.path + ": " + clip.status().message();
    return p;
  }
  if (!clip->skip_reason.empty()) {
    p.skip = clip->skip_reason;
    return p;
  }
  const std::vector<Frame>& frames = clip->frames;
  for (const Frame& f : frames) {
    if (f.width != frames[0].width || f.height != frames[0].height) {
      p.skip = "frames of different sizes";
      return p;
    }
  }
  try {
    compat::InferenceGuard guard;
    const torch::Tensor thwc = FramesTensor(frames);
    if (needs.fvd) {
      const torch::Tensor cthw = thwc.permute({3, 0, 1, 2}).contiguous();
      p.fvd_input = nets.protocol == FvdProtocol::kStyleganV
                        ? cthw
                        : CommonMetricsPreprocess(cthw.to(torch::kFloat) / 255.0);
    }
    if (needs.clip_openai) {
      const int res = nets.clip->config().image_resolution;
      std::vector<torch::Tensor> images;
      for (const Frame& f : frames)
        images.push_back(PreprocessImage(f.data.data(), f.width, f.height, res));
      p.clip_openai = torch::stack(images);
    }
    if (needs.clip_vbench) {
      p.clip_vbench =
          VbenchClipPreprocess(thwc.permute({0, 3, 1, 2}), nets.clip->config().image_resolution);
    }
    if (needs.flicker) p.flicker = Flicker(thwc);
  } catch (const c10::Error& e) {
    p.skip = "unreadable";
    p.error = item.path + ": " + e.what_without_backtrace();
    return p;
  }
  try {
    if (needs.dynamic) p.dynamic = ComputeDynamicDegree(frames);
    if (needs.warp) p.warp = ComputeWarpError(frames);
  } catch (const std::exception& e) {  // OpenCV's cv::Exception
    p.skip = "optical flow failed";
    p.error = item.path + ": " + e.what();
  }
  return p;
}

std::string CacheKey(const EvalSource& src, size_t count, const Networks& nets,
                     const EvalOptions& o) {
  Json j = Json::MakeObject();
  j["extractor"] =
      "i3d:" + nets.detector->sha256() + ":" + std::string(FvdProtocolName(nets.protocol));
  j["frames"] = o.clip.frames;
  j["stride"] = o.clip.stride;
  j["random_offset"] = o.clip.random_offset;
  j["seed"] = static_cast<int64_t>(o.clip.seed);
  Json items = Json::MakeArray();
  for (size_t i = 0; i < count; ++i) {
    Json it = Json::MakeArray();
    it.push_back(src.items[i].key);
    it.push_back(src.items[i].stamp);
    it.push_back(src.items[i].path);
    items.push_back(it);
  }
  j["items"] = items;
  return Sha256Hex(j.Dump());
}

class SideRunner {
 public:
  SideRunner(const EvalOptions& o, const Networks& nets, torch::Device device)
      : o_(o), nets_(nets), device_(device) {}

  Status Run(const EvalSource& src, size_t count, const Needs& needs, Side* side) {
    side->videos = static_cast<int64_t>(count);
    if (o_.on_stage) o_.on_stage(side->spec, side->videos);
    // Text features for clipsim, per distinct caption.
    ParallelOptions parallel;
    parallel.jobs = std::max(1, o_.jobs);
    parallel.cancel = o_.cancel;
    parallel.max_pending = static_cast<size_t>(2 * parallel.jobs);
    // Index order: batches and sums do not depend on thread timing, so a result is
    // reproducible bit for bit whatever --jobs is.
    parallel.ordered = true;
    Status st = ProcessInParallel<Prepared>(
        count, parallel, [&](size_t i) { return Prepare(src, i, o_.clip, needs, nets_); },
        [&](Prepared&& p) -> Status {
          if (o_.on_video) o_.on_video();
          return Consume(src, std::move(p), needs, side);
        });
    REEL_RETURN_IF_ERROR(st);
    REEL_RETURN_IF_ERROR(FlushAll(side));
    side->features =
        side->fvd_batches.empty() ? torch::empty({0, 0}) : torch::cat(side->fvd_batches, 0);
    side->fvd_batches.clear();
    return Status::OK();
  }

 private:
  Status Consume(const EvalSource& src, Prepared&& p, const Needs& needs, Side* side) {
    if (!p.skip.empty()) {
      ++side->skipped[p.skip];
      if (!p.error.empty() && side->examples.size() < kExamplesKept)
        side->examples.push_back(p.error);
      return Status::OK();
    }
    ++side->used;
    const SourceItem& item = src.items[p.index];
    if (needs.fvd) {
      std::string shape;
      for (int64_t d : p.fvd_input.sizes()) shape += std::to_string(d) + "x";
      std::vector<torch::Tensor>& pending = pending_[shape];
      pending.push_back(p.fvd_input);
      if (static_cast<int>(pending.size()) >= std::max(1, o_.batch)) {
        REEL_RETURN_IF_ERROR(Flush(&pending, side));
      }
    }
    try {
      compat::InferenceGuard guard;
      torch::Tensor openai;
      if (p.clip_openai.defined())
        openai = nets_.clip->EncodeImage(p.clip_openai).to(torch::kCPU, torch::kDouble);
      if (openai.defined() && Wants("clipsim")) {
        if (item.caption.empty()) {
          ++side->clipsim_no_caption;
        } else {
          REEL_ASSIGN_OR_RETURN(const CaptionText text, TextFeature(item.caption));
          side->clipsim_longest_caption = std::max(side->clipsim_longest_caption, text.length);
          side->clipsim_captions_cut += text.length > nets_.clip->config().context_length;
          const ClipScoreSum s = ClipScoreOfVideo(openai, text.feature);
          side->clipsim_video_sum += s.mean();
          side->clipsim_per_video.push_back(s.mean());
          side->clipsim_per_video_frames.push_back(s.frames);
          ++side->clipsim_videos;
          side->clipsim_pairs.sum += s.sum;
          side->clipsim_pairs.frames += s.frames;
        }
      }
      if (openai.defined() && Wants("clip-temp")) {
        side->clip_temp_sum += ClipTemp(openai);
        ++side->clip_temp_videos;
      }
      if (p.clip_vbench.defined()) {
        const torch::Tensor f =
            nets_.clip->EncodeImage(p.clip_vbench).to(torch::kCPU, torch::kDouble);
        const ConsistencySum c = BackgroundConsistency(f);
        side->background.sum += c.sum;
        side->background.pairs += c.pairs;
        ++side->background_videos;
      }
    } catch (const c10::Error& e) {
      return Status::Internal(std::string("CLIP: ") + e.what_without_backtrace());
    }
    if (p.flicker.has_value()) {
      side->flicker_sum += *p.flicker;
      ++side->flicker_videos;
    }
    if (p.dynamic.has_value()) {
      ++side->dynamic_videos;
      side->dynamic_yes += p.dynamic->dynamic ? 1 : 0;
    }
    if (p.warp.has_value()) {
      side->warp_sum += *p.warp;
      ++side->warp_videos;
    }
    return Status::OK();
  }

  bool Wants(const std::string& metric) const {
    return std::find(o_.metrics.begin(), o_.metrics.end(), metric) != o_.metrics.end();
  }

  // A caption's CLIP text feature and its uncut length in tokens (start and end
  // included), once per distinct caption.
  struct CaptionText {
    torch::Tensor feature;
    int64_t length = 0;
  };
  Result<CaptionText> TextFeature(const std::string& caption) {
    auto it = text_cache_.find(caption);
    if (it != text_cache_.end()) return it->second;
    const int64_t length = static_cast<int64_t>(nets_.tokenizer->Encode(caption).size()) + 2;
    const int ctx = nets_.clip->config().context_length;
    REEL_ASSIGN_OR_RETURN(std::vector<int> tokens,
                          nets_.tokenizer->Tokenize(caption, ctx, /*truncate=*/true));
    std::vector<int64_t> t(tokens.begin(), tokens.end());
    const torch::Tensor f = nets_.clip->EncodeText(torch::tensor(t, torch::kLong).view({1, ctx}))
                                .to(torch::kCPU, torch::kDouble)[0];
    if (text_cache_.size() > 100000) text_cache_.clear();
    return text_cache_[caption] = CaptionText{f, length};
  }

  Status Flush(std::vector<torch::Tensor>* pending, Side* side) {
    if (pending->empty()) return Status::OK();
    torch::Tensor batch = torch::stack(*pending);
    pending->clear();
    REEL_ASSIGN_OR_RETURN(torch::Tensor feats, nets_.detector->Forward(batch, nets_.protocol));
    side->fvd_batches.push_back(feats);
    return Status::OK();
  }

  Status FlushAll(Side* side) {
    for (auto& [shape, pending] : pending_) REEL_RETURN_IF_ERROR(Flush(&pending, side));
    pending_.clear();
    return Status::OK();
  }

  const EvalOptions& o_;
  const Networks& nets_;
  torch::Device device_;
  std::map<std::string, std::vector<torch::Tensor>> pending_;
  std::map<std::string, CaptionText> text_cache_;
};

Json SideDetails(const Side& s, int64_t used) {
  Json j = Json::MakeObject();
  j["source"] = s.spec;
  j["videos"] = s.videos;
  j["used"] = used;
  j["skipped"] = SkippedJson(s);
  if (!s.examples.empty()) {
    Json e = Json::MakeArray();
    for (const std::string& x : s.examples) e.push_back(x);
    j["unreadable_examples"] = e;
  }
  return j;
}

}  // namespace

const std::vector<std::string>& KnownMetrics() {
  static const std::vector<std::string> kMetrics = {"fvd",
                                                    "kvd",
                                                    "clipsim",
                                                    "clip-temp",
                                                    "background-consistency",
                                                    "flicker",
                                                    "dynamic-degree",
                                                    "warp-error"};
  return kMetrics;
}

Result<EvalReport> RunEvaluation(Catalog& catalog, const EvalOptions& o) {
  EvalReport report;
  if (o.metrics.empty()) return Status::InvalidArgument("no metrics asked for");
  std::set<std::string> metrics;
  for (const std::string& m : o.metrics) {
    if (std::find(KnownMetrics().begin(), KnownMetrics().end(), m) == KnownMetrics().end()) {
      return Status::InvalidArgument("unknown metric '" + m +
                                     "' (known: " + Join(KnownMetrics(), ", ") + ")");
    }
    metrics.insert(m);
  }
  const bool fvd = metrics.count("fvd") || metrics.count("kvd");
  if (fvd && o.real.empty()) return Status::InvalidArgument("fvd and kvd need --real");
  if (o.clip.frames < 2 || o.clip.stride < 1) {
    return Status::InvalidArgument("--frames must be at least 2 and --stride at least 1");
  }
  REEL_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(o.device));

  // Networks first: a missing model fails before any video is read.
  Networks nets;
  REEL_ASSIGN_OR_RETURN(nets.protocol, ParseFvdProtocol(o.protocol));
  if (fvd) {
    REEL_ASSIGN_OR_RETURN(std::string path, ResolveModel(o.detector));
    REEL_ASSIGN_OR_RETURN(nets.detector, FvdDetector::Load(path, device));
  }
  Needs fake_needs;
  fake_needs.fvd = fvd;
  fake_needs.clip_openai = metrics.count("clipsim") || metrics.count("clip-temp");
  fake_needs.clip_vbench = metrics.count("background-consistency") > 0;
  fake_needs.flicker = metrics.count("flicker") > 0;
  fake_needs.dynamic = metrics.count("dynamic-degree") > 0;
  fake_needs.warp = metrics.count("warp-error") > 0;
  if (fake_needs.clip_openai || fake_needs.clip_vbench) {
    REEL_ASSIGN_OR_RETURN(std::string path, ResolveModel(o.clip_model));
    REEL_ASSIGN_OR_RETURN(nets.clip, ClipModel::Load(path, ClipLoadOptions::ForDevice(device)));
    nets.clip_name = FindModelSpec(o.clip_model).ok()
                         ? o.clip_model
                         : std::filesystem::path(path).filename().string();
    std::string vocab = o.clip_vocab;
    if (vocab.empty() && metrics.count("clipsim")) {
      REEL_ASSIGN_OR_RETURN(vocab, InstalledModelPath("clip-vocab"));
    }
    if (!vocab.empty()) {
      REEL_ASSIGN_OR_RETURN(nets.tokenizer, ClipTokenizer::Load(vocab));
    }
  }

  REEL_ASSIGN_OR_RETURN(EvalSource fake, OpenEvalSource(o.fake, o.fake_source));
  std::optional<EvalSource> real;
  if (!o.real.empty()) {
    REEL_ASSIGN_OR_RETURN(real, OpenEvalSource(o.real, o.real_source));
  }

  Json config = Json::MakeObject();
  config["name"] = o.name;
  config["fake"] = o.fake;
  config["real"] = o.real;
  Json ms = Json::MakeArray();
  for (const std::string& m : o.metrics) ms.push_back(m);
  config["metrics"] = ms;
  config["frames"] = o.clip.frames;
  config["stride"] = o.clip.stride;
  config["offset"] = o.clip.random_offset ? "random" : "start";
  config["seed"] = static_cast<int64_t>(o.clip.seed);
  config["max_clips"] = o.max_clips;
  config["device"] = o.device;
  if (fvd) {
    config["protocol"] = std::string(FvdProtocolName(nets.protocol));
    config["detector"] = nets.detector->path();
    config["detector_sha256"] = nets.detector->sha256();
    config["bootstrap"] = o.bootstrap;
  }
  if (nets.clip != nullptr) {
    config["clip_model"] = nets.clip_name;
    config["clipsim_mode"] = o.torchmetrics_clipsim ? "torchmetrics" : "reel";
  }
  report.config = config;
  REEL_ASSIGN_OR_RETURN(report.run_id, catalog.BeginRun("eval", config, o.name));
  auto fail = [&](const Status& s) {
    catalog.FinishRun(report.run_id, RunStatus::kFailed, s.message()).IgnoreError();
    return s;
  };

  auto count_of = [&](const EvalSource& s) {
    return o.max_clips > 0 ? std::min<size_t>(s.items.size(), static_cast<size_t>(o.max_clips))
                           : s.items.size();
  };
  SideRunner runner(o, nets, device);

  // The fake side, with its FVD features from the cache when they are all it needs.
  Side fake_side;
  fake_side.spec = fake.spec;
  const size_t fake_count = count_of(fake);
  Needs fake_pass = fake_needs;
  if (fvd) {
    fake_side.cache_key = CacheKey(fake, fake_count, nets, o);
    if (o.use_cache) {
      REEL_ASSIGN_OR_RETURN(auto cached, catalog.FindFeatureSet(fake_side.cache_key));
      if (cached.has_value() && cached->count > 0) {
        fake_side.features =
            torch::from_blob(cached->features.data(), {cached->count, cached->dim}, torch::kFloat)
                .clone();
        fake_side.from_cache = true;
        fake_pass.fvd = false;
      }
    }
  }
  if (fake_pass.any()) {
    Status s = runner.Run(fake, fake_count, fake_pass, &fake_side);
    if (!s.ok()) return fail(s);
  }

  Side real_side;
  if (real.has_value() && fvd) {
    real_side.spec = real->spec;
    const size_t real_count = count_of(*real);
    real_side.cache_key = CacheKey(*real, real_count, nets, o);
    std::optional<FeatureSet> cached;
    if (o.use_cache) {
      REEL_ASSIGN_OR_RETURN(cached, catalog.FindFeatureSet(real_side.cache_key));
    }
    if (cached.has_value() && cached->count > 0) {
      real_side.features =
          torch::from_blob(cached->features.data(), {cached->count, cached->dim}, torch::kFloat)
              .clone();
      real_side.from_cache = true;
      real_side.videos =
          cached->params.Find("videos") ? cached->params.Find("videos")->as_int() : cached->count;
      real_side.used = cached->count;
      for (const auto& [reason, n] : cached->skipped.as_object())
        real_side.skipped[reason] = n.as_int();
    } else {
      Needs real_needs;
      real_needs.fvd = true;
      Status s = runner.Run(*real, real_count, real_needs, &real_side);
      if (!s.ok()) return fail(s);
    }
  }
  report.cancelled = o.cancel != nullptr && o.cancel->load();
  if (report.cancelled) {
    catalog.FinishRun(report.run_id, RunStatus::kInterrupted, "cancelled").IgnoreError();
    return report;
  }

  // Store new feature sets (complete passes only).
  auto store = [&](const Side& side, const std::string& extractor_source) -> Status {
    if (!fvd || side.from_cache || side.features.numel() == 0) return Status::OK();
    FeatureSet set;
    set.key = side.cache_key;
    set.extractor =
        "i3d:" + nets.detector->sha256() + ":" + std::string(FvdProtocolName(nets.protocol));
    set.source = extractor_source;
    set.count = side.features.size(0);
    set.dim = side.features.size(1);
    const torch::Tensor f = side.features.contiguous();
    set.features.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    set.params["videos"] = side.videos;
    set.params["frames"] = o.clip.frames;
    set.params["stride"] = o.clip.stride;
    set.skipped = SkippedJson(side);
    return catalog.PutFeatureSet(set);
  };
  if (Status s = store(fake_side, fake.spec); !s.ok()) return fail(s);
  if (real.has_value()) {
    if (Status s = store(real_side, real->spec); !s.ok()) return fail(s);
  }

  // The numbers.
  auto add = [&](const std::string& name, double value, Json details) {
    MetricValue m;
    m.name = name;
    m.value = value;
    m.details = std::move(details);
    report.metrics.push_back(std::move(m));
  };
  if (fvd) {
    const int64_t nf = fake_side.features.dim() == 2 ? fake_side.features.size(0) : 0;
    const int64_t nr = real_side.features.dim() == 2 ? real_side.features.size(0) : 0;
    if (nf == 0 || nr == 0) {
      return fail(Status::FailedPrecondition(
          "no usable clips on the " + std::string(nf == 0 ? "fake" : "real") + " side for FVD (" +
          SkippedJson(nf == 0 ? fake_side : real_side).Dump() + ")"));
    }
    Json base = Json::MakeObject();
    base["protocol"] = std::string(FvdProtocolName(nets.protocol));
    base["detector_sha256"] = nets.detector->sha256();
    base["frames"] = o.clip.frames;
    base["stride"] = o.clip.stride;
    base["fake"] = SideDetails(fake_side, nf);
    base["real"] = SideDetails(real_side, nr);
    base["fake"]["cached"] = fake_side.from_cache;
    base["real"]["cached"] = real_side.from_cache;
    // The feature sets in the catalog (for bootstrap comparisons between runs).
    base["fake"]["features_key"] = fake_side.cache_key;
    base["real"]["features_key"] = real_side.cache_key;
    if (nf < kRecommendedClips || nr < kRecommendedClips) {
      const std::string w = "FVD from " + std::to_string(nf) + " fake and " + std::to_string(nr) +
                            " real clips: fewer than 256 per side makes it biased upward and "
                            "not comparable with published 2048-clip values";
      report.warnings.push_back(w);
      base["warning"] = w;
    }
    if (metrics.count("fvd")) {
      Result<double> d = FrechetDistance(fake_side.features, real_side.features,
                                         UnbiasedCovariance(nets.protocol));
      if (!d.ok()) return fail(d.status());
      Json details = base;
      details["covariance"] = UnbiasedCovariance(nets.protocol) ? "N-1" : "N";
      if (o.bootstrap > 0) {
        Result<Interval> ci =
            BootstrapFrechet(fake_side.features, real_side.features,
                             UnbiasedCovariance(nets.protocol), o.bootstrap, o.bootstrap_seed);
        if (!ci.ok()) return fail(ci.status());
        Json c = Json::MakeObject();
        c["low"] = ci->low;
        c["high"] = ci->high;
        c["level"] = ci->level;
        c["resamples"] = ci->resamples;
        details["ci"] = c;
      }
      add("fvd", *d, details);
    }
    if (metrics.count("kvd")) {
      KernelDistanceOptions k;
      k.subsets = o.kvd_subsets;
      k.max_subset_size = o.kvd_subset_size;
      k.seed = o.bootstrap_seed;
      Result<double> d = KernelDistance(fake_side.features, real_side.features, k);
      if (!d.ok()) return fail(d.status());
      Json details = base;
      details["subsets"] = k.subsets;
      details["subset_size"] = std::min({nf, nr, k.max_subset_size});
      add("kvd", *d, details);
    }
  }
  // A metric no video could be measured for has no value: the run fails naming why, as FVD
  // does, rather than record 0 (a perfect warp error, the worst flicker score).
  auto none_used = [&](const std::string& name, int64_t no_caption = 0) {
    std::vector<std::string> why;
    for (const auto& [reason, n] : fake_side.skipped)
      why.push_back(std::to_string(n) + " " + reason);
    if (no_caption > 0) why.push_back(std::to_string(no_caption) + " without a caption");
    return fail(Status::FailedPrecondition(
        name + ": no video of " + fake_side.spec + " could be measured (" +
        std::to_string(fake_side.videos) + " videos" +
        (why.empty() ? std::string() : ": " + Join(why, ", ")) +
        "); nothing recorded (see --frames and --stride" +
        (no_caption > 0 ? std::string(", and --captions") : std::string()) + ")"));
  };
  auto simple = [&](const std::string& name, double sum, int64_t n,
                    Json extra = Json::MakeObject()) -> Status {
    if (n == 0) {
      const Json* no_caption = extra.Find("no_caption");
      return none_used(name, no_caption != nullptr ? no_caption->as_int() : 0);
    }
    Json d = SideDetails(fake_side, n);
    for (const auto& [k, v] : extra.as_object()) d[k] = v;
    add(name, sum / static_cast<double>(n), d);
    return Status::OK();
  };
  if (metrics.count("clipsim")) {
    Json extra = Json::MakeObject();
    extra["clip_model"] = nets.clip_name;
    extra["mode"] = o.torchmetrics_clipsim ? "torchmetrics" : "reel";
    extra["no_caption"] = fake_side.clipsim_no_caption;
    extra["frames_scored"] = fake_side.clipsim_pairs.frames;
    // As torchmetrics' CLIPScore, a caption longer than CLIP's context is cut to it, and said.
    extra["captions_cut"] = fake_side.clipsim_captions_cut;
    if (fake_side.clipsim_captions_cut > 0) {
      const int64_t n = fake_side.clipsim_captions_cut;
      const std::string w = "clipsim: " + std::to_string(n) + " of " +
                            std::to_string(fake_side.clipsim_videos) + " captions " +
                            (n == 1 ? "is" : "are") + " longer than CLIP's " +
                            std::to_string(nets.clip->config().context_length) + " tokens and " +
                            (n == 1 ? "was" : "were") + " scored cut to them (the longest has " +
                            std::to_string(fake_side.clipsim_longest_caption) + ")";
      report.warnings.push_back(w);
      extra["warning"] = w;
    }
    // Per-video values, for confidence intervals in `reel eval compare`.
    Json per_video = Json::MakeArray(), per_video_frames = Json::MakeArray();
    for (double v : fake_side.clipsim_per_video) per_video.push_back(v);
    for (int64_t f : fake_side.clipsim_per_video_frames) per_video_frames.push_back(f);
    extra["per_video"] = per_video;
    extra["per_video_frames"] = per_video_frames;
    if (o.torchmetrics_clipsim) {
      if (fake_side.clipsim_videos == 0) return none_used("clipsim", fake_side.clipsim_no_caption);
      Json d = SideDetails(fake_side, fake_side.clipsim_videos);
      for (const auto& [k, v] : extra.as_object()) d[k] = v;
      add("clipsim", std::max(0.0, fake_side.clipsim_pairs.mean()), d);
    } else {
      REEL_RETURN_IF_ERROR(
          simple("clipsim", fake_side.clipsim_video_sum, fake_side.clipsim_videos, extra));
    }
  }
  if (metrics.count("clip-temp")) {
    Json extra = Json::MakeObject();
    extra["clip_model"] = nets.clip_name;
    REEL_RETURN_IF_ERROR(
        simple("clip-temp", fake_side.clip_temp_sum, fake_side.clip_temp_videos, extra));
  }
  if (metrics.count("background-consistency")) {
    if (fake_side.background_videos == 0) return none_used("background-consistency");
    Json d = SideDetails(fake_side, fake_side.background_videos);
    d["clip_model"] = nets.clip_name;
    d["frame_pairs"] = fake_side.background.pairs;
    add("background-consistency", fake_side.background.mean(), d);
  }
  if (metrics.count("flicker")) {
    REEL_RETURN_IF_ERROR(simple("flicker", fake_side.flicker_sum, fake_side.flicker_videos));
  }
  if (metrics.count("dynamic-degree")) {
    REEL_RETURN_IF_ERROR(simple("dynamic-degree", static_cast<double>(fake_side.dynamic_yes),
                                fake_side.dynamic_videos));
  }
  if (metrics.count("warp-error")) {
    REEL_RETURN_IF_ERROR(simple("warp-error", fake_side.warp_sum, fake_side.warp_videos));
  }

  // Stored with the run.
  {
    std::vector<std::pair<std::string, double>> none;
    REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
    for (const MetricValue& m : report.metrics) {
      REEL_RETURN_IF_ERROR(catalog.AddMetric(report.run_id, m.name, m.value, m.details).status());
    }
    REEL_RETURN_IF_ERROR(catalog.FinishRunWithMetrics(report.run_id, false, none));
    REEL_RETURN_IF_ERROR(txn.Commit());
  }
  return report;
}

}  // namespace reel
