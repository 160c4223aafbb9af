#include "util/files.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace reel {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  return Status::IOError(path + ": cannot " + what + " (" + std::strerror(errno) + ")");
}

}  // namespace

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::OK() : Errno("stat", path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("remove", path);
    return Status::OK();
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return Errno("open", path);
  Status status;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    status = RemoveTree(path + "/" + name);
    if (!status.ok()) break;
  }
  ::closedir(dir);
  if (!status.ok()) return status;
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return Errno("remove", path);
  return Status::OK();
}

}  // namespace reel
