#include "db/catalog.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "db/schema.h"
#include "db/sqlite_util.h"
#include "util/strings.h"
#include "util/version.h"

namespace reel {
namespace {

using sql::BindRational;
using sql::ParseJsonOr;
using sql::ReadAll;
using sql::ReadOne;
using sql::ReadRational;
using sql::ScalarInt;
using sql::Stmt;

constexpr const char* kVideoColumns =
    "id, path, size_bytes, mtime_ns, content_hash, status, error, duplicate_of, container, "
    "codec, pixel_format, width, height, sar_num, sar_den, rotation, fps_num, fps_den, "
    "time_base_num, time_base_den, vfr, frame_count, start_num, start_den, duration_num, "
    "duration_den, has_audio, bit_rate, metadata, ingested_at, updated_at";

constexpr const char* kRunColumns =
    "id, kind, config, tool_version, started_at, finished_at, status, error, pid, host, name";

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::string ToolVersion() {
  return std::string("reel ") + REEL_VERSION + " (" + REEL_GIT_COMMIT + ")";
}

Result<VideoRecord> ReadVideo(const Stmt& s) {
  VideoRecord v;
  v.id = s.Int(0);
  v.path = s.Text(1);
  v.size_bytes = s.Int(2);
  v.mtime_ns = s.Int(3);
  v.content_hash = s.Text(4);
  REEL_ASSIGN_OR_RETURN(v.status, ParseVideoStatus(s.Text(5)));
  v.error = s.Text(6);
  v.duplicate_of = s.OptInt(7);
  v.container = s.Text(8);
  v.codec = s.Text(9);
  v.pixel_format = s.Text(10);
  v.width = static_cast<int>(s.Int(11));
  v.height = static_cast<int>(s.Int(12));
  v.sample_aspect_ratio = s.IsNull(13) ? Rational(1, 1) : ReadRational(s, 13, 14);
  v.rotation = static_cast<int>(s.Int(15));
  v.frame_rate = ReadRational(s, 16, 17);
  v.time_base = ReadRational(s, 18, 19);
  v.variable_frame_rate = s.Int(20) != 0;
  v.frame_count = s.Int(21);
  v.start_time = ReadRational(s, 22, 23);
  v.duration = ReadRational(s, 24, 25);
  v.has_audio = s.Int(26) != 0;
  v.bit_rate = s.Int(27);
  const Json tags = ParseJsonOr(s.Text(28), Json::MakeObject());
  for (const auto& [k, val] : tags.as_object()) v.metadata[k] = val.as_string();
  v.ingested_at = s.Text(29);
  v.updated_at = s.Text(30);
  return v;
}

Result<RunRecord> ReadRun(const Stmt& s) {
  RunRecord r;
  r.id = s.Int(0);
  r.kind = s.Text(1);
  r.config = ParseJsonOr(s.Text(2), Json::MakeObject());
  r.tool_version = s.Text(3);
  r.started_at = s.Text(4);
  r.finished_at = s.Text(5);
  REEL_ASSIGN_OR_RETURN(r.status, ParseRunStatus(s.Text(6)));
  r.error = s.Text(7);
  r.pid = s.Int(8);
  r.host = s.Text(9);
  r.name = s.Text(10);
  return r;
}

// ---- read-only query guard ----

struct QueryGuard {
  std::string refused;  // what was refused, for the message
  bool pragma = false;  // the statement is a PRAGMA the authorizer allowed
};

int ReadOnlyAuthorizer(void* user, int action, const char* arg1, const char* arg2, const char*,
                       const char*) {
  auto* guard = static_cast<QueryGuard*>(user);
  auto refuse = [&](const std::string& what) {
    if (guard->refused.empty()) guard->refused = what;
    return SQLITE_DENY;
  };
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_PRAGMA: {
      // The authorizer cannot tell "PRAGMA x = v" (a write) from "PRAGMA x(v)", so only
      // pragmas whose argument names a table or index may have one; any other pragma
      // may only be read.
      static const char* kNameArgument[] = {
          "table_info",       "table_xinfo",       "index_list",      "index_info",  "index_xinfo",
          "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", "table_list"};
      if (arg1 == nullptr) return refuse("this PRAGMA");
      guard->pragma = true;
      if (arg2 == nullptr) {
        if (std::strcmp(arg1, "optimize") == 0 || std::strcmp(arg1, "wal_checkpoint") == 0 ||
            std::strcmp(arg1, "shrink_memory") == 0 ||
            std::strcmp(arg1, "incremental_vacuum") == 0) {
          return refuse("this PRAGMA");
        }
        return SQLITE_OK;
      }
      for (const char* name : kNameArgument) {
        if (std::strcmp(arg1, name) == 0) return SQLITE_OK;
      }
      return refuse("setting a PRAGMA");
    }
    case SQLITE_INSERT:
      return refuse(std::string("INSERT into ") + (arg1 ? arg1 : "?"));
    case SQLITE_UPDATE:
      return refuse(std::string("UPDATE of ") + (arg1 ? arg1 : "?") + "." + (arg2 ? arg2 : "?"));
    case SQLITE_DELETE:
      return refuse(std::string("DELETE from ") + (arg1 ? arg1 : "?"));
    case SQLITE_ATTACH:
      return refuse("ATTACH");
    case SQLITE_DETACH:
      return refuse("DETACH");
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return refuse("transaction control");
    default:
      return refuse("statements that change the schema or the data");
  }
}

}  // namespace

// ---- enums ----

std::string_view VideoStatusName(VideoStatus s) {
  switch (s) {
    case VideoStatus::kOk:
      return "ok";
    case VideoStatus::kError:
      return "error";
    case VideoStatus::kDuplicate:
      return "duplicate";
  }
  return "error";
}

Result<VideoStatus> ParseVideoStatus(std::string_view s) {
  if (s == "ok") return VideoStatus::kOk;
  if (s == "error") return VideoStatus::kError;
  if (s == "duplicate") return VideoStatus::kDuplicate;
  return Status::Corruption("unknown video status '" + std::string(s) + "'");
}

std::string_view ClipStateName(ClipState s) {
  switch (s) {
    case ClipState::kCandidate:
      return "candidate";
    case ClipState::kAccepted:
      return "accepted";
    case ClipState::kRejected:
      return "rejected";
    case ClipState::kExported:
      return "exported";
  }
  return "candidate";
}

Result<ClipState> ParseClipState(std::string_view s) {
  if (s == "candidate") return ClipState::kCandidate;
  if (s == "accepted") return ClipState::kAccepted;
  if (s == "rejected") return ClipState::kRejected;
  if (s == "exported") return ClipState::kExported;
  return Status::Corruption("unknown clip state '" + std::string(s) + "'");
}

std::string_view RunStatusName(RunStatus s) {
  switch (s) {
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kOk:
      return "ok";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kInterrupted:
      return "interrupted";
  }
  return "failed";
}

Result<RunStatus> ParseRunStatus(std::string_view s) {
  if (s == "running") return RunStatus::kRunning;
  if (s == "ok") return RunStatus::kOk;
  if (s == "failed") return RunStatus::kFailed;
  if (s == "interrupted") return RunStatus::kInterrupted;
  return Status::Corruption("unknown run status '" + std::string(s) + "'");
}

std::string UtcNow() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

// ---- open and migrate ----

Catalog::Catalog(std::string path, sqlite3* db, bool read_only)
    : path_(std::move(path)), db_(db), read_only_(read_only) {}

Catalog::~Catalog() {
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, const Options& options) {
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + ": is a folder");
  if (!exists && (options.read_only || !options.create_if_missing)) {
    return Status::NotFound(path + ": no catalog here (create one with `reel curate ingest --db " +
                            path + " ...`)");
  }
  const int flags =
      options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Catalog> catalog(new Catalog(path, db, options.read_only));
  if (rc != SQLITE_OK) return sql::Error(db, path + ": cannot open catalog");
  REEL_RETURN_IF_ERROR(catalog->Configure(options));
  return catalog;
}

Status Catalog::Configure(const Options& options) {
  sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  sqlite3_extended_result_codes(db_, 1);
  // Reading the header proves the file is an SQLite database at all.
  auto version = ScalarInt(db_, "PRAGMA user_version");
  if (!version.ok()) {
    const std::string& why = version.status().message();
    if (why.find(sqlite3_errstr(SQLITE_CORRUPT)) != std::string::npos) {
      return Status::Corruption(
          path_ + ": the catalog is damaged (" + why +
          "): part of the file is missing or overwritten, as by a copy cut short. Restore a "
          "copy, or save what is still readable with `sqlite3 " +
          path_ + " .recover | sqlite3 recovered.db`");
    }
    return Status::Corruption(path_ + ": not a reel catalog (" + why + ")");
  }
  REEL_ASSIGN_OR_RETURN(int64_t app_id, ScalarInt(db_, "PRAGMA application_id"));
  REEL_ASSIGN_OR_RETURN(int64_t tables,
                        ScalarInt(db_, "SELECT count(*) FROM sqlite_schema WHERE type='table'"));
  if (app_id != kCatalogApplicationId && (tables > 0 || app_id != 0)) {
    return Status::InvalidArgument(path_ + ": an SQLite file, but not a reel catalog");
  }
  schema_version_ = static_cast<int>(*version);
  if (schema_version_ > kSchemaVersion) {
    return Status::FailedPrecondition(path_ + ": catalog schema version " +
                                      std::to_string(schema_version_) +
                                      " is newer than this reel understands (" +
                                      std::to_string(kSchemaVersion) + "); use a newer reel");
  }
  REEL_RETURN_IF_ERROR(sql::Exec(db_, "PRAGMA foreign_keys = ON"));
  // The JSON table-valued functions create their virtual tables on first use, a step the
  // read-only query guard would see as a schema write; create them now, unguarded.
  REEL_RETURN_IF_ERROR(
      sql::Exec(db_, "SELECT count(*) FROM json_each('[]'); SELECT count(*) FROM json_tree('[]')"));
  if (read_only_) {
    if (schema_version_ == 0) {
      return Status::FailedPrecondition(path_ + ": empty catalog (nothing ingested yet)");
    }
    return sql::Exec(db_, "PRAGMA query_only = ON");
  }
  {
    REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "PRAGMA journal_mode = WAL"));
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row || ToLower(s.Text(0)) != "wal") {
      return Status::IOError(path_ + ": cannot switch the catalog to WAL mode");
    }
  }
  REEL_RETURN_IF_ERROR(sql::Exec(db_, "PRAGMA synchronous = NORMAL"));
  return Migrate();
}

Status Catalog::Migrate() {
  for (const Migration& m : CatalogMigrations()) {
    if (m.version <= schema_version_) continue;
    REEL_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN IMMEDIATE"));
    // Another process may have migrated while we waited for the write lock.
    auto current = ScalarInt(db_, "PRAGMA user_version");
    if (!current.ok()) {
      sql::Exec(db_, "ROLLBACK").IgnoreError();
      return current.status();
    }
    if (*current >= m.version) {
      sql::Exec(db_, "ROLLBACK").IgnoreError();
      schema_version_ = static_cast<int>(*current);
      continue;
    }
    Status s = sql::Exec(db_, m.sql);
    if (s.ok() && m.version == 1) {
      s = sql::Exec(db_, "PRAGMA application_id = " + std::to_string(kCatalogApplicationId));
    }
    if (s.ok()) s = sql::Exec(db_, "PRAGMA user_version = " + std::to_string(m.version));
    if (s.ok()) s = sql::Exec(db_, "COMMIT");
    if (!s.ok()) {
      sql::Exec(db_, "ROLLBACK").IgnoreError();
      return s.WithContext(path_ + ": upgrading the catalog to schema version " +
                           std::to_string(m.version) + " (" + m.description + ")");
    }
    schema_version_ = m.version;
  }
  return Status::OK();
}

// ---- transactions ----

Result<Catalog::Transaction> Catalog::Begin() {
  if (in_transaction_) return Status::FailedPrecondition(path_ + ": a transaction is already open");
  REEL_RETURN_IF_ERROR(sql::Exec(db_, "BEGIN IMMEDIATE").WithContext(path_));
  in_transaction_ = true;
  return Transaction(this);
}

Catalog::Transaction::~Transaction() {
  if (catalog_ != nullptr && catalog_->in_transaction_) {
    sql::Exec(catalog_->db_, "ROLLBACK").IgnoreError();
    catalog_->in_transaction_ = false;
  }
}

Status Catalog::Transaction::Commit() {
  if (catalog_ == nullptr || !catalog_->in_transaction_) {
    return Status::FailedPrecondition("no open transaction");
  }
  Status s = sql::Exec(catalog_->db_, "COMMIT");
  if (!s.ok()) return s.WithContext(catalog_->path_);
  catalog_->in_transaction_ = false;
  return Status::OK();
}

Status Catalog::ExecInTransaction(const std::function<Status()>& body) {
  if (in_transaction_) return body();
  REEL_ASSIGN_OR_RETURN(Transaction txn, Begin());
  REEL_RETURN_IF_ERROR(body());
  return txn.Commit();
}

// ---- videos ----

Result<int64_t> Catalog::UpsertVideo(const VideoRecord& v) {
  int64_t id = 0;
  Status st = ExecInTransaction([&]() -> Status {
    REEL_ASSIGN_OR_RETURN(
        Stmt s,
        Stmt::Prepare(
            db_,
            "INSERT INTO videos (path, size_bytes, mtime_ns, content_hash, status, error, "
            "duplicate_of, container, codec, pixel_format, width, height, sar_num, sar_den, "
            "rotation, fps_num, fps_den, time_base_num, time_base_den, vfr, frame_count, "
            "start_num, start_den, duration_num, duration_den, has_audio, bit_rate, metadata, "
            "ingested_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
            "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, "
            "?28, ?29, ?29) "
            "ON CONFLICT(path) DO UPDATE SET size_bytes = excluded.size_bytes, "
            "mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, "
            "status = excluded.status, error = excluded.error, "
            "duplicate_of = excluded.duplicate_of, container = excluded.container, "
            "codec = excluded.codec, pixel_format = excluded.pixel_format, "
            "width = excluded.width, height = excluded.height, sar_num = excluded.sar_num, "
            "sar_den = excluded.sar_den, rotation = excluded.rotation, "
            "fps_num = excluded.fps_num, fps_den = excluded.fps_den, "
            "time_base_num = excluded.time_base_num, time_base_den = excluded.time_base_den, "
            "vfr = excluded.vfr, frame_count = excluded.frame_count, "
            "start_num = excluded.start_num, start_den = excluded.start_den, "
            "duration_num = excluded.duration_num, duration_den = excluded.duration_den, "
            "has_audio = excluded.has_audio, bit_rate = excluded.bit_rate, "
            "metadata = excluded.metadata, updated_at = excluded.updated_at "
            "RETURNING id"));
    Json tags = Json::MakeObject();
    for (const auto& [k, val] : v.metadata) tags[k] = val;
    const bool ok = v.status == VideoStatus::kOk || v.status == VideoStatus::kDuplicate;
    s.Bind(1, v.path).Bind(2, v.size_bytes).Bind(3, v.mtime_ns);
    if (v.content_hash.empty()) {
      s.BindNull(4);
    } else {
      s.Bind(4, v.content_hash);
    }
    s.Bind(5, VideoStatusName(v.status));
    if (v.error.empty()) {
      s.BindNull(6);
    } else {
      s.Bind(6, v.error);
    }
    s.Bind(7, v.duplicate_of);
    if (ok) {
      s.Bind(8, v.container).Bind(9, v.codec).Bind(10, v.pixel_format);
      s.Bind(11, v.width).Bind(12, v.height);
      BindRational(s, 13, v.sample_aspect_ratio);
      s.Bind(15, v.rotation);
      BindRational(s, 16, v.frame_rate);
      BindRational(s, 18, v.time_base);
      s.Bind(20, v.variable_frame_rate).Bind(21, v.frame_count);
      BindRational(s, 22, v.start_time);
      BindRational(s, 24, v.duration);
      s.Bind(26, v.has_audio).Bind(27, v.bit_rate);
    } else {
      for (int i = 8; i <= 27; ++i) s.BindNull(i);
      s.Bind(15, 0).Bind(20, false).Bind(26, false);
    }
    s.Bind(28, tags.Dump()).Bind(29, UtcNow());
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::Internal("upsert returned no id");
    id = s.Int(0);
    return Status::OK();
  });
  if (!st.ok()) return st.WithContext(v.path);
  return id;
}

Result<std::optional<VideoRecord>> Catalog::FindVideoByPath(const std::string& path) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kVideoColumns +
                                                       " FROM videos WHERE path = ?1"));
  s.Bind(1, path);
  return ReadOne<VideoRecord>(s, ReadVideo);
}

Result<std::optional<VideoRecord>> Catalog::FindVideoById(int64_t id) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kVideoColumns +
                                                       " FROM videos WHERE id = ?1"));
  s.Bind(1, id);
  return ReadOne<VideoRecord>(s, ReadVideo);
}

Result<std::optional<VideoRecord>> Catalog::FindVideoByHash(const std::string& content_hash) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kVideoColumns +
                                     " FROM videos WHERE content_hash = ?1 AND status = 'ok' "
                                     "ORDER BY id LIMIT 1"));
  s.Bind(1, content_hash);
  return ReadOne<VideoRecord>(s, ReadVideo);
}

Result<std::vector<VideoRecord>> Catalog::ListVideos(std::optional<VideoStatus> status) {
  std::string q = std::string("SELECT ") + kVideoColumns + " FROM videos";
  if (status.has_value()) q += " WHERE status = ?1";
  q += " ORDER BY id";
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, q));
  if (status.has_value()) s.Bind(1, VideoStatusName(*status));
  return ReadAll<VideoRecord>(s, ReadVideo);
}

Status Catalog::UpdateFileStamp(int64_t video_id, int64_t size_bytes, int64_t mtime_ns) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "UPDATE videos SET size_bytes = ?2, mtime_ns = ?3, updated_at = ?4 "
                            "WHERE id = ?1"));
  s.Bind(1, video_id).Bind(2, size_bytes).Bind(3, mtime_ns).Bind(4, UtcNow());
  REEL_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) != 1) return Status::NotFound("video " + std::to_string(video_id));
  return Status::OK();
}

Result<std::unordered_map<std::string, FileStamp>> Catalog::LoadFileStamps() {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(
                  db_, "SELECT path, id, size_bytes, mtime_ns, status, sidecar_stamp FROM videos"));
  std::unordered_map<std::string, FileStamp> out;
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    FileStamp stamp;
    stamp.video_id = s.Int(1);
    stamp.size_bytes = s.Int(2);
    stamp.mtime_ns = s.Int(3);
    REEL_ASSIGN_OR_RETURN(stamp.status, ParseVideoStatus(s.Text(4)));
    stamp.sidecar_stamp = s.Text(5);
    out.emplace(s.Text(0), stamp);
  }
  return out;
}

// ---- runs, metrics ----

Result<int64_t> Catalog::BeginRun(std::string_view kind, const Json& config,
                                  std::string_view name) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "INSERT INTO runs (kind, config, tool_version, started_at, status, "
                            "pid, host, name) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7) "
                            "RETURNING id"));
  s.Bind(1, kind).Bind(2, config.is_null() ? std::string("{}") : config.Dump());
  s.Bind(3, ToolVersion()).Bind(4, UtcNow()).Bind(5, static_cast<int64_t>(::getpid()));
  s.Bind(6, HostName()).Bind(7, name);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("insert returned no id");
  return s.Int(0);
}

Status Catalog::FinishRun(int64_t run_id, RunStatus status, std::string_view error) {
  REEL_ASSIGN_OR_RETURN(Stmt s,
                        Stmt::Prepare(db_,
                                      "UPDATE runs SET status = ?2, error = ?3, finished_at = ?4 "
                                      "WHERE id = ?1"));
  s.Bind(1, run_id).Bind(2, RunStatusName(status));
  if (error.empty()) {
    s.BindNull(3);
  } else {
    s.Bind(3, error);
  }
  s.Bind(4, UtcNow());
  REEL_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) != 1) return Status::NotFound("run " + std::to_string(run_id));
  return Status::OK();
}

Status Catalog::FinishRunWithMetrics(int64_t run_id, bool cancelled,
                                     const std::vector<std::pair<std::string, double>>& metrics) {
  return ExecInTransaction([&]() -> Status {
    for (const auto& [name, value] : metrics) {
      REEL_RETURN_IF_ERROR(AddMetric(run_id, name, value).status());
    }
    return FinishRun(run_id, cancelled ? RunStatus::kInterrupted : RunStatus::kOk,
                     cancelled ? "cancelled" : "");
  });
}

Result<RunRecord> Catalog::FindRunByName(std::string_view kind, std::string_view name) {
  REEL_ASSIGN_OR_RETURN(Stmt s,
                        Stmt::Prepare(db_, std::string("SELECT ") + kRunColumns +
                                               " FROM runs WHERE kind = ?1 AND name = ?2 "
                                               "ORDER BY started_at DESC, id DESC LIMIT 1"));
  s.Bind(1, kind).Bind(2, name);
  REEL_ASSIGN_OR_RETURN(std::optional<RunRecord> run, ReadOne<RunRecord>(s, ReadRun));
  if (!run.has_value()) {
    return Status::NotFound("no " + std::string(kind) + " run named '" + std::string(name) + "'");
  }
  return *run;
}

Result<std::optional<RunRecord>> Catalog::FindRun(int64_t run_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kRunColumns +
                                                       " FROM runs WHERE id = ?1"));
  s.Bind(1, run_id);
  return ReadOne<RunRecord>(s, ReadRun);
}

Result<std::vector<RunRecord>> Catalog::ListRuns(std::string_view kind) {
  std::string q = std::string("SELECT ") + kRunColumns + " FROM runs";
  if (!kind.empty()) q += " WHERE kind = ?1";
  q += " ORDER BY id";
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, q));
  if (!kind.empty()) s.Bind(1, kind);
  return ReadAll<RunRecord>(s, ReadRun);
}

Result<int> Catalog::MarkInterruptedRuns() {
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_, "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?1"));
  s.Bind(1, HostName());
  std::vector<int64_t> gone;
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    const pid_t pid = static_cast<pid_t>(s.Int(1));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) gone.push_back(s.Int(0));
  }
  s.Reset();
  for (int64_t id : gone) {
    REEL_RETURN_IF_ERROR(
        FinishRun(id, RunStatus::kInterrupted, "the process ended before the run finished"));
  }
  return static_cast<int>(gone.size());
}

Result<int64_t> Catalog::AddMetric(int64_t run_id, std::string_view name, double value,
                                   const Json& details) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_,
                                              "INSERT INTO metrics (run_id, name, value, details) "
                                              "VALUES (?1, ?2, ?3, ?4) RETURNING id"));
  s.Bind(1, run_id).Bind(2, name).Bind(3, value);
  s.Bind(4, details.is_null() ? std::string("{}") : details.Dump());
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("insert returned no id");
  return s.Int(0);
}

Result<int64_t> Catalog::ImportRun(const RunRecord& r, bool* inserted) {
  if (inserted != nullptr) *inserted = false;
  const Json config = r.config.is_null() ? Json::MakeObject() : r.config;
  {
    // The same run: begun by the same process at the same millisecond, with the same
    // name and configuration (one process may begin several runs in a millisecond).
    REEL_ASSIGN_OR_RETURN(Stmt s,
                          Stmt::Prepare(db_,
                                        "SELECT id, name, config FROM runs WHERE kind = ?1 AND "
                                        "started_at = ?2 AND host = ?3 AND pid = ?4 ORDER BY id"));
    s.Bind(1, r.kind).Bind(2, r.started_at).Bind(3, r.host).Bind(4, r.pid);
    while (true) {
      REEL_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      if (s.Text(1) == r.name && ParseJsonOr(s.Text(2), Json()) == config) return s.Int(0);
    }
  }
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_,
                    "INSERT INTO runs (kind, config, tool_version, started_at, finished_at, "
                    "status, error, pid, host, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                    "?10) RETURNING id"));
  s.Bind(1, r.kind).Bind(2, config.Dump());
  s.Bind(3, r.tool_version).Bind(4, r.started_at);
  sql::BindOptionalText(s, 5, r.finished_at);
  s.Bind(6, RunStatusName(r.status));
  sql::BindOptionalText(s, 7, r.error);
  s.Bind(8, r.pid).Bind(9, r.host).Bind(10, r.name);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("insert returned no id");
  if (inserted != nullptr) *inserted = true;
  return s.Int(0);
}

Result<std::vector<MetricRecord>> Catalog::ListMetrics(int64_t run_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s,
                        Stmt::Prepare(db_,
                                      "SELECT id, run_id, name, value, details FROM metrics "
                                      "WHERE run_id = ?1 ORDER BY id"));
  s.Bind(1, run_id);
  return ReadAll<MetricRecord>(s, [](const Stmt& r) -> Result<MetricRecord> {
    MetricRecord m;
    m.id = r.Int(0);
    m.run_id = r.Int(1);
    m.name = r.Text(2);
    m.value = r.Real(3);
    m.details = ParseJsonOr(r.Text(4), Json::MakeObject());
    return m;
  });
}

// ---- inspection ----

Result<CatalogStats> Catalog::Stats() {
  CatalogStats st;
  st.schema_version = schema_version_;
  struct stat fs {};
  if (::stat(path_.c_str(), &fs) == 0) st.file_bytes += fs.st_size;
  if (::stat((path_ + "-wal").c_str(), &fs) == 0) st.file_bytes += fs.st_size;
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT count(*), "
                            "coalesce(sum(status = 'ok'), 0), coalesce(sum(status = 'error'), 0), "
                            "coalesce(sum(status = 'duplicate'), 0), "
                            "coalesce(sum(CASE WHEN status = 'ok' THEN size_bytes END), 0) "
                            "FROM videos"));
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (row) {
    st.videos = s.Int(0);
    st.videos_ok = s.Int(1);
    st.videos_error = s.Int(2);
    st.videos_duplicate = s.Int(3);
    st.video_bytes = s.Int(4);
  }
  // Exact total duration: sum the rationals in C++ (SQLite would round through doubles).
  REEL_ASSIGN_OR_RETURN(Stmt d, Stmt::Prepare(db_,
                                              "SELECT duration_num, duration_den FROM videos "
                                              "WHERE status = 'ok' AND duration_den > 0"));
  Rational total;
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool more, d.Step());
    if (!more) break;
    const Rational next = total + Rational(d.Int(0), d.Int(1));
    // Unrelated time bases can overflow an exact sum; fall back to microseconds then.
    total = next.valid() ? next
                         : Rational::Approximate(
                               total.ToDouble() + Rational(d.Int(0), d.Int(1)).ToDouble(), 1000000);
  }
  st.video_seconds = total;
  REEL_ASSIGN_OR_RETURN(st.clips, ScalarInt(db_, "SELECT count(*) FROM clips"));
  REEL_ASSIGN_OR_RETURN(st.captions, ScalarInt(db_, "SELECT count(*) FROM captions"));
  REEL_ASSIGN_OR_RETURN(st.runs, ScalarInt(db_, "SELECT count(*) FROM runs"));
  REEL_ASSIGN_OR_RETURN(st.metrics, ScalarInt(db_, "SELECT count(*) FROM metrics"));
  return st;
}

Result<std::string> Catalog::IntegrityCheck() {
  std::vector<std::string> problems;
  {
    REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "PRAGMA integrity_check"));
    while (true) {
      REEL_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      const std::string line = s.Text(0);
      if (line != "ok") problems.push_back(line);
    }
  }
  {
    REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "PRAGMA foreign_key_check"));
    while (true) {
      REEL_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      problems.push_back("foreign key violation in " + s.Text(0) + " row " +
                         std::to_string(s.Int(1)) + " -> " + s.Text(2));
    }
  }
  if (problems.empty()) return std::string("ok");
  return Join(problems, "\n");
}

Status Catalog::QueryReadOnly(
    std::string_view sql_text,
    const std::function<Status(const std::vector<std::string>&)>& on_columns,
    const std::function<Status(const std::vector<SqlValue>&)>& on_row) {
  return QueryReadOnly(sql_text, {}, on_columns, on_row);
}

Status Catalog::QueryReadOnly(
    std::string_view sql_text, const std::vector<SqlValue>& params,
    const std::function<Status(const std::vector<std::string>&)>& on_columns,
    const std::function<Status(const std::vector<SqlValue>&)>& on_row) {
  QueryGuard guard;
  sqlite3_set_authorizer(db_, ReadOnlyAuthorizer, &guard);
  std::string_view tail;
  Result<Stmt> prepared = Stmt::Prepare(db_, sql_text, &tail);
  Status tail_status;
  if (prepared.ok()) {
    // Anything after the first statement must be blank or comments.
    std::string_view rest = Trim(tail);
    while (!rest.empty() && rest.front() == ';') rest = Trim(rest.substr(1));
    if (!rest.empty()) {
      Result<Stmt> second = Stmt::Prepare(db_, rest);
      if (second.ok() || second.status().message() != "empty SQL statement") {
        tail_status = Status::InvalidArgument("only one SQL statement is allowed");
      }
    }
  }
  sqlite3_set_authorizer(db_, nullptr, nullptr);
  if (!guard.refused.empty()) {
    return Status::InvalidArgument("read-only query: " + guard.refused +
                                   " is not allowed; `reel db query` only reads the catalog");
  }
  if (!prepared.ok()) return prepared.status();
  REEL_RETURN_IF_ERROR(tail_status);
  Stmt stmt = std::move(prepared).value();
  // SQLite calls some reads (PRAGMA journal_mode) possibly-writing; for PRAGMAs the
  // authorizer's allow-list above decides, and the connection itself is query_only.
  if (!guard.pragma && !sqlite3_stmt_readonly(stmt.get())) {
    return Status::InvalidArgument(
        "read-only query: this statement could write; `reel db query` only reads the catalog");
  }
  if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(stmt.get())) {
    return Status::InvalidArgument("query has " +
                                   std::to_string(sqlite3_bind_parameter_count(stmt.get())) +
                                   " parameters, " + std::to_string(params.size()) + " given");
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const int index = static_cast<int>(i) + 1;
    if (const auto* v = std::get_if<int64_t>(&params[i])) {
      stmt.Bind(index, *v);
    } else if (const auto* d = std::get_if<double>(&params[i])) {
      stmt.Bind(index, *d);
    } else if (const auto* t = std::get_if<std::string>(&params[i])) {
      stmt.Bind(index, *t);
    } else {
      stmt.BindNull(index);
    }
  }
  const int n = stmt.columns();
  std::vector<std::string> names;
  names.reserve(n);
  for (int i = 0; i < n; ++i) {
    const char* name = sqlite3_column_name(stmt.get(), i);
    names.emplace_back(name != nullptr ? name : "");
  }
  REEL_RETURN_IF_ERROR(on_columns(names));
  std::vector<SqlValue> row(n);
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool more, stmt.Step());
    if (!more) break;
    for (int i = 0; i < n; ++i) {
      switch (sqlite3_column_type(stmt.get(), i)) {
        case SQLITE_NULL:
          row[i] = nullptr;
          break;
        case SQLITE_INTEGER:
          row[i] = stmt.Int(i);
          break;
        case SQLITE_FLOAT:
          row[i] = stmt.Real(i);
          break;
        default:  // text; blobs are shown as their bytes
          row[i] = stmt.Text(i);
          break;
      }
    }
    REEL_RETURN_IF_ERROR(on_row(row));
  }
  return Status::OK();
}

}  // namespace reel
