# Read by ctest after the discovered gtest cases are defined (see tests/CMakeLists.txt).
#
# The conditioning test trains the CPU-size model for minutes on every core. Beside another
# test it took 314-458 s of its 600 s limit; alone it takes about 170 s (2 vCPUs). It runs
# alone, with room to spare on a slower machine.
set_tests_properties(ConditioningTest.EachCaptionSamplesItsOwnClip PROPERTIES
  RUN_SERIAL TRUE TIMEOUT 1200)
