// reel eval run: metrics of generated videos, stored as a run in the catalog.

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "db/catalog.h"
#include "eval/evaluate.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

class EvalRunCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("name", po::value<std::string>(&opt_.name)->value_name("NAME")->default_value(""),
         "a name for the run (model and checkpoint), used by reports and comparisons")  //
        ("fake", po::value<std::string>(&opt_.fake)->value_name("SRC")->required(),
         "the videos to score: a folder of videos or of frame folders, db:CATALOG#SUBSET, "
         "run:CATALOG#RUN")  //
        ("real", po::value<std::string>(&opt_.real)->value_name("SRC"),
         "the reference videos (needed by fvd and kvd)")  //
        ("metrics", po::value<std::string>(&metrics_)->value_name("LIST")->default_value("fvd,kvd"),
         "comma-separated: fvd, kvd, clipsim, clip-temp, background-consistency, flicker, "
         "dynamic-degree, warp-error")  //
        ("frames", po::value<int>(&opt_.clip.frames)->value_name("T")->default_value(16),
         "frames per clip")  //
        ("stride", po::value<int>(&opt_.clip.stride)->value_name("N")->default_value(1),
         "take every N-th frame (StyleGAN-V's subsample factor)")  //
        ("offset",
         po::value<std::string>(&offset_)->value_name("start|random")->default_value("start"),
         "where clips start in each video")  //
        ("seed", po::value<uint64_t>(&opt_.clip.seed)->value_name("S")->default_value(0),
         "seed of random offsets")  //
        ("max-clips", po::value<int64_t>(&opt_.max_clips)->value_name("N")->default_value(0),
         "use at most N videos per side (0 = all; papers use 2048)")  //
        ("protocol",
         po::value<std::string>(&opt_.protocol)->value_name("NAME")->default_value("stylegan-v"),
         "FVD protocol: stylegan-v or common-metrics")  //
        ("detector",
         po::value<std::string>(&opt_.detector)->value_name("NAME|PATH")->default_value("i3d"),
         "I3D TorchScript detector (`reel models fetch i3d`) or a file with its forward")  //
        ("bootstrap", po::value<int>(&opt_.bootstrap)->value_name("K")->default_value(0),
         "FVD 95% confidence interval from K bootstrap resamples")  //
        ("kvd-subsets", po::value<int>(&opt_.kvd_subsets)->value_name("N")->default_value(100),
         "KVD: random subsets averaged")  //
        ("kvd-subset-size",
         po::value<int64_t>(&opt_.kvd_subset_size)->value_name("N")->default_value(1000),
         "KVD: largest subset")  //
        ("clip-model",
         po::value<std::string>(&opt_.clip_model)
             ->value_name("NAME|PATH")
             ->default_value("clip-vit-b-32"),
         "CLIP for clipsim, clip-temp and background-consistency")  //
        ("clip-vocab", po::value<std::string>(&opt_.clip_vocab)->value_name("PATH"),
         "CLIP's bpe_simple_vocab_16e6.txt.gz (default: the installed clip-vocab)")  //
        ("clipsim-mode",
         po::value<std::string>(&clipsim_mode_)
             ->value_name("reel|torchmetrics")
             ->default_value("reel"),
         "reel: mean over videos of each video's mean; torchmetrics: max(0, mean over all "
         "frame-caption pairs)")  //
        ("captions", po::value<std::string>(&opt_.fake_source.captions_csv)->value_name("CSV"),
         "captions for a folder source: file,caption rows")  //
        ("prefer",
         po::value<std::string>(&prefer_)->value_name("SOURCES")->default_value(
             "vlm,merged,clip,signals,original"),
         "caption policy for db: sources")  //
        ("device",
         po::value<std::string>(&opt_.device)->value_name("cpu|cuda")->default_value("cpu"),
         "where the networks run")  //
        ("jobs,j", po::value<int>(&opt_.jobs)->value_name("N")->default_value(2),
         "decoding threads")  //
        ("batch", po::value<int>(&opt_.batch)->value_name("N")->default_value(8),
         "clips per detector call")  //
        ("no-cache", po::bool_switch(&no_cache_),
         "recompute features even when the catalog has them");
  }

  Status Setup(const po::variables_map&) override {
    opt_.metrics = Split(metrics_, ',', /*skip_empty=*/true);
    for (std::string& m : opt_.metrics) m = std::string(Trim(m));
    if (offset_ != "start" && offset_ != "random") {
      return Status::InvalidArgument("--offset must be start or random");
    }
    opt_.clip.random_offset = offset_ == "random";
    if (clipsim_mode_ != "reel" && clipsim_mode_ != "torchmetrics") {
      return Status::InvalidArgument("--clipsim-mode must be reel or torchmetrics");
    }
    opt_.torchmetrics_clipsim = clipsim_mode_ == "torchmetrics";
    REEL_ASSIGN_OR_RETURN(opt_.fake_source.prefer, ParseCaptionPreference(prefer_));
    opt_.real_source.prefer = opt_.fake_source.prefer;
    opt_.use_cache = !no_cache_;
    if (opt_.clip.frames < 2) return Status::InvalidArgument("--frames must be at least 2");
    if (opt_.batch < 1 || opt_.jobs < 1)
      return Status::InvalidArgument("--batch and --jobs must be at least 1");
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    Progress::Options popts;
    popts.label = "eval";
    popts.unit = "videos";
    if (json_ || common().quiet) popts.style = Progress::Style::kNone;
    std::unique_ptr<Progress> progress;
    opt_.on_stage = [&](const std::string& stage, int64_t total) {
      if (progress) progress->Finish();
      popts.label = "eval " + stage;
      popts.total = total;
      progress = std::make_unique<Progress>(popts);
    };
    opt_.on_video = [&] {
      if (progress) progress->Advance(1);
    };
    opt_.cancel = CancelFlag();
    InterruptGuard guard;
    Result<EvalReport> report = RunEvaluation(**catalog, opt_);
    if (progress) progress->Finish();
    if (!report.ok()) return Fail(report.status());
    if (report->cancelled) {
      std::fprintf(stderr, "reel: eval interrupted (run %lld marked interrupted)\n",
                   static_cast<long long>(report->run_id));
      return kExitFailure;
    }
    for (const std::string& w : report->warnings)
      std::fprintf(stderr, "reel: warning: %s\n", w.c_str());
    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = report->run_id;
      j["config"] = report->config;
      Json ms = Json::MakeArray();
      for (const MetricValue& m : report->metrics) {
        Json x = Json::MakeObject();
        x["name"] = m.name;
        x["value"] = m.value;
        x["details"] = m.details;
        ms.push_back(x);
      }
      j["metrics"] = ms;
      std::cout << j.Dump(2) << '\n';
      return kExitOk;
    }
    std::printf("eval run %lld%s\n", static_cast<long long>(report->run_id),
                opt_.name.empty() ? "" : (" (" + opt_.name + ")").c_str());
    for (const MetricValue& m : report->metrics) {
      const Json* used = m.details.Find("used");
      std::string extra;
      if (m.name == "fvd" || m.name == "kvd") {
        extra = " [" + m.details.Find("protocol")->as_string() + ", " +
                std::to_string(m.details.Find("fake")->Find("used")->as_int()) + " fake / " +
                std::to_string(m.details.Find("real")->Find("used")->as_int()) + " real clips]";
        if (const Json* ci = m.details.Find("ci"); ci != nullptr) {
          extra += " 95% CI [" + FormatFixed(ci->Find("low")->as_double(), 3) + ", " +
                   FormatFixed(ci->Find("high")->as_double(), 3) + "]";
        }
      } else if (used != nullptr) {
        extra = " [" + std::to_string(used->as_int()) + " videos]";
      }
      std::printf("  %-24s %12.6f%s\n", m.name.c_str(), m.value, extra.c_str());
    }
    return kExitOk;
  }

 private:
  std::string db_;
  bool json_ = false;
  EvalOptions opt_;
  std::string metrics_, offset_, clipsim_mode_, prefer_;
  bool no_cache_ = false;
};

}  // namespace

void RegisterEvalCommands(std::vector<CommandInfo>* out) {
  out->push_back(
      {"eval run", "score videos: FVD, KVD, CLIP score, temporal consistency; stored as a run",
       "eval run --db CATALOG --fake SRC [--real SRC] [--metrics LIST] [--name NAME] [options]",
       "Sources: a folder of videos, a folder of frame folders (frames:DIR forces it),\n"
       "db:CATALOG#SUBSET (clips of a subset, captions by --prefer), run:CATALOG#RUN (a\n"
       "generation run, with its prompts). Each video gives one clip of --frames frames\n"
       "(every --stride-th, from the start or a seeded random offset); shorter videos are\n"
       "skipped and counted.\n"
       "\n"
       "FVD protocols:\n"
       "  stylegan-v      (default) StyleGAN-V: uint8 clips, the detector rescales and\n"
       "                  resizes; covariance with 1/N\n"
       "  common-metrics  common_metrics_on_video_quality (styleganv method): [0,1] frames,\n"
       "                  shorter side to 224 bilinear, centre crop, x*2-1; covariance N-1\n"
       "The matrix square root is taken in float64. Fewer than 256 clips per side gives a\n"
       "warning. Reference features are cached in the catalog.\n"
       "\n"
       "Every metric row records the videos used and skipped (with reasons) and the\n"
       "settings that produced it.",
       [] { return std::make_unique<EvalRunCommand>(); }});
}

}  // namespace reel::cli
