// "--name value" flags for the bench binaries that are plain programs (not Google
// Benchmark): each flag is bound to a variable that holds its default. An unknown flag, a
// flag without its value and a value that does not parse whole (or is not one of a
// string flag's choices) all print the usage line.
//
//   BenchFlags flags("usage: bench_x [--steps N]");
//   flags.Add("--steps", &steps);
//   if (!flags.Parse(argc, argv)) return 2;

#ifndef REEL_BENCHMARKS_BENCH_FLAGS_H_
#define REEL_BENCHMARKS_BENCH_FLAGS_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace reel::bench {

class BenchFlags {
 public:
  explicit BenchFlags(std::string usage) : usage_(std::move(usage)) {}

  // A string flag; with `choices`, only those values are taken.
  void Add(const std::string& name, std::string* v, std::vector<std::string> choices = {}) {
    setters_[name] = [v, choices = std::move(choices)](const std::string& s) {
      if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end())
        return false;
      *v = s;
      return true;
    };
  }
  void Add(const std::string& name, int* v) {
    setters_[name] = [v](const std::string& s) { return Whole(s, std::strtol, v); };
  }
  void Add(const std::string& name, int64_t* v) {
    setters_[name] = [v](const std::string& s) { return Whole(s, std::strtoll, v); };
  }
  void Add(const std::string& name, double* v) {
    setters_[name] = [v](const std::string& s) {
      char* end = nullptr;
      const double x = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0') return false;
      *v = x;
      return true;
    };
  }

  // Sets the bound variables; false (after printing what is wrong and the usage) on a
  // flag that is unknown, lacks its value or has one that does not parse.
  bool Parse(int argc, char** argv) const {
    for (int i = 1; i < argc; i += 2) {
      const std::string name = argv[i];
      const auto it = setters_.find(name);
      if (it == setters_.end()) return Fail("unknown flag " + name);
      if (i + 1 >= argc) return Fail(name + " needs a value");
      if (!it->second(argv[i + 1])) return Fail(name + ": cannot parse '" + argv[i + 1] + "'");
    }
    return true;
  }

 private:
  template <typename Int, typename Parse>
  static bool Whole(const std::string& s, Parse parse, Int* v) {
    char* end = nullptr;
    const auto x = parse(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') return false;
    *v = static_cast<Int>(x);
    return true;
  }
  bool Fail(const std::string& what) const {
    std::fprintf(stderr, "%s\n%s\n", what.c_str(), usage_.c_str());
    return false;
  }

  std::string usage_;
  std::map<std::string, std::function<bool(const std::string&)>> setters_;
};

}  // namespace reel::bench

#endif  // REEL_BENCHMARKS_BENCH_FLAGS_H_
