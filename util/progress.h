// Progress: reports how far a long job has come.
//
// On a terminal it draws one self-updating bar line (count, percent, rate, ETA); when the
// output is not a terminal (a log file, CI, Slurm) it prints a plain line every
// `line_every` items or `line_seconds` seconds, whichever comes first, so logs stay
// readable. Style kNone prints nothing (used with --quiet and --json).
//
// Thread-safety: Advance(), SetTotal() and Finish() may be called from any thread.

#ifndef REEL_UTIL_PROGRESS_H_
#define REEL_UTIL_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace reel {

class Progress {
 public:
  enum class Style { kAuto, kBar, kLines, kNone };
  struct Options {
    std::string label = "progress";  // e.g. "ingest"
    std::string unit = "items";      // e.g. "files", "frames"
    int64_t total = -1;              // -1 when unknown
    Style style = Style::kAuto;
    int64_t line_every = 100;
    double line_seconds = 10.0;
    FILE* out = stderr;  // not owned
  };

  explicit Progress(Options options);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void SetTotal(int64_t total);
  // Counts n more items done; `note` (e.g. the current file) is shown on the bar.
  void Advance(int64_t n = 1, std::string_view note = {});
  // Ends the bar (newline) and prints `summary` as a final line when not empty.
  void Finish(std::string_view summary = {});

  int64_t done() const;
  // The resolved style (kAuto is resolved at construction).
  Style style() const { return style_; }

 private:
  void DrawLocked(bool final_draw);
  std::string StatsLocked(double elapsed) const;

  Options options_;
  Style style_;
  mutable std::mutex mu_;
  int64_t done_ = 0;
  int64_t last_line_done_ = 0;
  std::string note_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool finished_ = false;
};

}  // namespace reel

#endif  // REEL_UTIL_PROGRESS_H_
