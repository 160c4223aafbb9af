// reel curate ingest

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "curate/ingest.h"
#include "db/catalog.h"
#include "util/json.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

std::atomic<bool> g_cancel{false};

extern "C" void OnInterrupt(int) {
  g_cancel.store(true);
}

// First Ctrl-C asks the job to stop after committing what is done; a second one kills.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_cancel.store(false);
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

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
    if (jobs_ < 1) return Status::InvalidArgument("--jobs must be at least 1");
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
    options.cancel = &g_cancel;
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
      Json failures = Json::MakeArray();
      for (const auto& [path, why] : s.failures) {
        Json f = Json::MakeObject();
        f["path"] = path;
        f["error"] = why;
        failures.push_back(f);
      }
      j["failures"] = failures;
      Json missing = Json::MakeArray();
      for (const auto& [path, why] : s.missing) {
        Json f = Json::MakeObject();
        f["path"] = path;
        f["error"] = why;
        missing.push_back(f);
      }
      j["missing"] = missing;
      std::cout << j.Dump(2) << '\n';
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
}

}  // namespace reel::cli
