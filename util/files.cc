#include "util/files.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace reel {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  return Status::IOError(path + ": cannot " + what + " (" + std::strerror(errno) + ")");
}

// Folders already entered, by device and inode.
using Visited = std::set<std::pair<dev_t, ino_t>>;

void Walk(const std::string& dir, const WalkOptions& options,
          const std::function<void(const std::string&, TreeEntry)>& visit, Visited* visited,
          std::vector<std::pair<std::string, std::string>>* unreadable) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    if (unreadable != nullptr) unreadable->emplace_back(dir, std::strerror(errno));
    return;
  }
  std::vector<std::string> folders;
  while (const dirent* entry = ::readdir(handle)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (options.skip_hidden && name[0] == '.') continue;
    const std::string path = dir.back() == '/' ? dir + name : dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // follows links: dangling ones fail
    if (S_ISREG(st.st_mode)) {
      visit(path, TreeEntry::kFile);
    } else if (S_ISDIR(st.st_mode) && visited->insert({st.st_dev, st.st_ino}).second) {
      visit(path, TreeEntry::kDirectory);
      if (options.recursive) folders.push_back(path);
    }
  }
  ::closedir(handle);  // before descending: one open handle per level at most
  for (const std::string& folder : folders) Walk(folder, options, visit, visited, unreadable);
}

}  // namespace

Status WalkTree(const std::string& root, const WalkOptions& options,
                const std::function<void(const std::string& path, TreeEntry kind)>& visit,
                std::vector<std::pair<std::string, std::string>>* unreadable) {
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) return Errno("open", root);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(root + ": not a folder");
  DIR* probe = ::opendir(root.c_str());
  if (probe == nullptr) return Errno("list", root);
  ::closedir(probe);
  Visited visited{{st.st_dev, st.st_ino}};
  Walk(root, options, visit, &visited, unreadable);
  return Status::OK();
}

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
