// Catalog methods for clips, scans, per-frame data, subsets and exports.

#include <cstring>
#include <map>
#include <type_traits>

#include "db/catalog.h"
#include "db/sqlite_util.h"

namespace reel {
namespace {

using sql::BindOptionalText;
using sql::BindRational;
using sql::ParseJsonOr;
using sql::ReadAll;
using sql::ReadOne;
using sql::ReadRational;
using sql::Stmt;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "frame_data blobs are little-endian; add byte swapping for this platform");

constexpr const char* kClipColumns =
    "id, video_id, start_frame, end_frame, start_num, start_den, end_num, end_den, state, "
    "created_at, detector, motion, static_ratio, camera_motion, sharpness, brightness, "
    "contrast, black_ratio, text_area, colorfulness, dominant_colors, phash, duplicate_of, "
    "signals, aesthetic";

std::optional<double> OptReal(const Stmt& s, int col) {
  return s.IsNull(col) ? std::nullopt : std::optional<double>(s.Real(col));
}

Result<ClipRecord> ReadClip(const Stmt& s) {
  ClipRecord c;
  c.id = s.Int(0);
  c.video_id = s.Int(1);
  c.start_frame = s.Int(2);
  c.end_frame = s.Int(3);
  c.start_time = ReadRational(s, 4, 5);
  c.end_time = ReadRational(s, 6, 7);
  REEL_ASSIGN_OR_RETURN(c.state, ParseClipState(s.Text(8)));
  c.created_at = s.Text(9);
  c.detector = s.Text(10);
  ClipSignals& g = c.signals;
  g.motion = OptReal(s, 11);
  g.static_ratio = OptReal(s, 12);
  g.camera_motion = s.Text(13);
  g.sharpness = OptReal(s, 14);
  g.brightness = OptReal(s, 15);
  g.contrast = OptReal(s, 16);
  g.black_ratio = OptReal(s, 17);
  g.text_area = OptReal(s, 18);
  g.colorfulness = OptReal(s, 19);
  g.dominant_colors = ParseJsonOr(s.Text(20), Json::MakeArray());
  g.phash = s.Text(21);
  c.duplicate_of = s.OptInt(22);
  g.extra = ParseJsonOr(s.Text(23), Json::MakeObject());
  c.aesthetic = OptReal(s, 24);
  return c;
}

// Binds the signal columns, starting at parameter `first` (12 parameters).
void BindSignals(Stmt& s, int first, const ClipSignals& g) {
  s.Bind(first, g.motion).Bind(first + 1, g.static_ratio);
  BindOptionalText(s, first + 2, g.camera_motion);
  s.Bind(first + 3, g.sharpness).Bind(first + 4, g.brightness).Bind(first + 5, g.contrast);
  s.Bind(first + 6, g.black_ratio).Bind(first + 7, g.text_area).Bind(first + 8, g.colorfulness);
  s.Bind(first + 9, g.dominant_colors.is_array() ? g.dominant_colors.Dump() : std::string("[]"));
  BindOptionalText(s, first + 10, g.phash);
  s.Bind(first + 11, g.extra.is_object() ? g.extra.Dump() : std::string("{}"));
}

Status ValidateClip(const ClipRecord& c) {
  if (c.start_frame < 0 || c.end_frame <= c.start_frame) {
    return Status::InvalidArgument("clip of video " + std::to_string(c.video_id) + ": frames [" +
                                   std::to_string(c.start_frame) + ", " +
                                   std::to_string(c.end_frame) + ") are empty or negative");
  }
  if (!c.start_time.valid() || !c.end_time.valid()) {
    return Status::InvalidArgument("clip of video " + std::to_string(c.video_id) +
                                   ": invalid timestamps");
  }
  return Status::OK();
}

Result<ScanRecord> ReadScan(const Stmt& s) {
  ScanRecord r;
  r.video_id = s.Int(0);
  r.run_id = s.OptInt(1);
  const std::string status = s.Text(2);
  if (status == "ok") {
    r.status = ScanStatus::kOk;
  } else if (status == "error") {
    r.status = ScanStatus::kError;
  } else {
    return Status::Corruption("unknown scan status '" + status + "'");
  }
  r.error = s.Text(3);
  r.frames = s.Int(4);
  r.decode_errors = s.Int(5);
  r.analysis_width = static_cast<int>(s.Int(6));
  r.analysis_height = static_cast<int>(s.Int(7));
  r.time_base = ReadRational(s, 8, 9);
  r.start_pts = s.Int(10);
  r.params = ParseJsonOr(s.Text(11), Json::MakeObject());
  r.scanned_at = s.Text(12);
  return r;
}

template <typename T>
Status PutArray(sqlite3* db, int64_t video_id, std::string_view name, const char* dtype,
                const std::vector<T>& values, int width) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (width < 1 || values.size() % static_cast<size_t>(width) != 0) {
    return Status::InvalidArgument("frame data '" + std::string(name) +
                                   "': " + std::to_string(values.size()) +
                                   " values is not a multiple of " + std::to_string(width));
  }
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db,
                            "INSERT INTO frame_data (video_id, name, dtype, width, data) "
                            "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(video_id, name) DO UPDATE "
                            "SET dtype = excluded.dtype, width = excluded.width, "
                            "data = excluded.data"));
  s.Bind(1, video_id).Bind(2, name).Bind(3, dtype).Bind(4, width);
  s.BindBlob(5, values.data(), values.size() * sizeof(T));
  return s.Run();
}

template <typename T>
Result<std::vector<T>> GetArray(sqlite3* db, int64_t video_id, std::string_view name,
                                const char* dtype) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db, "SELECT dtype, data FROM frame_data WHERE video_id = ?1 AND name = ?2"));
  s.Bind(1, video_id).Bind(2, name);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) {
    return Status::NotFound("video " + std::to_string(video_id) + " has no frame data '" +
                            std::string(name) + "'");
  }
  if (s.Text(0) != dtype) {
    return Status::Corruption("frame data '" + std::string(name) + "' of video " +
                              std::to_string(video_id) + " is " + s.Text(0) + ", not " + dtype);
  }
  const std::string_view bytes = s.Blob(1);
  if (bytes.size() % sizeof(T) != 0) {
    return Status::Corruption("frame data '" + std::string(name) + "' has a partial value");
  }
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

std::string_view ScanStatusName(ScanStatus s) {
  return s == ScanStatus::kOk ? "ok" : "error";
}

// ---- clips ----

Result<int64_t> Catalog::AddClip(const ClipRecord& c) {
  REEL_RETURN_IF_ERROR(ValidateClip(c));
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_,
                    "INSERT INTO clips (video_id, start_frame, end_frame, start_num, "
                    "start_den, end_num, end_den, state, created_at, detector, motion, "
                    "static_ratio, camera_motion, sharpness, brightness, contrast, "
                    "black_ratio, text_area, colorfulness, dominant_colors, phash, signals, "
                    "duplicate_of) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                    "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) "
                    "RETURNING id"));
  s.Bind(1, c.video_id).Bind(2, c.start_frame).Bind(3, c.end_frame);
  BindRational(s, 4, c.start_time);
  BindRational(s, 6, c.end_time);
  s.Bind(8, ClipStateName(c.state)).Bind(9, UtcNow()).Bind(10, c.detector);
  BindSignals(s, 11, c.signals);
  s.Bind(23, c.duplicate_of);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("insert returned no id");
  return s.Int(0);
}

Result<std::vector<ClipRecord>> Catalog::ListClips(std::optional<int64_t> video_id) {
  std::string q = std::string("SELECT ") + kClipColumns + " FROM clips";
  if (video_id.has_value()) q += " WHERE video_id = ?1";
  q += " ORDER BY video_id, start_frame";
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, q));
  if (video_id.has_value()) s.Bind(1, *video_id);
  return ReadAll<ClipRecord>(s, ReadClip);
}

Result<std::optional<ClipRecord>> Catalog::FindClip(int64_t clip_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kClipColumns +
                                                       " FROM clips WHERE id = ?1"));
  s.Bind(1, clip_id);
  return ReadOne<ClipRecord>(s, ReadClip);
}

Result<std::vector<int64_t>> Catalog::ReplaceClips(int64_t video_id,
                                                   const std::vector<ClipRecord>& clips) {
  std::vector<int64_t> ids;
  Status st = ExecInTransaction([&]() -> Status {
    std::map<std::pair<int64_t, int64_t>, int64_t> existing;  // (start, end) -> id
    {
      REEL_ASSIGN_OR_RETURN(
          Stmt s,
          Stmt::Prepare(db_, "SELECT id, start_frame, end_frame FROM clips WHERE video_id = ?1"));
      s.Bind(1, video_id);
      while (true) {
        REEL_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        existing[{s.Int(1), s.Int(2)}] = s.Int(0);
      }
    }
    std::map<std::pair<int64_t, int64_t>, int64_t> kept;
    for (const ClipRecord& c : clips) {
      if (c.video_id != video_id) {
        return Status::InvalidArgument("clip for video " + std::to_string(c.video_id) +
                                       " given to ReplaceClips of video " +
                                       std::to_string(video_id));
      }
      REEL_RETURN_IF_ERROR(ValidateClip(c));
      auto it = existing.find({c.start_frame, c.end_frame});
      if (it == existing.end()) {
        REEL_ASSIGN_OR_RETURN(int64_t id, AddClip(c));
        ids.push_back(id);
        continue;
      }
      REEL_ASSIGN_OR_RETURN(
          Stmt s, Stmt::Prepare(db_,
                                "UPDATE clips SET start_num = ?2, start_den = ?3, end_num = ?4, "
                                "end_den = ?5, detector = ?6, motion = ?7, static_ratio = ?8, "
                                "camera_motion = ?9, sharpness = ?10, brightness = ?11, "
                                "contrast = ?12, black_ratio = ?13, text_area = ?14, "
                                "colorfulness = ?15, dominant_colors = ?16, phash = ?17, "
                                "signals = ?18 WHERE id = ?1"));
      s.Bind(1, it->second);
      BindRational(s, 2, c.start_time);
      BindRational(s, 4, c.end_time);
      s.Bind(6, c.detector);
      BindSignals(s, 7, c.signals);
      REEL_RETURN_IF_ERROR(s.Run());
      kept[it->first] = it->second;
      ids.push_back(it->second);
    }
    for (const auto& [range, id] : existing) {
      if (kept.count(range)) continue;
      REEL_ASSIGN_OR_RETURN(Stmt d, Stmt::Prepare(db_, "DELETE FROM clips WHERE id = ?1"));
      d.Bind(1, id);
      REEL_RETURN_IF_ERROR(d.Run());
    }
    return Status::OK();
  });
  if (!st.ok()) return st.WithContext(path_);
  return ids;
}

Status Catalog::SetClipDuplicate(int64_t clip_id, std::optional<int64_t> duplicate_of) {
  return sql::UpdateById(db_, "UPDATE clips SET duplicate_of = ?2 WHERE id = ?1", clip_id,
                         duplicate_of, "clip");
}

// ---- scans and per-frame data ----

Status Catalog::PutScan(const ScanRecord& r) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_,
                    "INSERT OR REPLACE INTO scans (video_id, run_id, status, error, frames, "
                    "decode_errors, analysis_width, analysis_height, time_base_num, "
                    "time_base_den, start_pts, params, scanned_at) VALUES (?1, ?2, ?3, ?4, "
                    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
  s.Bind(1, r.video_id).Bind(2, r.run_id).Bind(3, ScanStatusName(r.status));
  BindOptionalText(s, 4, r.error);
  s.Bind(5, r.frames).Bind(6, r.decode_errors).Bind(7, r.analysis_width).Bind(8, r.analysis_height);
  BindRational(s, 9, r.time_base);
  s.Bind(11, r.start_pts).Bind(12, r.params.is_object() ? r.params.Dump() : std::string("{}"));
  s.Bind(13, UtcNow());
  return s.Run().WithContext("scan of video " + std::to_string(r.video_id));
}

Result<std::optional<ScanRecord>> Catalog::FindScan(int64_t video_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT video_id, run_id, status, error, frames, decode_errors, "
                            "analysis_width, analysis_height, time_base_num, time_base_den, "
                            "start_pts, params, scanned_at FROM scans WHERE video_id = ?1"));
  s.Bind(1, video_id);
  return ReadOne<ScanRecord>(s, ReadScan);
}

Result<std::unordered_map<int64_t, ScanStatus>> Catalog::LoadScanStates() {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "SELECT video_id, status FROM scans"));
  std::unordered_map<int64_t, ScanStatus> out;
  while (true) {
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out[s.Int(0)] = s.Text(1) == "ok" ? ScanStatus::kOk : ScanStatus::kError;
  }
  return out;
}

Status Catalog::PutFrameData(int64_t video_id, std::string_view name,
                             const std::vector<float>& values, int width) {
  return PutArray(db_, video_id, name, "f32", values, width);
}

Status Catalog::PutFrameData(int64_t video_id, std::string_view name,
                             const std::vector<int64_t>& values, int width) {
  return PutArray(db_, video_id, name, "i64", values, width);
}

Result<std::vector<float>> Catalog::GetFrameDataF32(int64_t video_id, std::string_view name) {
  return GetArray<float>(db_, video_id, name, "f32");
}

Result<std::vector<int64_t>> Catalog::GetFrameDataI64(int64_t video_id, std::string_view name) {
  return GetArray<int64_t>(db_, video_id, name, "i64");
}

Result<std::vector<std::string>> Catalog::ListFrameData(int64_t video_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, "SELECT name FROM frame_data WHERE video_id = ?1 ORDER BY name"));
  s.Bind(1, video_id);
  return ReadAll<std::string>(s, [](const Stmt& r) -> Result<std::string> { return r.Text(0); });
}

Result<std::vector<Catalog::FrameArray>> Catalog::GetFrameArrays(int64_t video_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT name, dtype, width, data FROM frame_data WHERE video_id = ?1 "
                            "ORDER BY name"));
  s.Bind(1, video_id);
  return ReadAll<FrameArray>(s, [](const Stmt& r) -> Result<FrameArray> {
    FrameArray a;
    a.name = r.Text(0);
    a.dtype = r.Text(1);
    a.width = static_cast<int>(r.Int(2));
    a.bytes = std::string(r.Blob(3));
    return a;
  });
}

Status Catalog::PutFrameArray(int64_t video_id, const FrameArray& a) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_,
                    "INSERT OR REPLACE INTO frame_data (video_id, name, dtype, width, data) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)"));
  s.Bind(1, video_id).Bind(2, a.name).Bind(3, a.dtype).Bind(4, a.width);
  s.BindBlob(5, a.bytes.data(), a.bytes.size());
  return s.Run();
}

// ---- subsets ----

Result<int64_t> Catalog::PutSubset(const SubsetRecord& subset) {
  if (subset.name.empty()) return Status::InvalidArgument("a subset needs a name");
  int64_t id = 0;
  Status st = ExecInTransaction([&]() -> Status {
    {
      REEL_ASSIGN_OR_RETURN(Stmt d, Stmt::Prepare(db_, "DELETE FROM subsets WHERE name = ?1"));
      d.Bind(1, subset.name);
      REEL_RETURN_IF_ERROR(d.Run());
    }
    REEL_ASSIGN_OR_RETURN(
        Stmt s, Stmt::Prepare(db_,
                              "INSERT INTO subsets (name, expression, sql, run_id, created_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id"));
    s.Bind(1, subset.name).Bind(2, subset.expression).Bind(3, subset.sql).Bind(4, subset.run_id);
    s.Bind(5, UtcNow());
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::Internal("insert returned no id");
    id = s.Int(0);
    return Status::OK();
  });
  if (!st.ok()) return st;
  return id;
}

Result<std::optional<SubsetRecord>> Catalog::FindSubset(std::string_view name) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT id, name, expression, sql, run_id, created_at FROM subsets "
                            "WHERE name = ?1"));
  s.Bind(1, name);
  return ReadOne<SubsetRecord>(s, [](const Stmt& r) -> Result<SubsetRecord> {
    SubsetRecord x;
    x.id = r.Int(0);
    x.name = r.Text(1);
    x.expression = r.Text(2);
    x.sql = r.Text(3);
    x.run_id = r.OptInt(4);
    x.created_at = r.Text(5);
    return x;
  });
}

Result<std::vector<SubsetRecord>> Catalog::ListSubsets() {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT id, name, expression, sql, run_id, created_at FROM subsets "
                            "ORDER BY name"));
  return ReadAll<SubsetRecord>(s, [](const Stmt& r) -> Result<SubsetRecord> {
    SubsetRecord x;
    x.id = r.Int(0);
    x.name = r.Text(1);
    x.expression = r.Text(2);
    x.sql = r.Text(3);
    x.run_id = r.OptInt(4);
    x.created_at = r.Text(5);
    return x;
  });
}

Status Catalog::AddSubsetMembers(int64_t subset_id, const std::vector<SubsetMember>& members) {
  return ExecInTransaction([&]() -> Status {
    REEL_ASSIGN_OR_RETURN(
        Stmt s, Stmt::Prepare(db_,
                              "INSERT OR REPLACE INTO subset_clips (subset_id, clip_id, passed, "
                              "reason) VALUES (?1, ?2, ?3, ?4)"));
    for (const SubsetMember& m : members) {
      s.Reset();
      s.Bind(1, subset_id).Bind(2, m.clip_id).Bind(3, m.passed);
      BindOptionalText(s, 4, m.reason);
      REEL_RETURN_IF_ERROR(s.Run());
    }
    return Status::OK();
  });
}

Result<std::vector<SubsetMember>> Catalog::ListSubsetMembers(int64_t subset_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT clip_id, passed, reason FROM subset_clips WHERE subset_id = ?1 "
                            "ORDER BY clip_id"));
  s.Bind(1, subset_id);
  return ReadAll<SubsetMember>(s, [](const Stmt& r) -> Result<SubsetMember> {
    SubsetMember m;
    m.clip_id = r.Int(0);
    m.passed = r.Int(1) != 0;
    m.reason = r.Text(2);
    return m;
  });
}

// ---- exports ----

Status Catalog::PutClipExport(const ClipExportRecord& r) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "INSERT OR REPLACE INTO clip_exports (clip_id, out_dir, path, mode, "
                            "width, height, fps_num, fps_den, frames, start_num, start_den, "
                            "end_num, end_den, exported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                            "?8, ?9, ?10, ?11, ?12, ?13, ?14)"));
  s.Bind(1, r.clip_id).Bind(2, r.out_dir).Bind(3, r.path).Bind(4, r.mode).Bind(5, r.width);
  s.Bind(6, r.height);
  BindRational(s, 7, r.frame_rate);
  s.Bind(9, r.frames);
  BindRational(s, 10, r.start_time);
  BindRational(s, 12, r.end_time);
  s.Bind(14, UtcNow());
  return s.Run();
}

namespace {

Result<ClipExportRecord> ReadClipExport(const Stmt& r) {
  ClipExportRecord x;
  x.clip_id = r.Int(0);
  x.out_dir = r.Text(1);
  x.path = r.Text(2);
  x.mode = r.Text(3);
  x.width = static_cast<int>(r.Int(4));
  x.height = static_cast<int>(r.Int(5));
  x.frame_rate = ReadRational(r, 6, 7);
  x.frames = r.Int(8);
  x.start_time = ReadRational(r, 9, 10);
  x.end_time = ReadRational(r, 11, 12);
  x.exported_at = r.Text(13);
  return x;
}

constexpr const char* kExportColumns =
    "clip_id, out_dir, path, mode, width, height, fps_num, fps_den, frames, start_num, "
    "start_den, end_num, end_den, exported_at";

}  // namespace

Result<std::optional<ClipExportRecord>> Catalog::FindClipExport(int64_t clip_id,
                                                                std::string_view out_dir) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kExportColumns +
                                     " FROM clip_exports WHERE clip_id = ?1 AND out_dir = ?2"));
  s.Bind(1, clip_id).Bind(2, out_dir);
  return ReadOne<ClipExportRecord>(s, ReadClipExport);
}

Status Catalog::DeleteClipExport(int64_t clip_id, std::string_view out_dir) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, "DELETE FROM clip_exports WHERE clip_id = ?1 AND out_dir = ?2"));
  s.Bind(1, clip_id).Bind(2, out_dir);
  return s.Run();
}

Result<std::vector<ClipExportRecord>> Catalog::ListClipExports(int64_t clip_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kExportColumns +
                                     " FROM clip_exports WHERE clip_id = ?1 ORDER BY out_dir"));
  s.Bind(1, clip_id);
  return ReadAll<ClipExportRecord>(s, ReadClipExport);
}

}  // namespace reel
