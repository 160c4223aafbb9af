// A per-test scratch file path for test binaries that do not link test_support (the
// libtorch-only ones). CTest runs every test case as its own process, in parallel, so
// a fixed name under $TMPDIR would be shared by concurrent tests; this one is not.

#ifndef REEL_TESTS_SUPPORT_SCRATCH_PATH_H_
#define REEL_TESTS_SUPPORT_SCRATCH_PATH_H_

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace reel::testing {

// $TMPDIR/<suite>.<test>.<pid>.<name>; unique per running test case.
inline std::string ScratchPath(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string stem = info != nullptr
                         ? std::string(info->test_suite_name()) + "." + info->name()
                         : std::string("global");
  for (char& c : stem) {
    if (c == '/') c = '_';  // parameterised test names
  }
  return ::testing::TempDir() + "/" + stem + "." + std::to_string(::getpid()) + "." + name;
}

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_SCRATCH_PATH_H_
