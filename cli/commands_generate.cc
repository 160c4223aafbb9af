// reel generate: train-vae, prepare, train, sample.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "cli/command.h"
#include "db/catalog.h"
#include "generate/distributed.h"
#include "generate/pipeline.h"
#include "generate/vae.h"
#include "nets/torch_compat.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

namespace fs = std::filesystem;
using namespace reel::gen;

Result<torch::Device> DeviceFor(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda") {
    if (!compat::CudaAvailable())
      return Status::FailedPrecondition("--device cuda: no CUDA device in this build or machine");
    return torch::Device(torch::kCUDA);
  }
  return Status::InvalidArgument("--device must be cpu or cuda, not '" + name + "'");
}

void AddConfigOption(po::options_description& o, std::string* config) {
  std::string names;
  for (const std::string& n : ModelConfig::Names()) names += (names.empty() ? "" : ", ") + n;
  o.add_options()(
      "config", po::value<std::string>(config)->value_name("NAME|FILE")->default_value("cpu-tiny"),
      ("model configuration: a name (" + names + ") or a JSON file").c_str());
}

Result<ModelConfig> ResolveConfig(const std::string& spec) {
  if (fs::is_regular_file(spec)) {
    std::ifstream f(spec);
    std::stringstream s;
    s << f.rdbuf();
    auto j = Json::Parse(s.str());
    if (!j.ok()) return Status::InvalidArgument(spec + ": " + j.status().message());
    auto c = ModelConfig::FromJson(*j);
    if (!c.ok()) return Status::InvalidArgument(spec + ": " + c.status().message());
    return c;
  }
  return ModelConfig::Named(spec);
}

// The options the command line gave, not left at their defaults.
std::set<std::string> GivenOptions(const po::variables_map& vm) {
  std::set<std::string> given;
  for (const auto& [name, value] : vm) {
    if (!value.defaulted()) given.insert(name);
  }
  return given;
}

struct ResumedFlag {
  const char* key;   // in the saved training's `train` object
  const char* flag;  // the option that sets it
};

// --resume continues the training saved in `dir` exactly: with its configuration and the
// options that shape its trajectory. Returns the saved configuration, which stands for
// --config. A `given_config` (from a --config or --text-encoder the command line gave)
// that differs from it within `sections`, or a flag of `flags` given with another value
// than the saved one (`asked` holds the command line's, under the same keys), is refused,
// naming each difference, instead of being silently not used.
Result<ModelConfig> ConfigToResume(const std::string& dir, const SavedTraining& saved,
                                   const std::optional<ModelConfig>& given_config,
                                   const std::vector<std::string>& sections,
                                   const std::set<std::string>& given, const Json& asked,
                                   std::initializer_list<ResumedFlag> flags) {
  std::vector<std::string> differ;
  if (given_config) {
    std::vector<std::string> fields = ConfigDifferences(saved.config, *given_config, sections);
    constexpr size_t kShown = 4;
    if (!fields.empty()) {
      const size_t more = fields.size() > kShown ? fields.size() - kShown : 0;
      fields.resize(fields.size() - more);
      differ.push_back("configuration " + given_config->name + ": " + Join(fields, ", ") +
                       (more > 0 ? " and " + std::to_string(more) + " more fields" : ""));
    }
  }
  for (const ResumedFlag& f : flags) {
    const Json* want = asked.Find(f.key);
    const Json* have = saved.train.Find(f.key);
    if (given.count(f.flag) == 0 || want == nullptr || have == nullptr || *want == *have) continue;
    differ.push_back(std::string("--") + f.flag + " " + ShowJson(*want) +
                     " (saved: " + ShowJson(*have) + ")");
  }
  if (differ.empty()) return saved.config;
  return Status::FailedPrecondition(
      dir + ": --resume continues the training saved there exactly (" + saved.config.name +
      ", step " + std::to_string(saved.step) +
      "), and this command line asks for another: " + Join(differ, "; ") +
      ". Leave these options out (or give the saved values), or train into another --out");
}

// A resumed training that already reached --steps: said, and nothing else done.
int NothingToDo(const std::string& dir, int64_t step, int64_t steps) {
  std::printf("%s: already trained %lld steps (--steps %lld): nothing to do\n", dir.c_str(),
              static_cast<long long>(step), static_cast<long long>(steps));
  return kExitOk;
}

std::unique_ptr<Progress> MakeProgress(const std::string& label, int64_t total, bool quiet,
                                       const std::string& unit = "steps") {
  Progress::Options p;
  p.label = label;
  p.unit = unit;
  p.total = total;
  if (quiet) p.style = Progress::Style::kNone;
  return std::make_unique<Progress>(p);
}

// A ProgressCallback drawing `bar` in clips (made at the first call, with its total).
ProgressCallback ClipProgress(std::unique_ptr<Progress>& bar, const std::string& label,
                              bool quiet) {
  return [&bar, label, quiet](int64_t done, int64_t total) {
    if (!bar) bar = MakeProgress(label, total, quiet, "clips");
    if (done > bar->done()) bar->Advance(done - bar->done());
  };
}

// One training step done (1-based `step` of `steps`); a resumed run counts what is left.
void AdvanceTraining(Progress& progress, int64_t step, int64_t steps, double loss) {
  if (progress.done() == 0 && step > 1) progress.SetTotal(steps - step + 1);
  progress.Advance(1, "loss " + FormatFixed(loss, 4));
}

// What a subset's clips gave: how many of those listed were usable and why the others
// were skipped (with `summary`), then the causes of the first unreadable ones.
void ReportClips(const ClipSetStats& stats, int64_t usable, const std::string& detail,
                 bool summary) {
  if (summary) {
    std::fprintf(stderr, "clips: %lld of %lld usable%s", static_cast<long long>(usable),
                 static_cast<long long>(stats.listed), detail.c_str());
    for (const auto& [reason, n] : stats.skipped)
      std::fprintf(stderr, "; %lld %s", static_cast<long long>(n), reason.c_str());
    std::fprintf(stderr, "\n");
  }
  for (const std::string& e : stats.errors) std::fprintf(stderr, "reel: warning: %s\n", e.c_str());
}

// The warning for a cache at `path` made by a reel that picked other frames of each clip
// than `reel export --fps` (before c1f62d1); `what_now` says what becomes of it.
void WarnOldFramePicks(const std::string& path, const std::string& held,
                       const std::string& what_now) {
  std::fprintf(stderr,
               "reel: warning: %s: %s by an older reel, which picked other frames than `reel "
               "export --fps`; %s\n",
               path.c_str(), held.c_str(), what_now.c_str());
}

class TrainVaeCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddConfigOption(o, &config_);
    AddJobsOption(o, &jobs_, "decoding threads");
    o.add_options()  //
        ("subset", po::value<std::string>(&subset_)->value_name("NAME")->required(),
         "training clips")  //
        ("out", po::value<std::string>(&out_)->value_name("DIR")->required(),
         "VAE checkpoint folder")  //
        ("steps", po::value<int64_t>(&opt_.steps)->value_name("N")->default_value(500),
         "optimiser steps")  //
        ("batch", po::value<int>(&opt_.batch)->value_name("N")->default_value(4),
         "clips per step")  //
        ("max-clips", po::value<int64_t>(&max_clips_)->value_name("N")->default_value(0),
         "train on at most N clips, spread evenly over the subset (0: all)")  //
        ("clip-cache", po::value<std::string>(&clip_cache_)->value_name("FILE"),
         "keep the decoded clips (8-bit, 3 x frames x height x width bytes each) in FILE and "
         "FILE.json, and reuse those it holds (a later run, --resume, an interrupted decoding); "
         "default: a temporary file beside --out, removed at exit")  //
        ("compact-clip-cache", po::bool_switch(&compact_),
         "first drop from --clip-cache the clips this run does not use, shrinking the file "
         "(safe to interrupt)")  //
        ("lr", po::value<double>(&opt_.lr)->value_name("X")->default_value(1e-3),
         "AdamW learning rate")  //
        ("weight-decay", po::value<double>(&opt_.weight_decay)->value_name("X")->default_value(0.0),
         "AdamW weight decay")                                                                //
        ("seed", po::value<uint64_t>(&opt_.seed)->value_name("S")->default_value(0), "seed")  //
        ("save-every", po::value<int64_t>(&opt_.save_every)->value_name("N")->default_value(500),
         "write the resumable state every N steps (0: only at the end)")  //
        ("resume", po::bool_switch(&opt_.resume),
         "continue the training saved in --out exactly, with its configuration, batch, lr, "
         "weight decay and seed (--steps may be raised; other values given are refused)")  //
        ("device", po::value<std::string>(&device_)->value_name("cpu|cuda")->default_value("cpu"),
         "where to train (cuda: bf16 autocast)");
  }
  Status Setup(const po::variables_map& vm) override {
    given_ = GivenOptions(vm);
    if (compact_ && clip_cache_.empty())
      return Status::InvalidArgument("--compact-clip-cache needs --clip-cache");
    if (max_clips_ < 0) return Status::InvalidArgument("--max-clips must be 0 (all) or more");
    return opt_.Validate();
  }
  int Run() override {
    if (Status s = CheckVaeOutDir(out_, opt_.resume); !s.ok()) return Fail(s);
    std::optional<SavedTraining> saved;
    if (opt_.resume) {
      auto s = ReadVaeCheckpoint(out_);
      if (!s.ok()) return Fail(s.status());
      saved = std::move(*s);
    }
    auto config = saved ? ConfigToResume(*saved) : ResolveConfig(config_);
    if (!config.ok()) return Fail(config.status());
    if (saved && saved->step >= opt_.steps) return NothingToDo(out_, saved->step, opt_.steps);
    auto device = DeviceFor(device_);
    if (!device.ok()) return Fail(device.status());
    opt_.device = *device;
    InterruptGuard guard;
    auto file = OpenClipFile(config->clip);
    if (!file.ok()) return Fail(file.status());
    auto clips = DecodeClips(**file, config->clip);
    if (!clips.ok()) return Fail(clips.status());
    auto progress = MakeProgress("train-vae", opt_.steps, common().quiet);
    auto r = TrainVae(
        *config, *clips->clips, opt_, out_,
        [&](int64_t step, int64_t steps, double loss) {
          AdvanceTraining(*progress, step, steps, loss);
        },
        CancelFlag());
    progress->Finish();
    if (!r.ok()) return Fail(r.status());
    std::printf(
        "VAE saved to %s: %lld steps, final L1 %.4f, reconstruction PSNR %.2f dB on %lld of its "
        "%lld training clips\n",
        out_.c_str(), static_cast<long long>(r->steps_done), r->final_l1, r->psnr,
        static_cast<long long>(r->measured_clips), static_cast<long long>(clips->clips->size()));
    return kExitOk;
  }

 private:
  // The saved VAE's configuration, when the command line asks for nothing else.
  Result<ModelConfig> ConfigToResume(const SavedTraining& saved) const {
    std::optional<ModelConfig> given_config;
    if (given_.count("config") > 0) {
      REEL_ASSIGN_OR_RETURN(given_config, ResolveConfig(config_));
    }
    return cli::ConfigToResume(
        out_, saved, given_config, {"vae", "clip"}, given_, opt_.ToJson(),
        {{"batch", "batch"}, {"lr", "lr"}, {"weight_decay", "weight-decay"}, {"seed", "seed"}});
  }

  // --clip-cache, or a temporary file in --out's parent folder (so on the disk the
  // checkpoint goes to).
  Result<std::unique_ptr<ClipFile>> OpenClipFile(const ClipShape& shape) const {
    if (!clip_cache_.empty()) {
      REEL_ASSIGN_OR_RETURN(std::unique_ptr<ClipFile> file, ClipFile::Open(clip_cache_, shape));
      if (file->stale() > 0) {
        WarnOldFramePicks(clip_cache_,
                          "its " + std::to_string(file->stale()) + " clips were decoded",
                          "they are decoded again");
      }
      return file;
    }
    const fs::path parent = fs::absolute(out_).parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    return ClipFile::CreateTemporary(parent.string(), shape);
  }

  // The subset's clips decoded into `file`, with a progress bar, reporting skips.
  Result<DecodedClips> DecodeClips(ClipFile& file, const ClipShape& shape) const {
    Catalog::Options ro;
    ro.read_only = true;
    REEL_ASSIGN_OR_RETURN(auto catalog, Catalog::Open(db_, ro));
    DecodeClipsOptions o;
    o.jobs = jobs_;
    o.max_clips = max_clips_;
    o.compact = compact_;
    ClipSetStats stats;
    std::unique_ptr<Progress> progress;
    Result<DecodedClips> clips =
        DecodeTrainingClips(*catalog, subset_, file, o, &stats,
                            ClipProgress(progress, "decode", common().quiet), CancelFlag());
    if (progress) progress->Finish();
    std::string detail = " at " + DescribeClipShape(shape);
    if (clips.ok() && clips->reused > 0)
      detail += " (" + std::to_string(clips->reused) + " already decoded in " + file.path() + ")";
    if (clips.ok() && clips->unused > 0 && !file.path().empty()) {
      detail += "; " + std::to_string(clips->unused) + " of the clips in " + file.path() + " (" +
                FormatBytes(static_cast<uint64_t>(clips->unused) * ClipPixelBytes(shape)) +
                ") are not used by this run (--compact-clip-cache drops them)";
    }
    if (clips.ok() && clips->dropped > 0) {
      detail += "; dropped from " + file.path() + " " + std::to_string(clips->dropped) +
                (clips->dropped == 1 ? " clip" : " clips") + " this run does not use (" +
                FormatBytes(static_cast<uint64_t>(clips->dropped) * ClipPixelBytes(shape)) + ")";
    }
    ReportClips(stats, clips.ok() ? clips->clips->size() : 0, detail,
                !common().quiet && clips.ok());
    return clips;
  }

  std::string db_, config_, subset_, out_, device_, clip_cache_;
  int jobs_ = 2;
  int64_t max_clips_ = 0;
  bool compact_ = false;
  VaeTrainOptions opt_;
  std::set<std::string> given_;  // options the command line gave
};

class PrepareCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJobsOption(o, &jobs_, "decoding threads");
    o.add_options()  //
        ("subset", po::value<std::string>(&subset_)->value_name("NAME")->required(),
         "training clips")  //
        ("vae", po::value<std::string>(&vae_)->value_name("DIR")->required(),
         "VAE checkpoint (train-vae)")  //
        ("out", po::value<std::string>(&out_)->value_name("FILE")->required(),
         "latent cache to write")  //
        ("resume", po::bool_switch(&opt_.resume),
         "continue the cache in --out: keep its latents of clips still in the subset, encode "
         "the rest (same VAE only)")  //
        ("device", po::value<std::string>(&device_)->value_name("cpu|cuda")->default_value("cpu"),
         "where the VAE encodes");
    AddPreferOption(o, &prefer_, "caption policy");
  }
  Status Setup(const po::variables_map&) override {
    auto prefer = ParseCaptionPreference(prefer_);
    if (!prefer.ok()) return prefer.status().WithContext("--prefer");
    opt_.prefer = *prefer;
    return Status::OK();
  }
  int Run() override {
    auto device = DeviceFor(device_);
    if (!device.ok()) return Fail(device.status());
    opt_.jobs = jobs_;
    opt_.device = *device;
    Catalog::Options ro;
    ro.read_only = true;
    auto catalog = Catalog::Open(db_, ro);
    if (!catalog.ok()) return Fail(catalog.status());
    InterruptGuard guard;
    std::unique_ptr<Progress> progress;
    ClipSetStats stats;
    auto r = PrepareLatents(**catalog, subset_, vae_, opt_, out_, &stats,
                            ClipProgress(progress, "prepare", common().quiet), CancelFlag());
    if (progress) progress->Finish();
    ReportClips(stats, r.ok() ? r->total : 0, "", !common().quiet && r.ok());
    if (!r.ok()) return Fail(r.status());
    if (r->stale > 0) {
      WarnOldFramePicks(out_, "its " + std::to_string(r->stale) + " latents were encoded",
                        "they are encoded again");
    }
    if (r->total == 0) {  // stopped before the first clip
      std::printf("interrupted before the first clip was encoded; nothing written\n");
      return kExitFailure;
    }
    std::printf("%lld latents written to %s (%lld encoded, %lld kept, %lld dropped)%s\n",
                static_cast<long long>(r->total), out_.c_str(), static_cast<long long>(r->encoded),
                static_cast<long long>(r->kept), static_cast<long long>(r->dropped),
                r->cancelled ? "; interrupted, unfinished: --resume continues" : "");
    return r->cancelled ? kExitFailure : kExitOk;
  }

 private:
  std::string db_, subset_, vae_, out_, prefer_, device_;
  int jobs_ = 2;
  PrepareOptions opt_;
};

class TrainCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddConfigOption(o, &config_);
    o.add_options()  //
        ("latents", po::value<std::string>(&latents_)->value_name("FILE")->required(),
         "latent cache from reel generate prepare")  //
        ("out", po::value<std::string>(&out_)->value_name("DIR")->required(),
         "checkpoint folder")  //
        ("name", po::value<std::string>(&opt_.name)->value_name("NAME")->default_value(""),
         "the run's name")  //
        ("steps", po::value<int64_t>(&opt_.steps)->value_name("N")->default_value(1000),
         "total optimiser steps")  //
        ("save-every", po::value<int64_t>(&opt_.save_every)->value_name("N")->default_value(200),
         "checkpoint interval in steps")  //
        ("resume", po::bool_switch(&opt_.resume),
         "continue the checkpoint in --out exactly, with its configuration and training options "
         "(--steps may be raised; other values given are refused; a finished one does nothing)")  //
        ("batch", po::value<int>(&opt_.train.batch)->value_name("N")->default_value(8),
         "global batch")  //
        ("lr", po::value<double>(&opt_.train.lr)->value_name("X")->default_value(3e-4, "0.0003"),
         "AdamW learning rate")  //
        ("weight-decay",
         po::value<double>(&opt_.train.weight_decay)->value_name("X")->default_value(0.0),
         "AdamW weight decay (explicit; 0 by default)")  //
        ("warmup", po::value<int>(&opt_.train.warmup_steps)->value_name("N")->default_value(100),
         "warm-up steps")  //
        ("grad-clip", po::value<double>(&opt_.train.grad_clip)->value_name("X")->default_value(1.0),
         "gradient clipping (global norm)")  //
        ("ema", po::value<double>(&opt_.train.ema_decay)->value_name("X")->default_value(0.999),
         "EMA decay")  //
        ("caption-dropout",
         po::value<double>(&opt_.train.caption_dropout)->value_name("P")->default_value(0.1, "0.1"),
         "probability of training on the null caption")  //
        ("seed", po::value<uint64_t>(&opt_.train.seed)->value_name("S")->default_value(0),
         "seed")  //
        ("grad-checkpointing", po::bool_switch(&opt_.activation_checkpointing),
         "recompute each denoiser block's activations in the backward instead of keeping "
         "them: the same training in less memory, for about a third more compute per step "
         "(may change on --resume)")  //
        ("text-encoder", po::value<std::string>(&text_encoder_)->value_name("reel|MODEL"),
         "text encoder: reel (a BPE tokenizer and transformer learned with the denoiser; the "
         "default) or a CLIP model used frozen (clip-vit-b-32, or a CLIP .pt file; needs it and "
         "clip-vocab installed: reel models fetch clip-vit-b-32)")  //
        ("dist-timeout", po::value<int>(&dist_timeout_s_)->value_name("S")->default_value(600),
         "data parallel: seconds to wait for the other processes")  //
        ("dist-bucket-mb", po::value<double>(&bucket_mb_)->value_name("MB")->default_value(25),
         "data parallel: gradients are averaged in buckets of this size, each sent while "
         "backward goes on (0: one all-reduce after backward)")  //
        ("dist-backend",
         po::value<std::string>(&dist_backend_)
             ->value_name("auto|gloo|nccl")
             ->default_value("auto"),
         "data parallel: c10d backend (auto: NCCL on CUDA where this build has it, else Gloo)")  //
        ("device", po::value<std::string>(&device_)->value_name("cpu|cuda")->default_value("cpu"),
         "where to train (cuda: bf16 autocast; data-parallel processes use cuda:LOCAL_RANK)");
  }
  Status Setup(const po::variables_map& vm) override {
    given_ = GivenOptions(vm);
    const bool cuda = StartsWith(device_, "cuda");
    Result<CollectiveBackend> backend = ParseCollectiveBackend(dist_backend_, cuda);
    if (!backend.ok()) return backend.status().WithContext("--dist-backend");
    if (*backend == CollectiveBackend::kNccl && !cuda)
      return Status::InvalidArgument("--dist-backend nccl needs --device cuda");
    backend_ = *backend;
    if (!(bucket_mb_ >= 0 && bucket_mb_ <= 1e6))
      return Status::InvalidArgument("--dist-bucket-mb must be in [0, 1000000]");
    if (opt_.steps < 1) return Status::InvalidArgument("--steps must be at least 1");
    if (opt_.save_every < 0) return Status::InvalidArgument("--save-every must be 0 or more");
    if (dist_timeout_s_ < 1) return Status::InvalidArgument("--dist-timeout must be at least 1");
    return opt_.train.Validate();
  }
  int Run() override {
    // A resume (of a checkpoint that is there) trains the saved configuration.
    std::optional<SavedTraining> saved;
    if (opt_.resume && fs::exists(out_ + "/config.json")) {
      auto s = ReadTrainerCheckpoint(out_);
      if (!s.ok()) return Fail(s.status());
      saved = std::move(*s);
    }
    auto config = saved ? ConfigToResume(*saved) : AskedConfig();
    if (!config.ok()) return Fail(config.status());
    // Every data-parallel process reads the same checkpoint, so all stop here together.
    if (saved && saved->step >= opt_.steps) return NothingToDo(out_, saved->step, opt_.steps);
    auto cache = LoadLatentCache(latents_);
    if (!cache.ok()) return Fail(cache.status());
    if (cache->old_frame_picks) {
      WarnOldFramePicks(latents_, "encoded",
                        "`reel generate prepare` without --resume encodes the clips export gives");
    }
    auto vae_model = ModelConfig::FromJson(cache->model);
    if (vae_model.ok() && (vae_model->vae.latent_channels != config->vae.latent_channels ||
                           vae_model->clip.frames != config->clip.frames ||
                           vae_model->clip.height != config->clip.height ||
                           vae_model->clip.width != config->clip.width)) {
      return Fail(Status::InvalidArgument(latents_ + ": latents of " + vae_model->name + " (" +
                                          std::to_string(vae_model->clip.width) + "x" +
                                          std::to_string(vae_model->clip.height) +
                                          ") do not fit --config " + config->name));
    }
    std::vector<std::string> captions;
    for (const auto& e : cache->examples) captions.push_back(e.caption);
    // Data parallel when started torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, ...).
    auto launch = LaunchEnvFromEnvironment();
    if (!launch.ok()) return Fail(launch.status());
    auto device = DeviceFor(device_);
    if (!device.ok()) return Fail(device.status());
    opt_.device = *device;
    if (device->is_cuda() && launch->world > 1)
      opt_.device = torch::Device(torch::kCUDA, launch->local_rank);
    std::unique_ptr<Collective> comm;
    if (launch->world > 1) {
      auto c = Collective::Connect(*launch, std::chrono::seconds(dist_timeout_s_), backend_);
      if (!c.ok()) return Fail(c.status());
      comm = std::move(*c);
      opt_.parallel = {launch->rank, launch->world, comm.get(),
                       static_cast<int64_t>(bucket_mb_ * (1 << 20))};
      if (launch->rank == 0 && !common().quiet) {
        std::fprintf(stderr, "data parallel: %d processes over %s, %d examples per process\n",
                     launch->world, CollectiveBackendName(backend_),
                     opt_.train.batch / launch->world);
      }
    }
    const bool lead = launch->rank == 0;
    std::unique_ptr<Catalog> catalog;
    if (lead) {  // only rank 0 records the run
      Catalog::Options wo;
      auto c = Catalog::Open(db_, wo);
      if (!c.ok()) return Fail(c.status());
      catalog = std::move(*c);
    }
    InterruptGuard guard;
    auto progress = MakeProgress("train", opt_.steps, common().quiet || !lead);
    auto r = TrainDenoiser(
        catalog.get(), *config, cache->examples, captions, opt_, out_,
        [&](int64_t step, int64_t steps, double loss) {
          AdvanceTraining(*progress, step, steps, loss);
        },
        CancelFlag());
    progress->Finish();
    if (!r.ok()) return Fail(r.status());
    if (!lead) return r->cancelled ? kExitFailure : kExitOk;
    std::printf("train run %lld: %lld steps (%.2f steps/s), final loss %.4f, checkpoint %s%s\n",
                static_cast<long long>(r->run_id), static_cast<long long>(r->steps_done),
                r->steps_per_second, r->final_loss, out_.c_str(),
                r->cancelled ? " (interrupted; --resume continues)" : "");
    if (r->captions_cut > 0 && !common().quiet) {
      std::fprintf(stderr,
                   "reel: warning: %lld of %zu training captions are longer than the text "
                   "encoder's %d tokens and were read cut (the longest has %lld); a config with "
                   "a larger text.max_tokens reads them whole\n",
                   static_cast<long long>(r->captions_cut), cache->examples.size(), r->max_tokens,
                   static_cast<long long>(r->longest_caption_tokens));
    }
    if (const GradientReducer::Stats& g = r->gradients; g.buckets > 0) {
      std::printf("gradients averaged in %lld bucket%s, %lld sent while backward ran%s\n",
                  static_cast<long long>(g.buckets), g.buckets == 1 ? "" : "s",
                  static_cast<long long>(g.started_in_backward),
                  g.fell_back ? " (then all again: a gradient arrived twice)" : "");
    }
    return r->cancelled ? kExitFailure : kExitOk;
  }

 private:
  // --config with --text-encoder.
  Result<ModelConfig> AskedConfig() const {
    REEL_ASSIGN_OR_RETURN(ModelConfig config, ResolveConfig(config_));
    if (!text_encoder_.empty()) config.text.encoder = text_encoder_;
    return config;
  }
  // The saved checkpoint's configuration, when the command line asks for nothing else.
  Result<ModelConfig> ConfigToResume(const SavedTraining& saved) const {
    std::optional<ModelConfig> given_config;
    if (given_.count("config") > 0 || given_.count("text-encoder") > 0) {
      ModelConfig c = saved.config;
      if (given_.count("config") > 0) {
        REEL_ASSIGN_OR_RETURN(c, ResolveConfig(config_));
      }
      if (!text_encoder_.empty()) c.text.encoder = text_encoder_;
      given_config = c;
    }
    return cli::ConfigToResume(out_, saved, given_config, {"vae", "text", "dit", "clip"}, given_,
                               opt_.train.ToJson(),
                               {{"batch", "batch"},
                                {"lr", "lr"},
                                {"weight_decay", "weight-decay"},
                                {"warmup_steps", "warmup"},
                                {"grad_clip", "grad-clip"},
                                {"ema_decay", "ema"},
                                {"caption_dropout", "caption-dropout"},
                                {"seed", "seed"}});
  }

  std::string db_, config_, latents_, out_;
  DenoiserTrainOptions opt_;
  std::set<std::string> given_;  // options the command line gave
  int dist_timeout_s_ = 600;
  double bucket_mb_ = 25;
  std::string device_, text_encoder_, dist_backend_;
  CollectiveBackend backend_ = CollectiveBackend::kGloo;  // from --dist-backend and --device
};

class SampleCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_, /*required=*/false);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("ckpt", po::value<std::string>(&ckpt_)->value_name("DIR")->required(),
         "denoiser checkpoint (train)")  //
        ("vae", po::value<std::string>(&vae_)->value_name("DIR")->required(),
         "VAE checkpoint (train-vae)")  //
        ("out", po::value<std::string>(&out_)->value_name("DIR")->required(),
         "folder for the MP4 files")  //
        ("subset", po::value<std::string>(&subset_)->value_name("NAME"),
         "prompts: the captions of a subset's clips")  //
        ("prompt", po::value<std::vector<std::string>>(&prompts_)->value_name("TEXT"),
         "a prompt (repeatable)")  //
        ("prompts", po::value<std::string>(&prompts_file_)->value_name("FILE"),
         "prompts, one per line")  //
        ("name", po::value<std::string>(&job_.name)->value_name("NAME")->default_value(""),
         "the generation run's name")  //
        ("steps", po::value<int>(&job_.sample.steps)->value_name("N")->default_value(30),
         "Euler steps")  //
        ("cfg", po::value<double>(&job_.sample.cfg)->value_name("X")->default_value(7.0),
         "classifier-free guidance")  //
        ("seed", po::value<uint64_t>(&job_.sample.seed)->value_name("S")->default_value(0),
         "seed")  //
        ("batch", po::value<int>(&job_.batch)->value_name("N")->default_value(4),
         "prompts per forward")  //
        ("resume", po::bool_switch(&job_.resume),
         "continue the generation run --name (stopped, or with prompts added): keep its files, "
         "sample the rest, and record the whole as a new run of that name")  //
        ("device", po::value<std::string>(&device_)->value_name("cpu|cuda")->default_value("cpu"),
         "where to run");
    AddPreferOption(o, &prefer_, "caption policy for --subset");
  }
  Status Setup(const po::variables_map&) override {
    const int sources = (!subset_.empty()) + (!prompts_.empty()) + (!prompts_file_.empty());
    if (sources != 1)
      return Status::InvalidArgument("give exactly one of --subset, --prompt, --prompts");
    if (!subset_.empty() && db_.empty()) return Status::InvalidArgument("--subset needs --db");
    if (job_.sample.steps < 1) return Status::InvalidArgument("--steps must be at least 1");
    if (job_.batch < 1) return Status::InvalidArgument("--batch must be at least 1");
    if (!std::isfinite(job_.sample.cfg)) return Status::InvalidArgument("--cfg must be finite");
    return Status::OK();
  }
  int Run() override {
    auto device = DeviceFor(device_);
    if (!device.ok()) return Fail(device.status());
    std::unique_ptr<Catalog> catalog;
    if (!db_.empty()) {
      auto c = Catalog::Open(db_);
      if (!c.ok()) return Fail(c.status());
      catalog = std::move(c).value();
    }
    if (!subset_.empty()) {
      auto sub = catalog->FindSubset(subset_);
      if (!sub.ok()) return Fail(sub.status());
      if (!sub->has_value()) return Fail(Status::NotFound("no subset named '" + subset_ + "'"));
      auto pref = ParseCaptionPreference(prefer_);
      if (!pref.ok()) return Fail(pref.status());
      auto members = catalog->ListSubsetMembers((*sub)->id);
      if (!members.ok()) return Fail(members.status());
      for (const SubsetMember& m : *members) {
        if (!m.passed) continue;
        auto cap = catalog->SelectCaption(m.clip_id, *pref);
        if (!cap.ok()) return Fail(cap.status());
        if (!cap->has_value()) continue;
        job_.prompts.push_back((*cap)->text);
        job_.clip_ids.push_back(m.clip_id);
        job_.caption_ids.push_back((*cap)->id);
      }
      if (job_.prompts.empty())
        return Fail(Status::FailedPrecondition("subset '" + subset_ + "' has no captioned clips"));
    } else if (!prompts_file_.empty()) {
      auto text = ReadTextFile(prompts_file_);
      if (!text.ok()) return Fail(text.status());
      for (const std::string& line : Split(*text, '\n')) {
        if (!Trim(line).empty()) job_.prompts.push_back(std::string(Trim(line)));
      }
      if (job_.prompts.empty())
        return Fail(Status::InvalidArgument(prompts_file_ + ": no prompts"));
    } else {
      job_.prompts = prompts_;
    }
    InterruptGuard guard;
    std::unique_ptr<Progress> progress;
    auto r = SampleToFiles(catalog.get(), ckpt_, vae_, job_, out_, *device,
                           ClipProgress(progress, "sample", common().quiet || json_), CancelFlag());
    if (progress) progress->Finish();
    if (!r.ok()) return Fail(r.status());
    if (!r->cut.empty() && !common().quiet) {
      // Said once, with the longest, as a text encoder's user expects (CLIP cuts at 77).
      const auto longest =
          std::max_element(r->cut.begin(), r->cut.end(),
                           [](const auto& a, const auto& b) { return a.tokens < b.tokens; });
      std::fprintf(stderr,
                   "reel: warning: %zu prompt%s longer than the text encoder's %d tokens %s cut "
                   "to them (the longest, prompt %zu, has %lld)\n",
                   r->cut.size(), r->cut.size() == 1 ? "" : "s", r->max_tokens,
                   r->cut.size() == 1 ? "was" : "were", longest->index,
                   static_cast<long long>(longest->tokens));
    }
    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = r->run_id;
      Json files = Json::MakeArray();
      for (const std::string& f : r->files) files.push_back(f);
      j["files"] = files;
      Json cut = Json::MakeArray();
      for (const auto& c : r->cut) {
        Json e = Json::MakeObject();
        e["index"] = static_cast<int64_t>(c.index);
        e["tokens"] = c.tokens;
        cut.push_back(e);
      }
      j["cut_prompts"] = cut;
      j["max_tokens"] = r->max_tokens;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::printf(
          "%zu clips in %s%s%s\n", r->files.size(), out_.c_str(),
          r->kept > 0 ? (" (" + std::to_string(r->kept) + " kept from the run resumed)").c_str()
                      : "",
          r->run_id > 0 ? (" (generation run " + std::to_string(r->run_id) + ")").c_str() : "");
    }
    return kExitOk;
  }

 private:
  std::string db_, ckpt_, vae_, out_, subset_, prompts_file_, prefer_, device_;
  std::vector<std::string> prompts_;
  bool json_ = false;
  SampleJob job_;
};

}  // namespace

void RegisterGenerateCommands(std::vector<CommandInfo>* out) {
  out->push_back(
      {"generate train-vae", "train the causal video VAE on a subset's clips",
       "generate train-vae --db CATALOG --subset NAME --out DIR [--config NAME] [--steps N]",
       "The VAE compresses 8x8 in space and 4x in time (1 + 4k frames). Clips are read at\n"
       "the configuration's size and frame rate. Saves weights and latent statistics.",
       [] { return std::make_unique<TrainVaeCommand>(); }});
  out->push_back({"generate prepare", "encode a subset's clips into a latent cache for training",
                  "generate prepare --db CATALOG --subset NAME --vae DIR --out FILE", "",
                  [] { return std::make_unique<PrepareCommand>(); }});
  out->push_back({"generate train",
                  "train the text-to-video diffusion transformer (rectified flow)",
                  "generate train --db CATALOG --latents FILE --out DIR [--config NAME] [--steps "
                  "N] [--resume]",
                  "Records a run of kind train with its configuration and loss curve. Checkpoints\n"
                  "hold the model, EMA, optimiser and step; --resume continues exactly.",
                  [] { return std::make_unique<TrainCommand>(); }});
  out->push_back(
      {"generate sample", "sample clips from prompts into MP4 files and a generation run",
       "generate sample --ckpt DIR --vae DIR (--db CATALOG --subset NAME | --prompt TEXT | "
       "--prompts FILE) --out DIR",
       "Euler sampling on the shifted schedule with classifier-free guidance; each\n"
       "prompt's noise depends only on --seed and its position, so the same seed and\n"
       "checkpoint give the same clips. With --db, the files are recorded as a generation\n"
       "run that reel eval run --fake run:CATALOG#RUN reads.",
       [] { return std::make_unique<SampleCommand>(); }});
}

}  // namespace reel::cli
