// Json: a small JSON value with a strict parser and a writer.
//
// Used for run configurations, metric details, JSONL exports, `--json` output and (later)
// HTTP bodies. Objects keep insertion order so that written configurations read the way
// they were built. Integers that fit int64 stay integers; other numbers are doubles.
// Dump() always produces valid JSON: NaN and infinities become null, and a byte that is
// not part of valid UTF-8 (file names may hold any bytes) is written as Python's
// surrogateescape writes it, \udcXX for byte XX, so that Python's json.loads gives the
// str that os.fsencode turns back into the same bytes, and Parse reads it back exactly.
//
// Thread-safety: a value type; const methods may be called concurrently.

#ifndef REEL_UTIL_JSON_H_
#define REEL_UTIL_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace reel {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(std::nullptr_t) {}                                               // NOLINT
  Json(bool v) : type_(Type::kBool), int_(v) {}                         // NOLINT
  Json(int v) : type_(Type::kInt), int_(v) {}                           // NOLINT
  Json(int64_t v) : type_(Type::kInt), int_(v) {}                       // NOLINT
  Json(double v) : type_(Type::kDouble), double_(v) {}                  // NOLINT
  Json(const char* v) : type_(Type::kString), string_(v) {}             // NOLINT
  Json(std::string v) : type_(Type::kString), string_(std::move(v)) {}  // NOLINT
  Json(std::string_view v) : type_(Type::kString), string_(v) {}        // NOLINT
  Json(Array v) : type_(Type::kArray), array_(std::move(v)) {}          // NOLINT
  Json(Object v) : type_(Type::kObject), object_(std::move(v)) {}       // NOLINT

  static Json MakeArray() { return Json(Array{}); }
  static Json MakeObject() { return Json(Object{}); }

  // Parses one JSON text (RFC 8259; surrounding whitespace allowed). The error names the
  // line and column.
  static Result<Json> Parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors return the fallback when the type does not match.
  bool as_bool(bool fallback = false) const { return is_bool() ? int_ != 0 : fallback; }
  int64_t as_int(int64_t fallback = 0) const;
  double as_double(double fallback = 0.0) const;
  const std::string& as_string() const;  // empty string when not a string
  const Array& as_array() const;         // empty array when not an array
  const Object& as_object() const;       // empty object when not an object

  // Object access. operator[] turns a null into an object and inserts missing keys.
  Json& operator[](std::string_view key);
  const Json* Find(std::string_view key) const;  // nullptr when absent or not an object
  // Array access. push_back turns a null into an array.
  void push_back(Json v);
  Json& at(size_t i) { return array_.at(i); }
  const Json& at(size_t i) const { return array_.at(i); }
  size_t size() const;  // elements of an array or object, else 0

  // indent < 0: compact one line; otherwise pretty with that many spaces.
  std::string Dump(int indent = -1) const;

  bool operator==(const Json& o) const;
  bool operator!=(const Json& o) const { return !(*this == o); }

 private:
  void DumpTo(std::string* out, int indent, int depth) const;

  Type type_ = Type::kNull;
  int64_t int_ = 0;
  double double_ = 0.0;
  std::string string_;
  Array array_;
  Object object_;
};

// Appends `s` as a quoted JSON string (escapes; \udcXX for a byte not in valid UTF-8).
void AppendJsonString(std::string* out, std::string_view s);
// Formats a double as the shortest text that reads back to the same value ("null" if
// not finite).
std::string FormatJsonNumber(double v);
// A value as a message shows it: a string as it is, a double as FormatShortest writes it
// (0.0003, not 3e-04), anything else as Dump() writes it.
std::string ShowJson(const Json& v);

}  // namespace reel

#endif  // REEL_UTIL_JSON_H_
