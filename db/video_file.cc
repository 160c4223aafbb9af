#include "db/video_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>

#include "util/sha256.h"

namespace reel {
namespace {

// Files whose stamp moved but whose content was hashed and found unchanged.
std::mutex verified_mu;
std::set<std::tuple<std::string, int64_t, int64_t, std::string>> verified;

}  // namespace

Status CheckUnchangedSinceIngest(const VideoRecord& video) {
  struct stat st {};
  if (::stat(video.path.c_str(), &st) != 0)
    return Status::IOError(video.path + ": " + std::strerror(errno));
  const int64_t size = static_cast<int64_t>(st.st_size);
  const int64_t mtime_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (size == video.size_bytes && mtime_ns == video.mtime_ns) return Status::OK();
  const std::string again = "; run `reel curate ingest` on it again to record what it holds now";
  if (size != video.size_bytes) {
    return Status::FailedPrecondition(video.path + ": changed since it was ingested (" +
                                      std::to_string(video.size_bytes) + " bytes then, " +
                                      std::to_string(size) + " now)" + again);
  }
  if (video.content_hash.empty()) return Status::OK();  // nothing recorded to compare with
  const auto key = std::make_tuple(video.path, size, mtime_ns, video.content_hash);
  {
    std::lock_guard<std::mutex> lock(verified_mu);
    if (verified.count(key)) return Status::OK();
  }
  REEL_ASSIGN_OR_RETURN(const std::string hash, Sha256File(video.path));
  if (hash == video.content_hash) {
    std::lock_guard<std::mutex> lock(verified_mu);
    verified.insert(key);
    return Status::OK();
  }
  return Status::FailedPrecondition(video.path +
                                    ": changed since it was ingested (the same size, other "
                                    "content: SHA-256 " +
                                    hash.substr(0, 12) + "..., recorded " +
                                    video.content_hash.substr(0, 12) + "...)" + again);
}

bool ClipPtsRange(const VideoRecord& video, const ClipRecord& clip, const std::vector<int64_t>& pts,
                  int64_t* start_pts, int64_t* end_pts) {
  const int64_t n = static_cast<int64_t>(pts.size());
  if (clip.start_frame < 0 || clip.start_frame >= clip.end_frame || clip.end_frame > n) {
    return false;
  }
  *start_pts = pts[static_cast<size_t>(clip.start_frame)];
  *end_pts = clip.end_frame < n ? pts[static_cast<size_t>(clip.end_frame)]
                                : pts.front() + (video.duration / video.time_base).Round();
  return true;
}

}  // namespace reel
