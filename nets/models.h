// The pretrained files reel knows: where they come from, their SHA-256, where they live.
//
// Installed models live in the models folder: $REEL_MODELS_DIR, else
// $XDG_CACHE_HOME/reel/models, else ~/.cache/reel/models. `reel models fetch NAME`
// downloads a model from its official URL (or a mirror) and keeps it only if its SHA-256
// matches. Commands that need a model accept a registry name or a file path, and say
// which model is missing and how to get it.
//
// Thread-safety: pure functions over constant data and the environment.

#ifndef REEL_NETS_MODELS_H_
#define REEL_NETS_MODELS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace reel {

struct ModelSpec {
  std::string name;         // "clip-vit-b-32"
  std::string kind;         // "clip", "vocab", ...
  std::string file;         // file name in the models folder
  std::string url;          // official download URL
  std::string sha256;       // of the file
  int64_t approx_bytes = 0;  // rounded, for display
  std::string description;
  std::vector<std::string> needs;  // other models fetched along (the CLIP vocabulary)
};

const std::vector<ModelSpec>& ModelRegistry();
Result<ModelSpec> FindModelSpec(std::string_view name);

std::string ModelsDir();
// The installed file of a registry model, or NotFound saying how to fetch it.
Result<std::string> InstalledModelPath(std::string_view name);
// A registry name (installed) or a path to an existing file.
Result<std::string> ResolveModel(std::string_view name_or_path);

}  // namespace reel

#endif  // REEL_NETS_MODELS_H_
