// Tests for db/: the catalog, its migrations, the read-only query guard and exports.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "db/catalog.h"
#include "db/export.h"
#include "db/merge.h"
#include "db/schema.h"
#include "db/video_file.h"
#include "tests/support/test_support.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {
namespace {

using testing::TempDir;

std::unique_ptr<Catalog> OpenOrDie(const std::string& path, Catalog::Options o = {}) {
  auto c = Catalog::Open(path, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

int64_t Count(Catalog& c, const std::string& sql) {
  int64_t n = -1;
  Status s = c.QueryReadOnly(
      sql, [](const std::vector<std::string>&) { return Status::OK(); },
      [&](const std::vector<SqlValue>& row) {
        n = std::get<int64_t>(row[0]);
        return Status::OK();
      });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return n;
}

std::string Pragma(Catalog& c, const std::string& name) {
  std::string out;
  Status s = c.QueryReadOnly(
      "PRAGMA " + name, [](const std::vector<std::string>&) { return Status::OK(); },
      [&](const std::vector<SqlValue>& row) {
        if (const auto* i = std::get_if<int64_t>(&row[0])) out = std::to_string(*i);
        if (const auto* t = std::get_if<std::string>(&row[0])) out = *t;
        return Status::OK();
      });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::string Sha256Like(const std::string& seed) {
  std::string h(64, '0');
  for (size_t i = 0; i < seed.size(); ++i) h[i % 64] = "0123456789abcdef"[seed[i] % 16];
  return h;
}

VideoRecord SampleVideoRecord(const std::string& path) {
  VideoRecord v;
  v.path = path;
  v.size_bytes = 123456;
  v.mtime_ns = 1700000000123456789;
  v.content_hash = Sha256Like(path);
  v.status = VideoStatus::kOk;
  v.container = "mov,mp4,m4a,3gp,3g2,mj2";
  v.codec = "h264";
  v.pixel_format = "yuv420p";
  v.width = 1280;
  v.height = 720;
  v.sample_aspect_ratio = Rational(4, 3);
  v.rotation = 90;
  v.frame_rate = Rational(30000, 1001);
  v.time_base = Rational(1, 30000);
  v.variable_frame_rate = true;
  v.frame_count = 720;
  v.start_time = Rational(1, 15);
  v.duration = Rational(3003, 125);
  v.has_audio = true;
  v.bit_rate = 2500000;
  v.metadata = {{"title", "Harbour"}, {"comment", "a \"quoted\" note"}};
  return v;
}

// ---------------------------------------------------------------- generations and features

TEST(CatalogTest, GenerationsAndFeatureSetsRoundTripAndMerge) {
  TempDir dir;
  int64_t run = 0;
  {
    auto c = OpenOrDie(dir.File("shard.db"));
    run = *c->BeginRun("generate", Json::MakeObject(), "model-a");
    EXPECT_EQ(c->FindRunByName("generate", "model-a").value().id, run);
    GenerationRecord g;
    g.run_id = run;
    g.path = "out/0.mp4";
    g.prompt = "a red square moving right";
    g.seed = 7;
    g.checkpoint = "ckpt/step-100";
    ASSERT_TRUE(c->AddGeneration(g).ok());
    g.path = "out/1.mp4";
    g.seed = 8;
    ASSERT_TRUE(c->AddGeneration(g).ok());
    g.prompt = "replaced";  // same (run, path): updated, not duplicated
    ASSERT_TRUE(c->AddGeneration(g).ok());
    auto gens = c->ListGenerations(run);
    ASSERT_TRUE(gens.ok());
    ASSERT_EQ(gens->size(), 2u);
    EXPECT_EQ((*gens)[1].prompt, "replaced");
    EXPECT_EQ((*gens)[0].seed, 7);
    ASSERT_TRUE(c->FinishRun(run, RunStatus::kOk).ok());
    // A path, whichever runs wrote it.
    const int64_t other = *c->BeginRun("generate", Json::MakeObject(), "model-b");
    g.run_id = other;
    ASSERT_TRUE(c->AddGeneration(g).ok());
    ASSERT_TRUE(c->FinishRun(other, RunStatus::kOk).ok());
    auto at = c->ListGenerationsAt("out/1.mp4");
    ASSERT_TRUE(at.ok()) << at.status().ToString();
    ASSERT_EQ(at->size(), 2u);
    EXPECT_EQ((*at)[0].run_id, run);
    EXPECT_EQ((*at)[1].run_id, other);
    EXPECT_TRUE(c->ListGenerationsAt("out/2.mp4")->empty());

    FeatureSet f;
    f.key = "k1";
    f.extractor = "i3d:abc:stylegan-v";
    f.source = "videos/";
    f.count = 2;
    f.dim = 3;
    f.features = {1, 2, 3, 4, 5, 6.5f};
    f.skipped["unreadable"] = 1;
    ASSERT_TRUE(c->PutFeatureSet(f).ok());
    f.features.pop_back();
    EXPECT_EQ(c->PutFeatureSet(f).code(), StatusCode::kInvalidArgument);
    auto back = c->FindFeatureSet("k1");
    ASSERT_TRUE(back.ok());
    ASSERT_TRUE(back->has_value());
    EXPECT_EQ((*back)->features, (std::vector<float>{1, 2, 3, 4, 5, 6.5f}));
    EXPECT_EQ((*back)->skipped.Find("unreadable")->as_int(), 1);
    EXPECT_FALSE(c->FindFeatureSet("k2")->has_value());
  }
  // Merged twice: the run, its generated videos and the features arrive once.
  auto out = OpenOrDie(dir.File("all.db"));
  for (int i = 0; i < 2; ++i) {
    auto s = MergeCatalogs(*out, {dir.File("shard.db")});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->generations, i == 0 ? 3 : 0);
    EXPECT_EQ(s->runs, i == 0 ? 2 : 0);
  }
  auto merged = out->FindRunByName("generate", "model-a");
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(out->ListGenerations(merged->id)->size(), 2u);
  auto merged_b = out->FindRunByName("generate", "model-b");
  ASSERT_TRUE(merged_b.ok()) << merged_b.status().ToString();
  EXPECT_EQ(out->ListGenerations(merged_b->id)->size(), 1u);
  EXPECT_EQ(*out->ListFeatureSetKeys(), std::vector<std::string>{"k1"});
}

// A run is the same run only with the same start, process, name and configuration: one
// process may begin several runs in a millisecond, and merging must keep them all.
TEST(CatalogTest, ImportRunTellsRunsOfOneMillisecondApart) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("c.db"));
  RunRecord r;
  r.kind = "generate";
  r.started_at = "2026-11-23T10:00:00.000Z";
  r.host = "h";
  r.pid = 42;
  r.status = RunStatus::kOk;
  r.name = "x";
  bool inserted = false;
  const int64_t x = c->ImportRun(r, &inserted).value();
  EXPECT_TRUE(inserted);
  EXPECT_EQ(c->ImportRun(r, &inserted).value(), x);
  EXPECT_FALSE(inserted);
  r.name = "y";
  const int64_t y = c->ImportRun(r, &inserted).value();
  EXPECT_TRUE(inserted);
  EXPECT_NE(y, x);
  r.config["seed"] = 1;
  const int64_t z = c->ImportRun(r, &inserted).value();
  EXPECT_TRUE(inserted);
  EXPECT_NE(z, y);
  EXPECT_EQ(c->ImportRun(r, &inserted).value(), z);
  EXPECT_EQ(c->ListRuns()->size(), 3u);
}

// ---------------------------------------------------------------- open and configure

TEST(CatalogTest, NewCatalogIsWalWithForeignKeysAtCurrentVersion) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->schema_version(), Catalog::kSchemaVersion);
  EXPECT_EQ(Pragma(*c, "journal_mode"), "wal");
  EXPECT_EQ(Pragma(*c, "foreign_keys"), "1");
  EXPECT_EQ(Pragma(*c, "user_version"), std::to_string(Catalog::kSchemaVersion));
  EXPECT_EQ(Pragma(*c, "application_id"), std::to_string(kCatalogApplicationId));
  EXPECT_EQ(*c->IntegrityCheck(), "ok");
}

TEST(CatalogTest, ReadOnlyOpenNeedsAnExistingCatalogAndCannotWrite) {
  TempDir dir;
  Catalog::Options ro;
  ro.read_only = true;
  auto missing = Catalog::Open(dir.File("absent.db"), ro);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.File("absent.db")));

  { OpenOrDie(dir.File("cat.db")); }
  auto c = OpenOrDie(dir.File("cat.db"), ro);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->UpsertVideo(SampleVideoRecord("/v/a.mp4")).ok());
  EXPECT_FALSE(c->BeginRun("ingest", Json()).ok());
}

TEST(CatalogTest, RefusesFilesThatAreNotReelCatalogs) {
  TempDir dir;
  testing::WriteFile(dir.File("text.db"), "certainly not SQLite, but long enough to look at...");
  auto text = Catalog::Open(dir.File("text.db"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kCorruption);
  EXPECT_NE(text.status().message().find("text.db"), std::string::npos);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("other.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE accounts (id INTEGER)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto other = Catalog::Open(dir.File("other.db"));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not a reel catalog"), std::string::npos);

  auto folder = Catalog::Open(dir.path());
  EXPECT_FALSE(folder.ok());

  // A catalog cut short (a copy that stopped) is damaged, not "not a catalog", and the
  // message says how to save what is left.
  const std::string cut = dir.File("cut.db");
  { OpenOrDie(cut); }
  ASSERT_GT(std::filesystem::file_size(cut), 16384u);
  std::filesystem::resize_file(cut, 8192);
  auto damaged = Catalog::Open(cut);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), StatusCode::kCorruption);
  EXPECT_NE(damaged.status().message().find("cut.db: the catalog is damaged (SQL step failed: "
                                            "database disk image is malformed)"),
            std::string::npos)
      << damaged.status().ToString();
  EXPECT_NE(damaged.status().message().find(".recover"), std::string::npos);
}

TEST(CatalogTest, NewerSchemaIsRefused) {
  TempDir dir;
  const std::string path = dir.File("future.db");
  { OpenOrDie(path); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto c = Catalog::Open(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("newer"), std::string::npos);
}

// ---------------------------------------------------------------- migrations

TEST(MigrationTest, VersionOneCatalogIsUpgradedInPlaceKeepingEveryRow) {
  TempDir dir;
  const std::string path = dir.File("old.db");
  {
    const std::string fixture = *ReadFile(testing::SourceDir() + "/tests/data/catalog_v1.sql");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, fixture.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(db);
  }
  Catalog::Options ro;
  ro.read_only = true;
  {
    // A reader sees version 1 and does not upgrade.
    auto reader = OpenOrDie(path, ro);
    ASSERT_NE(reader, nullptr);
    EXPECT_EQ(reader->schema_version(), 1);
  }
  auto c = OpenOrDie(path);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->schema_version(), Catalog::kSchemaVersion);
  EXPECT_EQ(*c->IntegrityCheck(), "ok");

  auto v = c->FindVideoByPath("/data/raw/harbour.mp4");
  ASSERT_TRUE(v.ok() && v->has_value());
  const VideoRecord& harbour = **v;
  EXPECT_EQ(harbour.id, 1);
  EXPECT_EQ(harbour.frame_rate, Rational(30000, 1001));
  EXPECT_EQ(harbour.duration, Rational(3003, 125));
  EXPECT_EQ(harbour.frame_count, 720);
  EXPECT_EQ(harbour.mtime_ns, 0);  // new column, default
  EXPECT_TRUE(harbour.metadata.empty());
  EXPECT_FALSE(harbour.duplicate_of.has_value());
  auto broken = c->FindVideoByPath("/data/raw/broken.mp4");
  ASSERT_TRUE(broken.ok() && broken->has_value());
  EXPECT_EQ((*broken)->status, VideoStatus::kError);

  auto clips = c->ListClips();
  ASSERT_TRUE(clips.ok());
  ASSERT_EQ(clips->size(), 1u);
  EXPECT_EQ((*clips)[0].end_time, Rational(1001, 200));
  auto captions = c->ListCaptions(1);
  ASSERT_TRUE(captions.ok());
  ASSERT_EQ(captions->size(), 1u);
  EXPECT_EQ((*captions)[0].text, "Boats in a harbour at dusk.");
  auto runs = c->ListRuns();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].config.Find("paths")->at(0).as_string(), "/data/raw");
  EXPECT_EQ((*runs)[0].host, "");
  EXPECT_EQ(c->ListMetrics(1)->size(), 1u);
  // Columns added by version 2 work on old rows.
  EXPECT_EQ(Count(*c, "SELECT count(*) FROM videos WHERE abs(duration_seconds - 24.024) < 1e-9"),
            1);
  EXPECT_EQ(Count(*c, "SELECT count(*) FROM clips WHERE abs(duration_seconds - 5.005) < 1e-9"), 1);
  // And new rows can be written next to them.
  EXPECT_TRUE(c->UpsertVideo(SampleVideoRecord("/data/raw/new.mp4")).ok());
}

TEST(MigrationTest, DuplicateCaptionsSurviveTheUniquenessUpgrade) {
  TempDir dir;
  const std::string path = dir.File("old.db");
  {
    const std::string fixture = *ReadFile(testing::SourceDir() + "/tests/data/catalog_v1.sql");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, fixture.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    // Old catalogs allowed several captions of one source and model per clip.
    ASSERT_EQ(sqlite3_exec(db,
                           "INSERT INTO captions VALUES (2, 1, 'Boats again.', 'original', '', '', "
                           "'{}', '2026-01-06T00:00:00.000Z')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto c = OpenOrDie(path);
  ASSERT_NE(c, nullptr);
  auto captions = c->ListCaptions(1);
  ASSERT_TRUE(captions.ok());
  ASSERT_EQ(captions->size(), 2u) << "no caption is dropped by the upgrade";
  EXPECT_EQ((*captions)[0].model, "");
  EXPECT_EQ((*captions)[1].model, "#2");
  EXPECT_EQ((*captions)[1].text, "Boats again.");
  // From now on the catalog refuses a second caption of the same backend and model.
  CaptionRecord k;
  k.clip_id = 1;
  k.source = "original";
  k.text = "third";
  EXPECT_EQ(c->AddCaption(k).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*c->IntegrityCheck(), "ok");
}

TEST(MigrationTest, MigrationsAreNumberedInOrder) {
  const auto& m = CatalogMigrations();
  ASSERT_EQ(static_cast<int>(m.size()), Catalog::kSchemaVersion);
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i].version, static_cast<int>(i) + 1);
}

// ---------------------------------------------------------------- videos

TEST(VideoRowTest, UpsertRoundTripsEveryField) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  const VideoRecord in = SampleVideoRecord("/videos/harbour, at \"dusk\".mp4");
  auto id = c->UpsertVideo(in);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto found = c->FindVideoByPath(in.path);
  ASSERT_TRUE(found.ok() && found->has_value());
  const VideoRecord& out = **found;
  EXPECT_EQ(out.id, *id);
  EXPECT_EQ(out.path, in.path);
  EXPECT_EQ(out.size_bytes, in.size_bytes);
  EXPECT_EQ(out.mtime_ns, in.mtime_ns);
  EXPECT_EQ(out.content_hash, in.content_hash);
  EXPECT_EQ(out.status, VideoStatus::kOk);
  EXPECT_EQ(out.container, in.container);
  EXPECT_EQ(out.codec, in.codec);
  EXPECT_EQ(out.pixel_format, in.pixel_format);
  EXPECT_EQ(out.width, 1280);
  EXPECT_EQ(out.height, 720);
  EXPECT_EQ(out.sample_aspect_ratio, Rational(4, 3));
  EXPECT_EQ(out.rotation, 90);
  EXPECT_EQ(out.frame_rate, Rational(30000, 1001));
  EXPECT_EQ(out.time_base, Rational(1, 30000));
  EXPECT_TRUE(out.variable_frame_rate);
  EXPECT_EQ(out.frame_count, 720);
  EXPECT_EQ(out.start_time, Rational(1, 15));
  EXPECT_EQ(out.duration, Rational(3003, 125));
  EXPECT_TRUE(out.has_audio);
  EXPECT_EQ(out.bit_rate, 2500000);
  EXPECT_EQ(out.metadata, in.metadata);
  EXPECT_FALSE(out.ingested_at.empty());

  // Same path again: the row is updated in place, not duplicated.
  VideoRecord changed = in;
  changed.size_bytes = 99;
  changed.frame_count = 10;
  EXPECT_EQ(*c->UpsertVideo(changed), *id);
  EXPECT_EQ((*c->FindVideoById(*id))->frame_count, 10);
  EXPECT_EQ(c->ListVideos()->size(), 1u);
  EXPECT_EQ((*c->FindVideoByHash(in.content_hash))->id, *id);
}

TEST(VideoRowTest, ErrorRowsKeepTheCauseAndNoProbedFields) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  VideoRecord bad = SampleVideoRecord("/v/bad.mp4");
  bad.status = VideoStatus::kError;
  bad.error = "truncated: header lists 50 frames, file holds 12";
  ASSERT_TRUE(c->UpsertVideo(bad).ok());
  const VideoRecord out = **c->FindVideoByPath("/v/bad.mp4");
  EXPECT_EQ(out.status, VideoStatus::kError);
  EXPECT_EQ(out.error, bad.error);
  EXPECT_EQ(out.codec, "");
  EXPECT_EQ(out.frame_count, 0);
  EXPECT_FALSE(c->FindVideoByHash(bad.content_hash)->has_value());  // only ok rows match
  EXPECT_EQ(c->ListVideos(VideoStatus::kError)->size(), 1u);
  EXPECT_EQ(c->ListVideos(VideoStatus::kOk)->size(), 0u);
  auto stamps = c->LoadFileStamps();
  ASSERT_TRUE(stamps.ok());
  EXPECT_EQ(stamps->at("/v/bad.mp4").status, VideoStatus::kError);
  EXPECT_EQ(stamps->at("/v/bad.mp4").mtime_ns, bad.mtime_ns);
}

// ---------------------------------------------------------------- clips, captions, runs

TEST(CatalogTest, ClipsCaptionsRunsAndMetrics) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  const int64_t video = *c->UpsertVideo(SampleVideoRecord("/v/a.mp4"));
  ClipRecord clip;
  clip.video_id = video;
  clip.start_frame = 30;
  clip.end_frame = 90;
  clip.start_time = Rational(1001, 1000);
  clip.end_time = Rational(3003, 1000);
  auto clip_id = c->AddClip(clip);
  ASSERT_TRUE(clip_id.ok()) << clip_id.status().ToString();
  EXPECT_FALSE(c->AddClip(clip).ok());  // same range twice
  ClipRecord empty = clip;
  empty.end_frame = 30;
  EXPECT_EQ(c->AddClip(empty).status().code(), StatusCode::kInvalidArgument);
  ClipRecord orphan = clip;
  orphan.video_id = 999;
  EXPECT_FALSE(c->AddClip(orphan).ok());  // foreign key

  CaptionRecord cap;
  cap.clip_id = *clip_id;
  cap.text = "A red square moves right.";
  cap.source = "vlm";
  cap.model = "qwen2-vl-7b";
  cap.prompt = "Describe the clip.";
  cap.params = Json::MakeObject();
  cap.params["temperature"] = 0.2;
  ASSERT_TRUE(c->AddCaption(cap).ok());
  cap.source = "signals";
  cap.text = "A bright shot.";
  ASSERT_TRUE(c->AddCaption(cap).ok());
  auto caps = c->ListCaptions(*clip_id);
  ASSERT_EQ(caps->size(), 2u);
  EXPECT_EQ((*caps)[0].source, "vlm");
  EXPECT_DOUBLE_EQ((*caps)[0].params.Find("temperature")->as_double(), 0.2);

  Json config = Json::MakeObject();
  config["metrics"] = "fvd";
  const int64_t run = *c->BeginRun("eval", config);
  ASSERT_TRUE(c->AddMetric(run, "fvd", 123.25).ok());
  ASSERT_TRUE(c->FinishRun(run, RunStatus::kOk).ok());
  auto r = c->FindRun(run);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->status, RunStatus::kOk);
  EXPECT_EQ((*r)->pid, static_cast<int64_t>(getpid()));
  EXPECT_FALSE((*r)->finished_at.empty());
  EXPECT_EQ((*r)->config.Find("metrics")->as_string(), "fvd");
  EXPECT_DOUBLE_EQ(c->ListMetrics(run)->at(0).value, 123.25);
  EXPECT_EQ(c->FinishRun(9999, RunStatus::kOk).code(), StatusCode::kNotFound);

  // Deleting a video removes its clips and their captions.
  ASSERT_EQ(sqlite3_exec(c->raw(), "DELETE FROM videos", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(Count(*c, "SELECT count(*) FROM clips"), 0);
  EXPECT_EQ(Count(*c, "SELECT count(*) FROM captions"), 0);
}

TEST(CatalogTest, RunsOfDeadProcessesAreMarkedInterrupted) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  const int64_t mine = *c->BeginRun("ingest", Json());
  const int64_t dead = *c->BeginRun("ingest", Json());
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // `child` is now a pid with no process
  ASSERT_EQ(sqlite3_exec(c->raw(),
                         ("UPDATE runs SET pid = " + std::to_string(child) +
                          " WHERE id = " + std::to_string(dead))
                             .c_str(),
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(*c->MarkInterruptedRuns(), 1);
  EXPECT_EQ((*c->FindRun(dead))->status, RunStatus::kInterrupted);
  EXPECT_EQ((*c->FindRun(mine))->status, RunStatus::kRunning);
}

// ---------------------------------------------------------------- transactions

TEST(TransactionTest, UncommittedWorkIsRolledBack) {
  TempDir dir;
  const std::string path = dir.File("cat.db");
  auto c = OpenOrDie(path);
  {
    auto txn = c->Begin();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(c->UpsertVideo(SampleVideoRecord("/v/a.mp4")).ok());
    ASSERT_TRUE(c->UpsertVideo(SampleVideoRecord("/v/b.mp4")).ok());
    EXPECT_FALSE(c->Begin().ok());  // one at a time
    // A second connection does not see uncommitted rows.
    auto other = OpenOrDie(path);
    EXPECT_EQ(other->ListVideos()->size(), 0u);
  }
  EXPECT_EQ(c->ListVideos()->size(), 0u);
  {
    auto txn = c->Begin();
    ASSERT_TRUE(c->UpsertVideo(SampleVideoRecord("/v/a.mp4")).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  auto other = OpenOrDie(path);
  EXPECT_EQ(other->ListVideos()->size(), 1u);
}

TEST(CatalogTest, StatsSumDurationsExactly) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  VideoRecord a = SampleVideoRecord("/v/a.mp4");
  a.duration = Rational(1001, 30000);
  VideoRecord b = SampleVideoRecord("/v/b.mp4");
  b.duration = Rational(1, 25);
  b.content_hash = Sha256Like("other");
  VideoRecord bad = SampleVideoRecord("/v/c.mp4");
  bad.status = VideoStatus::kError;
  bad.error = "x";
  for (const auto& v : {a, b, bad}) ASSERT_TRUE(c->UpsertVideo(v).ok());
  auto s = c->Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->videos, 3);
  EXPECT_EQ(s->videos_ok, 2);
  EXPECT_EQ(s->videos_error, 1);
  EXPECT_EQ(s->video_seconds, Rational(1001, 30000) + Rational(1, 25));
  EXPECT_EQ(s->video_bytes, 2 * a.size_bytes);
  EXPECT_GT(s->file_bytes, 0);
}

// ---------------------------------------------------------------- read-only queries

class ReadOnlyQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = OpenOrDie(dir_.File("cat.db"));
    ASSERT_TRUE(catalog_->UpsertVideo(SampleVideoRecord("/v/a.mp4")).ok());
  }
  Status Run(const std::string& sql, std::vector<std::vector<SqlValue>>* rows = nullptr) {
    return catalog_->QueryReadOnly(
        sql, [](const std::vector<std::string>&) { return Status::OK(); },
        [&](const std::vector<SqlValue>& row) {
          if (rows != nullptr) rows->push_back(row);
          return Status::OK();
        });
  }
  TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(ReadOnlyQueryTest, ReadsAreAllowed) {
  std::vector<std::vector<SqlValue>> rows;
  ASSERT_TRUE(Run("SELECT path, width, duration_seconds, error FROM videos", &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows[0][0]), "/v/a.mp4");
  EXPECT_EQ(std::get<int64_t>(rows[0][1]), 1280);
  EXPECT_NEAR(std::get<double>(rows[0][2]), 24.024, 1e-9);
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(rows[0][3]));
  for (const char* ok : {"WITH t AS (SELECT 1 AS x) SELECT x FROM t", "PRAGMA table_info('videos')",
                         "EXPLAIN SELECT * FROM videos", "SELECT 1;",
                         "SELECT 1; -- trailing comment", "  select count(*) from clips  "}) {
    EXPECT_TRUE(Run(ok).ok()) << ok << ": " << Run(ok).ToString();
  }
}

TEST_F(ReadOnlyQueryTest, WritesAreRefusedBeforeTheyRun) {
  for (const char* bad : {
           "INSERT INTO runs (kind, tool_version, started_at) VALUES ('x', 'y', 'z')",
           "UPDATE videos SET width = 1",
           "DELETE FROM videos",
           "DROP TABLE videos",
           "CREATE TABLE evil (x INTEGER)",
           "ALTER TABLE videos ADD COLUMN evil INTEGER",
           "CREATE INDEX evil ON videos(width)",
           "ATTACH DATABASE 'other.db' AS other",
           "PRAGMA user_version = 7",
           "PRAGMA journal_mode = DELETE",
           "PRAGMA query_only = 0",
           "VACUUM",
           "BEGIN",
           "SELECT 1; DELETE FROM videos",
           "SELECT 1; SELECT 2",
           "REPLACE INTO videos (id, path) VALUES (1, 'x')",
           "WITH d AS (SELECT 1) DELETE FROM videos",
       }) {
    Status s = Run(bad);
    EXPECT_FALSE(s.ok()) << "allowed: " << bad;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad << ": " << s.ToString();
  }
  EXPECT_EQ(Count(*catalog_, "SELECT count(*) FROM videos"), 1);
  EXPECT_EQ(Pragma(*catalog_, "user_version"), std::to_string(Catalog::kSchemaVersion));
  EXPECT_EQ(Pragma(*catalog_, "journal_mode"), "wal");
  EXPECT_FALSE(std::filesystem::exists(dir_.File("other.db")));
  EXPECT_EQ(*catalog_->IntegrityCheck(), "ok");
}

TEST_F(ReadOnlyQueryTest, SyntaxErrorsAreReported) {
  Status s = Run("SELEC * FROM videos");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("syntax error"), std::string::npos) << s.message();
  EXPECT_FALSE(Run("SELECT * FROM no_such_table").ok());
  EXPECT_FALSE(Run("").ok());
}

// ---------------------------------------------------------------- exports

TEST(ExportTest, CsvQuotesAndJsonEmbedsJsonColumns) {
  TempDir dir;
  auto c = OpenOrDie(dir.File("cat.db"));
  ASSERT_TRUE(c->UpsertVideo(SampleVideoRecord("/v/harbour, at \"dusk\"\n.mp4")).ok());

  std::ostringstream csv;
  auto w = MakeRowWriter(TableFormat::kCsv, csv);
  ASSERT_TRUE(ExportTable(*c, ExportWhat::kVideos, *w).ok());
  const std::string text = csv.str();
  EXPECT_TRUE(StartsWith(text, "id,path,status,error,")) << text.substr(0, 80);
  EXPECT_NE(text.find("\"/v/harbour, at \"\"dusk\"\"\n.mp4\""), std::string::npos) << text;
  EXPECT_NE(text.find(",30000/1001,"), std::string::npos);  // exact frame rate
  EXPECT_NE(text.find(",3003/125,"), std::string::npos);    // exact duration
  EXPECT_NE(text.find(",4/3,"), std::string::npos);         // SAR as num/den (4/3 here)

  std::ostringstream jsonl;
  w = MakeRowWriter(TableFormat::kJsonl, jsonl);
  ASSERT_TRUE(ExportTable(*c, ExportWhat::kVideos, *w).ok());
  const std::vector<std::string> lines = Split(Trim(jsonl.str()), '\n');
  ASSERT_EQ(lines.size(), 1u);
  auto row = Json::Parse(lines[0]);
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->Find("path")->as_string(), "/v/harbour, at \"dusk\"\n.mp4");
  EXPECT_EQ(row->Find("width")->as_int(), 1280);
  EXPECT_TRUE(row->Find("error")->is_null());
  EXPECT_EQ(row->Find("metadata")->Find("title")->as_string(), "Harbour");
  EXPECT_EQ(row->Find("frame_rate")->as_string(), "30000/1001");

  std::ostringstream json;
  w = MakeRowWriter(TableFormat::kJson, json);
  ASSERT_TRUE(ExportTable(*c, ExportWhat::kClips, *w).ok());
  auto arr = Json::Parse(json.str());
  ASSERT_TRUE(arr.ok()) << json.str();
  EXPECT_TRUE(arr->is_array());
  EXPECT_EQ(arr->size(), 0u);

  for (auto what : {ExportWhat::kCaptions, ExportWhat::kRuns, ExportWhat::kMetrics}) {
    std::ostringstream out;
    w = MakeRowWriter(TableFormat::kTable, out);
    EXPECT_TRUE(ExportTable(*c, what, *w).ok());
  }
  EXPECT_FALSE(ParseExportWhat("secrets").ok());
  EXPECT_FALSE(ParseTableFormat("xml").ok());
}

TEST(VideoFileTest, ChangedSinceIngestByStampSizeOrContent) {
  TempDir dir;
  const std::string path = dir.File("v.mp4");
  testing::WriteFile(path, "0123456789");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  VideoRecord v;
  v.path = path;
  v.size_bytes = 10;
  v.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  v.content_hash = Sha256Hex("0123456789");
  EXPECT_TRUE(CheckUnchangedSinceIngest(v).ok());
  v.mtime_ns -= 5;  // a touch or a copy: the same bytes
  EXPECT_TRUE(CheckUnchangedSinceIngest(v).ok());
  testing::WriteFile(path, "9876543210");  // the same size, other bytes
  // (Given its own mtime: a rewrite within the filesystem clock's tick keeps the old one.)
  std::filesystem::last_write_time(path,
                                   std::filesystem::last_write_time(path) + std::chrono::hours(1));
  Status s = CheckUnchangedSinceIngest(v);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(path + ": changed since it was ingested (the same size, other "
                                    "content: SHA-256 "),
            std::string::npos)
      << s.ToString();
  testing::WriteFile(path, "0123");
  s = CheckUnchangedSinceIngest(v);
  EXPECT_NE(s.message().find("(10 bytes then, 4 now); run `reel curate ingest` on it again"),
            std::string::npos)
      << s.ToString();
  std::filesystem::remove(path);
  s = CheckUnchangedSinceIngest(v);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_NE(s.message().find(path + ": No such file"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace reel
