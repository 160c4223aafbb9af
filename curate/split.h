// Split: re-cutting scanned videos from their stored per-frame series.
//
// Split() loads each scanned video's series from the catalog, plans clips with the given
// detector, thresholds and length rules, recomputes the clip signals, and replaces the
// video's clips (clips whose frame range is unchanged keep their ids, captions and
// subset memberships). Nothing is decoded, so trying another threshold takes seconds.
//
// Thread-safety: uses `catalog` on the calling thread only.

#ifndef REEL_CURATE_SPLIT_H_
#define REEL_CURATE_SPLIT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "curate/clips.h"
#include "curate/shard.h"
#include "db/catalog.h"

namespace reel {

struct SplitSummary {
  int64_t run_id = 0;
  int64_t videos = 0;
  int64_t clips = 0;
  int64_t dropped_short = 0;
  int64_t split_long = 0;
  std::vector<std::pair<std::string, std::string>> failures;
};

Result<SplitSummary> Split(Catalog& catalog, const SplitOptions& options,
                           const ShardSpec& shard = {},
                           const std::function<void(int64_t done, int64_t total)>& progress = {});

// The clips of one video for `options` (used by Scan and Split).
Result<std::vector<ClipRecord>> MakeClips(const VideoRecord& video, const FrameSeries& series,
                                          Rational time_base, const SplitOptions& options,
                                          ClipPlan* plan_out = nullptr);

// The detector description stored in clips.detector.
std::string DescribeSplit(const SplitOptions& options);

}  // namespace reel

#endif  // REEL_CURATE_SPLIT_H_
