#include "curate/shard.h"

#include <charconv>
#include <cstdlib>

namespace reel {
namespace {

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string_view Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string_view(v) : std::string_view();
}

}  // namespace

uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

bool ShardSpec::Contains(std::string_view key) const {
  if (all()) return true;
  return static_cast<int64_t>(Fnv1a64(key) % static_cast<uint64_t>(count)) == index;
}

std::string ShardSpec::ToString() const {
  return std::to_string(index) + "/" + std::to_string(count);
}

Result<ShardSpec> ParseShard(std::string_view text) {
  if (text == "auto") return ShardFromEnvironment();
  const size_t slash = text.find('/');
  ShardSpec spec;
  if (slash == std::string_view::npos || !ParseInt(text.substr(0, slash), &spec.index) ||
      !ParseInt(text.substr(slash + 1), &spec.count)) {
    return Status::InvalidArgument("shard '" + std::string(text) + "' is not I/N or auto");
  }
  if (spec.count < 1 || spec.index < 0 || spec.index >= spec.count) {
    return Status::InvalidArgument("shard '" + std::string(text) + "': need 0 <= I < N");
  }
  return spec;
}

Result<ShardSpec> ShardFromEnvironment() {
  ShardSpec spec;
  int64_t id = 0, count = 0, min = 0;
  if (ParseInt(Env("SLURM_ARRAY_TASK_ID"), &id)) {
    if (!ParseInt(Env("SLURM_ARRAY_TASK_COUNT"), &count)) {
      return Status::InvalidArgument("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    }
    if (ParseInt(Env("SLURM_ARRAY_TASK_MIN"), &min)) id -= min;
    spec.index = id;
    spec.count = count;
  } else if (ParseInt(Env("JOB_COMPLETION_INDEX"), &id)) {
    if (!ParseInt(Env("REEL_SHARD_COUNT"), &count)) {
      return Status::InvalidArgument(
          "JOB_COMPLETION_INDEX is set; set REEL_SHARD_COUNT to the job's completions");
    }
    spec.index = id;
    spec.count = count;
  } else {
    return Status::NotFound(
        "--shard auto: no SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment");
  }
  if (spec.count < 1 || spec.index < 0 || spec.index >= spec.count) {
    return Status::InvalidArgument("shard from the environment is " + spec.ToString() +
                                   ", outside 0 <= I < N");
  }
  return spec;
}

}  // namespace reel
