// Catalog methods for captions, their scores and failures, sidecar texts and the
// caption selection policy.

#include <cctype>

#include "db/catalog.h"
#include "db/sqlite_util.h"

namespace reel {
namespace {

using sql::ParseJsonOr;
using sql::ReadAll;
using sql::ReadOne;
using sql::ReadRational;
using sql::Stmt;

constexpr const char* kCaptionColumns =
    "id, clip_id, text, source, model, prompt, params, created_at, run_id";

Result<CaptionRecord> ReadCaption(const Stmt& r) {
  CaptionRecord c;
  c.id = r.Int(0);
  c.clip_id = r.Int(1);
  c.text = r.Text(2);
  c.source = r.Text(3);
  c.model = r.Text(4);
  c.prompt = r.Text(5);
  c.params = ParseJsonOr(r.Text(6), Json::MakeObject());
  c.created_at = r.Text(7);
  c.run_id = r.OptInt(8);
  return c;
}

Result<CaptionScore> ReadScore(const Stmt& r) {
  CaptionScore c;
  c.caption_id = r.Int(0);
  c.name = r.Text(1);
  c.model = r.Text(2);
  c.value = r.Real(3);
  c.created_at = r.Text(4);
  return c;
}

std::string SqlLiteral(std::string_view text) {
  std::string out = "'";
  for (char ch : text) {
    out += ch;
    if (ch == '\'') out += '\'';
  }
  return out + "'";
}

bool IsSourceName(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s) {
    if (!(std::islower(static_cast<unsigned char>(ch)) ||
          std::isdigit(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

// ---- selection policy ----

const std::vector<std::string>& DefaultCaptionPreference() {
  static const std::vector<std::string> kDefault = {"vlm", "merged", "clip", "signals", "original"};
  return kDefault;
}

Result<std::vector<std::string>> ParseCaptionPreference(std::string_view list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) comma = list.size();
    std::string entry(list.substr(pos, comma - pos));
    while (!entry.empty() && std::isspace(static_cast<unsigned char>(entry.back()))) {
      entry.pop_back();
    }
    size_t lead = 0;
    while (lead < entry.size() && std::isspace(static_cast<unsigned char>(entry[lead]))) ++lead;
    entry = entry.substr(lead);
    const size_t colon = entry.find(':');
    const std::string source = entry.substr(0, colon);
    if (!IsSourceName(source) || (colon != std::string::npos && colon + 1 == entry.size())) {
      return Status::InvalidArgument("caption preference '" + std::string(list) + "': bad entry '" +
                                     entry +
                                     "' (expected a source such as vlm, merged, clip, signals, "
                                     "original, optionally followed by :MODEL)");
    }
    out.push_back(entry);
    pos = comma + 1;
  }
  if (out.empty()) return Status::InvalidArgument("empty caption preference");
  return out;
}

std::string SelectedCaptionSql(const std::vector<std::string>& prefer, std::string_view clip_id_sql,
                               std::string_view column) {
  std::string rank = "CASE";
  std::string where;
  for (size_t i = 0; i < prefer.size(); ++i) {
    const size_t colon = prefer[i].find(':');
    std::string cond = "k.source = " + SqlLiteral(prefer[i].substr(0, colon));
    if (colon != std::string::npos) {
      cond += " AND k.model = " + SqlLiteral(prefer[i].substr(colon + 1));
    }
    rank += " WHEN " + cond + " THEN " + std::to_string(i);
    where += (where.empty() ? "(" : " OR (") + cond + ")";
  }
  rank += " END";
  return "(SELECT k." + std::string(column) +
         " FROM captions k WHERE k.clip_id = " + std::string(clip_id_sql) + " AND (" + where +
         ") ORDER BY " + rank + ", k.created_at DESC, k.id DESC LIMIT 1)";
}

// ---- captions ----

Result<int64_t> Catalog::AddCaption(const CaptionRecord& c, CaptionConflict on_conflict) {
  if (c.source.empty()) return Status::InvalidArgument("caption without a source");
  int64_t id = 0;
  Status st = ExecInTransaction([&]() -> Status {
    REEL_ASSIGN_OR_RETURN(auto existing, FindCaption(c.clip_id, c.source, c.model));
    const std::string params = c.params.is_null() ? std::string("{}") : c.params.Dump();
    if (existing.has_value()) {
      id = existing->id;
      switch (on_conflict) {
        case CaptionConflict::kFail:
          return Status::AlreadyExists("clip " + std::to_string(c.clip_id) + " already has a '" +
                                       c.source + "' caption by '" + c.model + "'");
        case CaptionConflict::kKeep:
          return Status::OK();
        case CaptionConflict::kReplace: {
          REEL_ASSIGN_OR_RETURN(
              Stmt s, Stmt::Prepare(db_,
                                    "UPDATE captions SET text = ?2, prompt = ?3, params = ?4, "
                                    "run_id = ?5, created_at = ?6 WHERE id = ?1"));
          s.Bind(1, id).Bind(2, c.text).Bind(3, c.prompt).Bind(4, params).Bind(5, c.run_id);
          s.Bind(6, c.created_at.empty() ? UtcNow() : c.created_at);
          REEL_RETURN_IF_ERROR(s.Run());
          REEL_ASSIGN_OR_RETURN(
              Stmt d, Stmt::Prepare(db_, "DELETE FROM caption_scores WHERE caption_id = ?1"));
          d.Bind(1, id);
          return d.Run();
        }
      }
    }
    REEL_ASSIGN_OR_RETURN(
        Stmt s, Stmt::Prepare(db_,
                              "INSERT INTO captions (clip_id, text, source, model, prompt, params, "
                              "created_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                              "RETURNING id"));
    s.Bind(1, c.clip_id).Bind(2, c.text).Bind(3, c.source).Bind(4, c.model).Bind(5, c.prompt);
    s.Bind(6, params).Bind(7, c.created_at.empty() ? UtcNow() : c.created_at).Bind(8, c.run_id);
    REEL_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return Status::Internal("insert returned no id");
    id = s.Int(0);
    return Status::OK();
  });
  if (!st.ok()) return st;
  return id;
}

Result<std::vector<CaptionRecord>> Catalog::ListCaptions(int64_t clip_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s,
                        Stmt::Prepare(db_, std::string("SELECT ") + kCaptionColumns +
                                               " FROM captions WHERE clip_id = ?1 ORDER BY id"));
  s.Bind(1, clip_id);
  return ReadAll<CaptionRecord>(s, ReadCaption);
}

Result<std::optional<CaptionRecord>> Catalog::FindCaption(int64_t clip_id, std::string_view source,
                                                          std::string_view model) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kCaptionColumns +
                                     " FROM captions WHERE clip_id = ?1 AND source = ?2 AND "
                                     "model = ?3"));
  s.Bind(1, clip_id).Bind(2, source).Bind(3, model);
  return ReadOne<CaptionRecord>(s, ReadCaption);
}

Result<std::optional<CaptionRecord>> Catalog::SelectCaption(
    int64_t clip_id, const std::vector<std::string>& prefer) {
  if (prefer.empty()) return std::optional<CaptionRecord>();
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string("SELECT ") + kCaptionColumns +
                                                       " FROM captions WHERE id = " +
                                                       SelectedCaptionSql(prefer, "?1", "id")));
  s.Bind(1, clip_id);
  return ReadOne<CaptionRecord>(s, ReadCaption);
}

Status Catalog::PutCaptionScore(const CaptionScore& score) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "INSERT OR REPLACE INTO caption_scores (caption_id, name, model, "
                            "value, created_at) VALUES (?1, ?2, ?3, ?4, ?5)"));
  s.Bind(1, score.caption_id).Bind(2, score.name).Bind(3, score.model).Bind(4, score.value);
  s.Bind(5, score.created_at.empty() ? UtcNow() : score.created_at);
  return s.Run();
}

Result<std::vector<CaptionScore>> Catalog::ListCaptionScores(int64_t caption_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s,
                        Stmt::Prepare(db_,
                                      "SELECT caption_id, name, model, value, created_at FROM "
                                      "caption_scores WHERE caption_id = ?1 ORDER BY name, model"));
  s.Bind(1, caption_id);
  return ReadAll<CaptionScore>(s, ReadScore);
}

Result<std::vector<CaptionScore>> Catalog::ListClipCaptionScores(int64_t clip_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT s.caption_id, s.name, s.model, s.value, s.created_at FROM "
                            "caption_scores s JOIN captions k ON k.id = s.caption_id "
                            "WHERE k.clip_id = ?1 ORDER BY s.caption_id, s.name, s.model"));
  s.Bind(1, clip_id);
  return ReadAll<CaptionScore>(s, ReadScore);
}

Status Catalog::PutCaptionError(const CaptionError& e) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s,
      Stmt::Prepare(db_,
                    "INSERT OR REPLACE INTO caption_errors (clip_id, source, model, run_id, "
                    "error, attempts, failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  s.Bind(1, e.clip_id).Bind(2, e.source).Bind(3, e.model).Bind(4, e.run_id).Bind(5, e.error);
  s.Bind(6, e.attempts).Bind(7, e.failed_at.empty() ? UtcNow() : e.failed_at);
  return s.Run();
}

Status Catalog::ClearCaptionError(int64_t clip_id, std::string_view source,
                                  std::string_view model) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "DELETE FROM caption_errors WHERE clip_id = ?1 AND source = ?2 AND "
                            "model = ?3"));
  s.Bind(1, clip_id).Bind(2, source).Bind(3, model);
  return s.Run();
}

Result<std::vector<CaptionError>> Catalog::ListCaptionErrors(std::string_view source) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT clip_id, source, model, run_id, error, attempts, failed_at "
                            "FROM caption_errors WHERE ?1 = '' OR source = ?1 "
                            "ORDER BY clip_id, source, model"));
  s.Bind(1, source);
  return ReadAll<CaptionError>(s, [](const Stmt& r) -> Result<CaptionError> {
    CaptionError e;
    e.clip_id = r.Int(0);
    e.source = r.Text(1);
    e.model = r.Text(2);
    e.run_id = r.OptInt(3);
    e.error = r.Text(4);
    e.attempts = static_cast<int>(r.Int(5));
    e.failed_at = r.Text(6);
    return e;
  });
}

// ---- sidecar texts ----

Status Catalog::ReplaceVideoTexts(int64_t video_id, const std::vector<VideoText>& texts,
                                  std::string_view stamp) {
  return ExecInTransaction([&]() -> Status {
    REEL_ASSIGN_OR_RETURN(Stmt del,
                          Stmt::Prepare(db_, "DELETE FROM video_texts WHERE video_id = ?1"));
    del.Bind(1, video_id);
    REEL_RETURN_IF_ERROR(del.Run());
    REEL_ASSIGN_OR_RETURN(
        Stmt ins, Stmt::Prepare(db_,
                                "INSERT INTO video_texts (video_id, origin, field, seq, start_num, "
                                "start_den, end_num, end_den, text, file) VALUES (?1, ?2, ?3, ?4, "
                                "?5, ?6, ?7, ?8, ?9, ?10)"));
    for (const VideoText& t : texts) {
      ins.Reset();
      ins.Bind(1, video_id).Bind(2, t.origin).Bind(3, t.field).Bind(4, t.seq);
      if (t.start_time.has_value() && t.end_time.has_value()) {
        sql::BindRational(ins, 5, *t.start_time);
        sql::BindRational(ins, 7, *t.end_time);
      } else {
        ins.BindNull(5).BindNull(6).BindNull(7).BindNull(8);
      }
      ins.Bind(9, t.text).Bind(10, t.file);
      REEL_RETURN_IF_ERROR(
          ins.Run().WithContext("video " + std::to_string(video_id) + ": " + t.file));
    }
    REEL_ASSIGN_OR_RETURN(Stmt up,
                          Stmt::Prepare(db_, "UPDATE videos SET sidecar_stamp = ?2 WHERE id = ?1"));
    up.Bind(1, video_id).Bind(2, stamp);
    return up.Run();
  });
}

Result<std::vector<VideoText>> Catalog::ListVideoTexts(int64_t video_id) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT video_id, origin, field, seq, start_num, start_den, end_num, "
                            "end_den, text, file FROM video_texts WHERE video_id = ?1 "
                            "ORDER BY origin, field, seq"));
  s.Bind(1, video_id);
  return ReadAll<VideoText>(s, [](const Stmt& r) -> Result<VideoText> {
    VideoText t;
    t.video_id = r.Int(0);
    t.origin = r.Text(1);
    t.field = r.Text(2);
    t.seq = r.Int(3);
    if (!r.IsNull(4)) {
      t.start_time = ReadRational(r, 4, 5);
      t.end_time = ReadRational(r, 6, 7);
    }
    t.text = r.Text(8);
    t.file = r.Text(9);
    return t;
  });
}

// ---- aesthetics ----

Status Catalog::SetClipAesthetic(int64_t clip_id, std::optional<double> score) {
  return sql::UpdateById(db_, "UPDATE clips SET aesthetic = ?2 WHERE id = ?1", clip_id, score,
                         "clip");
}

Result<std::optional<double>> Catalog::GetClipAesthetic(int64_t clip_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "SELECT aesthetic FROM clips WHERE id = ?1"));
  s.Bind(1, clip_id);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::NotFound("clip " + std::to_string(clip_id));
  if (s.IsNull(0)) return std::optional<double>();
  return std::optional<double>(s.Real(0));
}

}  // namespace reel
