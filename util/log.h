// Minimal levelled logging to stderr. The `reel` command sets the level from
// --verbose/--quiet; libraries log only at kDebug/kInfo and report failures as Status
// values, never by logging and returning empty.
//
// Thread-safety: Log() may be called from any thread; lines are written whole.

#ifndef REEL_UTIL_LOG_H_
#define REEL_UTIL_LOG_H_

#include <string_view>

namespace reel {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kSilent = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool LogEnabled(LogLevel level);
// Writes "reel: <level>: <message>" (level omitted for kInfo) when enabled.
void Log(LogLevel level, std::string_view message);

}  // namespace reel

#endif  // REEL_UTIL_LOG_H_
