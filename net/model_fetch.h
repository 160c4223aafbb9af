// Fetching pretrained files: download, verify the SHA-256, then install.
//
// The file is downloaded next to its final place and renamed into the models folder only
// when its SHA-256 matches; a mismatch deletes it and says both digests. Without network
// the error says so.
//
// Thread-safety: independent calls for different files may run concurrently.

#ifndef REEL_NET_MODEL_FETCH_H_
#define REEL_NET_MODEL_FETCH_H_

#include <cstdint>
#include <functional>
#include <string>

#include "nets/models.h"
#include "util/status.h"

namespace reel {

// Downloads `spec` from `url` (its official URL when empty) into ModelsDir(). Returns the
// installed path. An already installed file with the right digest is kept.
Result<std::string> FetchModel(const ModelSpec& spec, const std::string& url = "",
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace reel

#endif  // REEL_NET_MODEL_FETCH_H_
