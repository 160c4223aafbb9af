// Checkpoint folders written atomically: a fresh temporary folder beside the target is
// filled, then swapped into place (the previous folder removed only after the new one is
// there), so a crash leaves either the old checkpoint or the new one, never half of one.
//
// Thread-safety: one writer per target folder.

#ifndef REEL_GENERATE_CHECKPOINT_FILES_H_
#define REEL_GENERATE_CHECKPOINT_FILES_H_

#include <string>

#include "generate/config.h"
#include "util/json.h"
#include "util/status.h"

namespace reel::gen {

// Creates an empty temporary folder for `dir` and returns its path.
Result<std::string> BeginFolder(const std::string& dir);
// Writes `j` (indented) to `folder`/`name`.
Status WriteJsonFile(const std::string& folder, const std::string& name, const Json& j);
// Replaces `dir` with the finished temporary folder.
Status CommitFolder(const std::string& tmp, const std::string& dir);
// Reads `dir`/config.json and checks its "format" field; NotFound names the file.
Result<Json> ReadConfigJson(const std::string& dir, const std::string& format,
                            const std::string& what);
// The model configuration and "train" object of `dir`'s config.json `j` (Corruption
// naming the file when the configuration is unreadable). `step` is left 0 for the caller:
// denoiser and VAE folders keep it in different places.
Result<SavedTraining> SavedTrainingFromJson(const std::string& dir, const Json& j);
// FailedPrecondition: the training saved in `dir` already reached `step`, which a resume
// to `steps` (no more than that) would not go past.
Status AlreadyTrained(const std::string& dir, int64_t step);

}  // namespace reel::gen

#endif  // REEL_GENERATE_CHECKPOINT_FILES_H_
