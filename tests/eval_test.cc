// Tests for `reel eval run`: sources and clip sampling, the FVD pipeline on a tiny
// I3D-like detector, skips and their reasons, the feature cache, CLIP-based and flow
// metrics, and the command.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "curate/filter.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "eval/compare.h"
#include "eval/evaluate.h"
#include "eval/flow_metrics.h"
#include "eval/frechet.h"
#include "eval/fvd.h"
#include "eval/source.h"
#include "eval/video_metrics.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_clip.h"
#include "tests/support/tiny_detector.h"
#include "video/encoder.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

SyntheticVideo Moving(int64_t frames, int variant) {
  SyntheticVideo v;
  v.width = 64;
  v.height = 48;
  v.seed = static_cast<uint64_t>(variant + 1);
  SceneSpec s;
  s.kind = variant % 2 == 0 ? SceneKind::kMovingBox : SceneKind::kTexture;
  s.frames = frames;
  s.dx = 1 + variant % 3;
  s.background = {static_cast<uint8_t>(20 * variant), 60, 90};
  v.scenes = {s};
  return v;
}

// A folder of `n` videos of `frames` frames.
std::string MakeFolder(const TempDir& dir, const std::string& name, int n, int64_t frames,
                       int first_variant = 0) {
  const std::string root = dir.File(name);
  fs::create_directories(root);
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(WriteSyntheticVideo(root + "/v" + std::to_string(i) + ".mp4",
                                    Moving(frames, first_variant + i))
                    .ok());
  }
  return root;
}

class EvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    detector_ = dir_.File("tiny_i3d.pt");
    testing::SaveTinyI3d(detector_);
    auto c = Catalog::Open(dir_.File("eval.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(c).value();
  }
  EvalOptions Options(const std::string& fake, const std::string& real) {
    EvalOptions o;
    o.name = "test";
    o.fake = fake;
    o.real = real;
    o.metrics = {"fvd", "kvd"};
    o.detector = detector_;
    o.clip.frames = 8;
    o.batch = 3;
    return o;
  }
  const MetricValue* Find(const EvalReport& r, const std::string& name) {
    for (const MetricValue& m : r.metrics) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }
  TempDir dir_;
  std::string detector_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(EvalTest, FvdOfASetWithItselfIsZeroAndMatchesTheDetectorDirectly) {
  const std::string a = MakeFolder(dir_, "a", 5, 12);
  auto r = RunEvaluation(*catalog_, Options(a, a));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const MetricValue* fvd = Find(*r, "fvd");
  ASSERT_NE(fvd, nullptr);
  EXPECT_NEAR(fvd->value, 0.0, 1e-6);
  EXPECT_EQ(fvd->details.Find("fake")->Find("used")->as_int(), 5);
  EXPECT_EQ(fvd->details.Find("protocol")->as_string(), "stylegan-v");
  EXPECT_EQ(fvd->details.Find("covariance")->as_string(), "N");
  EXPECT_NE(fvd->details.Find("warning"), nullptr) << "5 clips < 256";
  ASSERT_EQ(r->warnings.size(), 1u);

  // The features the pipeline used are the detector's on the clips read directly.
  auto det = FvdDetector::Load(detector_);
  ASSERT_TRUE(det.ok());
  auto src = OpenEvalSource(a);
  ASSERT_TRUE(src.ok());
  ClipSpec spec;
  spec.frames = 8;
  std::vector<torch::Tensor> clips;
  for (const SourceItem& item : src->items) {
    auto frames = ReadClip(item, spec);
    ASSERT_TRUE(frames.ok());
    ASSERT_EQ(frames->frames.size(), 8u);
    torch::Tensor t = torch::empty({8, 48, 64, 3}, torch::kByte);
    for (int i = 0; i < 8; ++i) {
      std::memcpy(t[i].data_ptr<uint8_t>(), frames->frames[static_cast<size_t>(i)].data.data(),
                  48 * 64 * 3);
    }
    clips.push_back(t.permute({3, 0, 1, 2}));
  }
  // In the pipeline's batches of 3: float32 convolutions round differently by batch size.
  auto in_threes = [&](const std::vector<torch::Tensor>& v) -> Result<torch::Tensor> {
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < v.size(); i += 3) {
      std::vector<torch::Tensor> chunk(v.begin() + static_cast<long>(i),
                                       v.begin() + static_cast<long>(std::min(v.size(), i + 3)));
      REEL_ASSIGN_OR_RETURN(torch::Tensor f,
                            (*det)->Features(torch::stack(chunk), FvdProtocol::kStyleganV));
      parts.push_back(f);
    }
    return torch::cat(parts, 0);
  };
  auto feats = in_threes(clips);
  ASSERT_TRUE(feats.ok());
  // A second evaluation of the same sets reads both sides' features from the catalog.
  auto again = RunEvaluation(*catalog_, Options(a, a));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(Find(*again, "fvd")->details.Find("real")->Find("cached")->as_bool());
  EXPECT_TRUE(Find(*again, "fvd")->details.Find("fake")->Find("cached")->as_bool());
  // A different set against them gives the value computed by hand from the features.
  const std::string b = MakeFolder(dir_, "b", 5, 12, 10);
  auto ab = RunEvaluation(*catalog_, Options(b, a));
  ASSERT_TRUE(ab.ok());
  std::vector<torch::Tensor> bclips;
  auto bsrc = OpenEvalSource(b);
  for (const SourceItem& item : bsrc->items) {
    auto frames = ReadClip(item, spec);
    torch::Tensor t = torch::empty({8, 48, 64, 3}, torch::kByte);
    for (int i = 0; i < 8; ++i) {
      std::memcpy(t[i].data_ptr<uint8_t>(), frames->frames[static_cast<size_t>(i)].data.data(),
                  48 * 64 * 3);
    }
    bclips.push_back(t.permute({3, 0, 1, 2}));
  }
  auto bfeats = in_threes(bclips);
  const double want = *FrechetDistance(*bfeats, *feats, false);
  EXPECT_GT(want, 0.0);
  EXPECT_NEAR(Find(*ab, "fvd")->value, want, 1e-9 * std::max(1.0, want));
  KernelDistanceOptions k;
  EXPECT_NEAR(Find(*ab, "kvd")->value, *KernelDistance(*bfeats, *feats, k), 1e-9);
  // `reel eval compare` finds both runs' features through the stored keys.
  CompareOptions co;
  co.bootstrap = 20;
  auto cmp = CompareRuns(*catalog_, std::to_string(r->run_id), std::to_string(ab->run_id), co);
  ASSERT_TRUE(cmp.ok()) << cmp.status().ToString();
  ASSERT_EQ(cmp->metrics[0].name, "fvd");
  EXPECT_NEAR(cmp->metrics[0].difference, Find(*ab, "fvd")->value - fvd->value, 1e-12);
  EXPECT_TRUE(cmp->metrics[0].ci_low.has_value()) << cmp->metrics[0].note;
  // Stored: one run per evaluation with one metric row per score.
  auto runs = catalog_->ListRuns("eval");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ(runs->back().name, "test");
  EXPECT_EQ(runs->back().status, RunStatus::kOk);
  auto metrics = catalog_->ListMetrics(ab->run_id);
  ASSERT_EQ(metrics->size(), 2u);
  EXPECT_EQ(runs->back().config.Find("detector_sha256")->as_string(), (*det)->sha256());
}

TEST_F(EvalTest, ShortAndBrokenVideosAreSkippedAndCounted) {
  const std::string a = MakeFolder(dir_, "a", 4, 10);
  ASSERT_TRUE(WriteSyntheticVideo(a + "/short.mp4", Moving(5, 7)).ok());
  testing::WriteFile(a + "/broken.mp4", "this is not a video");
  EvalOptions o = Options(a, a);
  o.metrics = {"fvd", "flicker"};
  auto r = RunEvaluation(*catalog_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const MetricValue* fvd = Find(*r, "fvd");
  const Json& fake = *fvd->details.Find("fake");
  EXPECT_EQ(fake.Find("videos")->as_int(), 6);
  EXPECT_EQ(fake.Find("used")->as_int(), 4);
  EXPECT_EQ(fake.Find("skipped")->Find("shorter than 8 frames")->as_int(), 1);
  EXPECT_EQ(fake.Find("skipped")->Find("unreadable")->as_int(), 1);
  ASSERT_NE(fake.Find("unreadable_examples"), nullptr);
  EXPECT_NE(fake.Find("unreadable_examples")->at(0).as_string().find("broken.mp4"),
            std::string::npos);
  const MetricValue* flicker = Find(*r, "flicker");
  ASSERT_NE(flicker, nullptr);
  EXPECT_EQ(flicker->details.Find("used")->as_int(), 4);
  EXPECT_GT(flicker->value, 0.5);
  EXPECT_LE(flicker->value, 1.0);

  // When no video is long enough there is no value: recording 0 would read as the worst
  // flicker score (and a perfect warp error) on a leaderboard.
  const std::string short_only = MakeFolder(dir_, "short", 2, 5);
  for (const char* metric : {"flicker", "warp-error", "dynamic-degree"}) {
    EvalOptions s = Options(short_only, "");
    s.metrics = {metric};
    auto none = RunEvaluation(*catalog_, s);
    ASSERT_FALSE(none.ok()) << metric;
    EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(none.status().message().find(std::string(metric) + ": no video of " + short_only +
                                           " could be measured (2 videos: 2 shorter than 8 "
                                           "frames); nothing recorded"),
              std::string::npos)
        << none.status().ToString();
  }
  auto runs = catalog_->ListRuns("eval");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 4u);
  EXPECT_EQ(runs->back().status, RunStatus::kFailed);
}

TEST_F(EvalTest, CommonMetricsProtocolAndRandomOffsets) {
  const std::string a = MakeFolder(dir_, "a", 4, 30);
  const std::string b = MakeFolder(dir_, "b", 4, 30, 20);
  EvalOptions o = Options(a, b);
  o.protocol = "common-metrics";
  o.metrics = {"fvd"};
  o.clip.random_offset = true;
  o.clip.seed = 5;
  auto r1 = RunEvaluation(*catalog_, o);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(Find(*r1, "fvd")->details.Find("covariance")->as_string(), "N-1");
  o.use_cache = false;
  o.jobs = 1;
  auto r2 = RunEvaluation(*catalog_, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_DOUBLE_EQ(Find(*r1, "fvd")->value, Find(*r2, "fvd")->value)
      << "seeded offsets do not depend on the number of threads";
  // Offsets are per video and seeded.
  auto src = OpenEvalSource(a);
  ClipSpec spec;
  spec.frames = 8;
  spec.random_offset = true;
  spec.seed = 5;
  auto c1 = ReadClip(src->items[0], spec);
  auto c2 = ReadClip(src->items[0], spec);
  EXPECT_EQ(c1->offset, c2->offset);
  EXPECT_LE(c1->offset, 30 - 8);
  spec.seed = 6;
  int differ = 0;
  for (const SourceItem& item : src->items) {
    spec.seed = 5;
    const int64_t x = ReadClip(item, spec)->offset;
    spec.seed = 6;
    differ += ReadClip(item, spec)->offset != x;
  }
  EXPECT_GT(differ, 0);
}

TEST_F(EvalTest, FrameFoldersAndCatalogSubsets) {
  // The StyleGAN-V layout: one folder of PNG frames per video.
  const std::string frames = dir_.File("frames");
  for (int v = 0; v < 3; ++v) {
    const SyntheticVideo sv = Moving(9, v);
    fs::create_directories(frames + "/vid" + std::to_string(v));
    for (int i = 0; i < 9; ++i) {
      Frame f;
      sv.Render(i, &f);
      std::string ppm = "P6\n64 48\n255\n";
      ppm.append(reinterpret_cast<const char*>(f.data.data()), f.data.size());
      testing::WriteFile(frames + "/vid" + std::to_string(v) + "/" + std::to_string(i) + ".ppm",
                         ppm);
    }
  }
  // A link back up the tree does not make the walk loop (or throw, as it did).
  std::filesystem::create_directory_symlink("..", frames + "/vid0/up");
  auto fsrc = OpenEvalSource(frames);
  ASSERT_TRUE(fsrc.ok()) << fsrc.status().ToString();
  EXPECT_EQ(fsrc->kind, SourceKind::kFrameFolders);
  ASSERT_EQ(fsrc->items.size(), 3u);
  ClipSpec spec;
  spec.frames = 4;
  spec.stride = 2;
  auto clip = ReadClip(fsrc->items[0], spec);
  ASSERT_TRUE(clip.ok());
  ASSERT_EQ(clip->frames.size(), 4u);
  Frame expect;
  Moving(9, 0).Render(6, &expect);
  EXPECT_EQ(clip->frames[3].data, expect.data) << "frame 6 is the 4th with stride 2";

  // A catalog subset, with captions by the policy.
  const std::string vids = MakeFolder(dir_, "raw", 2, 40, 30);
  auto cat = Catalog::Open(dir_.File("clips.db"));
  ASSERT_TRUE(cat.ok());
  {
    auto scanned = Scan(**cat, {vids}, {});
    ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  }
  ASSERT_TRUE(ApplyFilter(**cat, "duration >= 1", "all").ok());
  const std::vector<ClipRecord> clips = *(*cat)->ListClips();
  ASSERT_FALSE(clips.empty());
  CaptionRecord k;
  k.clip_id = clips[0].id;
  k.source = "signals";
  k.model = "m";
  k.text = "a box";
  ASSERT_TRUE((*cat)->AddCaption(k).ok());
  cat->reset();
  auto dsrc = OpenEvalSource("db:" + dir_.File("clips.db") + "#all");
  ASSERT_TRUE(dsrc.ok()) << dsrc.status().ToString();
  EXPECT_EQ(dsrc->kind, SourceKind::kCatalogSubset);
  EXPECT_EQ(dsrc->items[0].caption, "a box");
  EXPECT_EQ(dsrc->items[0].pts.size(),
            static_cast<size_t>(clips[0].end_frame - clips[0].start_frame));
  auto dclip = ReadClip(dsrc->items[0], spec);
  ASSERT_TRUE(dclip.ok());
  EXPECT_EQ(dclip->frames.size(), 4u);
  for (const SourceItem& item : dsrc->items) EXPECT_EQ(item.changed, "");
  // A video replaced since the scan: its clips are marked (and skipped as "changed since
  // ingest" by an evaluation) rather than read at the recorded timestamps.
  ASSERT_TRUE(WriteSyntheticVideo(vids + "/v1.mp4", Moving(50, 7)).ok());
  auto changed = OpenEvalSource("db:" + dir_.File("clips.db") + "#all");
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  int marked = 0;
  for (const SourceItem& item : changed->items) {
    const bool v1 = item.path == vids + "/v1.mp4";
    EXPECT_EQ(item.changed.empty(), !v1) << item.path;
    if (v1) {
      ++marked;
      EXPECT_NE(item.changed.find("v1.mp4: changed since it was ingested"), std::string::npos)
          << item.changed;
    }
  }
  EXPECT_GT(marked, 0);
  EXPECT_FALSE(OpenEvalSource("db:" + dir_.File("clips.db") + "#nope").ok());
  EXPECT_FALSE(OpenEvalSource(dir_.File("missing")).ok());
}

TEST_F(EvalTest, CaptionCsvWithAByteOrderMarkOrAsUtf16OrAnOpenQuote) {
  // Excel's "CSV UTF-8" starts with a byte-order mark; without a header row it used to
  // become part of the first file name, and that video had no caption.
  const std::string a = MakeFolder(dir_, "a", 2, 4);
  testing::WriteFile(dir_.File("bom.csv"), "\xEF\xBB\xBFv0.mp4,a red box\nv1.mp4,a blue box\n");
  SourceOptions o;
  o.captions_csv = dir_.File("bom.csv");
  auto src = OpenEvalSource(a, o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ASSERT_EQ(src->items.size(), 2u);
  EXPECT_EQ(src->items[0].caption, "a red box");
  EXPECT_EQ(src->items[1].caption, "a blue box");
  // UTF-16 (with its mark) reads as the same text; without one it is refused by name.
  std::string utf16("\xFF\xFE", 2);
  for (char ch : std::string("file,caption\r\nv0.mp4,caf\xE9\r\n")) {
    utf16 += ch;
    utf16 += '\0';
  }
  testing::WriteFile(dir_.File("utf16.csv"), utf16);
  o.captions_csv = dir_.File("utf16.csv");
  src = OpenEvalSource(a, o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ(src->items[0].caption, "caf\xC3\xA9");
  EXPECT_EQ(src->items[1].caption, "");
  testing::WriteFile(dir_.File("bare.csv"), utf16.substr(2));
  o.captions_csv = dir_.File("bare.csv");
  src = OpenEvalSource(a, o);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("bare.csv: a NUL byte"), std::string::npos)
      << src.status().ToString();
  // A quote left open would make the rest of the file one caption.
  testing::WriteFile(dir_.File("open.csv"), "v0.mp4,\"a red box\nv1.mp4,a blue box\n");
  o.captions_csv = dir_.File("open.csv");
  src = OpenEvalSource(a, o);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("open.csv, line 1: a quote that is never closed"),
            std::string::npos)
      << src.status().ToString();
}

TEST(FlowMetricsTest, StillVideosAreNotDynamicAndMovingOnesAre) {
  auto frames_of = [](const SyntheticVideo& v) {
    std::vector<Frame> out;
    for (int64_t i = 0; i < v.frame_count(); ++i) {
      Frame f;
      v.Render(i, &f);
      out.push_back(f);
    }
    return out;
  };
  SyntheticVideo still;
  still.width = 128;
  still.height = 96;
  SceneSpec s;
  s.kind = SceneKind::kTexture;
  s.frames = 16;
  s.dx = 0;
  still.scenes = {s};
  SyntheticVideo fast = still;
  fast.scenes[0].dx = 8;
  const DynamicDegree a = ComputeDynamicDegree(frames_of(still));
  const DynamicDegree b = ComputeDynamicDegree(frames_of(fast));
  EXPECT_FALSE(a.dynamic);
  EXPECT_TRUE(b.dynamic);
  EXPECT_DOUBLE_EQ(a.threshold, 6.0 * 96 / 256);
  EXPECT_EQ(a.count_needed, 4);
  EXPECT_NEAR(ComputeWarpError(frames_of(still)), 0.0, 1e-9);
  // A global shift is predicted by the flow: warping removes most of the difference.
  const std::vector<Frame> moving = frames_of(fast);
  double raw = 0;
  for (size_t i = 0; i < moving[0].data.size(); ++i) {
    const double d = (moving[1].data[i] - moving[0].data[i]) / 255.0;
    raw += d * d;
  }
  raw /= static_cast<double>(moving[0].data.size());
  EXPECT_LT(ComputeWarpError(moving), raw * 0.5);
}

// Videos at sizes OpenCV's DIS cannot take as they are (it throws under ~12 pixels a side
// and reads out of bounds on 128x16): the motion metrics still measure them.
TEST(FlowMetricsTest, TinyAndStripVideosAreMeasured) {
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{8, 8}, {128, 16}, {2000, 16}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    SyntheticVideo v;
    v.width = w;
    v.height = h;
    SceneSpec s;
    s.kind = SceneKind::kTexture;
    s.frames = 8;
    s.dx = 0;
    v.scenes = {s};
    std::vector<Frame> frames(8);
    for (int64_t i = 0; i < 8; ++i) v.Render(i, &frames[static_cast<size_t>(i)]);
    const DynamicDegree d = ComputeDynamicDegree(frames);
    EXPECT_EQ(d.pair_scores.size(), 7u);
    EXPECT_FALSE(d.dynamic);
    EXPECT_NEAR(ComputeWarpError(frames), 0.0, 1e-9);  // a still video: nothing to warp
  }
}

TEST_F(EvalTest, ClipMetricsOnATinyClip) {
  const std::string data = testing::SharedDataDir();
  const std::string vocab = data + "/clip/bpe_simple_vocab_16e6.txt.gz";
  if (data.empty() || !fs::exists(vocab)) {
    GTEST_SKIP() << "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not present";
  }
  testing::TinyClip c;
  c.vocab = ClipTokenizer::kVocabSize;
  c.tw = 64;
  const std::string model = dir_.File("tiny-clip.pt");
  testing::SaveArchive(testing::TinyState(c, 13), model);
  const std::string a = MakeFolder(dir_, "a", 3, 10);
  // v1's caption is 96 CLIP tokens: scored cut to 77, as torchmetrics does, and said.
  std::string long_caption = "a texture, moving";
  for (int i = 0; i < 30; ++i) long_caption += " on and on";
  testing::WriteFile(dir_.File("captions.csv"),
                     "file,caption\nv0.mp4,a red box\nv1.mp4,\"" + long_caption + "\"\n");
  EvalOptions o = Options(a, "");
  o.metrics = {"clipsim", "clip-temp", "background-consistency"};
  o.clip_model = model;
  o.clip_vocab = vocab;
  o.fake_source.captions_csv = dir_.File("captions.csv");
  auto r = RunEvaluation(*catalog_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const MetricValue* clipsim = Find(*r, "clipsim");
  ASSERT_NE(clipsim, nullptr);
  EXPECT_EQ(clipsim->details.Find("used")->as_int(), 2);
  EXPECT_EQ(clipsim->details.Find("no_caption")->as_int(), 1);
  EXPECT_EQ(clipsim->details.Find("captions_cut")->as_int(), 1);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0],
            "clipsim: 1 of 2 captions is longer than CLIP's 77 tokens and was scored cut to them "
            "(the longest has 96)");

  // By hand for v0: 100 * cos of each frame with the caption, averaged.
  auto m = ClipModel::Load(model);
  auto tok = ClipTokenizer::Load(vocab);
  auto src = OpenEvalSource(a);
  ClipSpec spec;
  spec.frames = 8;
  double per_video[2] = {0, 0};
  double temp_sum = 0;
  ConsistencySum bg_total;
  const std::string caps[2] = {"a red box", long_caption};
  for (int v = 0; v < 3; ++v) {
    auto frames = ReadClip(src->items[static_cast<size_t>(v)], spec);
    std::vector<torch::Tensor> imgs;
    torch::Tensor raw = torch::empty({8, 3, 48, 64}, torch::kByte);
    for (int i = 0; i < 8; ++i) {
      const Frame& f = frames->frames[static_cast<size_t>(i)];
      imgs.push_back(PreprocessImage(f.data.data(), f.width, f.height, 32));
      raw[i].copy_(torch::from_blob(const_cast<uint8_t*>(f.data.data()), {48, 64, 3}, torch::kByte)
                       .permute({2, 0, 1}));
    }
    torch::NoGradGuard g;
    const torch::Tensor feats = (*m)->EncodeImage(torch::stack(imgs)).to(torch::kDouble);
    temp_sum += ClipTemp(feats);
    const ConsistencySum bg =
        BackgroundConsistency((*m)->EncodeImage(VbenchClipPreprocess(raw, 32)).to(torch::kDouble));
    bg_total.sum += bg.sum;
    bg_total.pairs += bg.pairs;
    if (v < 2) {
      auto t = (*tok)->Tokenize(caps[v], 77, true);
      std::vector<int64_t> ids(t->begin(), t->end());
      const torch::Tensor tf =
          (*m)->EncodeText(torch::tensor(ids).view({1, 77}))[0].to(torch::kDouble);
      per_video[v] = ClipScoreOfVideo(feats, tf).mean();
    }
  }
  EXPECT_NEAR(clipsim->value, (per_video[0] + per_video[1]) / 2, 1e-4);
  EXPECT_NEAR(Find(*r, "clip-temp")->value, temp_sum / 3, 1e-6);
  EXPECT_NEAR(Find(*r, "background-consistency")->value, bg_total.sum / bg_total.pairs, 1e-6);
}

TEST(EvalCliTest, UsageAndARun) {
  TempDir dir;
  const std::string det = dir.File("d.pt");
  testing::SaveTinyI3d(det);
  const std::string a = MakeFolder(dir, "a", 3, 10);
  auto usage = testing::RunReel({"eval", "run", "--db", dir.File("c.db")});
  EXPECT_EQ(usage.exit_code, 2);
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--stride", "0"},
                                                        {"--max-clips", "-1"},
                                                        {"--bootstrap", "1"},
                                                        {"--kvd-subsets", "0"},
                                                        {"--kvd-subset-size", "1"}}) {
    auto r = testing::RunReel({"eval", "run", "--db", dir.File("c.db"), "--fake", a, flag, value});
    EXPECT_EQ(r.exit_code, 2) << flag << " " << value << ": " << r.err;
    EXPECT_NE(r.err.find(flag), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.File("c.db")));
  auto unknown = testing::RunReel(
      {"eval", "run", "--db", dir.File("c.db"), "--fake", a, "--metrics", "fvd,iq"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown metric 'iq'"), std::string::npos) << unknown.err;
  auto no_real = testing::RunReel({"eval", "run", "--db", dir.File("c.db"), "--fake", a});
  EXPECT_EQ(no_real.exit_code, 1);
  EXPECT_NE(no_real.err.find("need --real"), std::string::npos) << no_real.err;
  setenv("REEL_MODELS_DIR", dir.File("none").c_str(), 1);
  auto no_i3d =
      testing::RunReel({"eval", "run", "--db", dir.File("c.db"), "--fake", a, "--real", a});
  unsetenv("REEL_MODELS_DIR");
  EXPECT_EQ(no_i3d.exit_code, 1);
  EXPECT_NE(no_i3d.err.find("reel models fetch i3d"), std::string::npos) << no_i3d.err;
  auto ok = testing::RunReel({"eval", "run", "--db", dir.File("c.db"), "--fake", a, "--real", a,
                              "--detector", det, "--frames", "8", "--name", "m1", "--json",
                              "--metrics", "fvd,flicker"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto j = Json::Parse(ok.out);
  ASSERT_TRUE(j.ok()) << ok.out;
  EXPECT_EQ(j->Find("metrics")->size(), 2u);
  EXPECT_NEAR(j->Find("metrics")->at(0).Find("value")->as_double(), 0.0, 1e-6);
  EXPECT_NE(ok.err.find("fewer than 256"), std::string::npos);
}

}  // namespace
}  // namespace reel
