// Helpers shared by reel's test binaries: temporary folders, running processes, paths
// to the built `reel` binary and to ../shared test data, and small test videos.

#ifndef REEL_TESTS_SUPPORT_TEST_SUPPORT_H_
#define REEL_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"
#include "video/encoder.h"
#include "video/synthetic.h"

namespace reel::testing {

// A fresh folder under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] with arguments (no shell), capturing stdout and stderr.
ProcessResult RunProcess(const std::vector<std::string>& argv);
// Runs the built `reel` binary with `args`.
ProcessResult RunReel(const std::vector<std::string>& args);

std::string ReelBinary();
// The source tree root.
std::string SourceDir();
// ../shared/data beside the source tree, or "" when absent.
std::string SharedDataDir();
bool HaveFfmpegCli();

// Writes `contents` to `path` (creating or truncating it).
void WriteFile(const std::string& path, const std::string& contents);
// The bytes of the file at `path` (empty when it cannot be read).
std::string ReadFile(const std::string& path);

// PSNR in dB of two runs of `n` 8-bit samples (99 when they are equal).
double Psnr8(const uint8_t* a, const uint8_t* b, size_t n);

// A short moving-box video: `frames` frames at `fps`, `width` x `height`.
SyntheticVideo SimpleVideo(int64_t frames, int width = 64, int height = 48,
                           Rational fps = Rational(25, 1));

// A camera over a fixed picture in colours lo..hi, panning (dx) and tilting (dy) by that
// many pixels per frame (positive dx pans right, positive dy tilts down).
SceneSpec StillScene(int64_t frames, Rgb lo, Rgb hi, double dx, double dy = 0);

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_TEST_SUPPORT_H_
