#include "util/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace reel {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;

}  // namespace

void SetLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
LogLevel GetLogLevel() {
  return static_cast<LogLevel>(g_level.load());
}
bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load();
}

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level) || level == LogLevel::kSilent) return;
  const char* prefix = "";
  switch (level) {
    case LogLevel::kDebug:
      prefix = "debug: ";
      break;
    case LogLevel::kWarning:
      prefix = "warning: ";
      break;
    case LogLevel::kError:
      prefix = "error: ";
      break;
    default:
      break;
  }
  std::string line = "reel: ";
  line += prefix;
  line += message;
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace reel
