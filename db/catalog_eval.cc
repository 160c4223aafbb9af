// Catalog methods for generated videos and cached feature sets.

#include <cstring>

#include "db/catalog.h"
#include "db/sqlite_util.h"

namespace reel {
namespace {

using sql::ParseJsonOr;
using sql::ReadAll;
using sql::ReadOne;
using sql::Stmt;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "feature blobs are little-endian float32; add byte swapping for this platform");

// The columns ReadGeneration reads.
constexpr const char* kSelectGenerations =
    "SELECT id, run_id, path, prompt, clip_id, caption_id, seed, checkpoint, params, created_at "
    "FROM generations";

Result<GenerationRecord> ReadGeneration(const Stmt& r) {
  GenerationRecord g;
  g.id = r.Int(0);
  g.run_id = r.Int(1);
  g.path = r.Text(2);
  g.prompt = r.Text(3);
  g.clip_id = r.OptInt(4);
  g.caption_id = r.OptInt(5);
  g.seed = r.Int(6);
  g.checkpoint = r.Text(7);
  g.params = ParseJsonOr(r.Text(8), Json::MakeObject());
  g.created_at = r.Text(9);
  return g;
}

}  // namespace

Result<int64_t> Catalog::AddGeneration(const GenerationRecord& g) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "INSERT INTO generations (run_id, path, prompt, clip_id, caption_id, "
                            "seed, checkpoint, params, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                            "?6, ?7, ?8, ?9) ON CONFLICT(run_id, path) DO UPDATE SET "
                            "prompt = excluded.prompt, clip_id = excluded.clip_id, "
                            "caption_id = excluded.caption_id, seed = excluded.seed, "
                            "checkpoint = excluded.checkpoint, params = excluded.params, "
                            "created_at = excluded.created_at RETURNING id"));
  s.Bind(1, g.run_id).Bind(2, g.path).Bind(3, g.prompt).Bind(4, g.clip_id).Bind(5, g.caption_id);
  s.Bind(6, g.seed)
      .Bind(7, g.checkpoint)
      .Bind(8, g.params.is_null() ? std::string("{}") : g.params.Dump());
  s.Bind(9, g.created_at.empty() ? UtcNow() : g.created_at);
  REEL_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return Status::Internal("insert returned no id");
  return s.Int(0);
}

Result<std::vector<GenerationRecord>> Catalog::ListGenerations(int64_t run_id) {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, std::string(kSelectGenerations) +
                                                       " WHERE run_id = ?1 ORDER BY id"));
  s.Bind(1, run_id);
  return ReadAll<GenerationRecord>(s, ReadGeneration);
}

Result<std::vector<GenerationRecord>> Catalog::ListGenerationsAt(std::string_view path) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_, std::string(kSelectGenerations) + " WHERE path = ?1 ORDER BY id"));
  s.Bind(1, path);
  return ReadAll<GenerationRecord>(s, ReadGeneration);
}

Result<std::optional<FeatureSet>> Catalog::FindFeatureSet(std::string_view key) {
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "SELECT key, extractor, source, params, count, dim, features, "
                            "skipped, created_at FROM feature_sets WHERE key = ?1"));
  s.Bind(1, key);
  return ReadOne<FeatureSet>(s, [](const Stmt& r) -> Result<FeatureSet> {
    FeatureSet f;
    f.key = r.Text(0);
    f.extractor = r.Text(1);
    f.source = r.Text(2);
    f.params = ParseJsonOr(r.Text(3), Json::MakeObject());
    f.count = r.Int(4);
    f.dim = r.Int(5);
    const std::string_view bytes = r.Blob(6);
    if (static_cast<int64_t>(bytes.size()) != f.count * f.dim * 4) {
      return Status::Corruption("feature set " + f.key + ": " + std::to_string(bytes.size()) +
                                " bytes for " + std::to_string(f.count) + " x " +
                                std::to_string(f.dim) + " floats");
    }
    f.features.resize(static_cast<size_t>(f.count * f.dim));
    if (!bytes.empty()) std::memcpy(f.features.data(), bytes.data(), bytes.size());
    f.skipped = ParseJsonOr(r.Text(7), Json::MakeObject());
    f.created_at = r.Text(8);
    return f;
  });
}

Result<std::vector<std::string>> Catalog::ListFeatureSetKeys() {
  REEL_ASSIGN_OR_RETURN(Stmt s, Stmt::Prepare(db_, "SELECT key FROM feature_sets ORDER BY key"));
  return ReadAll<std::string>(s, [](const Stmt& r) -> Result<std::string> { return r.Text(0); });
}

Status Catalog::PutFeatureSet(const FeatureSet& f) {
  if (static_cast<int64_t>(f.features.size()) != f.count * f.dim) {
    return Status::InvalidArgument("feature set " + f.key + ": size does not match count x dim");
  }
  REEL_ASSIGN_OR_RETURN(
      Stmt s, Stmt::Prepare(db_,
                            "INSERT OR REPLACE INTO feature_sets (key, extractor, source, params, "
                            "count, dim, features, skipped, created_at) VALUES (?1, ?2, ?3, ?4, "
                            "?5, ?6, ?7, ?8, ?9)"));
  s.Bind(1, f.key).Bind(2, f.extractor).Bind(3, f.source).Bind(4, f.params.Dump());
  s.Bind(5, f.count).Bind(6, f.dim);
  s.BindBlob(7, f.features.data(), f.features.size() * sizeof(float));
  s.Bind(8, f.skipped.Dump()).Bind(9, f.created_at.empty() ? UtcNow() : f.created_at);
  return s.Run();
}

}  // namespace reel
