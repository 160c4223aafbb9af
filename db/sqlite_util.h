// Private to the db module: a thin RAII layer over sqlite3 statements.

#ifndef REEL_DB_SQLITE_UTIL_H_
#define REEL_DB_SQLITE_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sqlite3.h>

#include "util/json.h"
#include "util/rational.h"
#include "util/status.h"

namespace reel::sql {

// Status for the last error on `db`, prefixed with `context`.
Status Error(sqlite3* db, std::string_view context);

class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& o) noexcept : stmt_(o.stmt_), db_(o.db_) { o.stmt_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  // Prepares exactly one statement; `tail` (if given) receives what follows it.
  static Result<Stmt> Prepare(sqlite3* db, std::string_view sql, std::string_view* tail = nullptr);

  Stmt& Bind(int index, int64_t v);
  Stmt& Bind(int index, int v) { return Bind(index, static_cast<int64_t>(v)); }
  Stmt& Bind(int index, bool v) { return Bind(index, static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& Bind(int index, double v);
  Stmt& Bind(int index, std::string_view v);
  Stmt& Bind(int index, const std::string& v) { return Bind(index, std::string_view(v)); }
  Stmt& Bind(int index, const char* v) { return Bind(index, std::string_view(v)); }
  Stmt& BindNull(int index);
  // Binds bytes as a BLOB (an empty one, not NULL, when `size` is 0).
  Stmt& BindBlob(int index, const void* data, size_t size);
  template <typename T>
  Stmt& Bind(int index, const std::optional<T>& v) {
    return v.has_value() ? Bind(index, *v) : BindNull(index);
  }

  // Returns true when a row is available, false when done.
  Result<bool> Step();
  // Steps a statement that returns no rows.
  Status Run();
  void Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;
  // The column's bytes, valid until the next Step/Reset.
  std::string_view Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr || n <= 0
               ? std::string_view()
               : std::string_view(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptInt(int col) const {
    return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col));
  }
  int columns() const { return sqlite3_column_count(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  Stmt(sqlite3_stmt* s, sqlite3* db) : stmt_(s), db_(db) {}
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
};

// Runs one or more statements that return no rows.
Status Exec(sqlite3* db, const std::string& sql);

// The first column of the first row as an integer (0 when there is no row).
Result<int64_t> ScalarInt(sqlite3* db, const std::string& sql);

// Rationals are stored as two INTEGER columns; NULL reads as 0/1 and invalid binds NULL.
Rational ReadRational(const Stmt& s, int num_col, int den_col);
void BindRational(Stmt& s, int num_index, Rational r);
void BindOptionalText(Stmt& s, int index, const std::string& text);  // "" -> NULL

// Runs `sql`, an "UPDATE ... SET x = ?2 WHERE id = ?1"; NotFound naming `what` when no row
// has that id.
template <typename T>
Status UpdateById(sqlite3* db, const char* sql, int64_t id, const T& value,
                  const std::string& what) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db, sql));
  s.Bind(1, id).Bind(2, value);
  REEL_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db) != 1) return Status::NotFound(what + " " + std::to_string(id));
  return Status::OK();
}

// A JSON column, or `fallback` when empty or unparseable.
Json ParseJsonOr(const std::string& text, Json fallback);

template <typename T, typename Reader>
Result<std::vector<T>> ReadAll(Stmt& s, Reader read) {
  std::vector<T> out;
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    REEL_ASSIGN_OR_RETURN(T item, read(s));
    out.push_back(std::move(item));
  }
  return out;
}

template <typename T, typename Reader>
Result<std::optional<T>> ReadOne(Stmt& s, Reader read) {
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<T>();
  REEL_ASSIGN_OR_RETURN(T item, read(s));
  return std::optional<T>(std::move(item));
}

}  // namespace reel::sql

#endif  // REEL_DB_SQLITE_UTIL_H_
