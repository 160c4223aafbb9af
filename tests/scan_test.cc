// Tests for curate scan: shot detection accuracy on videos with known cuts, fades and
// dissolves, timing on VFR and offset video, clip signals, re-cutting, resuming, shards.

#include "curate/scan.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "curate/clips.h"
#include "curate/detectors.h"
#include "curate/shard.h"
#include "curate/split.h"
#include "tests/support/test_support.h"
#include "util/strings.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/synthetic.h"

namespace reel {
namespace {

using testing::TempDir;

SceneSpec Scene(SceneKind kind, int64_t frames, Rgb bg, Rgb fg, double dx = 0, double dy = 0,
                double zoom = 1.0) {
  SceneSpec s;
  s.kind = kind;
  s.frames = frames;
  s.background = bg;
  s.foreground = fg;
  s.dx = dx;
  s.dy = dy;
  s.zoom = zoom;
  return s;
}

SyntheticVideo Video(std::vector<SceneSpec> scenes, int w = 320, int h = 180,
                     Rational fps = Rational(25, 1)) {
  SyntheticVideo v;
  v.width = w;
  v.height = h;
  v.frame_rate = fps;
  v.seed = 17;
  v.scenes = std::move(scenes);
  return v;
}

struct Scanned {
  VideoScan scan;
  VideoInfo info;
  std::vector<Rational> times;
};

Scanned ScanVideo(const std::string& path, ScanOptions options = {}) {
  Scanned out;
  auto info = ProbeVideo(path);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  out.info = *info;
  auto scan = ScanFile(path, options);
  EXPECT_TRUE(scan.ok()) << scan.status().ToString();
  if (scan.ok()) out.scan = std::move(scan).value();
  out.times = FrameTimes(out.scan.series.pts, out.scan.time_base);
  return out;
}

std::vector<int64_t> Cuts(const Scanned& s, DetectorKind kind) {
  DetectorParams p;
  p.kind = kind;
  auto cuts = DetectCuts(s.scan.series, s.times, s.info.frame_rate, p);
  EXPECT_TRUE(cuts.ok()) << cuts.status().ToString();
  return cuts.ok() ? *cuts : std::vector<int64_t>{};
}

std::string Show(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += std::to_string(x) + " ";
  return s;
}

ClipPlan Plan(const Scanned& s, SplitOptions o = {}) {
  VideoTiming t;
  t.time_base = s.scan.time_base;
  t.frame_rate = s.info.frame_rate;
  t.end_time = s.info.duration;
  auto plan = PlanClips(s.scan.series, t, o);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  return plan.ok() ? *plan : ClipPlan{};
}

const Rgb kRed{200, 50, 40}, kBlue{40, 70, 200}, kGreen{50, 170, 60}, kYellow{230, 200, 40},
    kGray{128, 128, 128}, kWhite{240, 240, 240}, kDark{30, 30, 40};

// ---------------------------------------------------------------- shot detection

TEST(ShotDetectionTest, EveryHardCutAtTheExactFrame) {
  TempDir dir;
  const std::string path = dir.File("cuts.mp4");
  const SyntheticVideo v = Video({Scene(SceneKind::kStillImage, 40, kRed, kYellow, 2, 0),
                                  Scene(SceneKind::kTexture, 33, kBlue, kWhite, -3, 1),
                                  Scene(SceneKind::kBars, 27, kGray, kGray, 4),
                                  Scene(SceneKind::kMovingBox, 45, kGreen, kWhite, 3, 1),
                                  Scene(SceneKind::kStillImage, 36, kDark, kGreen, 0, 0, 1.01)});
  ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
  const std::vector<int64_t> truth = v.hard_cut_frames();  // 40 73 100 145
  const Scanned s = ScanVideo(path);
  ASSERT_EQ(s.scan.series.size(), 181u);
  for (DetectorKind kind :
       {DetectorKind::kContent, DetectorKind::kAdaptive, DetectorKind::kHistogram}) {
    EXPECT_EQ(Cuts(s, kind), truth) << DetectorKindName(kind) << ": " << Show(Cuts(s, kind));
  }
  // The hash detector finds every cut at its frame too; like PySceneDetect's, it may add
  // cuts where a moving object flips many near-median DCT bits.
  const std::vector<int64_t> hash = Cuts(s, DetectorKind::kHash);
  for (int64_t c : truth) {
    EXPECT_NE(std::find(hash.begin(), hash.end(), c), hash.end()) << "hash missed " << c;
  }
  // The clips of the default split are exactly the scenes.
  const ClipPlan plan = Plan(s);
  ASSERT_EQ(plan.clips.size(), 5u);
  EXPECT_EQ(plan.clips[1].start_frame, 40);
  EXPECT_EQ(plan.clips[1].end_frame, 73);
  EXPECT_EQ(plan.clips[1].start_time, Rational(40, 25));
  EXPECT_EQ(plan.clips[4].end_time, Rational(181, 25));
}

// Frames OpenCV's optical flow cannot take as they are: 1024x64 analyses at 256x16, and
// 48x12 as it is, on which DIS reads out of bounds (SIGSEGV); 8x8 and 2000x16 (256x2 to
// analyse), on which it throws. Each is scanned whole, and the cuts are found.
TEST(ShotDetectionTest, ShortWideAndTinyVideosAreScanned) {
  TempDir dir;
  for (const auto& [w, h] :
       std::vector<std::pair<int, int>>{{1024, 64}, {48, 12}, {8, 8}, {2000, 16}}) {
    const std::string label = std::to_string(w) + "x" + std::to_string(h);
    SCOPED_TRACE(label);
    const std::string path = dir.File(label + ".mp4");
    const SyntheticVideo v = Video(
        {Scene(SceneKind::kTexture, 30, kBlue, kWhite, -3, 0),
         Scene(SceneKind::kSolid, 30, kRed, kRed), Scene(SceneKind::kBars, 30, kGray, kGray, 4)},
        w, h);
    ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
    const Scanned s = ScanVideo(path);
    ASSERT_EQ(s.scan.series.size(), 90u);
    EXPECT_EQ(s.scan.series.flow_mag.size(), 90u);
    EXPECT_EQ(Cuts(s, DetectorKind::kContent), v.hard_cut_frames())
        << Show(Cuts(s, DetectorKind::kContent));
  }
}

TEST(ShotDetectionTest, NoCutInsideASingleMovingShot) {
  TempDir dir;
  struct Case {
    const char* name;
    SceneSpec scene;
  };
  const std::vector<Case> cases = {
      {"fast pan", Scene(SceneKind::kStillImage, 90, kRed, kYellow, 6, 0)},
      {"tilt", Scene(SceneKind::kStillImage, 90, kBlue, kWhite, 0, 4)},
      {"zoom in", Scene(SceneKind::kStillImage, 90, kGreen, kYellow, 0, 0, 1.02)},
      {"zoom out", Scene(SceneKind::kStillImage, 90, kDark, kWhite, 1, 0, 0.98)},
      {"moving box", Scene(SceneKind::kMovingBox, 90, kGray, kRed, 7, 3)},
      {"scrolling texture", Scene(SceneKind::kTexture, 90, kBlue, kYellow, 5, -2)},
  };
  for (const Case& c : cases) {
    const std::string path = dir.File("shot.mp4");
    ASSERT_TRUE(WriteSyntheticVideo(path, Video({c.scene})).ok());
    const Scanned s = ScanVideo(path);
    for (DetectorKind kind : {DetectorKind::kContent, DetectorKind::kAdaptive}) {
      EXPECT_TRUE(Cuts(s, kind).empty()) << c.name << ", " << DetectorKindName(kind) << ": "
                                         << Show(Cuts(s, kind));
    }
    const ClipPlan plan = Plan(s);  // fades and gradual detection on
    EXPECT_EQ(plan.clips.size(), 1u) << c.name << ": cuts " << Show(plan.cuts);
  }
}

TEST(ShotDetectionTest, FadesAreCutInTheDarkAndTrimmed) {
  TempDir dir;
  const std::string path = dir.File("fades.mp4");
  SceneSpec a = Scene(SceneKind::kStillImage, 50, kRed, kYellow, 1, 0);
  a.fade_out = 15;
  SceneSpec black = Scene(SceneKind::kSolid, 10, {0, 0, 0}, {0, 0, 0});
  SceneSpec b = Scene(SceneKind::kTexture, 50, kBlue, kWhite, 2, 0);
  b.fade_in = 15;
  const SyntheticVideo v = Video({a, black, b});
  ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
  const Scanned s = ScanVideo(path);
  // The threshold detector cuts inside the dark stretch (frames ~47 to ~62). (The content
  // detector may also fire where the last dim frame turns black: hue and saturation of
  // near-black pixels jump, in PySceneDetect as here.)
  const std::vector<int64_t> fade_cuts = Cuts(s, DetectorKind::kThreshold);
  ASSERT_EQ(fade_cuts.size(), 1u) << Show(fade_cuts);
  EXPECT_GE(fade_cuts[0], 50);
  EXPECT_LE(fade_cuts[0], 62);
  // The default split uses both and trims the black frames from the clips' ends.
  const ClipPlan plan = Plan(s);
  ASSERT_EQ(plan.clips.size(), 2u) << Show(plan.cuts);
  EXPECT_EQ(plan.clips[0].start_frame, 0);
  EXPECT_LT(plan.clips[0].end_frame, 50);  // ends before the picture is black
  EXPECT_GT(plan.clips[0].end_frame, 40);
  EXPECT_GT(plan.clips[1].start_frame, 60);
  EXPECT_LT(plan.clips[1].start_frame, 70);
  EXPECT_EQ(plan.clips[1].end_frame, 110);
  for (const PlannedClip& c : plan.clips) {
    const ClipSignals g = ComputeClipSignals(s.scan.series, c.start_frame, c.end_frame);
    EXPECT_EQ(*g.black_ratio, 0.0);
  }
  // Without fade handling the black frames stay in the clips.
  SplitOptions plain;
  plain.fades = false;
  plain.gradual = false;
  double black_frames = 0;
  for (const PlannedClip& c : Plan(s, plain).clips) {
    black_frames += *ComputeClipSignals(s.scan.series, c.start_frame, c.end_frame).black_ratio;
  }
  EXPECT_GT(black_frames, 0.05);
}

TEST(ShotDetectionTest, DissolveIsCutOnceNearItsMiddle) {
  TempDir dir;
  const std::string path = dir.File("dissolve.mp4");
  SceneSpec a = Scene(SceneKind::kStillImage, 60, kRed, kYellow, 0.5, 0);
  SceneSpec b = Scene(SceneKind::kStillImage, 60, kBlue, kGreen, 0, 0.5);
  b.dissolve_in = 16;  // frames 60..75 blend a into b
  const SyntheticVideo v = Video({a, b});
  ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
  const Scanned s = ScanVideo(path);
  EXPECT_TRUE(Cuts(s, DetectorKind::kContent).empty()) << Show(Cuts(s, DetectorKind::kContent));
  const ClipPlan plan = Plan(s);
  ASSERT_EQ(plan.cuts.size(), 1u) << Show(plan.cuts);
  EXPECT_GE(plan.cuts[0], 62);
  EXPECT_LE(plan.cuts[0], 74);
  EXPECT_EQ(plan.clips.size(), 2u);
}

TEST(ShotDetectionTest, VariableFrameRateAndStartOffsetGiveExactTimes) {
  TempDir dir;
  // Scenes of 30 and 30 frames; timestamps irregular (ms), starting at 5 s.
  const SyntheticVideo v = Video({Scene(SceneKind::kStillImage, 30, kRed, kYellow, 2, 0),
                                  Scene(SceneKind::kTexture, 30, kBlue, kWhite, 2, 0)},
                                 160, 96);
  std::vector<int64_t> pts;
  int64_t t = 5000;
  for (int i = 0; i < 60; ++i) {
    pts.push_back(t);
    t += (i % 3 == 0) ? 50 : 30;  // 20 and 33 fps mixed
  }
  const std::string path = dir.File("vfr.mkv");
  {
    EncodeOptions o;
    o.width = v.width;
    o.height = v.height;
    o.frame_rate = Rational(30, 1);
    o.time_base = Rational(1, 1000);
    auto enc = VideoEncoder::Open(path, o);
    ASSERT_TRUE(enc.ok());
    Frame f;
    for (int i = 0; i < 60; ++i) {
      v.Render(i, &f);
      ASSERT_TRUE((*enc)->Write(f, pts[i]).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  const Scanned s = ScanVideo(path);
  EXPECT_TRUE(s.info.variable_frame_rate);
  EXPECT_EQ(s.info.start_time, Rational(5, 1));
  EXPECT_EQ(Cuts(s, DetectorKind::kContent), (std::vector<int64_t>{30}));
  SplitOptions o;
  o.min_seconds = Rational(1, 2);
  const ClipPlan plan = Plan(s, o);
  ASSERT_EQ(plan.clips.size(), 2u);
  EXPECT_EQ(plan.clips[0].start_time, Rational(0, 1));  // relative to the stream start
  EXPECT_EQ(plan.clips[1].start_frame, 30);
  EXPECT_EQ(plan.clips[1].start_time, Rational(pts[30] - 5000, 1000));
  EXPECT_EQ(plan.clips[1].end_time, s.info.duration);
}

TEST(ShotDetectionTest, MinAndMaxSeconds) {
  TempDir dir;
  const std::string path = dir.File("lengths.mp4");
  const SyntheticVideo v = Video({Scene(SceneKind::kTexture, 20, kRed, kYellow, 1, 0),
                                  Scene(SceneKind::kStillImage, 100, kBlue, kWhite, 1, 0),
                                  Scene(SceneKind::kBars, 30, kGray, kGray, 2)},
                                 160, 96);
  ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
  const Scanned s = ScanVideo(path);
  SplitOptions o;
  o.min_seconds = Rational(1, 1);   // drops the 20-frame scene (0.8 s)
  o.max_seconds = Rational(3, 2);   // 100 frames = 4 s -> three parts
  const ClipPlan plan = Plan(s, o);
  EXPECT_EQ(plan.dropped_short, 1);
  EXPECT_EQ(plan.split_long, 1);
  ASSERT_EQ(plan.clips.size(), 4u);
  EXPECT_EQ(plan.clips[0].start_frame, 20);
  EXPECT_EQ(plan.clips[0].end_frame, 53);
  EXPECT_EQ(plan.clips[2].end_frame, 120);
  for (const auto& c : plan.clips) {
    EXPECT_LE(c.end_time - c.start_time, o.max_seconds);
    EXPECT_GE(c.end_time - c.start_time, o.min_seconds);
  }
}

TEST(ShotDetectionTest, SharedFootageMatchesPySceneDetect) {
  const std::string data = testing::SharedDataDir();
  const std::string path = data + "/video/testvideo.mp4";
  if (data.empty() || !std::filesystem::exists(path)) {
    GTEST_SKIP() << "../shared/data/video/testvideo.mp4 not present; PySceneDetect comparison skipped";
  }
  ScanOptions o;
  o.analysis.groups = kAnalyzeShots;
  const Scanned s = ScanVideo(path, o);
  ASSERT_EQ(s.scan.series.size(), 720u);
  EXPECT_EQ(s.scan.analysis_width, 256);
  EXPECT_EQ(s.scan.analysis_height, 144);
  // PySceneDetect 0.7.1, ContentDetector defaults: 00:00:01.001, 00:00:06.006, 00:00:13.146.
  const std::vector<int64_t> cuts = Cuts(s, DetectorKind::kContent);
  ASSERT_EQ(cuts.size(), 3u) << Show(cuts);
  const Rational expected[] = {Rational(1001, 1000), Rational(6006, 1000), Rational(13146, 1000)};
  for (size_t i = 0; i < 3; ++i) {
    const Rational frame_time = Rational(1001, 30000);
    const Rational diff = s.times[cuts[i]] - expected[i];
    EXPECT_LE(diff < Rational() ? -diff : diff, frame_time)
        << "cut " << i << " at " << FormatTimecode(s.times[cuts[i]]);
  }
  EXPECT_EQ(FormatTimecode(s.times[cuts[0]]), "00:00:01.001");
  EXPECT_EQ(FormatTimecode(s.times[cuts[1]]), "00:00:06.006");
  EXPECT_EQ(FormatTimecode(s.times[cuts[2]]), "00:00:13.146");
}

// ---------------------------------------------------------------- signals

ClipSignals SignalsOf(const std::string& path, const SyntheticVideo& v) {
  EXPECT_TRUE(WriteSyntheticVideo(path, v).ok());
  const Scanned s = ScanVideo(path);
  return ComputeClipSignals(s.scan.series, 0, static_cast<int64_t>(s.scan.series.size()));
}

TEST(SignalTest, CameraMotionClasses) {
  TempDir dir;
  struct Case {
    const char* want;
    double dx, dy, zoom;
  };
  for (const Case& c : {Case{"pan_right", 3, 0, 1}, Case{"pan_left", -3, 0, 1},
                        Case{"tilt_down", 0, 3, 1}, Case{"tilt_up", 0, -3, 1},
                        Case{"zoom_in", 0, 0, 1.015}, Case{"zoom_out", 0, 0, 0.985},
                        Case{"static", 0, 0, 1}}) {
    const ClipSignals g = SignalsOf(
        dir.File("cam.mp4"), Video({Scene(SceneKind::kStillImage, 40, kGreen, kYellow, c.dx, c.dy, c.zoom)}));
    EXPECT_EQ(g.camera_motion, c.want) << g.extra.Dump();
    if (std::string(c.want) == "static") {
      EXPECT_LT(*g.motion, 0.05);
      EXPECT_GT(*g.static_ratio, 0.9);
    } else {
      EXPECT_GT(*g.motion, 0.3) << c.want;
      EXPECT_LT(*g.static_ratio, 0.1) << c.want;
    }
  }
}

TEST(SignalTest, BlurLowersSharpness) {
  TempDir dir;
  SceneSpec sharp = Scene(SceneKind::kStillImage, 20, kRed, kYellow, 1, 0);
  SceneSpec soft = sharp;
  soft.blur = 3;
  const ClipSignals a = SignalsOf(dir.File("sharp.mp4"), Video({sharp}));
  const ClipSignals b = SignalsOf(dir.File("soft.mp4"), Video({soft}));
  EXPECT_GT(*a.sharpness, 2.0 * *b.sharpness) << *a.sharpness << " vs " << *b.sharpness;
}

TEST(SignalTest, BlackBrightnessContrastColours) {
  TempDir dir;
  const ClipSignals black = SignalsOf(
      dir.File("black.mp4"), Video({Scene(SceneKind::kSolid, 20, {0, 0, 0}, {0, 0, 0})}));
  EXPECT_EQ(*black.black_ratio, 1.0);
  EXPECT_LT(*black.brightness, 0.05);

  const ClipSignals green = SignalsOf(
      dir.File("green.mp4"), Video({Scene(SceneKind::kSolid, 20, {40, 180, 60}, {0, 0, 0})}));
  EXPECT_EQ(*green.black_ratio, 1.0);  // flat: blank
  ASSERT_GE(green.dominant_colors.size(), 1u);
  EXPECT_EQ(green.dominant_colors.at(0).Find("name")->as_string(), "green");

  const ClipSignals bars = SignalsOf(
      dir.File("bars.mp4"), Video({Scene(SceneKind::kBars, 20, kGray, kGray, 0)}));
  EXPECT_EQ(*bars.black_ratio, 0.0);
  EXPECT_GT(*bars.contrast, 0.2);
  EXPECT_GT(*bars.colorfulness, 50.0);
  EXPECT_GE(bars.dominant_colors.size(), 3u);
  EXPECT_GT(*green.colorfulness, *black.colorfulness);
  EXPECT_EQ(bars.phash.size(), 16u);
}

TEST(SignalTest, OverlaidTextIsMeasured) {
  TempDir dir;
  const SyntheticVideo base = Video({Scene(SceneKind::kStillImage, 20, kBlue, kGreen, 0.5, 0)}, 640, 360);
  const std::string plain = dir.File("plain.mp4"), titled = dir.File("titled.mp4");
  ASSERT_TRUE(WriteSyntheticVideo(plain, base).ok());
  {
    EncodeOptions o;
    o.width = base.width;
    o.height = base.height;
    o.frame_rate = base.frame_rate;
    auto enc = VideoEncoder::Open(titled, o);
    ASSERT_TRUE(enc.ok());
    Frame f;
    for (int i = 0; i < 20; ++i) {
      base.Render(i, &f);
      cv::Mat m(f.height, f.width, CV_8UC3, f.data.data());
      cv::putText(m, "Subtitles go here", cv::Point(60, 320), cv::FONT_HERSHEY_SIMPLEX, 1.4,
                  cv::Scalar(255, 255, 255), 4);
      cv::putText(m, "BREAKING NEWS", cv::Point(40, 60), cv::FONT_HERSHEY_DUPLEX, 1.6,
                  cv::Scalar(255, 255, 0), 4);
      ASSERT_TRUE((*enc)->Write(f).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  const Scanned a = ScanVideo(plain), b = ScanVideo(titled);
  const double without = *ComputeClipSignals(a.scan.series, 0, 20).text_area;
  const double with = *ComputeClipSignals(b.scan.series, 0, 20).text_area;
  EXPECT_GT(with, 0.02);
  EXPECT_GT(with, without + 0.02) << with << " vs " << without;
}

// ---------------------------------------------------------------- catalog: scan, split

// A catalog and an empty folder, for tests that make their videos themselves.
class CatalogFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.File("videos");
    std::filesystem::create_directories(root_);
    auto c = Catalog::Open(dir_.File("cat.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(c).value();
  }
  TempDir dir_;
  std::string root_;
  std::unique_ptr<Catalog> catalog_;
};

// Three videos of two scenes each (30, 35 and 40 frames of a still, then 40 of texture).
class ScanCatalogTest : public CatalogFolderTest {
 protected:
  void SetUp() override {
    CatalogFolderTest::SetUp();
    if (HasFatalFailure()) return;
    for (int i = 0; i < 3; ++i) {
      SyntheticVideo v = Video({Scene(SceneKind::kStillImage, 30 + 5 * i, kRed, kYellow, 1, 0),
                                Scene(SceneKind::kTexture, 40, kBlue, kWhite, 2, 0)},
                               160, 96);
      v.seed = 100 + static_cast<uint64_t>(i);
      ASSERT_TRUE(WriteSyntheticVideo(root_ + "/v" + std::to_string(i) + ".mp4", v).ok());
    }
  }
};

TEST_F(ScanCatalogTest, ScanStoresSeriesAndClipsAndResumes) {
  ScanOptions o;
  o.jobs = 2;
  auto s = Scan(*catalog_, {root_}, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->ingest.added, 3);
  EXPECT_EQ(s->scanned, 3);
  EXPECT_EQ(s->clips, 6);
  EXPECT_EQ(s->frames, 70 + 75 + 80);
  for (const VideoRecord& v : *catalog_->ListVideos()) {
    auto scan = catalog_->FindScan(v.id);
    ASSERT_TRUE(scan.ok() && scan->has_value());
    EXPECT_EQ((*scan)->status, ScanStatus::kOk);
    EXPECT_EQ((*scan)->frames, v.frame_count);
    EXPECT_EQ((*scan)->analysis_width, 160);
    auto series = LoadFrameSeries(*catalog_, v.id);
    ASSERT_TRUE(series.ok()) << series.status().ToString();
    EXPECT_EQ(static_cast<int64_t>(series->size()), v.frame_count);
    EXPECT_EQ(series->colors.size(), series->size() * kColorBins);
    auto clips = *catalog_->ListClips(v.id);
    ASSERT_EQ(clips.size(), 2u);
    EXPECT_EQ(clips[0].start_frame, 0);
    EXPECT_EQ(clips[1].start_frame, clips[0].end_frame);
    EXPECT_EQ(clips[1].end_time, v.duration);
    EXPECT_TRUE(clips[0].signals.motion.has_value());
    EXPECT_FALSE(clips[0].detector.empty());
  }
  // Nothing left to do; --rescan redoes it.
  auto again = Scan(*catalog_, {}, o);
  EXPECT_EQ(again->scanned, 0);
  EXPECT_EQ(again->skipped, 3);
  o.rescan = true;
  EXPECT_EQ(Scan(*catalog_, {}, o)->scanned, 3);
  EXPECT_EQ(*catalog_->IntegrityCheck(), "ok");
}

// Clip ids follow the videos' order, not which scan finished first: the first video is
// the longest here.
TEST(ScanOrderTest, ClipIdsFollowTheVideosWhateverFinishesFirst) {
  TempDir dir;
  const std::string root = dir.File("videos");
  std::filesystem::create_directories(root);
  for (const auto& [name, frames] :
       std::vector<std::pair<std::string, int64_t>>{{"a", 300}, {"b", 40}, {"c", 40}}) {
    SyntheticVideo v = Video({Scene(SceneKind::kStillImage, frames, kRed, kYellow, 1, 0),
                              Scene(SceneKind::kTexture, frames, kBlue, kWhite, 2, 0)},
                             160, 96);
    v.seed = static_cast<uint64_t>(name[0]);  // distinct files, not duplicates
    ASSERT_TRUE(WriteSyntheticVideo(root + "/" + name + ".mp4", v).ok());
  }
  auto catalog = Catalog::Open(dir.File("cat.db"));
  ASSERT_TRUE(catalog.ok());
  ScanOptions o;
  o.jobs = 3;
  auto s = Scan(**catalog, {root}, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<std::string> names;
  int64_t last_id = 0;
  for (const VideoRecord& v : *(*catalog)->ListVideos()) {
    names.push_back(std::filesystem::path(v.path).stem().string());
    const std::vector<ClipRecord> clips = *(*catalog)->ListClips(v.id);
    EXPECT_FALSE(clips.empty()) << v.path;
    for (const ClipRecord& c : clips) {
      EXPECT_GT(c.id, last_id) << v.path << " clip at frame " << c.start_frame;
      last_id = c.id;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(ScanCatalogTest, SplitRecutsWithoutDecodingAndKeepsUnchangedClips) {
  ASSERT_TRUE(Scan(*catalog_, {root_}, {}).ok());
  const auto before = *catalog_->ListClips();
  ASSERT_EQ(before.size(), 6u);
  // Caption one clip: a re-cut that keeps its range must keep the caption.
  CaptionRecord cap;
  cap.clip_id = before[0].id;
  cap.text = "red picture";
  cap.source = "original";
  ASSERT_TRUE(catalog_->AddCaption(cap).ok());
  // The videos are gone: split must not need them.
  std::filesystem::remove_all(root_);

  SplitOptions high;
  high.detector.threshold = 250;  // nothing is a cut
  high.gradual = false;
  auto s = Split(*catalog_, high);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->videos, 3);
  EXPECT_EQ(s->clips, 3);
  EXPECT_EQ(catalog_->ListClips()->size(), 3u);

  auto back = Split(*catalog_, SplitOptions{});
  ASSERT_TRUE(back.ok());
  const auto after = *catalog_->ListClips();
  ASSERT_EQ(after.size(), 6u);
  std::set<std::pair<int64_t, int64_t>> ranges_before, ranges_after;
  for (const auto& c : before) ranges_before.insert({c.video_id, c.start_frame});
  for (const auto& c : after) ranges_after.insert({c.video_id, c.start_frame});
  EXPECT_EQ(ranges_before, ranges_after);
}

// A capture that starts mid-GOP holds packets no decoder shows; clip times count from
// the first frame shown. The last clip ended at the probe's length, which counted those
// packets: 0.28 s (7 frames) after the video's last frame, so its duration was 2.96 s
// for 67 frames at 25 fps. It ends at the last frame's end now, also in a catalog whose
// video row still has the length counted the old way.
TEST_F(CatalogFolderTest, ACaptureStartingMidGopEndsItsLastClipAtItsLastFrame) {
  const std::string full = dir_.File("broadcast.ts");
  EncodeOptions o;
  o.gop = 25;
  SyntheticVideo v = Video({Scene(SceneKind::kStillImage, 120, kRed, kYellow, 1, 0),
                            Scene(SceneKind::kTexture, 130, kBlue, kWhite, 2, 0)},
                           160, 96);
  ASSERT_TRUE(WriteSyntheticVideo(full, v, o).ok());
  const std::string bytes = testing::ReadFile(full);
  const std::string capture = root_ + "/capture.ts";
  const size_t packets = bytes.size() / 188;
  testing::WriteFile(capture, bytes.substr(packets * 37 / 100 * 188));  // anywhere
  Result<VideoInfo> info = ProbeVideo(capture);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_GT(info->undecodable_lead, 0);

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    const std::vector<VideoRecord> videos = *catalog_->ListVideos();
    ASSERT_EQ(videos.size(), 1u);
    auto scan = catalog_->FindScan(videos[0].id);
    ASSERT_TRUE(scan.ok() && scan->has_value());
    const std::vector<ClipRecord> clips = *catalog_->ListClips(videos[0].id);
    ASSERT_FALSE(clips.empty());
    const ClipRecord& last = clips.back();
    EXPECT_EQ(last.end_frame, (*scan)->frames);
    EXPECT_EQ(last.end_time, Rational((*scan)->frames, 25));
    EXPECT_EQ(last.end_time - last.start_time, Rational(last.end_frame - last.start_frame, 25));
  };
  auto s = Scan(*catalog_, {root_}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  check("scanned");
  VideoRecord old = catalog_->ListVideos()->at(0);
  EXPECT_EQ(old.frame_count, (*catalog_->FindScan(old.id))->frames);
  const Rational lead(info->undecodable_lead, 25);  // as the probe had it before
  old.start_time = old.start_time - lead;
  old.duration = old.duration + lead;
  old.frame_count += info->undecodable_lead;
  ASSERT_TRUE(catalog_->UpsertVideo(old).ok());
  ASSERT_TRUE(Split(*catalog_, SplitOptions{}).ok());
  check("split from a video row counted the old way");
}

// A raw elementary stream (.h264, .m2v, .hevc) has no timestamps: the probe recorded a
// length of 0, so the last clip ended at 0 s, before it started, and was dropped (17
// frames of a 100-frame .h264 lost, even with --min-seconds 0). The length is now the
// frames' summed durations, and a clip plan never ends the last clip at or before its
// last frame, whatever length a catalog row holds.
TEST_F(CatalogFolderTest, ARawElementaryStreamKeepsItsLastClip) {
  EncodeOptions raw;
  raw.format = "h264";
  raw.gop = 25;
  SyntheticVideo v = Video({Scene(SceneKind::kStillImage, 60, kRed, kYellow, 1, 0),
                            Scene(SceneKind::kTexture, 40, kBlue, kWhite, 2, 0)},
                           160, 96);
  const std::string path = root_ + "/raw.h264";
  ASSERT_TRUE(WriteSyntheticVideo(path, v, raw).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 100);
  EXPECT_EQ(info->start_time, Rational(0, 1));
  EXPECT_EQ(info->duration, Rational(4, 1));

  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    const std::vector<ClipRecord> clips = *catalog_->ListClips();
    ASSERT_EQ(clips.size(), 2u);
    EXPECT_EQ(clips[1].start_frame, 60);
    EXPECT_EQ(clips[1].end_frame, 100);
    EXPECT_EQ(clips[1].end_time, Rational(4, 1));
  };
  ASSERT_TRUE(Scan(*catalog_, {root_}, {}).ok());
  check("scanned");
  VideoRecord old = catalog_->ListVideos()->at(0);
  old.duration = Rational(0, 1);  // as such a stream was recorded before
  ASSERT_TRUE(catalog_->UpsertVideo(old).ok());
  ASSERT_TRUE(Split(*catalog_, SplitOptions{}).ok());
  check("split from a row with no length");
}

TEST_F(ScanCatalogTest, UnreadableVideoIsRecordedAndTheBatchGoesOn) {
  ASSERT_TRUE(Ingest(*catalog_, {root_}, {}).ok());
  std::filesystem::remove(root_ + "/v1.mp4");
  auto s = Scan(*catalog_, {}, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scanned, 2);
  EXPECT_EQ(s->failed, 1);
  ASSERT_EQ(s->failures.size(), 1u);
  EXPECT_NE(s->failures[0].second.find("v1.mp4"), std::string::npos);
  auto v1 = **catalog_->FindVideoByPath(root_ + "/v1.mp4");
  EXPECT_EQ((*catalog_->FindScan(v1.id))->status, ScanStatus::kError);
  // Failed scans are not retried unless asked.
  EXPECT_EQ(Scan(*catalog_, {}, {})->failed, 0);
  ScanOptions retry;
  retry.retry_errors = true;
  EXPECT_EQ(Scan(*catalog_, {}, retry)->failed, 1);
}

TEST_F(ScanCatalogTest, AVideoChangedSinceIngestIsNotScannedAsWhatWasRecorded) {
  // Before, the new content was cut with the old record's frame rate and frame count.
  ASSERT_TRUE(Ingest(*catalog_, {root_}, {}).ok());
  SyntheticVideo other = Video({Scene(SceneKind::kTexture, 90, kBlue, kWhite, 2, 0)}, 96, 64);
  other.frame_rate = Rational(30, 1);
  ASSERT_TRUE(WriteSyntheticVideo(root_ + "/v1.mp4", other).ok());
  // v2 only touched (a copy without -p): the same bytes, so it is scanned.
  const auto v2 = root_ + "/v2.mp4";
  std::filesystem::last_write_time(v2,
                                   std::filesystem::last_write_time(v2) + std::chrono::hours(1));
  auto s = Scan(*catalog_, {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scanned, 2);
  EXPECT_EQ(s->failed, 1);
  ASSERT_EQ(s->failures.size(), 1u);
  EXPECT_NE(s->failures[0].second.find(root_ + "/v1.mp4: changed since it was ingested ("),
            std::string::npos)
      << s->failures[0].second;
  EXPECT_NE(s->failures[0].second.find("run `reel curate ingest` on it again"), std::string::npos);
  const auto v1 = **catalog_->FindVideoByPath(root_ + "/v1.mp4");
  EXPECT_TRUE(catalog_->ListClips(v1.id)->empty());
  // Ingested again, it is scanned as what it now is.
  ASSERT_TRUE(Ingest(*catalog_, {root_}, {}).ok());
  ScanOptions retry;
  retry.retry_errors = true;
  auto again = Scan(*catalog_, {}, retry);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->scanned, 1);
  EXPECT_EQ(again->frames, 90);
}

TEST_F(ScanCatalogTest, ShardsAreDisjointAndComplete) {
  ASSERT_TRUE(Ingest(*catalog_, {root_}, {}).ok());
  int64_t total = 0;
  std::set<int64_t> seen;
  for (int i = 0; i < 3; ++i) {
    ScanOptions o;
    o.shard = *ParseShard(std::to_string(i) + "/3");
    auto s = Scan(*catalog_, {}, o);
    ASSERT_TRUE(s.ok());
    total += s->scanned;
  }
  EXPECT_EQ(total, 3);
  for (const auto& v : *catalog_->ListVideos()) seen.insert(v.id);
  for (int64_t id : seen) EXPECT_TRUE((*catalog_->FindScan(id)).has_value());
}

TEST(ShardTest, ParseAndEnvironment) {
  EXPECT_EQ(ParseShard("2/8")->index, 2);
  EXPECT_EQ(ParseShard("2/8")->count, 8);
  for (const char* bad : {"8/8", "-1/3", "1/0", "x", "1/", "/3", "1/3/5"}) {
    EXPECT_FALSE(ParseShard(bad).ok()) << bad;
  }
  ::setenv("SLURM_ARRAY_TASK_ID", "12", 1);
  ::setenv("SLURM_ARRAY_TASK_MIN", "10", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  auto slurm = ParseShard("auto");
  ASSERT_TRUE(slurm.ok()) << slurm.status().ToString();
  EXPECT_EQ(slurm->index, 2);
  EXPECT_EQ(slurm->count, 4);
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("SLURM_ARRAY_TASK_MIN");
  ::unsetenv("SLURM_ARRAY_TASK_COUNT");
  ::setenv("JOB_COMPLETION_INDEX", "5", 1);
  EXPECT_FALSE(ParseShard("auto").ok());  // count unknown
  ::setenv("REEL_SHARD_COUNT", "6", 1);
  EXPECT_EQ(ParseShard("auto")->index, 5);
  ::unsetenv("JOB_COMPLETION_INDEX");
  ::unsetenv("REEL_SHARD_COUNT");
  EXPECT_EQ(ParseShard("auto").status().code(), StatusCode::kNotFound);
  // Every key lands in exactly one shard.
  for (const char* key : {"/a.mp4", "/b.mp4", "/c/d.mkv"}) {
    int owners = 0;
    for (int i = 0; i < 5; ++i) owners += ShardSpec{i, 5}.Contains(key);
    EXPECT_EQ(owners, 1);
  }
}

}  // namespace
}  // namespace reel
