// Filesystem helpers that do not go through std::filesystem where libtorch is linked.
//
// libtorch 2.x as PyTorch's wheels ship it (libtorch.so) exports its own copy of parts of
// std::filesystem, and the dynamic linker binds a program's calls to it: there
// std::filesystem::remove_all jumps to a null address (seen with torch 2.11.0+cu130 and
// GCC 13). Code that is linked with libtorch removes trees with RemoveTree instead.

#ifndef REEL_UTIL_FILES_H_
#define REEL_UTIL_FILES_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "util/status.h"

namespace reel {

enum class TreeEntry { kFile, kDirectory };

struct WalkOptions {
  bool recursive = true;    // descend into sub-folders (else only the root's entries)
  bool skip_hidden = true;  // leave out names starting with '.' (and what is under them)
};

// Calls `visit(path, kind)` for every regular file and folder under the folder `root`
// (not for root itself), as `root/.../name`. Symbolic links are followed, to files and to
// folders; a folder reached again (a link back up the tree, or two links to one place) is
// visited once, so a link loop ends. Names that lead nowhere (a dangling link, a link to
// itself) and other kinds (sockets, devices, FIFOs) are skipped. A folder under root that
// cannot be listed (no permission) is visited, not entered, and listed in `unreadable`
// with the cause when that is not null. Fails only when `root` itself cannot be listed.
// Order: directory order, not sorted. Thread-safe (no shared state).
Status WalkTree(const std::string& root, const WalkOptions& options,
                const std::function<void(const std::string& path, TreeEntry kind)>& visit,
                std::vector<std::pair<std::string, std::string>>* unreadable = nullptr);

// Removes `path` and, if it is a directory, everything under it, without following
// symbolic links. A missing path is OK. Errors name the path and the cause. Thread-safe
// (no shared state), but not against other processes changing the tree meanwhile.
Status RemoveTree(const std::string& path);

}  // namespace reel

#endif  // REEL_UTIL_FILES_H_
