// Sharding: splitting a job over many machines.
//
// `--shard I/N` makes a process handle only the videos whose path hashes to I modulo N
// (FNV-1a, so the split is stable across machines and runs and needs no coordination).
// `--shard auto` reads the index and count from a Slurm job array
// (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or a Kubernetes
// indexed job (JOB_COMPLETION_INDEX, with the count from REEL_SHARD_COUNT).
//
// Thread-safety: value types and pure functions.

#ifndef REEL_CURATE_SHARD_H_
#define REEL_CURATE_SHARD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace reel {

struct ShardSpec {
  int64_t index = 0;
  int64_t count = 1;

  bool all() const { return count <= 1; }
  bool Contains(std::string_view key) const;
  std::string ToString() const;  // "3/8"
};

// "I/N" (0 <= I < N) or "auto". Errors name what was wrong.
Result<ShardSpec> ParseShard(std::string_view text);
// The shard from the environment (see above); NotFound when none is set.
Result<ShardSpec> ShardFromEnvironment();

uint64_t Fnv1a64(std::string_view data);

}  // namespace reel

#endif  // REEL_CURATE_SHARD_H_
