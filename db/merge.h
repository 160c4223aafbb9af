// Merging catalogs: shard catalogs from a Slurm array or an indexed job into one.
//
// MergeCatalogs() copies every input into `out`, matching rows by their natural keys so
// that nothing is duplicated and merging the same input twice changes nothing:
//   videos        by path (the more recently updated row wins)
//   scans         per video, the more recent scan wins, with its per-frame data and clips
//   clips         by (video, start frame, end frame)
//   captions      by (clip, source, model), the newer winning, with their scores
//   sidecar texts with their video, where the catalog has none
//   subsets       by name; members are added for the clips they name
//   clip exports  by (clip, output folder)
//   runs          by (kind, start time, host, pid), with their metrics and generated videos
//   feature sets  by key (content-addressed), where the catalog has none
// Ids are remapped; duplicate_of links follow. Inputs are opened read-only. All of one
// input is merged in one transaction.
//
// Thread-safety: uses `out` on the calling thread only.

#ifndef REEL_DB_MERGE_H_
#define REEL_DB_MERGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "db/catalog.h"

namespace reel {

struct MergeSummary {
  int64_t inputs = 0;
  int64_t videos_added = 0;
  int64_t videos_updated = 0;
  int64_t scans = 0;
  int64_t clips = 0;
  int64_t captions = 0;
  int64_t subset_members = 0;
  int64_t exports = 0;
  int64_t runs = 0;
  int64_t generations = 0;
};

Result<MergeSummary> MergeCatalogs(Catalog& out, const std::vector<std::string>& inputs);

}  // namespace reel

#endif  // REEL_DB_MERGE_H_
