#include "generate/checkpoint_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/files.h"
#include "util/strings.h"

namespace reel::gen {

namespace fs = std::filesystem;

Result<std::string> BeginFolder(const std::string& dir) {
  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  REEL_RETURN_IF_ERROR(RemoveTree(tmp));  // a crashed save's leftovers
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return Status::IOError(tmp + ": " + ec.message());
  return tmp;
}

Status WriteJsonFile(const std::string& folder, const std::string& name, const Json& j) {
  const std::string path = folder + "/" + name;
  std::ofstream f(path, std::ios::trunc);
  f << j.Dump(2) << '\n';
  f.close();
  if (!f) return Status::IOError(path + ": cannot write");
  return Status::OK();
}

Status CommitFolder(const std::string& tmp, const std::string& dir) {
  std::error_code ec;
  const std::string old = dir + ".old-" + std::to_string(::getpid());
  if (fs::exists(dir)) fs::rename(dir, old, ec);
  if (ec) return Status::IOError(dir + ": " + ec.message());
  fs::rename(tmp, dir, ec);
  if (ec) return Status::IOError(dir + ": " + ec.message());
  // The new folder is in place; a previous one that cannot be removed is only left over.
  (void)RemoveTree(old);
  return Status::OK();
}

Result<Json> ReadConfigJson(const std::string& dir, const std::string& format,
                            const std::string& what) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  if (!f) return Status::NotFound(path + ": missing; not a " + what);
  std::stringstream text;
  text << f.rdbuf();
  auto j = Json::Parse(text.str());
  if (!j.ok()) return Status::Corruption(path + ": " + j.status().message());
  const Json* fmt = j->Find("format");
  if (fmt == nullptr || !fmt->is_string()) return Status::Corruption(path + ": not a " + what);
  if (fmt->as_string() != format) {
    const std::string kind = format.substr(0, format.find(' '));
    if (StartsWith(fmt->as_string(), kind + " ")) {
      return Status::Corruption(path + ": format '" + fmt->as_string() +
                                "', but this reel reads '" + format +
                                "' (an older layout); make the " + what + " again");
    }
    return Status::Corruption(path + ": not a " + what);
  }
  return *j;
}

Result<SavedTraining> SavedTrainingFromJson(const std::string& dir, const Json& j) {
  auto config = ModelConfig::FromJson(j.Find("model") != nullptr ? *j.Find("model") : Json());
  if (!config.ok()) return Status::Corruption(dir + "/config.json: " + config.status().message());
  SavedTraining saved;
  saved.config = std::move(*config);
  if (const Json* t = j.Find("train"); t != nullptr) saved.train = *t;
  return saved;
}

Status AlreadyTrained(const std::string& dir, int64_t step) {
  return Status::FailedPrecondition(dir + ": already trained " + std::to_string(step) +
                                    " steps; --steps must be more to continue");
}

}  // namespace reel::gen
