// Ingest: finding video files and recording them in the catalog.
//
// Ingest(paths) walks files and folders, and for each candidate file:
//   - skips it when the catalog already has this path with the same size and mtime
//     (no read at all), or when its content hash equals the stored one;
//   - otherwise hashes it (SHA-256) and probes it (ProbeVideo) on one of `jobs` worker
//     threads, and records the result: status ok, error (with the cause), or duplicate
//     (same content as a video already in the catalog, linked by duplicate_of);
//   - reads its sidecar files (name.txt, name.json, name.srt; see curate/sidecar.h) into
//     video_texts, again whenever they change even if the video does not.
// Results are committed in batches, one transaction each, by the calling thread; a crash
// or SIGKILL loses at most the uncommitted batch, and a rerun completes the work with
// every file recorded exactly once. The run itself is recorded in `runs` (kind
// "ingest") with its counters in `metrics`.
//
// Failure: per-file problems are recorded and counted, never fatal. Ingest() returns an
// error Status only when the catalog itself cannot be written.
//
// Thread-safety: Ingest() uses `catalog` from the calling thread only; callbacks run on
// the calling thread.

#ifndef REEL_CURATE_INGEST_H_
#define REEL_CURATE_INGEST_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"

namespace reel {

enum class IngestOutcome {
  kAdded,      // new path, recorded
  kUpdated,    // known path whose content changed, re-recorded
  kUnchanged,  // known path, same content: skipped
  kDuplicate,  // same content as another video: recorded as a duplicate
  kFailed,     // recorded with status error
};
std::string_view IngestOutcomeName(IngestOutcome o);

struct IngestEvent {
  std::string path;
  IngestOutcome outcome = IngestOutcome::kAdded;
  std::string error;  // for kFailed
  int64_t done = 0;   // files finished so far (committed or skipped)
  int64_t total = 0;  // files found
};

struct IngestOptions {
  int jobs = 1;                // files hashed and probed in parallel
  bool recursive = true;       // descend into sub-folders
  bool all_files = false;      // in folders, try every file, not only video extensions
  bool retry_errors = false;   // re-probe unchanged files that failed before
  int batch_size = 64;         // files per transaction
  double batch_seconds = 2.0;  // commit at least this often
  // Called after each file is committed or skipped, in order of completion.
  std::function<void(const IngestEvent&)> on_file;
  // Called once the walk has found every candidate file.
  std::function<void(int64_t total)> on_found;
  // When set to true (e.g. from a SIGINT handler), workers stop taking files; what is
  // done is committed and the run is marked interrupted.
  const std::atomic<bool>* cancel = nullptr;
};

struct IngestSummary {
  int64_t run_id = 0;
  int64_t found = 0;
  int64_t added = 0;
  int64_t updated = 0;
  int64_t unchanged = 0;
  int64_t duplicates = 0;
  int64_t failed = 0;
  int64_t known_errors = 0;     // of `unchanged`: files recorded as bad before, not retried
  int64_t sidecar_updates = 0;  // videos whose sidecar texts were (re)read and stored
  bool cancelled = false;
  double seconds = 0.0;
  // Paths given that do not exist or cannot be walked (not recorded in the catalog).
  std::vector<std::pair<std::string, std::string>> missing;
  // Files recorded with status error, and why.
  std::vector<std::pair<std::string, std::string>> failures;
  // (video path, why): sidecar files that could not be read, and videos read with damaged
  // packets. The videos are recorded all the same.
  std::vector<std::pair<std::string, std::string>> warnings;

  bool all_ok() const { return failed == 0 && missing.empty() && !cancelled; }
};

Result<IngestSummary> Ingest(Catalog& catalog, const std::vector<std::string>& paths,
                             const IngestOptions& options);

// The files Ingest() would consider for `paths` (absolute, normalised, sorted, unique);
// unreadable inputs go to `missing`.
std::vector<std::string> FindVideoFiles(const std::vector<std::string>& paths,
                                        const IngestOptions& options,
                                        std::vector<std::pair<std::string, std::string>>* missing);

}  // namespace reel

#endif  // REEL_CURATE_INGEST_H_
