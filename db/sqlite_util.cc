#include "db/sqlite_util.h"

namespace reel::sql {

Status Error(sqlite3* db, std::string_view context) {
  const int code = sqlite3_extended_errcode(db);
  std::string msg(context);
  msg += ": ";
  msg += sqlite3_errmsg(db);
  switch (code & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_CONSTRAINT:
      return Status::AlreadyExists(msg);
    case SQLITE_READONLY:
    case SQLITE_AUTH:
    case SQLITE_ERROR:
      return Status::InvalidArgument(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg);
    default:
      return Status::IOError(msg);
  }
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    stmt_ = o.stmt_;
    db_ = o.db_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Result<Stmt> Stmt::Prepare(sqlite3* db, std::string_view sql, std::string_view* tail) {
  sqlite3_stmt* s = nullptr;
  const char* rest = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s, &rest);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return Error(db, "SQL error");
  }
  if (tail != nullptr) {
    *tail =
        rest != nullptr ? sql.substr(static_cast<size_t>(rest - sql.data())) : std::string_view();
  }
  if (s == nullptr) return Status::InvalidArgument("empty SQL statement");
  return Stmt(s, db);
}

Stmt& Stmt::Bind(int index, int64_t v) {
  sqlite3_bind_int64(stmt_, index, v);
  return *this;
}

Stmt& Stmt::Bind(int index, double v) {
  sqlite3_bind_double(stmt_, index, v);
  return *this;
}

Stmt& Stmt::BindBlob(int index, const void* data, size_t size) {
  if (size == 0) {
    sqlite3_bind_zeroblob(stmt_, index, 0);
  } else {
    sqlite3_bind_blob64(stmt_, index, data, static_cast<sqlite3_uint64>(size), SQLITE_TRANSIENT);
  }
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view v) {
  // A default-constructed string_view has a null data(), which SQLite would bind as NULL.
  sqlite3_bind_text(stmt_, index, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Stmt::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, "SQL step failed");
}

Status Stmt::Run() {
  Result<bool> r = Step();
  if (!r.ok()) return r.status();
  return Status::OK();
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Stmt::Text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return Error(db, "SQL error");
  return Status::OK();
}

Result<int64_t> ScalarInt(sqlite3* db, const std::string& sql) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db, sql));
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return int64_t{0};
  return s.Int(0);
}

Rational ReadRational(const Stmt& s, int num_col, int den_col) {
  if (s.IsNull(num_col) || s.IsNull(den_col)) return Rational();
  return Rational(s.Int(num_col), s.Int(den_col));
}

void BindRational(Stmt& s, int num_index, Rational r) {
  if (r.valid()) {
    s.Bind(num_index, r.num()).Bind(num_index + 1, r.den());
  } else {
    s.BindNull(num_index).BindNull(num_index + 1);
  }
}

void BindOptionalText(Stmt& s, int index, const std::string& text) {
  if (text.empty()) {
    s.BindNull(index);
  } else {
    s.Bind(index, text);
  }
}

Json ParseJsonOr(const std::string& text, Json fallback) {
  if (text.empty()) return fallback;
  Result<Json> j = Json::Parse(text);
  return j.ok() ? *j : fallback;
}

}  // namespace reel::sql
