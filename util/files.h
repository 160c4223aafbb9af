// Filesystem helpers that do not go through std::filesystem where libtorch is linked.
//
// libtorch 2.x as PyTorch's wheels ship it (libtorch.so) exports its own copy of parts of
// std::filesystem, and the dynamic linker binds a program's calls to it: there
// std::filesystem::remove_all jumps to a null address (seen with torch 2.11.0+cu130 and
// GCC 13). Code that is linked with libtorch removes trees with RemoveTree instead.

#ifndef REEL_UTIL_FILES_H_
#define REEL_UTIL_FILES_H_

#include <string>

#include "util/status.h"

namespace reel {

// Removes `path` and, if it is a directory, everything under it, without following
// symbolic links. A missing path is OK. Errors name the path and the cause. Thread-safe
// (no shared state), but not against other processes changing the tree meanwhile.
Status RemoveTree(const std::string& path);

}  // namespace reel

#endif  // REEL_UTIL_FILES_H_
