#include "net/model_fetch.h"

#include <cstdio>
#include <filesystem>

#include "net/http_client.h"
#include "util/sha256.h"

namespace reel {

Result<std::string> FetchModel(const ModelSpec& spec, const std::string& url,
                               const std::function<void(int64_t, int64_t)>& progress) {
  const std::string dir = ModelsDir();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError(dir + ": " + ec.message());
  const std::string path = dir + "/" + spec.file;
  if (std::filesystem::exists(path, ec)) {
    REEL_ASSIGN_OR_RETURN(std::string have, Sha256File(path));
    if (have == spec.sha256) return path;
  }
  const std::string source = url.empty() ? spec.url : url;
  const std::string download = path + ".download";
  Status s = HttpDownload(source, download, progress);
  if (!s.ok()) return s.WithContext("fetching model '" + spec.name + "'");
  REEL_ASSIGN_OR_RETURN(std::string digest, Sha256File(download));
  if (digest != spec.sha256) {
    std::remove(download.c_str());
    return Status::Corruption("model '" + spec.name + "' from " + source +
                              ": SHA-256 is " + digest + ", expected " + spec.sha256 +
                              "; the file was not installed");
  }
  if (std::rename(download.c_str(), path.c_str()) != 0) {
    return Status::IOError(path + ": cannot move the download into place");
  }
  return path;
}

}  // namespace reel
