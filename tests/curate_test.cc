// Tests for curate/ingest: statuses and causes, reruns, duplicates, parallel probing,
// and recovery from an ingest killed half-way.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "curate/ingest.h"
#include "db/catalog.h"
#include "tests/support/test_support.h"
#include "util/sha256.h"
#include "util/strings.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A folder with good videos of several kinds and the usual bad files.
struct Corpus {
  std::map<std::string, int64_t> good;  // file name -> frame count
  std::set<std::string> bad;
};

Corpus MakeCorpus(const std::string& dir) {
  Corpus c;
  struct Item {
    const char* name;
    const char* codec;
    int64_t frames;
  };
  for (const Item& it :
       {Item{"a.mp4", "", 12}, Item{"b.mkv", "", 9}, Item{"c.webm", "libvpx-vp9", 7},
        Item{"sub/d.avi", "mpeg4", 10}, Item{"sub/deeper/e.mov", "mpeg4", 5}}) {
    const std::string path = dir + "/" + it.name;
    fs::create_directories(fs::path(path).parent_path());
    EncodeOptions enc;
    enc.codec = it.codec;
    SyntheticVideo v = testing::SimpleVideo(it.frames, 64, 48);
    v.seed = static_cast<uint64_t>(it.frames) * 7919;  // distinct content per file
    v.scenes[0].foreground = {static_cast<uint8_t>(it.frames * 20), 90, 200};
    EXPECT_TRUE(WriteSyntheticVideo(path, v, enc).ok()) << path;
    c.good[it.name] = it.frames;
  }
  testing::WriteFile(dir + "/text.mp4", "hello, I am not a video\n");
  testing::WriteFile(dir + "/empty.mkv", "");
  const std::string good = *ReadFile(dir + "/a.mp4");
  testing::WriteFile(dir + "/truncated.mp4", good.substr(0, good.size() / 2));
  c.bad = {"text.mp4", "empty.mkv", "truncated.mp4"};
  // Not videos by extension: ignored in folder walks.
  testing::WriteFile(dir + "/a.txt", "a caption");
  testing::WriteFile(dir + "/._a.mp4", "AppleDouble junk");
  return c;
}

std::map<std::string, VideoRecord> ByName(Catalog& catalog, const std::string& root) {
  std::map<std::string, VideoRecord> out;
  for (const VideoRecord& v : *catalog.ListVideos()) {
    out[fs::path(v.path).lexically_relative(root).string()] = v;
  }
  return out;
}

TEST(IngestTest, RecordsGoodAndBadFilesWithCauses) {
  TempDir dir;
  const std::string root = dir.File("videos");
  const Corpus corpus = MakeCorpus(root);
  auto catalog = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(catalog.ok());

  std::vector<IngestEvent> events;
  IngestOptions options;
  options.on_file = [&](const IngestEvent& e) { events.push_back(e); };
  auto summary = Ingest(**catalog, {root}, options);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->found, 8);
  EXPECT_EQ(summary->added, 5);
  EXPECT_EQ(summary->failed, 3);
  EXPECT_FALSE(summary->all_ok());
  ASSERT_EQ(events.size(), 8u);
  EXPECT_EQ(events.back().done, 8);
  EXPECT_EQ(events.back().total, 8);

  const auto rows = ByName(**catalog, root);
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& [name, frames] : corpus.good) {
    ASSERT_TRUE(rows.count(name)) << name;
    const VideoRecord& v = rows.at(name);
    EXPECT_EQ(v.status, VideoStatus::kOk) << name << ": " << v.error;
    EXPECT_EQ(v.frame_count, frames) << name;
    EXPECT_EQ(v.width, 64);
    EXPECT_EQ(v.frame_rate, Rational(25, 1));
    EXPECT_EQ(v.duration, Rational(frames, 25)) << name;
    EXPECT_EQ(v.content_hash, *Sha256File(root + "/" + name));
    EXPECT_EQ(v.size_bytes, static_cast<int64_t>(fs::file_size(root + "/" + name)));
    EXPECT_GT(v.mtime_ns, 0);
  }
  EXPECT_EQ(rows.at("text.mp4").status, VideoStatus::kError);
  EXPECT_NE(rows.at("text.mp4").error.find("Invalid data"), std::string::npos)
      << rows.at("text.mp4").error;
  EXPECT_EQ(rows.at("empty.mkv").error, "empty file");
  EXPECT_NE(rows.at("truncated.mp4").error.find("moov atom not found"), std::string::npos);
  for (const auto& [path, why] : summary->failures) EXPECT_FALSE(why.empty()) << path;

  // The run and its counters are recorded.
  auto runs = (*catalog)->ListRuns("ingest");
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].status, RunStatus::kOk);
  std::map<std::string, double> metrics;
  for (const auto& m : *(*catalog)->ListMetrics((*runs)[0].id)) metrics[m.name] = m.value;
  EXPECT_EQ(metrics["ingest.added"], 5);
  EXPECT_EQ(metrics["ingest.failed"], 3);
}

TEST(IngestTest, RerunSkipsKnownFilesAndPicksUpChanges) {
  TempDir dir;
  const std::string root = dir.File("videos");
  MakeCorpus(root);
  auto catalog = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(Ingest(**catalog, {root}, {}).ok());
  const auto before = ByName(**catalog, root);

  // Unchanged: nothing is read again.
  auto again = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 8);
  EXPECT_EQ(again->added + again->updated + again->failed, 0);

  // Touched but identical: re-hashed, recognised, not re-probed.
  const auto t = fs::last_write_time(root + "/a.mp4");
  fs::last_write_time(root + "/a.mp4", t + std::chrono::seconds(5));
  // Changed content under a known name.
  EncodeOptions enc;
  ASSERT_TRUE(WriteSyntheticVideo(root + "/b.mkv", testing::SimpleVideo(20, 64, 48), enc).ok());
  // A new file.
  ASSERT_TRUE(WriteSyntheticVideo(root + "/new.mp4", testing::SimpleVideo(4, 64, 48)).ok());
  // A bad file fixed.
  ASSERT_TRUE(WriteSyntheticVideo(root + "/text.mp4", testing::SimpleVideo(3, 64, 48)).ok());

  auto third = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->found, 9);
  EXPECT_EQ(third->added, 1);
  EXPECT_EQ(third->updated, 2);  // b.mkv and text.mp4
  EXPECT_EQ(third->unchanged, 6);
  const auto after = ByName(**catalog, root);
  ASSERT_EQ(after.size(), 9u);
  EXPECT_EQ(after.at("a.mp4").id, before.at("a.mp4").id);
  EXPECT_NE(after.at("a.mp4").mtime_ns, before.at("a.mp4").mtime_ns);
  EXPECT_EQ(after.at("b.mkv").id, before.at("b.mkv").id);  // same row, new content
  EXPECT_EQ(after.at("b.mkv").frame_count, 20);
  EXPECT_EQ(after.at("text.mp4").status, VideoStatus::kOk);
  EXPECT_EQ(after.at("text.mp4").frame_count, 3);

  // Failed files are not retried unless asked.
  auto fourth = Ingest(**catalog, {root}, {});
  EXPECT_EQ(fourth->unchanged, 9);
  IngestOptions retry;
  retry.retry_errors = true;
  auto fifth = Ingest(**catalog, {root}, retry);
  EXPECT_EQ(fifth->failed, 2);  // empty.mkv, truncated.mp4 probed again
  EXPECT_EQ((*catalog)->ListVideos()->size(), 9u);
}

TEST(IngestTest, DuplicatesAreLinkedToTheOriginal) {
  TempDir dir;
  const std::string root = dir.File("videos");
  fs::create_directories(root + "/copies");
  ASSERT_TRUE(WriteSyntheticVideo(root + "/orig.mp4", testing::SimpleVideo(8, 64, 48)).ok());
  fs::copy_file(root + "/orig.mp4", root + "/copies/same.mp4");
  auto catalog = Catalog::Open(dir.File("cat.db"));
  auto summary = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->added, 1);
  EXPECT_EQ(summary->duplicates, 1);
  EXPECT_TRUE(summary->all_ok());
  const auto rows = ByName(**catalog, root);
  // Sorted walk: "copies/same.mp4" comes first and becomes the original.
  const VideoRecord& first = rows.at("copies/same.mp4");
  const VideoRecord& second = rows.at("orig.mp4");
  EXPECT_EQ(first.status, VideoStatus::kOk);
  EXPECT_EQ(second.status, VideoStatus::kDuplicate);
  ASSERT_TRUE(second.duplicate_of.has_value());
  EXPECT_EQ(*second.duplicate_of, first.id);
}

TEST(IngestTest, ExplicitFilesMissingPathsAndOptions) {
  TempDir dir;
  const std::string root = dir.File("videos");
  MakeCorpus(root);
  auto catalog = Catalog::Open(dir.File("cat.db"));
  // A file named explicitly is tried whatever its extension; a missing path is reported.
  testing::WriteFile(root + "/clip.bin", *ReadFile(root + "/a.mp4") + "");
  auto s = Ingest(**catalog, {root + "/clip.bin", dir.File("nowhere")}, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->found, 1);
  EXPECT_EQ(s->duplicates + s->added, 1);
  ASSERT_EQ(s->missing.size(), 1u);
  EXPECT_NE(s->missing[0].second.find("no such file"), std::string::npos);
  EXPECT_FALSE(s->all_ok());

  IngestOptions flat;
  flat.recursive = false;
  std::vector<std::pair<std::string, std::string>> missing;
  const auto top = FindVideoFiles({root}, flat, &missing);
  for (const auto& f : top) EXPECT_EQ(fs::path(f).parent_path(), fs::path(root)) << f;
  IngestOptions every;
  every.all_files = true;
  const auto all = FindVideoFiles({root}, every, &missing);
  EXPECT_GT(all.size(), FindVideoFiles({root}, {}, &missing).size());  // a.txt, clip.bin
}

// HDR sources (phones record HLG; HDR10 is PQ) are tone-mapped when read (ToneMapTest),
// but a stream copy keeps them HDR: ingest says which files are, and how they are mapped,
// and says nothing for SDR.
TEST(IngestTest, HighDynamicRangeSourcesAreRecordedWithAWarning) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string pq = dir.File("pq.mp4"), hlg = dir.File("hlg.mp4"), sdr = dir.File("sdr.mp4");
  for (const auto& [path, trc] : std::vector<std::pair<std::string, std::string>>{
           {pq, "smpte2084"}, {hlg, "arib-std-b67"}, {sdr, "bt709"}}) {
    auto made = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1",
         "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
         "log-level=none:colorprim=bt2020:colormatrix=bt2020nc:transfer=" + trc, path});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->color_transfer, trc);
  }
  auto catalog = Catalog::Open(dir.File("cat.db"));
  auto s = Ingest(**catalog, {pq, hlg, sdr}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->added, 3);
  ASSERT_EQ(s->warnings.size(), 2u);
  std::map<std::string, std::string> by_path(s->warnings.begin(), s->warnings.end());
  EXPECT_NE(by_path[pq].find("high dynamic range (PQ transfer, yuv420p10le)"), std::string::npos)
      << by_path[pq];
  EXPECT_NE(by_path[hlg].find("high dynamic range (HLG transfer"), std::string::npos)
      << by_path[hlg];
  EXPECT_NE(by_path[pq].find("tonemap=hable"), std::string::npos);
  EXPECT_EQ(by_path.count(sdr), 0u);
}

// Interlaced sources (broadcast captures, DVDs, DV tapes) are deinterlaced when read
// (DeinterlaceTest), but a stream copy keeps them interlaced: the probe records the field
// order as ffprobe's field_order gives it, and ingest names each interlaced file, and says
// nothing for progressive ones. DV states no field order in its stream (ffprobe:
// "unknown"), only in its frames: it went unnamed; the probe now records the first
// decoded frame's order too.
TEST(IngestTest, InterlacedSourcesAreRecordedWithAWarning) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string h264 = dir.File("tff.mp4"), mpeg2 = dir.File("bff.mpg"),
                    prog = dir.File("progressive.mp4"), dv = dir.File("pal.dv");
  const std::string src = "testsrc2=size=64x48:rate=50:duration=0.4";
  for (const auto& [path, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {h264,
            {"-vf", "tinterlace=interleave_top,fieldorder=tff", "-c:v", "libx264", "-flags",
             "+ilme+ildct", "-x264-params", "tff=1"}},
           {mpeg2,
            {"-vf", "tinterlace=interleave_bottom,fieldorder=bff", "-c:v", "mpeg2video", "-flags",
             "+ilme+ildct", "-top", "0"}},
           {prog, {"-c:v", "libx264"}},
           // PAL DV: 720x576 at 25 fps, bottom field first, stated by its frames only.
           {dv, {"-vf", "scale=720:576,fps=25", "-c:v", "dvvideo", "-pix_fmt", "yuv420p"}}}) {
    std::vector<std::string> argv = {"ffmpeg", "-v", "error", "-f", "lavfi", "-i", src};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(path);
    auto made = testing::RunProcess(argv);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  std::map<std::string, std::string> order;
  for (const std::string& path : {h264, mpeg2, prog, dv}) {
    auto info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    order[path] = info->field_order + "/" + info->decoded_field_order;
  }
  EXPECT_EQ(order[h264], "tt/tt");
  EXPECT_EQ(order[mpeg2], "bb/bb");
  EXPECT_EQ(order[prog], "progressive/progressive");
  EXPECT_EQ(order[dv], "/bb") << "ffprobe: field_order unknown, frames bottom field first";
  auto catalog = Catalog::Open(dir.File("cat.db"));
  auto s = Ingest(**catalog, {h264, mpeg2, prog, dv}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->added, 4);
  std::map<std::string, std::string> by_path(s->warnings.begin(), s->warnings.end());
  EXPECT_NE(by_path[h264].find("interlaced (top field first)"), std::string::npos) << by_path[h264];
  EXPECT_NE(by_path[mpeg2].find("interlaced (bottom field first)"), std::string::npos)
      << by_path[mpeg2];
  EXPECT_NE(by_path[dv].find("interlaced (bottom field first)"), std::string::npos) << by_path[dv];
  EXPECT_NE(by_path[h264].find("yadif"), std::string::npos);
  EXPECT_EQ(by_path.count(prog), 0u);
}

// HLS segments merged with `cat`: the demuxer flags the packet at the join damaged. The
// file was recorded as an error ("truncated or corrupt packet at video frame N"); it is
// recorded with all its frames, and a warning names it.
TEST(IngestTest, SegmentsJoinedWithCatAreRecordedWithAWarning) {
  TempDir dir;
  EncodeOptions later;
  // The second segment's clock goes on: its first frame follows the first segment's last
  // (1.2 s of frames after a 0.08 s B-frame delay). With an offset of 1.2 they overlapped
  // by a frame, which the probe refuses as time running backwards.
  later.muxer_options["output_ts_offset"] = "1.28";
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("0.ts"), testing::SimpleVideo(30, 64, 48)).ok());
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("1.ts"), testing::SimpleVideo(30, 64, 48), later).ok());
  const std::string joined = dir.File("joined.ts");
  testing::WriteFile(joined, *ReadFile(dir.File("0.ts")) + *ReadFile(dir.File("1.ts")));
  auto catalog = Catalog::Open(dir.File("cat.db"));
  auto s = Ingest(**catalog, {joined}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->added, 1);
  EXPECT_EQ(s->failed, 0);
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_EQ(s->warnings[0].first, joined);
  EXPECT_NE(s->warnings[0].second.find(joined + ": 1 video packet(s) flagged damaged"),
            std::string::npos)
      << s->warnings[0].second;
  auto video = (*catalog)->FindVideoByPath(joined);
  ASSERT_TRUE(video.ok() && video->has_value());
  EXPECT_EQ((*video)->frame_count, 60);
}

// Links in the folder: one back up the tree (which made the walk throw 'Too many levels
// of symbolic links' and end the whole ingest), one to itself, one to nowhere. The videos
// are each found once, under their own path.
TEST(IngestTest, LinkLoopsInTheFolderEndAndEachVideoIsFoundOnce) {
  TempDir dir;
  const std::string root = dir.File("videos");
  const Corpus corpus = MakeCorpus(root);
  fs::create_directory_symlink("..", root + "/sub/up");
  fs::create_symlink(root + "/self", root + "/self");
  fs::create_symlink(root + "/gone.mp4", root + "/dangling.mp4");
  std::vector<std::pair<std::string, std::string>> missing;
  const std::vector<std::string> found = FindVideoFiles({root}, {}, &missing);
  EXPECT_TRUE(missing.empty()) << missing[0].first << ": " << missing[0].second;
  std::set<std::string> names;
  for (const std::string& f : found) names.insert(fs::path(f).lexically_relative(root).string());
  std::set<std::string> expected(corpus.bad.begin(), corpus.bad.end());
  for (const auto& [name, frames] : corpus.good) expected.insert(name);
  EXPECT_EQ(names, expected) << Join(found, " ");

  auto catalog = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(catalog.ok());
  auto s = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->added, static_cast<int64_t>(corpus.good.size()));
  EXPECT_EQ(s->failed, static_cast<int64_t>(corpus.bad.size()));
}

// The same catalog, ids included: they follow the paths' order, not which probe finished
// first (the first file here is the slowest to hash, 64 MiB).
TEST(IngestTest, ParallelProbingGivesTheSameCatalog) {
  TempDir dir;
  const std::string root = dir.File("videos");
  MakeCorpus(root);
  testing::WriteFile(root + "/0-slow.mp4", std::string(64 << 20, 'x'));
  auto serial = Catalog::Open(dir.File("serial.db"));
  auto parallel = Catalog::Open(dir.File("parallel.db"));
  IngestOptions one, four;
  four.jobs = 4;
  four.batch_size = 2;
  auto a_run = Ingest(**serial, {root}, one);
  ASSERT_TRUE(a_run.ok()) << a_run.status().ToString();
  auto b_run = Ingest(**parallel, {root}, four);
  ASSERT_TRUE(b_run.ok()) << b_run.status().ToString();
  const auto a = ByName(**serial, root), b = ByName(**parallel, root);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, v] : a) {
    const VideoRecord& w = b.at(name);
    EXPECT_EQ(v.status, w.status) << name;
    EXPECT_EQ(v.error, w.error) << name;
    EXPECT_EQ(v.content_hash, w.content_hash) << name;
    EXPECT_EQ(v.frame_count, w.frame_count) << name;
    EXPECT_EQ(v.duration, w.duration) << name;
    EXPECT_EQ(v.id, w.id) << name;
  }
  std::vector<std::string> by_id;
  for (const VideoRecord& v : *(*parallel)->ListVideos()) by_id.push_back(v.path);
  EXPECT_TRUE(std::is_sorted(by_id.begin(), by_id.end())) << Join(by_id, "\n");
  EXPECT_EQ(fs::path(by_id.front()).filename(), "0-slow.mp4");
}

TEST(IngestTest, CancelStopsAndMarksTheRunInterrupted) {
  TempDir dir;
  const std::string root = dir.File("videos");
  MakeCorpus(root);
  auto catalog = Catalog::Open(dir.File("cat.db"));
  // Cancelled once the walk is done and before any worker starts (as Ctrl-C would be at
  // that moment): no file is taken, the run says interrupted.
  std::atomic<bool> cancel{false};
  IngestOptions o;
  o.cancel = &cancel;
  o.on_found = [&](int64_t) { cancel.store(true); };
  auto s = Ingest(**catalog, {root}, o);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->cancelled);
  EXPECT_FALSE(s->all_ok());
  EXPECT_EQ((*catalog)->ListVideos()->size(), 0u);
  EXPECT_EQ((*catalog)->ListRuns()->back().status, RunStatus::kInterrupted);
  // A rerun does the job.
  auto rest = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(rest.ok());
  EXPECT_FALSE(rest->cancelled);
  EXPECT_EQ((*catalog)->ListVideos()->size(), 8u);
  EXPECT_EQ((*catalog)->ListRuns()->back().status, RunStatus::kOk);
}

// The child ingests slowly (its progress callback sleeps); the parent waits until some
// batches are committed and then kills it with SIGKILL in the middle of the work.
TEST(IngestCrashTest, KilledHalfWayThenRerunRecordsEveryFileExactlyOnce) {
  TempDir dir;
  const std::string root = dir.File("videos");
  const int kFiles = 40;
  fs::create_directories(root);
  for (int i = 0; i < kFiles; ++i) {
    SyntheticVideo v = testing::SimpleVideo(3, 32, 32);
    v.seed = static_cast<uint64_t>(i) + 1;
    v.scenes[0].kind = SceneKind::kTexture;
    char name[32];
    std::snprintf(name, sizeof(name), "/v%02d.mp4", i);
    ASSERT_TRUE(WriteSyntheticVideo(root + name, v).ok());
  }
  testing::WriteFile(root + "/broken.mp4", "garbage");
  const std::string db = dir.File("cat.db");
  { ASSERT_TRUE(Catalog::Open(db).ok()); }  // created before the fork

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto catalog = Catalog::Open(db);
    if (!catalog.ok()) _exit(3);
    IngestOptions o;
    o.jobs = 2;
    o.batch_size = 4;
    o.on_file = [](const IngestEvent&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    };
    auto s = Ingest(**catalog, {root}, o);
    _exit(s.ok() ? 0 : 4);
  }

  // Wait for some committed rows, then kill mid-run.
  int64_t seen = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    Catalog::Options ro;
    ro.read_only = true;
    auto reader = Catalog::Open(db, ro);
    if (reader.ok()) {
      auto videos = (*reader)->ListVideos();
      if (videos.ok()) seen = static_cast<int64_t>(videos->size());
    }
    if (seen >= 12) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed";
  ASSERT_GE(seen, 12);

  auto catalog = Catalog::Open(db);
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  EXPECT_EQ(*(*catalog)->IntegrityCheck(), "ok");
  const size_t committed = (*catalog)->ListVideos()->size();
  EXPECT_GE(committed, 12u);
  EXPECT_LT(committed, static_cast<size_t>(kFiles + 1)) << "killed after the end";

  auto rerun = Ingest(**catalog, {root}, {});
  ASSERT_TRUE(rerun.ok()) << rerun.status().ToString();
  EXPECT_EQ(rerun->unchanged, static_cast<int64_t>(committed));
  EXPECT_EQ(rerun->added + rerun->failed, kFiles + 1 - static_cast<int64_t>(committed));

  const auto rows = *(*catalog)->ListVideos();
  ASSERT_EQ(rows.size(), static_cast<size_t>(kFiles + 1));
  std::set<std::string> paths;
  for (const auto& v : rows) paths.insert(v.path);
  EXPECT_EQ(paths.size(), rows.size());  // every file exactly once
  EXPECT_EQ(*(*catalog)->IntegrityCheck(), "ok");
  // The killed run is marked as interrupted by the rerun.
  auto runs = *(*catalog)->ListRuns("ingest");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].status, RunStatus::kInterrupted);
  EXPECT_EQ(runs[1].status, RunStatus::kOk);
}

}  // namespace
}  // namespace reel
