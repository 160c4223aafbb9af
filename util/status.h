// Status and Result<T>: how reel reports expected failures.
//
// A Status is either OK or carries a code and a message. Functions whose failure is
// expected for some inputs (a corrupt file, a bad row, a malformed expression) return a
// Status or a Result<T> instead of throwing; exceptions are kept for the unrecoverable
// (out of memory, broken invariants). The message names the object and the cause, e.g.
// "clip.mp4: moov atom not found", so callers can print it as one line.
//
// Thread-safety: Status and Result are values; distinct objects may be used from
// different threads, a single object needs external synchronisation to be mutated.

#ifndef REEL_UTIL_STATUS_H_
#define REEL_UTIL_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace reel {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (bad option, malformed text)
  kNotFound,            // a file, row or model that should exist does not
  kAlreadyExists,       // a unique thing would be created twice
  kCorruption,          // data exists but cannot be decoded (truncated video, bad catalog)
  kNotSupported,        // valid input that reel cannot handle (unknown codec)
  kIOError,             // the operating system refused (permissions, disk full)
  kFailedPrecondition,  // the system is not in the state the call needs
  kUnavailable,         // a service or the network could not be reached
  kCancelled,           // the work was stopped on request
  kInternal,            // a bug: an invariant did not hold
};

// Returns a short lower-case name for the code ("invalid argument", "io error", ...).
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return Status(StatusCode::kInvalidArgument, std::move(msg));
  }
  static Status NotFound(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) {
    return Status(StatusCode::kAlreadyExists, std::move(msg));
  }
  static Status Corruption(std::string msg) {
    return Status(StatusCode::kCorruption, std::move(msg));
  }
  static Status NotSupported(std::string msg) {
    return Status(StatusCode::kNotSupported, std::move(msg));
  }
  static Status IOError(std::string msg) { return Status(StatusCode::kIOError, std::move(msg)); }
  static Status FailedPrecondition(std::string msg) {
    return Status(StatusCode::kFailedPrecondition, std::move(msg));
  }
  static Status Unavailable(std::string msg) {
    return Status(StatusCode::kUnavailable, std::move(msg));
  }
  static Status Cancelled(std::string msg) {
    return Status(StatusCode::kCancelled, std::move(msg));
  }
  static Status Internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message" (no-op when OK).
  Status WithContext(std::string_view context) const;

  // Marks a status as deliberately unchecked (e.g. a best-effort rollback after an error
  // that is already being reported).
  void IgnoreError() const {}

  // "OK", or "<code name>: <message>".
  std::string ToString() const;

  bool operator==(const Status& o) const { return code_ == o.code_ && message_ == o.message_; }
  bool operator!=(const Status& o) const { return !(*this == o); }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT(runtime/explicit)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(runtime/explicit)
    assert(!std::get<Status>(data_).ok() && "Result constructed from an OK status");
    if (std::get<Status>(data_).ok()) data_ = Status::Internal("Result built from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  // OK when a value is held. The reference lives as long as this Result.
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }

  T& value() & {
    assert(ok());
    return std::get<T>(data_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(data_);
  }
  // On a temporary Result the value is moved out, so `for (x : *Load())` and
  // `auto&& v = Load().value()` own their data instead of dangling.
  T value() && {
    assert(ok());
    return std::get<T>(std::move(data_));
  }
  T value_or(T fallback) const { return ok() ? std::get<T>(data_) : std::move(fallback); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace reel

#define REEL_STATUS_CONCAT_INNER(a, b) a##b
#define REEL_STATUS_CONCAT(a, b) REEL_STATUS_CONCAT_INNER(a, b)

// Evaluates `expr` (a Status); returns it from the enclosing function when not OK.
#define REEL_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::reel::Status _reel_status = (expr);        \
    if (!_reel_status.ok()) return _reel_status; \
  } while (0)

// `lhs = value of expr` (a Result<T>), or returns its Status from the enclosing function.
// Expands to several statements: inside an `if` or a loop, use braces.
#define REEL_ASSIGN_OR_RETURN(lhs, expr) \
  REEL_ASSIGN_OR_RETURN_IMPL(REEL_STATUS_CONCAT(_reel_result_, __LINE__), lhs, expr)
#define REEL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // REEL_UTIL_STATUS_H_
