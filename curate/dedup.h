// Near-duplicate clips by perceptual-hash distance.
//
// Two clips are near-duplicates when the Hamming distances between their 64-bit pHashes
// of the first, middle and last frame are all at most `max_distance` (default 10 of 64
// bits). Near-duplicate pairs are joined into groups (transitively). In each group one
// clip is kept, by this rule, in order:
//   1. the lowest black_ratio (least black or blank),
//   2. the longest duration,
//   3. the largest frame area (width x height of its video),
//   4. the highest sharpness,
//   5. the lowest clip id (the earliest ingested), so the choice is stable.
// The others get duplicate_of = the kept clip; clips in no group get duplicate_of = NULL,
// so rerunning with another distance re-decides everything. Candidates are found with a
// BK-tree on the middle-frame hash, not by comparing every pair.
//
// Thread-safety: uses the catalog on the calling thread only.

#ifndef REEL_CURATE_DEDUP_H_
#define REEL_CURATE_DEDUP_H_

#include <cstdint>
#include <vector>

#include "db/catalog.h"

namespace reel {

struct DedupOptions {
  int max_distance = 10;
  bool dry_run = false;
};

struct DedupSummary {
  int64_t run_id = 0;
  int64_t clips = 0;       // clips with hashes
  int64_t groups = 0;      // groups of two or more
  int64_t duplicates = 0;  // clips marked duplicate_of
  std::vector<std::vector<int64_t>> group_ids;  // kept clip first
};

Result<DedupSummary> Dedup(Catalog& catalog, const DedupOptions& options);

}  // namespace reel

#endif  // REEL_CURATE_DEDUP_H_
