// Whether a catalogued video's file still holds what the catalog recorded of it.
//
// Clips are frame indices and timestamps of the file as it was ingested and scanned; a
// file replaced since (re-encoded, trimmed, another video under the same name) would be
// cut, captioned or trained on at the wrong frames. Work that trusts a VideoRecord checks
// first.

#ifndef REEL_DB_VIDEO_FILE_H_
#define REEL_DB_VIDEO_FILE_H_

#include <cstdint>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"

namespace reel {

// OK when the file has the recorded size and mtime, or, when only the stamp moved (a
// copy, a touch), the recorded SHA-256 (read once per path, size and mtime in a process:
// the answer is remembered). Fails with kFailedPrecondition "PATH: changed since it was
// ingested (...); run `reel curate ingest` on it again ...", with kIOError naming the
// path and the system's error when it is gone or unreadable. Thread-safe.
Status CheckUnchangedSinceIngest(const VideoRecord& video);

// The pts of `clip`'s first frame and the pts it ends at (its end frame's; for a clip that
// runs to the end of the video, the first frame's plus the video's duration), from the
// scan's per-frame `pts` of `video`. False when `pts` does not cover the clip.
bool ClipPtsRange(const VideoRecord& video, const ClipRecord& clip, const std::vector<int64_t>& pts,
                  int64_t* start_pts, int64_t* end_pts);

}  // namespace reel

#endif  // REEL_DB_VIDEO_FILE_H_
