// Small string and file helpers shared by every module.

#ifndef REEL_UTIL_STRINGS_H_
#define REEL_UTIL_STRINGS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace reel {

std::vector<std::string> Split(std::string_view s, char sep, bool skip_empty = false);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view Trim(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);
// Up to the first newline (all of `s` when it has none): the headline of a library's
// multi-line error message.
std::string FirstLine(std::string_view s);
std::string ToLower(std::string_view s);

// "1.5 GiB", "312 KiB", "17 B".
std::string FormatBytes(uint64_t bytes);
// "1h02m", "3m05s", "4.2s".
std::string FormatDuration(double seconds);
// Fixed-point formatting with `digits` decimals ("3.14").
std::string FormatFixed(double v, int digits);
// The shortest text that reads back as `v`, as printf's %g lays it out ("0.0003", "-1",
// "1e-06", "10"); "nan", "inf" and "-inf" by name: a value as a message shows it.
std::string FormatShortest(double v);

// Natural order: "frame2.png" < "frame10.png" (digit runs compare by value).
bool NaturalLess(std::string_view a, std::string_view b);

// Standard base64 (RFC 4648, with padding), as used in data: URIs; Base64Decode fails
// on characters outside the alphabet.
std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

// Whole-file read, and an atomic write (temporary file in the same folder, fsync, rename).
Result<std::string> ReadFile(const std::string& path);
Status WriteFileAtomic(const std::string& path, std::string_view contents);

// Appends code point `cp` encoded as UTF-8.
void AppendUtf8(std::string* out, uint32_t cp);
// Length of the valid UTF-8 sequence starting at s[i] (1 to 4), or 0 where it is not
// one (a stray byte, an overlong form, a surrogate, past U+10FFFF, cut short).
size_t Utf8SequenceLength(std::string_view s, size_t i);
// The same, also giving the sequence's code point (untouched when it returns 0).
size_t DecodeUtf8Sequence(std::string_view s, size_t i, uint32_t* code_point);
bool IsValidUtf8(std::string_view s);
// `s` with each byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string ReplaceInvalidUtf8(std::string_view s);

// The text of a file's bytes as UTF-8, for text files written by any editor: a UTF-8
// byte-order mark is dropped and UTF-16 with a byte-order mark (as Windows tools save
// "Unicode" text) is converted. Fails, naming `name` and the byte offset, on UTF-16 that
// does not decode (odd length, lone surrogate) and on text holding NUL bytes (UTF-16
// without a mark, UTF-32, or not text at all), which would otherwise pass on as text full
// of NULs. Other bytes pass unchanged (invalid UTF-8 included).
Result<std::string> TextAsUtf8(std::string bytes, const std::string& name);
// ReadFile(path), then TextAsUtf8 on its bytes.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace reel

#endif  // REEL_UTIL_STRINGS_H_
