// A per-test scratch file path for test binaries that do not link test_support (the
// libtorch-only ones). CTest runs every test case as its own process, in parallel, so
// a fixed name under $TMPDIR would be shared by concurrent tests; this one is not.
// Whatever is left at a path it gave is removed when the test process exits normally, so
// that runs do not pile files up in $TMPDIR.

#ifndef REEL_TESTS_SUPPORT_SCRATCH_PATH_H_
#define REEL_TESTS_SUPPORT_SCRATCH_PATH_H_

#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/files.h"

namespace reel::testing {

// The paths ScratchPath gave, removed (files and trees) at exit.
class ScratchPaths {
 public:
  ~ScratchPaths() {
    for (const std::string& p : paths_) (void)RemoveTree(p);
  }
  void Add(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    paths_.push_back(path);
  }

 private:
  std::mutex mu_;
  std::vector<std::string> paths_;
};

// $TMPDIR/<suite>.<test>.<pid>.<name>; unique per running test case.
inline std::string ScratchPath(const std::string& name) {
  static ScratchPaths paths;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string stem = info != nullptr ? std::string(info->test_suite_name()) + "." + info->name()
                                     : std::string("global");
  for (char& c : stem) {
    if (c == '/') c = '_';  // parameterised test names
  }
  std::string path =
      ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid()) + "." + name;
  paths.Add(path);
  return path;
}

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_SCRATCH_PATH_H_
