#include "util/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "util/strings.h"

namespace reel {
namespace {

int TerminalWidth(FILE* out) {
  struct winsize ws {};
  if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
  return 80;
}

}  // namespace

Progress::Progress(Options options) : options_(std::move(options)), style_(options_.style) {
  if (style_ == Style::kAuto) {
    style_ =
        (options_.out != nullptr && isatty(fileno(options_.out))) ? Style::kBar : Style::kLines;
  }
  if (options_.out == nullptr) style_ = Style::kNone;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!finished_ && style_ == Style::kBar && done_ > 0) std::fputc('\n', options_.out);
}

void Progress::SetTotal(int64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.total = total;
}

int64_t Progress::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

void Progress::Advance(int64_t n, std::string_view note) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  if (!note.empty()) note_ = std::string(note);
  if (style_ == Style::kNone) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (style_ == Style::kBar) {
    if (since_draw >= 0.1 || done_ == options_.total) DrawLocked(false);
  } else if (done_ - last_line_done_ >= options_.line_every ||
             since_draw >= options_.line_seconds) {
    DrawLocked(false);
  }
}

void Progress::Finish(std::string_view summary) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (style_ == Style::kNone) return;
  if (style_ == Style::kBar) {
    DrawLocked(true);
    std::fputc('\n', options_.out);
  } else if (done_ != last_line_done_) {
    DrawLocked(true);
  }
  if (!summary.empty()) {
    std::fprintf(options_.out, "%.*s\n", static_cast<int>(summary.size()), summary.data());
  }
  std::fflush(options_.out);
}

std::string Progress::StatsLocked(double elapsed) const {
  std::string s = std::to_string(done_);
  if (options_.total >= 0) s += "/" + std::to_string(options_.total);
  s += " " + options_.unit;
  if (options_.total > 0) {
    s += " (" + std::to_string(done_ * 100 / options_.total) + "%)";
  }
  if (elapsed > 0 && done_ > 0) {
    const double rate = done_ / elapsed;
    s += ", " + FormatFixed(rate, rate < 10 ? 2 : 1) + "/s";
    if (options_.total > done_) {
      s += ", ETA " + FormatDuration((options_.total - done_) / rate);
    }
  }
  return s;
}

void Progress::DrawLocked(bool final_draw) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  last_draw_ = now;
  last_line_done_ = done_;
  const std::string stats = StatsLocked(elapsed);
  if (style_ == Style::kLines) {
    std::fprintf(options_.out, "%s: %s\n", options_.label.c_str(), stats.c_str());
    std::fflush(options_.out);
    return;
  }
  const int width = TerminalWidth(options_.out);
  std::string line = options_.label + " ";
  if (options_.total > 0) {
    const int bar_width = std::clamp(width / 4, 10, 40);
    const int filled = static_cast<int>(
        std::min<int64_t>(bar_width, done_ * bar_width / std::max<int64_t>(1, options_.total)));
    line += "[" + std::string(filled, '#') + std::string(bar_width - filled, '-') + "] ";
  }
  line += stats;
  if (!final_draw && !note_.empty()) line += "  " + note_;
  if (static_cast<int>(line.size()) > width - 1) line.resize(width - 1);
  std::fprintf(options_.out, "\r%s\x1b[K", line.c_str());
  std::fflush(options_.out);
}

}  // namespace reel
