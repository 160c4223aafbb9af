// reel eval run: metrics of generated videos, stored as a run in the catalog.

#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "db/catalog.h"
#include "eval/compare.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

// Open the catalog read-only; a mistake on the command line (an unknown run, a bad
// weight) is a usage error (2), anything else a failure (1).
Result<std::unique_ptr<Catalog>> OpenReadOnly(const std::string& db) {
  Catalog::Options ro;
  ro.read_only = true;
  return Catalog::Open(db, ro);
}

int FailOrUsage(const Status& s) {
  std::fprintf(stderr, "reel: error: %s\n", s.message().c_str());
  const bool usage = s.code() == StatusCode::kNotFound || s.code() == StatusCode::kInvalidArgument;
  return usage ? kExitUsage : kExitFailure;
}

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
        ("device",
         po::value<std::string>(&opt_.device)->value_name("cpu|cuda")->default_value("cpu"),
         "where the networks run")  //
        ("batch", po::value<int>(&opt_.batch)->value_name("N")->default_value(8),
         "clips per detector call")  //
        ("no-cache", po::bool_switch(&no_cache_),
         "recompute features even when the catalog has them");
    AddJobsOption(o, &opt_.jobs, "decoding threads");
    AddPreferOption(o, &prefer_, "caption policy for db: sources");
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
    if (opt_.clip.stride < 1) return Status::InvalidArgument("--stride must be at least 1");
    if (opt_.batch < 1) return Status::InvalidArgument("--batch must be at least 1");
    if (opt_.max_clips < 0) return Status::InvalidArgument("--max-clips must be 0 (all) or more");
    if (opt_.bootstrap < 0 || opt_.bootstrap == 1)
      return Status::InvalidArgument("--bootstrap must be 0 or at least 2");
    if (opt_.kvd_subsets < 1 || opt_.kvd_subset_size < 2)
      return Status::InvalidArgument("--kvd-subsets must be at least 1, --kvd-subset-size 2");
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
        extra =
            " [" + std::to_string(used->as_int()) + (used->as_int() == 1 ? " video]" : " videos]");
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

class EvalCompareCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("baseline", po::value<std::string>(&baseline_)->value_name("RUN")->required(),
         "the reference eval run: its id or name (the newest run of that name)")  //
        ("candidate", po::value<std::string>(&candidate_)->value_name("RUN")->required(),
         "the eval run under test: id or name")  //
        ("max-regression",
         po::value<std::string>(&tolerances_)->value_name("LIST")->default_value(""),
         "gates: METRIC=AMOUNT[%],... by how much the candidate may be worse, e.g. "
         "fvd=+5%,clipsim=-0.5 (sign optional; it must point the worse way)")  //
        ("bootstrap", po::value<int>(&opt_.bootstrap)->value_name("K")->default_value(200),
         "resamples for the 95% intervals of the differences (fvd, clipsim); 0 = none")  //
        ("seed", po::value<uint64_t>(&opt_.seed)->value_name("S")->default_value(0),
         "seed of the resampling")  //
        ("markdown", po::value<std::string>(&markdown_)->value_name("FILE"),
         "also write a Markdown summary for a CI comment to FILE ('-' = stdout instead of "
         "the table)");
  }

  Status Setup(const po::variables_map&) override {
    REEL_ASSIGN_OR_RETURN(opt_.tolerances, ParseTolerances(tolerances_));
    if (opt_.bootstrap < 0 || opt_.bootstrap == 1) {
      return Status::InvalidArgument("--bootstrap must be 0 or at least 2");
    }
    return Status::OK();
  }

  int Run() override {
    auto catalog = OpenReadOnly(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    // A run that does not exist is a mistake on the command line, not a regression.
    Result<Comparison> c = CompareRuns(**catalog, baseline_, candidate_, opt_);
    if (!c.ok()) return FailOrUsage(c.status());
    const std::string md = ComparisonMarkdown(*c);
    if (!markdown_.empty() && markdown_ != "-") {
      std::ofstream f(markdown_, std::ios::binary | std::ios::trunc);
      f << md;
      if (!f.good())
        return Fail(Status::IOError(markdown_ + ": cannot write the Markdown summary"));
    }
    if (json_) {
      std::cout << ComparisonJson(*c).Dump(2) << '\n';
    } else if (markdown_ == "-") {
      std::cout << md;
    } else {
      std::printf("candidate %s (run %lld) vs baseline %s (run %lld): %s\n",
                  c->candidate.name.c_str(), static_cast<long long>(c->candidate.id),
                  c->baseline.name.c_str(), static_cast<long long>(c->baseline.id),
                  c->failed ? "FAIL" : "PASS");
      std::printf("  %-24s %12s %12s %12s %9s  %-25s %-10s %s\n", "metric", "baseline", "candidate",
                  "difference", "rel", "95% CI of difference", "tolerance", "verdict");
      for (const MetricComparison& m : c->metrics) {
        const bool compared = m.verdict != Verdict::kMissing && m.verdict != Verdict::kIncompatible;
        auto num = [](const std::optional<double>& v) {
          return v.has_value() ? FormatFixed(*v, 4) : std::string("-");
        };
        std::string ci;
        if (m.ci_low.has_value())
          ci = "[" + FormatFixed(*m.ci_low, 4) + ", " + FormatFixed(*m.ci_high, 4) + "]";
        std::string rel =
            compared && m.relative.has_value() ? FormatFixed(100 * *m.relative, 2) + "%" : "";
        std::printf("  %-24s %12s %12s %12s %9s  %-25s %-10s %s%s%s\n", m.name.c_str(),
                    num(m.baseline).c_str(), num(m.candidate).c_str(),
                    compared ? FormatFixed(m.difference, 4).c_str() : "", rel.c_str(), ci.c_str(),
                    m.tolerance.has_value() ? m.tolerance->text.c_str() : "",
                    std::string(VerdictName(m.verdict)).c_str(), m.note.empty() ? "" : ": ",
                    m.note.c_str());
      }
    }
    return c->failed ? kExitFailure : kExitOk;
  }

 private:
  std::string db_;
  bool json_ = false;
  std::string baseline_, candidate_, tolerances_, markdown_;
  CompareOptions opt_;
};

class ReportCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("out", po::value<std::string>(&opt_.out_dir)->value_name("DIR")->required(),
         "folder for index.html, report.md and report.json")  //
        ("runs", po::value<std::string>(&runs_)->value_name("LIST")->default_value(""),
         "eval runs to rank (ids or names, comma-separated); default: every finished one")  //
        ("title",
         po::value<std::string>(&opt_.title)->value_name("TEXT")->default_value("reel report"),
         "the page's title")  //
        ("weights", po::value<std::string>(&weights_)->value_name("LIST")->default_value(""),
         "metric weights in the totals, e.g. fvd=2,flicker=0.5 (default 1 each)")  //
        ("ranges", po::value<std::string>(&ranges_)->value_name("LIST")->default_value(""),
         "normalisation ranges, e.g. fvd=0:800,clipsim=15:35 (defaults: see --help)")  //
        ("gallery-prompts",
         po::value<int>(&opt_.gallery_prompts)->value_name("N")->default_value(12),
         "prompts shown in the gallery")  //
        ("gallery-runs", po::value<int>(&opt_.gallery_runs)->value_name("N")->default_value(4),
         "newest generation runs shown in the gallery")  //
        ("thumbnail-frames",
         po::value<int>(&opt_.thumbnail_frames)->value_name("N")->default_value(8),
         "frames in each animated thumbnail");
  }

  Status Setup(const po::variables_map&) override {
    for (std::string r : Split(runs_, ',', /*skip_empty=*/true))
      opt_.runs.push_back(std::string(Trim(r)));
    for (std::string item : Split(weights_, ',', /*skip_empty=*/true)) {
      const size_t eq = item.find('=');
      char* end = nullptr;
      const std::string v = eq == std::string::npos ? "" : item.substr(eq + 1);
      const double w = std::strtod(v.c_str(), &end);
      if (eq == std::string::npos || v.empty() || *end != '\0') {
        return Status::InvalidArgument("--weights: '" + item + "' is not METRIC=WEIGHT");
      }
      opt_.weights[std::string(Trim(item.substr(0, eq)))] = w;
    }
    for (std::string item : Split(ranges_, ',', /*skip_empty=*/true)) {
      const size_t eq = item.find('='), colon = item.find(':');
      double lo = 0, hi = 0;
      char tail = 0;
      if (eq == std::string::npos || colon == std::string::npos || colon < eq ||
          std::sscanf(item.c_str() + eq + 1, "%lf:%lf%c", &lo, &hi, &tail) != 2) {
        return Status::InvalidArgument("--ranges: '" + item + "' is not METRIC=MIN:MAX");
      }
      opt_.ranges[std::string(Trim(item.substr(0, eq)))] = {lo, hi};
    }
    if (opt_.gallery_prompts < 0 || opt_.gallery_runs < 0 || opt_.thumbnail_frames < 1 ||
        opt_.thumbnail_frames > 32) {
      return Status::InvalidArgument("--gallery-* must be >= 0 and --thumbnail-frames 1..32");
    }
    return Status::OK();
  }

  int Run() override {
    auto catalog = OpenReadOnly(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    Result<ReportSummary> r = WriteReport(**catalog, opt_);
    if (!r.ok()) return FailOrUsage(r.status());
    for (const std::string& w : r->warnings) std::fprintf(stderr, "reel: warning: %s\n", w.c_str());
    if (json_) {
      Json j = Json::MakeObject();
      j["html"] = r->html_path;
      j["markdown"] = r->markdown_path;
      j["json"] = r->json_path;
      j["html_bytes"] = r->html_bytes;
      j["runs"] = r->runs;
      j["charts"] = r->charts;
      j["thumbnails"] = r->thumbnails;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::printf("report: %s (%lld KiB; %d runs, %d charts, %d thumbnails)\n",
                  r->html_path.c_str(), static_cast<long long>(r->html_bytes / 1024), r->runs,
                  r->charts, r->thumbnails);
      std::printf("        %s\n        %s\n", r->markdown_path.c_str(), r->json_path.c_str());
    }
    return kExitOk;
  }

 private:
  std::string db_;
  bool json_ = false;
  std::string runs_, weights_, ranges_;
  ReportOptions opt_;
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
  out->push_back(
      {"eval compare", "compare two eval runs metric by metric; a regression gate for CI",
       "eval compare --db CATALOG --baseline RUN --candidate RUN [--max-regression LIST]",
       "For every metric: both values, the difference, a 95% bootstrap interval of the\n"
       "difference (fvd from the cached I3D features, clipsim from per-video scores), the\n"
       "tolerance and a verdict: improved, unchanged, worse (not gated), within tolerance,\n"
       "regressed, missing, incompatible. Values that cannot be compared (FVD under\n"
       "different protocols, detectors, clip settings or reference sets; CLIP metrics with\n"
       "different CLIP models) are refused, not compared.\n"
       "\n"
       "Exit status: 0 when no gated metric regressed beyond its tolerance; 1 when one did,\n"
       "or a gated metric is missing or incompatible; 2 on usage errors (bad options, a run\n"
       "that does not exist). Metrics without a tolerance are reported and never fail.",
       [] { return std::make_unique<EvalCompareCommand>(); }});
  out->push_back(
      {"report", "an HTML leaderboard with charts, dataset card and gallery (+ Markdown, JSON)",
       "report --db CATALOG --out DIR [--runs LIST] [--weights LIST] [--ranges LIST]",
       "Writes DIR/index.html (one self-contained page: no network needed, works from disk),\n"
       "DIR/report.md and DIR/report.json with the same numbers. The leaderboard ranks eval\n"
       "runs by a VBench-style total: each metric normalised to [0, 1] over a fixed range\n"
       "(lower-is-better ones flipped), weighted means within the quality group (fvd, kvd,\n"
       "clip-temp, background-consistency, flicker, dynamic-degree, warp-error) and the\n"
       "semantic group (clipsim), total = (4 x quality + semantic) / 5.\n"
       "Default ranges: fvd 0:1500, kvd 0:200, clipsim 0:40, clip-temp 0.5:1,\n"
       "background-consistency 0.2615:1, flicker 0.6293:1, dynamic-degree 0:1,\n"
       "warp-error 0:0.05.",
       [] { return std::make_unique<ReportCommand>(); }});
}

}  // namespace reel::cli
