// Tests for the `reel` command: help, usage errors (exit 2), failures (exit 1, one line
// naming the object and the cause), and the output of the db and curate commands.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "tests/support/test_support.h"
#include "util/json.h"
#include "util/strings.h"
#include "video/synthetic.h"

namespace reel {
namespace {

using testing::RunReel;
using testing::TempDir;

bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST(CliTest, HelpAndVersion) {
  auto r = RunReel({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"curate ingest", "db info", "db export", "db query", "samples"}) {
    EXPECT_TRUE(Contains(r.out, cmd)) << cmd;
  }
  r = RunReel({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(StartsWith(r.out, "reel ")) << r.out;

  r = RunReel({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "Usage: reel"));
}

TEST(CliTest, EveryCommandHasHelp) {
  for (const char* cmd :
       {"curate ingest", "curate scan", "curate split", "curate filter", "curate dedup",
        "curate export", "db info", "db export", "db query", "db upgrade", "db merge", "samples"}) {
    std::vector<std::string> args = Split(cmd, ' ');
    args.push_back("--help");
    auto r = RunReel(args);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_TRUE(Contains(r.out, std::string("Usage: reel ") + cmd)) << r.out;
    EXPECT_TRUE(Contains(r.out, "--verbose")) << cmd;  // shared options shown too
  }
  auto r = RunReel({"help", "db", "query"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "read-only"));
}

TEST(CliTest, UsageErrorsExitTwo) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"db", "frob"}, "unknown command 'reel db frob'"},
      {{"db"}, "reel db info"},
      {{"db", "info"}, "--db"},  // required option missing
      {{"db", "info", "--db", "x.db", "--no-such-flag"}, "no-such-flag"},
      {{"curate", "ingest", "--db", "x.db"}, "path"},  // no paths
      {{"curate", "ingest", "--db", "x.db", "--jobs", "0", "."}, "--jobs"},
      {{"curate", "ingest", "--db", "x.db", "--jobs", "many", "."}, "jobs"},
      {{"db", "export", "--db", "x.db", "--format", "xml"}, "unknown format 'xml'"},
      {{"db", "export", "--db", "x.db", "--what", "secrets"}, "unknown table 'secrets'"},
      {{"db", "info", "--db", "x.db", "-v", "-q"}, "exclude"},
      {{"curate", "scan", "--db", "x.db", "--threshold", "nan"}, "--threshold must be a finite"},
      {{"curate", "split", "--db", "x.db", "--threshold", "inf"}, "--threshold must be a finite"},
      {{"curate", "scan", "--db", "x.db", "--decode-threads", "-1"}, "--decode-threads"},
      {{"caption", "--db", "x.db", "--backend", "signals", "--limit", "0"}, "--limit"},
      {{"eval", "run", "--db", "x.db", "--fake", "videos", "--jobs", "0"},
       "--jobs must be at least 1"},
      {{"eval", "run", "--db", "x.db", "--fake", "videos", "--batch", "0"},
       "--batch must be at least 1"},
      // Was a std::bad_alloc abort while allocating 12.5-megapixel-wide frames.
      {{"curate", "export", "--db", "x.db", "--subset", "s", "--out", "o", "--height", "99999"},
       "--height must be at most 16384"},
  };
  for (const Case& c : cases) {
    auto r = RunReel(c.args);
    EXPECT_EQ(r.exit_code, 2) << Join(c.args, " ") << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << Join(c.args, " ") << ": " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists("x.db"));  // parse first, work later
}

TEST(CliTest, FailuresExitOneWithOneClearLine) {
  TempDir dir;
  auto r = RunReel({"db", "info", "--db", dir.File("missing.db")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(StartsWith(r.err, "reel: error: " + dir.File("missing.db") + ": no catalog here"))
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.File("missing.db")));
}

class CliCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    videos_ = dir_.File("videos");
    db_ = dir_.File("cat.db");
    std::filesystem::create_directories(videos_);
    auto r = RunReel({"samples", "--out", videos_, "--count", "4", "--width", "64", "--height",
                      "48", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    testing::WriteFile(videos_ + "/notes.mp4", "just text");
  }
  TempDir dir_;
  std::string videos_;
  std::string db_;
};

TEST_F(CliCatalogTest, IngestReportsFailuresAndExitsOne) {
  auto r = RunReel({"curate", "ingest", "--db", db_, videos_, "--jobs", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Contains(r.err, "reel: error: " + videos_ + "/notes.mp4: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, "4 added")) << r.err;
  EXPECT_TRUE(Contains(r.err, "1 failed")) << r.err;
  // Not a terminal: plain progress lines, no carriage returns.
  EXPECT_FALSE(Contains(r.err, "\r"));

  // A rerun skips everything; the known bad file is mentioned, not failed again.
  r = RunReel({"curate", "ingest", "--db", db_, videos_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "1 known bad files skipped")) << r.err;
  r = RunReel({"curate", "ingest", "--db", db_, videos_, "--json", "--retry-errors"});
  EXPECT_EQ(r.exit_code, 1);  // probed again: still not a video
  auto j = Json::Parse(r.out);
  ASSERT_TRUE(j.ok()) << r.out;
  EXPECT_EQ(j->Find("unchanged")->as_int(), 4);
  EXPECT_EQ(j->Find("failed")->as_int(), 1);
  EXPECT_EQ(j->Find("added")->as_int(), 0);
  EXPECT_TRUE(r.err.empty() || !Contains(r.err, "ingest:")) << "--json prints no progress";

  std::filesystem::remove(videos_ + "/notes.mp4");
  r = RunReel({"curate", "ingest", "--db", db_, videos_ + "/sample_000.mp4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliCatalogTest, InfoExportAndQuery) {
  RunReel({"curate", "ingest", "--db", db_, videos_, "-q"});

  auto r = RunReel({"db", "info", "--db", db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = Json::Parse(r.out);
  ASSERT_TRUE(info.ok()) << r.out;
  EXPECT_EQ(info->Find("videos")->Find("total")->as_int(), 5);
  EXPECT_EQ(info->Find("videos")->Find("ok")->as_int(), 4);
  EXPECT_EQ(info->Find("videos")->Find("error")->as_int(), 1);
  EXPECT_EQ(info->Find("last_run")->Find("kind")->as_string(), "ingest");

  r = RunReel({"db", "info", "--db", db_});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "videos    5 (4 ok, 1 error, 0 duplicate)")) << r.out;

  r = RunReel({"db", "export", "--db", db_, "--what", "videos", "--format", "jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = Split(Trim(r.out), '\n');
  ASSERT_EQ(lines.size(), 5u);
  for (const auto& line : lines) EXPECT_TRUE(Json::Parse(line).ok()) << line;

  const std::string csv = dir_.File("videos.csv");
  r = RunReel({"db", "export", "--db", db_, "--out", csv});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Split(Trim(*ReadFile(csv)), '\n').size(), 6u);  // header + 5

  r = RunReel({"db", "query", "--db", db_,
               "SELECT status, count(*) AS n FROM videos "
               "GROUP BY status ORDER BY status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "status,n\r\nerror,1\r\nok,4\r\n");
  r = RunReel({"db", "query", "--db", db_, "--format", "table", "SELECT 1 AS one"});
  EXPECT_EQ(r.out, "one\n---\n1\n(1 row)\n");
}

TEST_F(CliCatalogTest, InfoCheckReadsEveryPageAndFailsOnADamagedOne) {
  RunReel({"curate", "ingest", "--db", db_, videos_, "-q"});
  auto r = RunReel({"db", "info", "--db", db_, "--check"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "integrity ok (every page read)")) << r.out;

  // Zero the root page of an index no count reads: the catalog still opens and counts, and
  // only the check finds the damage.
  int64_t page = 0, page_size = 0;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT rootpage, (SELECT page_size FROM pragma_page_size) "
                                 "FROM sqlite_schema WHERE name = 'subset_clips_by_clip'",
                                 -1, &st, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    page = sqlite3_column_int64(st, 0);
    page_size = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  ASSERT_GT(page, 1);
  {
    std::fstream f(db_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((page - 1) * page_size);
    const std::string zeros(static_cast<size_t>(page_size), '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  r = RunReel({"db", "info", "--db", db_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunReel({"db", "info", "--db", db_, "--check"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.out, "integrity DAMAGED:")) << r.out;
  EXPECT_TRUE(Contains(r.err, "is damaged; restore a copy")) << r.err;
  r = RunReel({"db", "info", "--db", db_, "--check", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  auto info = Json::Parse(r.out);
  ASSERT_TRUE(info.ok()) << r.out;
  EXPECT_NE(info->Find("integrity")->as_string(), "ok");
}

TEST_F(CliCatalogTest, QueryRefusesWrites) {
  RunReel({"curate", "ingest", "--db", db_, videos_, "-q"});
  for (const char* sql :
       {"DELETE FROM videos", "DROP TABLE videos", "UPDATE videos SET status = 'ok'",
        "SELECT 1; DELETE FROM videos", "PRAGMA user_version = 1"}) {
    auto r = RunReel({"db", "query", "--db", db_, sql});
    EXPECT_EQ(r.exit_code, 1) << sql;
    EXPECT_TRUE(Contains(r.err, "reel: error: ")) << r.err;
    EXPECT_TRUE(Contains(r.err, "not allowed") || Contains(r.err, "only one SQL statement") ||
                Contains(r.err, "could write"))
        << sql << ": " << r.err;
  }
  auto r = RunReel({"db", "query", "--db", db_, "SELECT count(*) FROM videos"});
  EXPECT_EQ(r.out, "count(*)\r\n5\r\n");
}

TEST_F(CliCatalogTest, CurationFromScanToExport) {
  std::filesystem::remove(videos_ + "/notes.mp4");
  auto r = RunReel({"curate", "scan", "--db", db_, videos_, "--json", "--min-seconds", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto scan = Json::Parse(r.out);
  ASSERT_TRUE(scan.ok()) << r.out;
  EXPECT_EQ(scan->Find("scanned")->as_int(), 4);
  const int64_t clips = scan->Find("clips")->as_int();
  EXPECT_GE(clips, 8);

  // Re-cut without decoding: a huge threshold leaves one clip per video.
  r = RunReel({"curate", "split", "--db", db_, "--threshold", "250", "--no-gradual", "--no-fades",
               "--min-seconds", "0.5", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::Parse(r.out)->Find("clips")->as_int(), 4);
  r = RunReel({"curate", "split", "--db", db_, "--min-seconds", "0.5", "--json"});
  EXPECT_EQ(Json::Parse(r.out)->Find("clips")->as_int(), clips);

  r = RunReel({"curate", "dedup", "--db", db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunReel({"curate", "filter", "--db", db_, "--where", "duration >= 1 and not duplicate",
               "--subset", "train", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int64_t passed = Json::Parse(r.out)->Find("passed")->as_int();
  EXPECT_GT(passed, 0);

  const std::string out = dir_.File("export");
  r = RunReel({"curate", "export", "--db", db_, "--subset", "train", "--out", out, "--height", "32",
               "--json", "-j", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto e = Json::Parse(r.out);
  EXPECT_EQ(e->Find("exported")->as_int(), passed);
  EXPECT_EQ(Split(Trim(*ReadFile(out + "/manifest.csv")), '\n').size(),
            static_cast<size_t>(passed) + 1);

  // Merging into a new catalog, twice, gives one copy of everything.
  const std::string merged = dir_.File("merged.db");
  ASSERT_EQ(RunReel({"db", "merge", merged, db_}).exit_code, 0);
  r = RunReel({"db", "merge", merged, db_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::Parse(r.out)->Find("videos_added")->as_int(), 0);
  r = RunReel({"db", "query", "--db", merged, "SELECT count(*) FROM clips"});
  EXPECT_EQ(r.out, "count(*)\r\n" + std::to_string(clips) + "\r\n");
}

TEST_F(CliCatalogTest, CurationUsageErrorsAndFailures) {
  struct Case {
    std::vector<std::string> args;
    int exit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"curate", "filter", "--db", db_, "--where", "motion >", "--subset", "s"},
       2,
       "at column 9: expected a value"},
      {{"curate", "filter", "--db", db_, "--where", "duration > 1"}, 2, "--subset is required"},
      {{"curate", "scan", "--db", db_, "--resize", "huge"}, 2, "--resize must be exact or fast"},
      {{"curate", "scan", "--db", db_, "--detector", "magic"}, 2, "unknown detector 'magic'"},
      {{"curate", "scan", "--db", db_, "--shard", "3/3"}, 2, "need 0 <= I < N"},
      {{"curate", "scan", "--db", db_, "--signals", "smell"}, 2, "unknown signal 'smell'"},
      {{"curate", "split", "--db", db_, "--max-seconds", "1", "--min-seconds", "2"},
       2,
       "below --min-seconds"},
      {{"curate", "export", "--db", db_, "--subset", "nope", "--out", dir_.File("x")},
       1,
       "no subset 'nope'"},
      {{"curate", "export", "--db", db_, "--subset", "s", "--out", dir_.File("x"), "--copy",
        "--height", "64"},
       2,
       "--copy cannot scale"},
      {{"db", "merge", db_}, 2, "usage: reel db merge OUT IN"},
  };
  ASSERT_EQ(RunReel({"curate", "ingest", "--db", db_, videos_, "-q"}).exit_code, 1);
  for (const Case& c : cases) {
    auto r = RunReel(c.args);
    EXPECT_EQ(r.exit_code, c.exit) << Join(c.args, " ") << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << Join(c.args, " ") << ": " << r.err;
  }
  auto r = RunReel({"curate", "filter", "--columns"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "motion"));
}

TEST(CliUpgradeTest, OldCatalogNeedsAnUpgradeBeforeExport) {
  TempDir dir;
  const std::string db = dir.File("old.db");
  const std::string fixture = *ReadFile(testing::SourceDir() + "/tests/data/catalog_v1.sql");
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, fixture.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);

  auto r = RunReel({"db", "export", "--db", db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "reel db upgrade")) << r.err;
  r = RunReel({"db", "info", "--db", db});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "version 1 (older")) << r.out;
  r = RunReel({"db", "upgrade", "--db", db});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "upgraded schema version 1 -> ")) << r.out;
  r = RunReel({"db", "export", "--db", db, "--what", "clips"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "/data/raw/harbour.mp4,0,150,150,0,1001/200")) << r.out;
}

TEST(CliSamplesTest, WritesSamplesAndKeepsExistingOnes) {
  TempDir dir;
  auto r = RunReel(
      {"samples", "--out", dir.File("s"), "--count", "3", "--width", "32", "--height", "32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.File("s/sample_000.mp4")));
  EXPECT_TRUE(std::filesystem::exists(dir.File("s/sample_001.mkv")));
  EXPECT_TRUE(std::filesystem::exists(dir.File("s/sample_002.webm")));
  r = RunReel({"samples", "--out", dir.File("s"), "--count", "3"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "3 sample videos already present"));
  r = RunReel({"samples", "--out", dir.File("s"), "--fps", "29.97"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "not a rational number")) << r.err;
}

}  // namespace
}  // namespace reel
