// reel curate ingest

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>

#include "cli/command.h"
#include "curate/dedup.h"
#include "curate/export.h"
#include "curate/filter.h"
#include "curate/ingest.h"
#include "curate/scan.h"
#include "curate/shard.h"
#include "curate/split.h"
#include "db/catalog.h"
#include "util/json.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

// [{"path": ..., KEY: ...}, ...] for (path, text) pairs in a command's --json output.
Json PathList(const std::vector<std::pair<std::string, std::string>>& items, const char* key) {
  Json out = Json::MakeArray();
  for (const auto& [path, text] : items) {
    Json f = Json::MakeObject();
    f["path"] = path;
    f[key] = text;
    out.push_back(f);
  }
  return out;
}

class CurateIngestCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    AddDbOption(o, &db_);
    AddJobsOption(o, &jobs_, "files hashed and probed in parallel");
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("path", po::value<std::vector<std::string>>(&paths_)->value_name("PATH")->required(),
         "video files and folders (positional)")  //
        ("all-files", po::bool_switch(&all_files_),
         "in folders, try every file, not only video extensions")                             //
        ("no-recursive", po::bool_switch(&no_recursive_), "do not descend into sub-folders")  //
        ("retry-errors", po::bool_switch(&retry_errors_),
         "probe again files that failed before even if unchanged")  //
        ("batch", po::value<int>(&batch_)->value_name("N")->default_value(64),
         "files per catalog transaction")  //
        ("progress-every",
         po::value<int64_t>(&progress_every_)->value_name("N")->default_value(100),
         "when not on a terminal, print a progress line every N files");
    p.add("path", -1);
  }

  Status Setup(const po::variables_map&) override {
    if (batch_ < 1) return Status::InvalidArgument("--batch must be at least 1");
    if (progress_every_ < 1) return Status::InvalidArgument("--progress-every must be at least 1");
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());

    Progress::Options popts;
    popts.label = "ingest";
    popts.unit = "files";
    popts.line_every = progress_every_;
    if (json_ || common().quiet) popts.style = Progress::Style::kNone;
    Progress progress(popts);

    IngestOptions options;
    options.jobs = jobs_;
    options.recursive = !no_recursive_;
    options.all_files = all_files_;
    options.retry_errors = retry_errors_;
    options.batch_size = batch_;
    options.cancel = CancelFlag();
    options.on_found = [&](int64_t total) { progress.SetTotal(total); };
    options.on_file = [&](const IngestEvent& ev) {
      progress.Advance(1, std::filesystem::path(ev.path).filename().string());
      if (ev.outcome == IngestOutcome::kFailed && common().verbose) {
        Log(LogLevel::kWarning, ev.path + ": " + ev.error);
      }
    };
    InterruptGuard guard;
    auto result = Ingest(**catalog, paths_, options);
    if (!result.ok()) {
      progress.Finish();
      return Fail(result.status());
    }
    const IngestSummary& s = *result;
    const std::string line =
        "ingest: " + std::to_string(s.found) + " files: " + std::to_string(s.added) + " added, " +
        std::to_string(s.updated) + " updated, " + std::to_string(s.unchanged) + " unchanged, " +
        std::to_string(s.duplicates) + " duplicate, " + std::to_string(s.failed) + " failed in " +
        FormatDuration(s.seconds) + (s.cancelled ? " (interrupted; rerun to finish)" : "") +
        (s.known_errors > 0 ? "; " + std::to_string(s.known_errors) +
                                  " known bad files skipped (--retry-errors probes them again)"
                            : "");
    progress.Finish(common().quiet || json_ ? "" : line);

    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = s.run_id;
      j["found"] = s.found;
      j["added"] = s.added;
      j["updated"] = s.updated;
      j["unchanged"] = s.unchanged;
      j["duplicates"] = s.duplicates;
      j["failed"] = s.failed;
      j["known_errors"] = s.known_errors;
      j["cancelled"] = s.cancelled;
      j["seconds"] = s.seconds;
      j["failures"] = PathList(s.failures, "error");
      j["missing"] = PathList(s.missing, "error");
      j["warnings"] = PathList(s.warnings, "warning");
      j["sidecar_updates"] = s.sidecar_updates;
      std::cout << j.Dump(2) << '\n';
    }
    for (const auto& [path, why] : s.warnings) {
      std::fprintf(stderr, "reel: warning: %s\n", why.c_str());
    }
    // Failures are stored in the catalog; list the first few here.
    constexpr size_t kShown = 20;
    for (size_t i = 0; i < s.failures.size() && i < kShown; ++i) {
      std::fprintf(stderr, "reel: error: %s: %s\n", s.failures[i].first.c_str(),
                   s.failures[i].second.c_str());
    }
    if (s.failures.size() > kShown) {
      std::fprintf(stderr,
                   "reel: ... and %zu more; list them with: reel db query --db %s "
                   "\"SELECT path, error FROM videos WHERE status = 'error'\"\n",
                   s.failures.size() - kShown, db_.c_str());
    }
    for (const auto& [path, why] : s.missing) {
      std::fprintf(stderr, "reel: error: %s: %s\n", path.c_str(), why.c_str());
    }
    return s.all_ok() ? kExitOk : kExitFailure;
  }

 private:
  std::string db_;
  std::vector<std::string> paths_;
  int jobs_ = 1;
  int batch_ = 64;
  int64_t progress_every_ = 100;
  bool json_ = false;
  bool all_files_ = false;
  bool no_recursive_ = false;
  bool retry_errors_ = false;
};

// Detector, clip-length and fade options shared by `curate scan` and `curate split`.
class SplitFlags {
 public:
  void Add(po::options_description& o) {
    o.add_options()  //
        ("detector",
         po::value<std::string>(&detector_)->value_name("NAME")->default_value("content"),
         "content, adaptive, threshold, histogram or hash")  //
        ("threshold", po::value<double>()->value_name("X")->notifier([this](double v) {
          threshold_ = v;
          threshold_given_ = true;
        }),
         "the detector's threshold (defaults: content 27, adaptive 3, threshold 12, "
         "histogram 0.05, hash 0.395)")  //
        ("min-scene-len",
         po::value<int64_t>(&min_scene_len_)->value_name("FRAMES")->default_value(15),
         "frames before another cut may follow")  //
        ("weights", po::value<std::string>(&weights_)->value_name("H,S,L,E"),
         "content/adaptive component weights (default 1,1,1,0; E needs scan --edges)")      //
        ("luma-only", po::bool_switch(&luma_only_), "content/adaptive: luma changes only")  //
        ("filter-mode",
         po::value<std::string>(&filter_mode_)->value_name("MODE")->default_value("merge"),
         "content: merge or suppress cuts closer than min-scene-len")  //
        ("window-width", po::value<int>(&window_width_)->value_name("N")->default_value(2),
         "adaptive: frames either side averaged")  //
        ("min-content-val",
         po::value<double>(&min_content_val_)->value_name("X")->default_value(15.0),
         "adaptive: minimum content score for a cut")  //
        ("fade-bias", po::value<double>(&fade_bias_)->value_name("B")->default_value(0.0),
         "threshold: cut placement in the dark stretch, -1 (start) .. +1 (end)")  //
        ("no-fades", po::bool_switch(&no_fades_),
         "do not cut inside fades to black nor trim black frames from clip ends")     //
        ("no-gradual", po::bool_switch(&no_gradual_), "do not cut inside dissolves")  //
        ("min-seconds", po::value<std::string>(&min_seconds_)->value_name("S")->default_value("1"),
         "drop clips shorter than this")  //
        ("max-seconds", po::value<std::string>(&max_seconds_)->value_name("S")->default_value("0"),
         "split clips longer than this into equal parts (0: no limit)");
  }

  Result<SplitOptions> Resolve() const {
    SplitOptions s;
    REEL_ASSIGN_OR_RETURN(s.detector.kind, ParseDetectorKind(detector_));
    if (threshold_given_ && !std::isfinite(threshold_))
      return Status::InvalidArgument("--threshold must be a finite number");
    s.detector.threshold = threshold_;  // NaN: the detector's default
    s.detector.min_scene_len = min_scene_len_;
    s.detector.luma_only = luma_only_;
    if (!weights_.empty()) {
      const std::vector<std::string> parts = Split(weights_, ',');
      if (parts.size() != 4) return Status::InvalidArgument("--weights needs four numbers H,S,L,E");
      for (size_t i = 0; i < 4; ++i) {
        char* end = nullptr;
        s.detector.weights[i] = std::strtod(parts[i].c_str(), &end);
        if (end == parts[i].c_str() || *end != '\0') {
          return Status::InvalidArgument("--weights: '" + parts[i] + "' is not a number");
        }
      }
    }
    if (filter_mode_ == "merge") {
      s.detector.flash_mode = FlashMode::kMerge;
    } else if (filter_mode_ == "suppress") {
      s.detector.flash_mode = FlashMode::kSuppress;
    } else {
      return Status::InvalidArgument("--filter-mode must be merge or suppress");
    }
    s.detector.window_width = window_width_;
    s.detector.min_content_val = min_content_val_;
    s.detector.fade_bias = fade_bias_;
    s.fades = !no_fades_;
    s.gradual = !no_gradual_;
    REEL_ASSIGN_OR_RETURN(s.min_seconds, Rational::ParseDecimal(min_seconds_));
    REEL_ASSIGN_OR_RETURN(s.max_seconds, Rational::ParseDecimal(max_seconds_));
    if (s.min_seconds < Rational() || s.max_seconds < Rational()) {
      return Status::InvalidArgument("--min-seconds and --max-seconds must not be negative");
    }
    if (s.max_seconds > Rational() && s.max_seconds < s.min_seconds) {
      return Status::InvalidArgument("--max-seconds is below --min-seconds");
    }
    REEL_RETURN_IF_ERROR(s.detector.Validate());
    return s;
  }

 private:
  std::string detector_, weights_, filter_mode_, min_seconds_, max_seconds_;
  double threshold_ = std::numeric_limits<double>::quiet_NaN();
  bool threshold_given_ = false;
  int64_t min_scene_len_ = 15;
  bool luma_only_ = false, no_fades_ = false, no_gradual_ = false;
  int window_width_ = 2;
  double min_content_val_ = 15.0, fade_bias_ = 0.0;
};

Result<ShardSpec> ResolveShard(const std::string& text) {
  if (text.empty()) return ShardSpec();
  return ParseShard(text);
}

class CurateScanCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    AddDbOption(o, &db_);
    AddJobsOption(o, &jobs_, "videos scanned in parallel");
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("path", po::value<std::vector<std::string>>(&paths_)->value_name("PATH"),
         "files or folders to ingest first (positional)")  //
        ("analysis-width", po::value<int>(&analysis_width_)->value_name("W")->default_value(256),
         "downscale wider frames to this width for analysis (0: native)")  //
        ("resize", po::value<std::string>(&resize_)->value_name("MODE")->default_value("exact"),
         "exact (PySceneDetect's frames) or fast (swscale area; differs on dark frames)")  //
        ("skip-loop-filter", po::bool_switch(&skip_loop_filter_),
         "skip H.264/HEVC deblocking while decoding (faster; scores change slightly)")  //
        ("decode-threads", po::value<int>(&decode_threads_)->value_name("N")->default_value(0),
         "codec threads per video (0: automatic)")  //
        ("edges", po::bool_switch(&edges_),
         "also compute the content detector's edge component")  //
        ("signals", po::value<std::string>(&signals_)->value_name("LIST")->default_value("all"),
         "signals besides shot detection: all, none, or a list of motion, sharpness, color, "
         "text")                                                                                  //
        ("rescan", po::bool_switch(&rescan_), "scan again videos already scanned")                //
        ("retry-errors", po::bool_switch(&retry_errors_), "scan again videos whose scan failed")  //
        ("shard", po::value<std::string>(&shard_)->value_name("I/N"),
         "process only shard I of N (or 'auto' from Slurm / Kubernetes variables)");
    split_.Add(o);
    p.add("path", -1);
  }

  Status Setup(const po::variables_map&) override {
    if (analysis_width_ < 0) return Status::InvalidArgument("--analysis-width must be >= 0");
    if (decode_threads_ < 0) return Status::InvalidArgument("--decode-threads must be >= 0");
    if (resize_ == "exact") {
      options_.resize = ResizeMode::kExact;
    } else if (resize_ == "fast") {
      options_.resize = ResizeMode::kFast;
    } else {
      return Status::InvalidArgument("--resize must be exact or fast");
    }
    REEL_ASSIGN_OR_RETURN(options_.split, split_.Resolve());
    REEL_ASSIGN_OR_RETURN(options_.shard, ResolveShard(shard_));
    options_.analysis_width = analysis_width_;
    options_.skip_loop_filter = skip_loop_filter_;
    options_.decode_threads = decode_threads_;
    options_.analysis.edges = edges_;
    REEL_ASSIGN_OR_RETURN(options_.analysis.groups, ParseSignalGroups(signals_));
    options_.jobs = jobs_;
    options_.rescan = rescan_;
    options_.retry_errors = retry_errors_;
    options_.ingest.jobs = jobs_;
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    Progress::Options popts;
    popts.label = "scan";
    popts.unit = "frames";
    popts.line_every = 10000;
    if (json_ || common().quiet) popts.style = Progress::Style::kNone;
    Progress progress(popts);
    options_.on_start = [&](int64_t, int64_t frames) { progress.SetTotal(frames); };
    options_.on_frames = [&](int64_t n) { progress.Advance(n); };
    options_.on_video = [&](const std::string& path, const Status& s, int64_t clips) {
      if (common().verbose) {
        Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning,
            s.ok() ? path + ": " + std::to_string(clips) + " clips" : s.message());
      }
    };
    options_.cancel = CancelFlag();
    InterruptGuard guard;
    auto result = Scan(**catalog, paths_, options_);
    if (!result.ok()) {
      progress.Finish();
      return Fail(result.status());
    }
    const ScanSummary& s = *result;
    const double fps = s.seconds > 0 ? s.frames / s.seconds : 0;
    const std::string line =
        "scan: " + std::to_string(s.scanned) + " videos scanned, " + std::to_string(s.failed) +
        " failed, " + std::to_string(s.skipped) + " already done; " + std::to_string(s.frames) +
        " frames (" + FormatFixed(fps, 0) + " fps), " + std::to_string(s.clips) + " clips in " +
        FormatDuration(s.seconds) + (s.cancelled ? " (interrupted; rerun to finish)" : "");
    progress.Finish(common().quiet || json_ ? "" : line);
    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = s.run_id;
      j["videos"] = s.videos;
      j["scanned"] = s.scanned;
      j["failed"] = s.failed;
      j["skipped"] = s.skipped;
      j["frames"] = s.frames;
      j["clips"] = s.clips;
      j["seconds"] = s.seconds;
      j["cancelled"] = s.cancelled;
      j["failures"] = PathList(s.failures, "error");
      std::cout << j.Dump(2) << '\n';
    }
    for (const auto& [path, why] : s.ingest.failures) {
      std::fprintf(stderr, "reel: error: %s: %s\n", path.c_str(), why.c_str());
    }
    for (const auto& [path, why] : s.failures) {
      std::fprintf(stderr, "reel: error: %s\n", why.c_str());
    }
    return s.all_ok() ? kExitOk : kExitFailure;
  }

 private:
  std::string db_, resize_, shard_;
  std::vector<std::string> paths_;
  int jobs_ = 1, analysis_width_ = 256, decode_threads_ = 0;
  std::string signals_;
  bool json_ = false, skip_loop_filter_ = false, edges_ = false;
  bool rescan_ = false, retry_errors_ = false;
  SplitFlags split_;
  ScanOptions options_;
};

class CurateSplitCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()("shard", po::value<std::string>(&shard_)->value_name("I/N"),
                    "re-cut only shard I of N");
    split_.Add(o);
  }

  Status Setup(const po::variables_map&) override {
    REEL_ASSIGN_OR_RETURN(options_, split_.Resolve());
    REEL_ASSIGN_OR_RETURN(shard_spec_, ResolveShard(shard_));
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    auto result = Split(**catalog, options_, shard_spec_);
    if (!result.ok()) return Fail(result.status());
    const SplitSummary& s = *result;
    if (json_) {
      Json j = Json::MakeObject();
      j["run_id"] = s.run_id;
      j["videos"] = s.videos;
      j["clips"] = s.clips;
      j["dropped_short"] = s.dropped_short;
      j["split_long"] = s.split_long;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::fprintf(stderr,
                   "split: %lld videos re-cut (%s): %lld clips, %lld too short, %lld split\n",
                   static_cast<long long>(s.videos), DescribeSplit(options_).c_str(),
                   static_cast<long long>(s.clips), static_cast<long long>(s.dropped_short),
                   static_cast<long long>(s.split_long));
    }
    for (const auto& [path, why] : s.failures) {
      std::fprintf(stderr, "reel: error: %s: %s\n", path.c_str(), why.c_str());
    }
    return s.failures.empty() ? kExitOk : kExitFailure;
  }

 private:
  std::string db_, shard_;
  bool json_ = false;
  SplitFlags split_;
  SplitOptions options_;
  ShardSpec shard_spec_;
};

class CurateFilterCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_, /*required=*/false);  // not needed for --columns
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("where", po::value<std::string>(&where_)->value_name("EXPR"),
         "the condition clips must meet (see --columns and the README)")  //
        ("subset", po::value<std::string>(&subset_)->value_name("NAME"),
         "name of the subset to record (replaced if it exists)")               //
        ("dry-run", po::bool_switch(&dry_run_), "count only; record nothing")  //
        ("columns", po::bool_switch(&columns_), "list the names an expression can use");
  }

  Status Setup(const po::variables_map&) override {
    if (columns_) return Status::OK();
    if (db_.empty()) return Status::InvalidArgument("the option '--db' is required but missing");
    if (where_.empty()) return Status::InvalidArgument("--where is required");
    if (subset_.empty() && !dry_run_) return Status::InvalidArgument("--subset is required");
    // Parse first, work later: a malformed expression is a usage error.
    return CompileFilter(where_).status();
  }

  int Run() override {
    if (columns_) {
      for (const FilterColumn& c : FilterColumns()) {
        const char* type = c.type == FilterType::kNumber ? "number"
                           : c.type == FilterType::kText ? "text"
                                                         : "bool";
        std::printf("%-13s %-7s %s\n", c.name, type, c.doc);
      }
      std::printf(
          "\nfunctions: abs(x) min(a, b) max(a, b) lower(s) length(s) contains(s, part)\n"
          "           color(name) in_subset(name)\n");
      return kExitOk;
    }
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    auto result = ApplyFilter(**catalog, where_, subset_, dry_run_);
    if (!result.ok()) return Fail(result.status());
    const FilterSummary& s = *result;
    if (json_) {
      Json j = Json::MakeObject();
      j["subset"] = subset_;
      j["clips"] = s.clips;
      j["passed"] = s.passed;
      Json failed = Json::MakeObject();
      for (const auto& [cond, n] : s.failed_at) failed[cond] = n;
      j["failed_at"] = failed;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::printf("%s%s: %lld of %lld clips pass\n", dry_run_ ? "(dry run) " : "subset ",
                  dry_run_ ? "filter" : subset_.c_str(), static_cast<long long>(s.passed),
                  static_cast<long long>(s.clips));
      for (const auto& [cond, n] : s.failed_at) {
        std::printf("  %6lld failed first at: %s\n", static_cast<long long>(n), cond.c_str());
      }
    }
    return kExitOk;
  }

 private:
  std::string db_, where_, subset_;
  bool json_ = false, dry_run_ = false, columns_ = false;
};

class CurateDedupCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("max-distance",
         po::value<int>(&options_.max_distance)->value_name("BITS")->default_value(10),
         "largest pHash Hamming distance (of 64 bits) for near-duplicates")  //
        ("dry-run", po::bool_switch(&options_.dry_run), "report groups, change nothing");
  }

  Status Setup(const po::variables_map&) override {
    if (options_.max_distance < 0 || options_.max_distance > 64) {
      return Status::InvalidArgument("--max-distance must be within 0..64");
    }
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    auto result = Dedup(**catalog, options_);
    if (!result.ok()) return Fail(result.status());
    const DedupSummary& s = *result;
    if (json_) {
      Json j = Json::MakeObject();
      j["clips"] = s.clips;
      j["groups"] = s.groups;
      j["duplicates"] = s.duplicates;
      Json groups = Json::MakeArray();
      for (const auto& g : s.group_ids) {
        Json ids = Json::MakeArray();
        for (int64_t id : g) ids.push_back(id);
        groups.push_back(ids);
      }
      j["groups_kept_first"] = groups;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::printf("%sdedup: %lld clips, %lld near-duplicate groups, %lld clips marked duplicate\n",
                  options_.dry_run ? "(dry run) " : "", static_cast<long long>(s.clips),
                  static_cast<long long>(s.groups), static_cast<long long>(s.duplicates));
    }
    return kExitOk;
  }

 private:
  std::string db_;
  bool json_ = false;
  DedupOptions options_;
};

class CurateExportCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJobsOption(o, &jobs_, "clips encoded in parallel");
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("subset", po::value<std::string>(&options_.subset)->value_name("NAME")->required(),
         "export the clips that passed this subset")  //
        ("out", po::value<std::string>(&options_.out_dir)->value_name("DIR")->required(),
         "output folder (clips and manifests)")  //
        ("height", po::value<int>(&options_.height)->value_name("H")->default_value(0),
         "scale to this height (width follows the aspect ratio); 0 keeps the source size")  //
        ("fps", po::value<std::string>(&fps_)->value_name("RATE"),
         "resample to this frame rate (rational or decimal), picking the frames ffmpeg's fps "
         "filter picks; default keeps the source timing")  //
        ("copy", po::bool_switch(&options_.copy),
         "copy packets instead of re-encoding, from the keyframe at or before each clip (an "
         "MP4 or MOV copy hides the frames before the clip's start)")  //
        ("codec", po::value<std::string>(&options_.codec)->value_name("NAME"),
         "encoder (default libx264)")  //
        ("crf", po::value<int>(&options_.crf)->value_name("Q")->default_value(20),
         "x264 quality")  //
        ("shard", po::value<std::string>(&shard_)->value_name("I/N"),
         "export only shard I of N; manifests are manifest-I-of-N.*")  //
        ("manifest-only", po::bool_switch(&options_.manifest_only),
         "rewrite the manifests from what is exported, encode nothing");
    AddPreferOption(o, &prefer_,
                    "which caption goes into the manifests: the clip's newest caption from the "
                    "first source it has (an entry may name a model, as vlm:MODEL)");
  }

  Status Setup(const po::variables_map&) override {
    if (options_.height < 0) return Status::InvalidArgument("--height must be >= 0");
    if (options_.height > kMaxExportSide) {
      return Status::InvalidArgument("--height must be at most " + std::to_string(kMaxExportSide) +
                                     " (libx264's limit)");
    }
    if (!fps_.empty()) {
      REEL_ASSIGN_OR_RETURN(options_.fps, Rational::ParseDecimal(fps_));
      if (options_.fps <= Rational()) return Status::InvalidArgument("--fps must be positive");
    }
    if (options_.copy && (options_.height > 0 || !fps_.empty())) {
      return Status::InvalidArgument("--copy cannot scale or resample (drop --height/--fps)");
    }
    REEL_ASSIGN_OR_RETURN(options_.shard, ResolveShard(shard_));
    REEL_ASSIGN_OR_RETURN(options_.prefer, ParseCaptionPreference(prefer_));
    options_.jobs = jobs_;
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_);
    if (!catalog.ok()) return Fail(catalog.status());
    Progress::Options popts;
    popts.label = "export";
    popts.unit = "clips";
    popts.line_every = 50;
    if (json_ || common().quiet) popts.style = Progress::Style::kNone;
    Progress progress(popts);
    options_.on_start = [&](int64_t n) { progress.SetTotal(n); };
    options_.on_clip = [&](const std::string& file, const Status&) {
      progress.Advance(1, std::filesystem::path(file).filename().string());
    };
    options_.cancel = CancelFlag();
    InterruptGuard guard;
    auto result = Export(**catalog, options_);
    if (!result.ok()) {
      progress.Finish();
      return Fail(result.status());
    }
    const ExportSummary& s = *result;
    progress.Finish(json_ || common().quiet
                        ? ""
                        : "export: " + std::to_string(s.exported) + " clips written (" +
                              (options_.copy ? "stream-copied" : "re-encoded, frame-exact") +
                              "), " + std::to_string(s.skipped) + " already done, " +
                              std::to_string(s.failed) + " failed; manifest " + s.manifest_csv +
                              " (" + std::to_string(s.manifest_rows) + " rows)");
    if (json_) {
      Json j = Json::MakeObject();
      j["clips"] = s.clips;
      j["exported"] = s.exported;
      j["skipped"] = s.skipped;
      j["failed"] = s.failed;
      j["manifest_csv"] = s.manifest_csv;
      j["manifest_jsonl"] = s.manifest_jsonl;
      j["manifest_rows"] = s.manifest_rows;
      j["manifest_rows_not_utf8"] = s.manifest_rows_not_utf8;
      std::cout << j.Dump(2) << '\n';
    }
    if (s.manifest_rows_not_utf8 > 0 && !common().quiet) {
      std::fprintf(stderr,
                   "reel: warning: %lld manifest row%s hold%s text that is not UTF-8 (a source "
                   "file name): %s shows those bytes as U+FFFD, %s keeps them as \\udcXX "
                   "escapes (Python's surrogateescape)\n",
                   static_cast<long long>(s.manifest_rows_not_utf8),
                   s.manifest_rows_not_utf8 == 1 ? "" : "s",
                   s.manifest_rows_not_utf8 == 1 ? "s" : "", s.manifest_csv.c_str(),
                   s.manifest_jsonl.c_str());
    }
    for (const auto& [path, why] : s.failures) {
      std::fprintf(stderr, "reel: error: %s: %s\n", path.c_str(), why.c_str());
    }
    return s.failed == 0 && !s.cancelled ? kExitOk : kExitFailure;
  }

 private:
  std::string db_, fps_, shard_, prefer_;
  int jobs_ = 1;
  bool json_ = false;
  ExportOptions options_;
};

}  // namespace

void RegisterCurateCommands(std::vector<CommandInfo>* out) {
  out->push_back(
      {"curate ingest", "find videos, probe and hash them, and record them in the catalog",
       "curate ingest --db FILE [--jobs N] [options] PATH...",
       "Folders are walked recursively for video files (by extension; --all-files tries\n"
       "every file); files named on the command line are always tried. A file already in\n"
       "the catalog with the same size and modification time is skipped without reading\n"
       "it; a changed file is re-hashed and re-probed. Files that are not videos, are\n"
       "truncated or corrupt are recorded with status 'error' and the cause, and the batch\n"
       "goes on. Results are committed in batches, so an interrupted ingest resumes where\n"
       "it stopped when run again. Exit status 1 when any file failed.",
       [] { return std::make_unique<CurateIngestCommand>(); }});
  out->push_back(
      {"curate scan", "one decode pass per video: shot detection and clip signals",
       "curate scan --db FILE [detector options] [--jobs N] [PATH...]",
       "Scans every ingested video not yet scanned (PATHs are ingested first). One decode\n"
       "pass computes the per-frame series of all five detectors (PySceneDetect's content,\n"
       "adaptive, threshold, histogram and hash) and the signals (optical flow and camera\n"
       "motion, sharpness, brightness, contrast, black frames, text area, colourfulness,\n"
       "colours, perceptual hashes); the series are stored, so `reel curate split` can\n"
       "re-cut with other settings without decoding. Clips get exact frame and time\n"
       "boundaries. Each video is committed when done: an interrupted scan resumes.",
       [] { return std::make_unique<CurateScanCommand>(); }});
  out->push_back({"curate split", "re-cut scanned videos from stored scores, without decoding",
                  "curate split --db FILE [detector options]",
                  "Clips whose frame range does not change keep their ids and captions.",
                  [] { return std::make_unique<CurateSplitCommand>(); }});
  out->push_back(
      {"curate filter", "record the clips that meet a condition as a named subset",
       "curate filter --db FILE --where EXPR --subset NAME [--dry-run]",
       "EXPR is a small expression language over clip columns, compiled to parameterised\n"
       "SQL, e.g. \"duration >= 2 and motion > 0.3 and not duplicate\". Each clip is\n"
       "recorded as passing or with the first condition it failed and its values. Scores\n"
       "are stored, so new thresholds apply instantly. `--columns` lists the names.",
       [] { return std::make_unique<CurateFilterCommand>(); }});
  out->push_back(
      {"curate dedup", "mark near-duplicate clips by perceptual-hash distance",
       "curate dedup --db FILE [--max-distance BITS]",
       "Clips whose first, middle and last frame pHashes are all within --max-distance are\n"
       "grouped; each group keeps the clip with the least black, then the longest, then\n"
       "the largest frame, then the sharpest, then the lowest id. The others get\n"
       "duplicate_of (filter them with `not duplicate`).",
       [] { return std::make_unique<CurateDedupCommand>(); }});
  out->push_back(
      {"curate export", "write a subset's clips and Open-Sora/JSONL manifests",
       "curate export --db FILE --subset NAME --out DIR [--height H] [--fps R] [--copy]",
       "Re-encoding (default) cuts frame-exactly by presentation timestamps; --copy copies\n"
       "packets from the keyframe at or before each clip: in MP4 and MOV an edit list hides\n"
       "the frames before the start; in MKV and AVI the clip shows from the keyframe (the\n"
       "manifest records the span shown). Finished clips are never overwritten and a rerun\n"
       "resumes. DIR/manifest.csv is Open-Sora's format.",
       [] { return std::make_unique<CurateExportCommand>(); }});
}

}  // namespace reel::cli
