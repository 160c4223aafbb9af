// Tests for curate dedup, export and db merge.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "curate/dedup.h"
#include "curate/export.h"
#include "curate/filter.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "db/merge.h"
#include "tests/support/test_support.h"
#include "util/strings.h"
#include "video/decoder.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/remux.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::StillScene;

// Frame i is flat grey, level 20 + 7 i before `cut` and 235 - 7 (i - cut) from it: each
// frame's level identifies it after encoding, and the jump at `cut` is a scene cut.
int Level(int i, int cut) {
  return i < cut ? 20 + 7 * i : 235 - 7 * (i - cut);
}

Status WriteIndexedVideo(const std::string& path, int frames, int cut, EncodeOptions o = {}) {
  o.width = 96;
  o.height = 64;
  if (!o.time_base.has_value()) o.frame_rate = Rational(25, 1);
  REEL_ASSIGN_OR_RETURN(auto enc, VideoEncoder::Open(path, o));
  Frame f;
  f.Allocate(96, 64, PixelFormat::kRgb24);
  for (int i = 0; i < frames; ++i) {
    std::fill(f.data.begin(), f.data.end(), static_cast<uint8_t>(Level(i, cut)));
    // A textured stripe keeps the frame from being "blank".
    for (int y = 0; y < 64; ++y) {
      for (int x = 0; x < 8; ++x) {
        const uint8_t t = static_cast<uint8_t>((x * 37 + y * 11) % 255);
        f.row(y)[3 * x] = f.row(y)[3 * x + 1] = f.row(y)[3 * x + 2] = t;
      }
    }
    REEL_RETURN_IF_ERROR(enc->Write(f));
  }
  return enc->Finish();
}

double MeanLevel(const Frame& f) {
  double s = 0;
  int n = 0;
  for (int y = 8; y < f.height - 8; ++y) {
    for (int x = f.width / 2; x < f.width - 8; ++x) {
      s += f.row(y)[3 * x + 1];
      ++n;
    }
  }
  return s / n;
}

// ---------------------------------------------------------------- dedup

TEST(DedupTest, NearDuplicatesAcrossVideosKeepTheBestByTheRule) {
  TempDir dir;
  const std::string root = dir.File("v");
  fs::create_directories(root);
  const SceneSpec shared = StillScene(40, {200, 60, 40}, {240, 220, 60}, 1);
  SyntheticVideo big;
  big.width = 320;
  big.height = 180;
  big.seed = 5;
  big.scenes = {shared, StillScene(40, {30, 60, 200}, {200, 230, 250}, -1)};
  ASSERT_TRUE(WriteSyntheticVideo(root + "/big.mp4", big).ok());
  // small.mp4: the first scene downscaled 2x (a re-upload at lower quality), then another
  // scene.
  SyntheticVideo other = big;
  other.scenes = {StillScene(80, {40, 160, 60}, {220, 240, 120}, 0.5)};
  other.seed = 9;
  {
    EncodeOptions low;
    low.crf = 30;
    low.width = 160;
    low.height = 90;
    auto enc = VideoEncoder::Open(root + "/small.mp4", low);
    ASSERT_TRUE(enc.ok());
    Frame full, half;
    half.Allocate(160, 90, PixelFormat::kRgb24);
    for (int i = 0; i < 80; ++i) {
      if (i < 40) {
        big.Render(i, &full);
      } else {
        other.Render(i, &full);
      }
      for (int y = 0; y < 90; ++y) {
        for (int x = 0; x < 160; ++x) {
          for (int k = 0; k < 3; ++k) {
            const int sum = full.row(2 * y)[6 * x + k] + full.row(2 * y)[6 * x + 3 + k] +
                            full.row(2 * y + 1)[6 * x + k] + full.row(2 * y + 1)[6 * x + 3 + k];
            half.row(y)[3 * x + k] = static_cast<uint8_t>(sum / 4);
          }
        }
      }
      ASSERT_TRUE((*enc)->Write(half).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  auto catalog = *Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(Scan(*catalog, {root}, {}).ok());
  ASSERT_EQ(catalog->ListClips()->size(), 4u);

  auto s = Dedup(*catalog, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->groups, 1) << "groups: " << s->group_ids.size();
  EXPECT_EQ(s->duplicates, 1);
  const auto big_video = **catalog->FindVideoByPath(root + "/big.mp4");
  const auto kept = **catalog->FindClip(s->group_ids[0][0]);
  const auto dropped = **catalog->FindClip(s->group_ids[0][1]);
  EXPECT_EQ(kept.video_id, big_video.id);  // same length and black: the larger frame wins
  EXPECT_EQ(kept.start_frame, 0);
  EXPECT_EQ(dropped.duplicate_of, kept.id);
  // Filters see it.
  auto f = ApplyFilter(*catalog, "not duplicate", "unique");
  EXPECT_EQ(f->passed, 3);

  // A stricter distance re-decides: nothing is a duplicate of anything.
  DedupOptions strict;
  strict.max_distance = 0;
  auto s0 = Dedup(*catalog, strict);
  ASSERT_TRUE(s0.ok());
  EXPECT_EQ(s0->groups, 0);
  EXPECT_FALSE((**catalog->FindClip(dropped.id)).duplicate_of.has_value());
}

// ---------------------------------------------------------------- export

ExportOptions CopyOptions(const std::string& out_dir, const std::string& subset) {
  ExportOptions e;
  e.out_dir = out_dir;
  e.subset = subset;
  e.copy = true;
  return e;
}

// Runs the export and checks that it wrote `expected` clips (else says why not).
::testing::AssertionResult Exports(Catalog& catalog, const ExportOptions& e, int64_t expected) {
  auto s = Export(catalog, e);
  if (!s.ok()) return ::testing::AssertionFailure() << s.status().ToString();
  if (s->exported != expected) {
    return ::testing::AssertionFailure()
           << "exported " << s->exported << " of " << expected
           << (s->failures.empty() ? "" : ": " + s->failures[0].second);
  }
  return ::testing::AssertionSuccess();
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.File("videos");
    fs::create_directories(root_);
    ASSERT_TRUE(WriteIndexedVideo(root_ + "/indexed.mp4", 32, 16).ok());
    catalog_ = *Catalog::Open(dir_.File("cat.db"));
    ScanOptions o;
    o.split.min_seconds = Rational(2, 5);
    o.split.gradual = false;  // the brightness ramp would read as a slow fade
    ASSERT_TRUE(Scan(*catalog_, {root_}, o).ok());
    clips_ = *catalog_->ListClips();
    ASSERT_EQ(clips_.size(), 2u);
    ASSERT_EQ(clips_[0].end_frame, 16);
    ASSERT_TRUE(ApplyFilter(*catalog_, "duration > 0", "all").ok());
  }

  ExportOptions Options(const std::string& out) {
    ExportOptions o;
    o.out_dir = dir_.File(out);
    o.subset = "all";
    return o;
  }

  TempDir dir_;
  std::string root_;
  std::unique_ptr<Catalog> catalog_;
  std::vector<ClipRecord> clips_;
};

TEST_F(ExportTest, ReencodingIsFrameExact) {
  auto s = Export(*catalog_, Options("out"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->exported, 2);
  EXPECT_EQ(s->failed, 0);
  for (const ClipRecord& c : clips_) {
    auto rec = **catalog_->FindClipExport(c.id, fs::absolute(dir_.File("out")).string());
    EXPECT_EQ(rec.mode, "reencode");
    EXPECT_EQ(rec.frames, c.end_frame - c.start_frame);
    auto src = OpenFrameSource(rec.path);
    ASSERT_TRUE(src.ok());
    Frame f;
    int64_t k = 0;
    while (*(*src)->Next(&f)) {
      // Frame k of the clip is frame start + k of the source: its level says which (the
      // levels of neighbouring frames are 7 apart).
      const int64_t i = c.start_frame + k;
      EXPECT_NEAR(MeanLevel(f), Level(static_cast<int>(i), 16), 3.0)
          << "clip " << c.id << " frame " << k;
      ++k;
    }
    EXPECT_EQ(k, c.end_frame - c.start_frame);
    EXPECT_EQ(f.time + Rational(1, 25), c.end_time - c.start_time);
  }
}

// A re-encoded clip keeps its source's colour description and matrix, as a cut made with
// ffmpeg does: a BT.709 clip was written as BT.601 and left untagged, so players that take
// untagged HD for BT.709 showed it off-colour. Tone-mapped HDR comes out tagged BT.709.
TEST(ExportColourTest, ClipsKeepTheSourcesColourDescription) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string root = dir.File("videos");
  fs::create_directories(root);
  const std::string lavfi = "testsrc2=size=128x96:rate=25:duration=1";
  struct Source {
    std::string name;
    std::vector<std::string> args;
    std::string space, primaries, transfer;  // what the clip should say
  };
  const std::vector<Source> sources = {
      {"bt709.mp4",
       {"-vf", "scale=out_color_matrix=bt709", "-colorspace", "bt709", "-color_primaries", "bt709",
        "-color_trc", "bt709", "-c:v", "libx264"},
       "bt709",
       "bt709",
       "bt709"},
      {"untagged.mp4", {"-c:v", "libx264"}, "", "", ""},
      {"hlg.mp4",
       {"-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
        "log-level=none:colorprim=bt2020:colormatrix=bt2020nc:transfer=arib-std-b67"},
       "bt709",
       "bt709",
       "bt709"}};
  for (const Source& src : sources) {
    std::vector<std::string> argv = {"ffmpeg", "-v", "error", "-f", "lavfi", "-i", lavfi};
    argv.insert(argv.end(), src.args.begin(), src.args.end());
    argv.push_back(root + "/" + src.name);
    auto made = testing::RunProcess(argv);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  auto catalog = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(catalog.ok());
  ScanOptions scan;
  scan.split.min_seconds = Rational(2, 5);
  scan.split.gradual = false;
  ASSERT_TRUE(Scan(**catalog, {root}, scan).ok());
  ASSERT_TRUE(ApplyFilter(**catalog, "duration > 0", "all").ok());
  ExportOptions e;
  e.out_dir = dir.File("out");
  e.subset = "all";
  auto s = Export(**catalog, e);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->exported, 3) << (s->failures.empty() ? "" : s->failures[0].second);
  for (const ClipRecord& c : *(*catalog)->ListClips()) {
    const VideoRecord v = **(*catalog)->FindVideoById(c.video_id);
    const std::string name = fs::path(v.path).filename().string();
    SCOPED_TRACE(name);
    const Source& src = *std::find_if(sources.begin(), sources.end(),
                                      [&](const Source& x) { return x.name == name; });
    const std::string clip = e.out_dir + "/" + ExportFileName(v, c);
    auto info = ProbeVideo(clip);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->color_space, src.space);
    EXPECT_EQ(info->color_primaries, src.primaries);
    EXPECT_EQ(info->color_transfer, src.transfer);
    if (name == "hlg.mp4") continue;  // tone-mapped: compared in ToneMapTest
    // The clip's first frame against the source's: the stored luma (same matrix, so the
    // same samples but for the encoder's loss) and the RGB ffmpeg shows.
    for (const char* pix_fmt : {"gray", "rgb24"}) {
      std::vector<std::string> outs;
      for (const std::string& path : {v.path, clip}) {
        std::vector<std::string> argv = {"ffmpeg",    "-v", "error", "-i",      path,
                                         "-frames:v", "1",  "-f",    "rawvideo"};
        // gray: the luma plane as stored (yuv420p's first 128x96 bytes).
        if (std::string(pix_fmt) == "rgb24") argv.insert(argv.end(), {"-pix_fmt", "rgb24"});
        argv.push_back("-");
        auto r = testing::RunProcess(argv);
        ASSERT_EQ(r.exit_code, 0) << r.err;
        outs.push_back(std::string(pix_fmt) == "gray" ? r.out.substr(0, 128 * 96) : r.out);
      }
      ASSERT_EQ(outs[0].size(), outs[1].size());
      // Measured: luma 42.3 dB (23.6 when the BT.709 clip was written as BT.601), RGB
      // 33.6 dB (testsrc2's sharp colour edges through 4:2:0 twice, and crf 20).
      EXPECT_GT(testing::Psnr8(reinterpret_cast<const uint8_t*>(outs[0].data()),
                               reinterpret_cast<const uint8_t*>(outs[1].data()), outs[0].size()),
                std::string(pix_fmt) == "gray" ? 36.0 : 30.0)
          << pix_fmt;
    }
  }
}

TEST_F(ExportTest, ScalingResamplingAndManifests) {
  ExportOptions o = Options("small");
  o.height = 32;
  o.fps = Rational(10, 1);
  auto s = Export(*catalog_, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->exported, 2);
  // Each clip is 16 frames at 25 fps = 0.64 s -> round(6.4) = 6 frames at 10 fps, the
  // source frames ffmpeg -vf fps=10 picks (checked with ffmpeg 5.1 on a 16-frame 25 fps
  // file of distinct frames): reel picked 0 2 5 7 10 12 15, the frame on screen at k/10 s.
  const std::string path0 = dir_.File(
      "small/" + ExportFileName(**catalog_->FindVideoById(clips_[0].video_id), clips_[0]));
  auto info0 = ProbeVideo(path0);
  ASSERT_TRUE(info0.ok()) << info0.status().ToString();
  EXPECT_EQ(info0->frame_count, 6);
  const std::vector<int> picks = {1, 3, 6, 8, 11, 13};
  auto src = OpenFrameSource(path0);
  ASSERT_TRUE(src.ok());
  Frame f;
  for (size_t k = 0; k < picks.size() && *(*src)->Next(&f); ++k) {
    EXPECT_NEAR(MeanLevel(f), Level(picks[k], 16), 3.0) << "output frame " << k;
  }
  EXPECT_EQ(info0->height, 32);
  EXPECT_EQ(info0->width, 48);  // 96x64 at height 32
  EXPECT_EQ(info0->frame_rate, Rational(10, 1));

  const std::string csv = *ReadFile(s->manifest_csv);
  const auto lines = Split(Trim(csv), '\n');
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(StartsWith(lines[0], "path,text,num_frames,height,width,aspect_ratio,fps,resolution"))
      << lines[0];
  EXPECT_NE(lines[1].find(",6,32,48,0.6666666666666666,10.0,1536,"), std::string::npos) << lines[1];
  const auto jsonl = Split(Trim(*ReadFile(s->manifest_jsonl)), '\n');
  ASSERT_EQ(jsonl.size(), 2u);
  auto row = Json::Parse(jsonl[1]);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->Find("num_frames")->as_int(), 6);
  EXPECT_EQ(row->Find("start_time")->as_string(), "16/25");
  EXPECT_TRUE(fs::exists(row->Find("path")->as_string()));
}

TEST_F(ExportTest, ManifestsOfASourceNamedInLatin1StayReadable) {
  // "café.mp4" saved by a Latin-1 system. Before, manifest.csv held the raw byte (pandas
  // refuses the whole file) and manifest.jsonl U+FFFD (a name of no file).
  const std::string latin1 = root_ + "/caf\xe9.mp4";
  ASSERT_TRUE(WriteIndexedVideo(latin1, 40, 20).ok());  // not a duplicate of indexed.mp4
  ScanOptions so;
  so.split.min_seconds = Rational(2, 5);
  so.split.gradual = false;
  ASSERT_TRUE(Scan(*catalog_, {latin1}, so).ok());
  ASSERT_TRUE(ApplyFilter(*catalog_, "duration > 0", "all").ok());
  auto s = Export(*catalog_, Options("out"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const int64_t latin1_rows = s->manifest_rows - 2;  // indexed.mp4 gave 2
  ASSERT_GE(latin1_rows, 1);
  EXPECT_EQ(s->manifest_rows_not_utf8, latin1_rows);
  const std::string csv = *ReadFile(s->manifest_csv);
  EXPECT_TRUE(IsValidUtf8(csv));
  EXPECT_NE(csv.find(root_ + "/caf\xEF\xBF\xBD.mp4"), std::string::npos);
  int exact = 0;
  for (const std::string& line : Split(Trim(*ReadFile(s->manifest_jsonl)), '\n')) {
    EXPECT_TRUE(IsValidUtf8(line));
    auto row = Json::Parse(line);
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    exact += row->Find("video")->as_string() == latin1;
    EXPECT_TRUE(fs::exists(row->Find("path")->as_string()));
  }
  EXPECT_EQ(exact, latin1_rows);
}

TEST_F(ExportTest, ASourceChangedSinceIngestIsNotCut) {
  // Only touched: the same bytes (SHA-256), exported.
  const std::string src = root_ + "/indexed.mp4";
  fs::last_write_time(src, fs::last_write_time(src) - std::chrono::hours(2));
  auto touched = Export(*catalog_, Options("touched"));
  ASSERT_TRUE(touched.ok()) << touched.status().ToString();
  EXPECT_EQ(touched->exported, 2);
  // Replaced by another video: its clips would be cut from frames the catalog never saw.
  ASSERT_TRUE(WriteIndexedVideo(src, 40, 8).ok());
  auto s = Export(*catalog_, Options("out"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->exported, 0);
  EXPECT_EQ(s->failed, 2);
  ASSERT_EQ(s->failures.size(), 1u) << "said once for the video";
  EXPECT_EQ(s->failures[0].first, src);
  EXPECT_TRUE(StartsWith(s->failures[0].second, "changed since it was ingested ("))
      << s->failures[0].second;
  EXPECT_NE(s->failures[0].second.find("(2 clips not exported)"), std::string::npos);
  EXPECT_EQ(s->manifest_rows, 0);
  // What was exported before stays done.
  auto again = Export(*catalog_, Options("touched"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->skipped, 2);
  EXPECT_EQ(again->failed, 0);
}

TEST_F(ExportTest, ResumesAndNeverOverwrites) {
  ASSERT_TRUE(Export(*catalog_, Options("out")).ok());
  auto again = Export(*catalog_, Options("out"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exported, 0);
  EXPECT_EQ(again->skipped, 2);
  EXPECT_EQ(again->manifest_rows, 2);
  // A file that is not ours at a target path is left alone and reported.
  const std::string foreign = dir_.File(
      "other/" + ExportFileName(**catalog_->FindVideoById(clips_[0].video_id), clips_[0]));
  fs::create_directories(dir_.File("other"));
  testing::WriteFile(foreign, "precious");
  auto s = Export(*catalog_, Options("other"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->exported, 1);
  EXPECT_EQ(s->failed, 1);
  EXPECT_EQ(*ReadFile(foreign), "precious");
  ExportOptions missing = Options("x");
  missing.subset = "nope";
  EXPECT_EQ(Export(*catalog_, missing).status().code(), StatusCode::kNotFound);
}

// A clip file deleted after its export: the manifest leaves it out (it listed a missing
// file) and the next export writes it again. An export into the same folder at another
// size does not keep the old files as if they were what was asked for.
TEST_F(ExportTest, DeletedClipsAreWrittenAgainAndChangedSettingsAreRefused) {
  ExportOptions o = Options("out");
  o.height = 16;
  ASSERT_TRUE(Export(*catalog_, o).ok());
  const std::string out = fs::absolute(dir_.File("out")).string();
  const std::string gone = (**catalog_->FindClipExport(clips_[0].id, out)).path;
  ASSERT_TRUE(fs::remove(gone));

  ExportOptions manifest = o;
  manifest.manifest_only = true;
  auto m = Export(*catalog_, manifest);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->manifest_rows, 1);
  ASSERT_EQ(m->failed, 1);
  EXPECT_EQ(m->failures[0].first, gone);
  EXPECT_NE(m->failures[0].second.find("the file is gone"), std::string::npos);
  EXPECT_EQ(testing::ReadFile(out + "/manifest.csv").find(fs::path(gone).filename().string()),
            std::string::npos);

  auto again = Export(*catalog_, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->exported, 1);
  EXPECT_EQ(again->skipped, 1);
  EXPECT_EQ(again->failed, 0);
  EXPECT_EQ(again->manifest_rows, 2);
  EXPECT_TRUE(fs::exists(gone));

  ExportOptions bigger = o;
  bigger.height = 32;
  auto changed = Export(*catalog_, bigger);
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->exported, 0);
  ASSERT_EQ(changed->failed, 2);
  EXPECT_NE(changed->failures[0].second.find("exported before as reencode 24x16 at 25 fps, this "
                                             "run asks for reencode 48x32 at 25 fps"),
            std::string::npos)
      << changed->failures[0].second;
  EXPECT_EQ((**catalog_->FindClipExport(clips_[0].id, out)).height, 16);

  // Past libx264's 16384 a side each clip fails with its size, before any decoding.
  ExportOptions huge = Options("huge");
  huge.height = 16384;
  auto h = Export(*catalog_, huge);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->failed, 2);
  EXPECT_NE(h->failures[0].second.find("the clip would be 24576x16384"), std::string::npos)
      << h->failures[0].second;
}

TEST_F(ExportTest, Mp4CopiesShowFromTheClipStartThroughAnEditList) {
  // One 32-frame shot with keyframes every 8 frames, split into three clips by
  // max_seconds: the middle clip starts at frame 10, between keyframes 8 and 16. The copy
  // holds frames 8 and 9 (frame 10 is predicted from them), and the MP4's edit list hides
  // them: before, the copy showed from frame 8 and was recorded as starting there.
  TempDir d;
  EncodeOptions gop;
  gop.gop = 8;
  ASSERT_TRUE(WriteIndexedVideo(d.File("gop.mp4"), 32, 1000, gop).ok());
  auto catalog = *Catalog::Open(d.File("cat.db"));
  ScanOptions o;
  o.split.min_seconds = Rational(1, 5);
  o.split.max_seconds = Rational(11, 25);
  o.split.gradual = false;
  ASSERT_TRUE(Scan(*catalog, {d.File("gop.mp4")}, o).ok());
  ASSERT_EQ(catalog->ListClips()->size(), 3u);
  ASSERT_TRUE(ApplyFilter(*catalog, "start > 0 and start < 0.5", "middle").ok());
  const ExportOptions e = CopyOptions(d.File("copy"), "middle");
  ASSERT_TRUE(Exports(*catalog, e, 1));
  const auto clip = catalog->ListClips()->at(1);
  ASSERT_EQ(clip.start_frame, 10);
  const auto rec = **catalog->FindClipExport(clip.id, fs::absolute(d.File("copy")).string());
  EXPECT_EQ(rec.mode, "copy");
  EXPECT_EQ(fs::path(rec.path).extension(), ".mp4");
  EXPECT_EQ(rec.start_time, clip.start_time);
  EXPECT_GE(rec.end_time, clip.end_time);
  EXPECT_GE(rec.frames, clip.end_frame - clip.start_frame);
  // Frame k of the copy is frame 10 + k of the source (levels 7 apart say which).
  auto copy = OpenFrameSource(rec.path);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  Frame f;
  int64_t k = 0;
  while (*(*copy)->Next(&f)) {
    EXPECT_NEAR(MeanLevel(f), Level(10 + static_cast<int>(k), 1000), 3.0) << "frame " << k;
    ++k;
  }
  EXPECT_EQ(k, rec.frames);
}

// HLS segments joined with `cat` may change size at a join (adaptive bitrate). A copy of
// the second segment's frames holds 96x64 pictures; the manifest said 64x48, the size
// ingest read from the first packet, and Open-Sora buckets clips by that size.
TEST_F(ExportTest, CopiesRecordTheSizeOfTheirOwnFrames) {
  TempDir d;
  EncodeOptions first, second;
  first.codec = second.codec = "mpeg4";  // no B-frames: decode times go on across the join
  first.gop = second.gop = 25;
  second.muxer_options["output_ts_offset"] = "1";  // the second segment starts at 1 s
  ASSERT_TRUE(WriteSyntheticVideo(d.File("0.ts"), testing::SimpleVideo(25, 64, 48), first).ok());
  ASSERT_TRUE(WriteSyntheticVideo(d.File("1.ts"), testing::SimpleVideo(25, 96, 64), second).ok());
  const std::string joined = d.File("joined.ts");
  testing::WriteFile(joined, testing::ReadFile(d.File("0.ts")) + testing::ReadFile(d.File("1.ts")));
  auto catalog = *Catalog::Open(d.File("cat.db"));
  ScanOptions o;
  o.split.min_seconds = Rational(1, 5);
  o.split.max_seconds = Rational(1, 1);
  ASSERT_TRUE(Scan(*catalog, {joined}, o).ok());
  const auto clips = *catalog->ListClips();
  ASSERT_EQ(clips.size(), 2u);
  ASSERT_EQ(clips[1].start_frame, 25);
  ASSERT_TRUE(ApplyFilter(*catalog, "start >= 0", "all").ok());
  const ExportOptions e = CopyOptions(d.File("copy"), "all");
  ASSERT_TRUE(Exports(*catalog, e, 2));
  for (size_t i = 0; i < 2; ++i) {
    const auto rec = **catalog->FindClipExport(clips[i].id, fs::absolute(e.out_dir).string());
    auto frames = OpenFrameSource(rec.path);
    ASSERT_TRUE(frames.ok()) << frames.status().ToString();
    Frame f;
    ASSERT_TRUE(*(*frames)->Next(&f));
    EXPECT_EQ(rec.width, i == 0 ? 64 : 96) << "clip " << i;
    EXPECT_EQ(rec.height, i == 0 ? 48 : 64) << "clip " << i;
    EXPECT_EQ(f.width, rec.width) << "clip " << i;
    EXPECT_EQ(f.height, rec.height) << "clip " << i;
  }
}

TEST_F(ExportTest, CopiesGoIntoAContainerThatHoldsTheirCodec) {
  // MP4 cannot hold FFV1: a stream copy of an FFV1 video goes into .mkv (before, every
  // clip failed with the muxer's "cannot write header"). H.264 copies stay .mp4.
  TempDir d;
  EncodeOptions lossless;
  lossless.codec = "ffv1";
  ASSERT_TRUE(WriteIndexedVideo(d.File("ffv1.mkv"), 20, 10, lossless).ok());
  ASSERT_TRUE(WriteIndexedVideo(d.File("h264.mp4"), 20, 10).ok());
  auto catalog = *Catalog::Open(d.File("cat.db"));
  ScanOptions o;
  o.split.min_seconds = Rational(1, 5);
  ASSERT_TRUE(Scan(*catalog, {d.File("ffv1.mkv"), d.File("h264.mp4")}, o).ok());
  ASSERT_EQ(catalog->ListClips()->size(), 4u);
  ASSERT_TRUE(ApplyFilter(*catalog, "start >= 0", "all").ok());
  EXPECT_EQ(StreamCopyContainer("ffv1"), "mkv");
  EXPECT_EQ(StreamCopyContainer("h264"), "mp4");
  EXPECT_EQ(StreamCopyContainer("no-such-codec"), "");

  const ExportOptions e = CopyOptions(d.File("copy"), "all");
  ASSERT_TRUE(Exports(*catalog, e, 4));
  std::multiset<std::string> extensions;
  for (const ClipRecord& clip : *catalog->ListClips()) {
    const auto rec = **catalog->FindClipExport(clip.id, fs::absolute(e.out_dir).string());
    extensions.insert(fs::path(rec.path).extension().string());
    auto info = ProbeVideo(rec.path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->codec, fs::path(rec.path).extension() == ".mkv" ? "ffv1" : "h264");
    // From the keyframe at or before the start (FFV1 too keeps state between keyframes).
    EXPECT_EQ(rec.frames, info->frame_count);
    EXPECT_GE(info->frame_count, clip.end_frame - clip.start_frame);
    EXPECT_LE(rec.start_time, clip.start_time);
  }
  EXPECT_EQ(extensions, (std::multiset<std::string>{".mkv", ".mkv", ".mp4", ".mp4"}));

  // Into a folder whose clips were re-encoded to .mp4, the copies' other names do not
  // make them new: the records say how those clips were written, and nothing is replaced.
  ExportOptions again = e;
  again.out_dir = d.File("mixed");
  again.copy = false;
  ASSERT_EQ(Export(*catalog, again)->exported, 4);
  again.copy = true;
  auto mixed = Export(*catalog, again);
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed->exported, 0);
  ASSERT_EQ(mixed->failed, 4);
  EXPECT_NE(mixed->failures[0].second.find("exported before as reencode"), std::string::npos)
      << mixed->failures[0].second;
  for (const auto& entry : fs::directory_iterator(again.out_dir)) {
    EXPECT_NE(entry.path().extension(), ".mkv") << entry.path();
  }
}

TEST_F(ExportTest, ShardsSplitTheWorkAndTheManifests) {
  TempDir d;
  const std::string root = d.File("v");
  fs::create_directories(root);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(WriteIndexedVideo(root + "/v" + std::to_string(i) + ".mp4", 30, 15).ok());
  }
  auto catalog = *Catalog::Open(d.File("cat.db"));
  ScanOptions o;
  o.split.min_seconds = Rational(1, 2);
  o.split.gradual = false;
  ASSERT_TRUE(Scan(*catalog, {root}, o).ok());
  ASSERT_TRUE(ApplyFilter(*catalog, "duration > 0", "all").ok());
  std::set<std::string> paths;
  int64_t rows = 0;
  for (int i = 0; i < 2; ++i) {
    ExportOptions e;
    e.out_dir = d.File("out");
    e.subset = "all";
    e.shard = ShardSpec{i, 2};
    auto s = Export(*catalog, e);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_TRUE(EndsWith(s->manifest_csv, "manifest-" + std::to_string(i) + "-of-2.csv"));
    rows += s->manifest_rows;
    const auto lines = Split(Trim(*ReadFile(s->manifest_jsonl)), '\n', true);
    for (const auto& l : lines)
      EXPECT_TRUE(paths.insert(Json::Parse(l)->Find("path")->as_string()).second);
  }
  EXPECT_EQ(rows, static_cast<int64_t>(catalog->ListClips()->size()));
  // One manifest for everything afterwards.
  ExportOptions all;
  all.out_dir = d.File("out");
  all.subset = "all";
  all.manifest_only = true;
  auto m = Export(*catalog, all);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->manifest_rows, rows);
  EXPECT_EQ(m->exported, 0);
}

// ---------------------------------------------------------------- merge

TEST(MergeTest, ShardCatalogsMergeWithoutDuplicates) {
  TempDir dir;
  const std::string root = dir.File("v");
  fs::create_directories(root);
  for (int i = 0; i < 6; ++i) {
    SyntheticVideo v;
    v.width = 96;
    v.height = 64;
    v.seed = 40 + static_cast<uint64_t>(i);
    v.scenes = {StillScene(30, {200, 60, 40}, {240, 220, 60}, 1),
                StillScene(30, {30, 60, 200}, {200, 230, 250}, -1)};
    ASSERT_TRUE(WriteSyntheticVideo(root + "/m" + std::to_string(i) + ".mp4", v).ok());
  }
  std::vector<std::string> shards;
  int64_t clips = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string db = dir.File("shard" + std::to_string(i) + ".db");
    auto c = *Catalog::Open(db);
    ScanOptions o;
    o.shard = ShardSpec{i, 3};
    auto s = Scan(*c, {root}, o);
    ASSERT_TRUE(s.ok());
    clips += s->clips;
    // Caption every clip of this shard, and record a subset.
    for (const auto& clip : *c->ListClips()) {
      CaptionRecord k;
      k.clip_id = clip.id;
      k.text = "clip " + std::to_string(clip.start_frame);
      k.source = "original";
      ASSERT_TRUE(c->AddCaption(k).ok());
    }
    ASSERT_TRUE(ApplyFilter(*c, "start = 0", "firsts").ok());
    shards.push_back(db);
  }
  auto out = *Catalog::Open(dir.File("merged.db"));
  auto m = MergeCatalogs(*out, shards);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->videos_added, 6);
  EXPECT_EQ(m->scans, 6);
  EXPECT_EQ(m->clips, clips);
  EXPECT_EQ(m->captions, clips);
  EXPECT_EQ(out->ListVideos()->size(), 6u);
  EXPECT_EQ(static_cast<int64_t>(out->ListClips()->size()), clips);
  auto firsts = **out->FindSubset("firsts");
  int passed = 0;
  for (const auto& member : *out->ListSubsetMembers(firsts.id)) passed += member.passed;
  EXPECT_EQ(passed, 6);
  for (const auto& v : *out->ListVideos()) {
    auto series = LoadFrameSeries(*out, v.id);
    ASSERT_TRUE(series.ok()) << series.status().ToString();
    EXPECT_EQ(static_cast<int64_t>(series->size()), v.frame_count);
  }
  const size_t runs = out->ListRuns()->size();

  // Merging again changes nothing.
  auto again = MergeCatalogs(*out, shards);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->videos_added, 0);
  EXPECT_EQ(again->captions, 0);
  EXPECT_EQ(again->runs, 0);
  EXPECT_EQ(static_cast<int64_t>(out->ListClips()->size()), clips);
  EXPECT_EQ(out->ListRuns()->size(), runs);
  int64_t captions = 0;
  for (const auto& clip : *out->ListClips()) captions += out->ListCaptions(clip.id)->size();
  EXPECT_EQ(captions, clips);
  EXPECT_EQ(*out->IntegrityCheck(), "ok");
}

TEST(MergeTest, ExportRecordsFromCatalogCopiesComeHome) {
  TempDir dir;
  const std::string root = dir.File("v");
  fs::create_directories(root);
  ASSERT_TRUE(WriteIndexedVideo(root + "/a.mp4", 32, 16).ok());
  const std::string main_db = dir.File("main.db");
  {
    auto c = *Catalog::Open(main_db);
    ScanOptions o;
    o.split.min_seconds = Rational(2, 5);
    o.split.gradual = false;
    ASSERT_TRUE(Scan(*c, {root}, o).ok());
    ASSERT_TRUE(ApplyFilter(*c, "duration > 0", "all").ok());
  }
  // A task copies the catalog (checkpointed), exports with the copy, and the copy is
  // merged back.
  {
    auto c = *Catalog::Open(main_db);
    ASSERT_EQ(
        sqlite3_wal_checkpoint_v2(c->raw(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr),
        SQLITE_OK);
  }
  fs::copy_file(main_db, dir.File("task.db"));
  {
    auto task = *Catalog::Open(dir.File("task.db"));
    ExportOptions e;
    e.out_dir = dir.File("clips");
    e.subset = "all";
    ASSERT_EQ(Export(*task, e)->exported, 2);
  }
  auto main_catalog = *Catalog::Open(main_db);
  ASSERT_TRUE(MergeCatalogs(*main_catalog, {dir.File("task.db")}).ok());
  ExportOptions manifest;
  manifest.out_dir = dir.File("clips");
  manifest.subset = "all";
  manifest.manifest_only = true;
  auto m = Export(*main_catalog, manifest);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->manifest_rows, 2);
  EXPECT_EQ(main_catalog->ListClips()->size(), 2u);
}

}  // namespace
}  // namespace reel
