// Tests for the generator's jobs: training clips from a catalog, VAE training, latent
// caches, sampling to files as a generation run, the `reel generate` commands, that the
// trained model's text conditioning works (four captioned clips overfit, each caption
// brings back its own), and the frozen CLIP text tower as the text encoder.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "curate/filter.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "generate/pipeline.h"
#include "generate/shape_clips.h"
#include "generate/text.h"
#include "generate/trainer.h"
#include "generate/vae.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "tests/support/free_port.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_clip.h"
#include "util/json.h"
#include "video/decoder.h"
#include "video/probe.h"
#include "video/synthetic.h"

namespace reel::gen {
namespace {

namespace fs = std::filesystem;
using reel::testing::TempDir;

// A coloured box moving over a dark background: (dx, dy) pixels per frame.
SyntheticVideo Box(int size, Rgb fg, Rgb bg, double dx, double dy, int64_t frames, Rational fps) {
  SyntheticVideo v;
  v.width = size;
  v.height = size;
  v.frame_rate = fps;
  SceneSpec s;
  s.kind = SceneKind::kMovingBox;
  s.frames = frames;
  s.foreground = fg;
  s.background = bg;
  s.dx = dx;
  s.dy = dy;
  v.scenes = {s};
  return v;
}

torch::Tensor Render(const SyntheticVideo& v, int64_t frames) {
  torch::Tensor out = torch::empty({3, frames, v.height, v.width});
  for (int64_t i = 0; i < frames; ++i) {
    Frame f;
    v.Render(i, &f);
    out.select(1, i).copy_(torch::from_blob(f.data.data(), {v.height, v.width, 3}, torch::kByte)
                               .permute({2, 0, 1})
                               .to(torch::kFloat));
  }
  return out / 127.5 - 1;
}

// Writes `v` losslessly (crf 0) to dir/raw/NAME, making raw/ where needed.
Status WriteRaw(const TempDir& dir, const std::string& name, const SyntheticVideo& v) {
  fs::create_directories(dir.File("raw"));
  EncodeOptions eo;
  eo.crf = 0;
  return WriteSyntheticVideo(dir.File("raw/" + name), v, eo);
}

// The catalog dir/c.db with the videos of dir/raw scanned (clips from half a second) and
// every clip in the subset "all"; null (with the failure reported) when that fails.
std::unique_ptr<Catalog> ScanIntoSubsetAll(const TempDir& dir) {
  auto cat = Catalog::Open(dir.File("c.db"));
  EXPECT_TRUE(cat.ok()) << cat.status().ToString();
  if (!cat.ok()) return nullptr;
  ScanOptions so;
  so.split.min_seconds = Rational(1, 2);
  auto scanned = Scan(**cat, {dir.File("raw")}, so);
  EXPECT_TRUE(scanned.ok() && scanned->failed == 0);
  Status filtered = ApplyFilter(**cat, "duration > 0", "all").status();
  EXPECT_TRUE(filtered.ok()) << filtered.ToString();
  if (!scanned.ok() || scanned->failed != 0 || !filtered.ok()) return nullptr;
  return std::move(*cat);
}

TEST(TrainingClipsTest, FromASubsetFrameExactAtTheConfigsRate) {
  TempDir dir;
  // 3 s at 8 fps, already 32x32: what is read is what was rendered (up to the codec).
  const SyntheticVideo v = Box(32, {230, 40, 40}, {20, 20, 20}, 2, 0, 24, Rational(8, 1));
  ASSERT_TRUE(WriteRaw(dir, "box.mp4", v).ok());
  // Exactly 1 s: 9 frames at 8 fps need a little more than that.
  const SyntheticVideo s = Box(32, {40, 40, 230}, {110, 110, 110}, 0, 1, 8, Rational(8, 1));
  ASSERT_TRUE(WriteRaw(dir, "short.mp4", s).ok());
  std::unique_ptr<Catalog> cat = ScanIntoSubsetAll(dir);
  ASSERT_NE(cat, nullptr);
  ClipShape shape;  // 9 frames, 32x32, 8 fps
  ClipSetStats stats;
  auto clips = LoadTrainingClips(*cat, "all", DefaultCaptionPreference(), shape, &stats);
  ASSERT_TRUE(clips.ok()) << clips.status().ToString();
  EXPECT_EQ(stats.listed, 2);
  EXPECT_EQ(stats.loaded, 1);
  EXPECT_EQ(stats.skipped["shorter than 9 frames at 8 fps"], 1);
  ASSERT_EQ(clips->size(), 1u);
  // 4:2:0 chroma costs some dB on the red edges; a frame late costs far more.
  const torch::Tensor want = Render(v, 10);
  const double exact = VideoPsnr((*clips)[0].video, want.narrow(1, 0, 9));
  EXPECT_GT(exact, 30.0);
  EXPECT_LT(VideoPsnr((*clips)[0].video, want.narrow(1, 1, 9)), exact - 5.0);
  EXPECT_EQ((*clips)[0].caption, "") << "no caption yet";

  EXPECT_EQ(
      LoadTrainingClips(*cat, "nope", DefaultCaptionPreference(), shape, nullptr).status().code(),
      StatusCode::kNotFound);
  ASSERT_TRUE(ApplyFilter(*cat, "duration > 100", "empty").ok());
  auto empty = LoadTrainingClips(*cat, "empty", DefaultCaptionPreference(), shape, nullptr);
  EXPECT_EQ(empty.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(empty.status().message().find("no passing clips"), std::string::npos);

  // A source replaced since it was scanned is not read at the recorded timestamps.
  ASSERT_TRUE(WriteRaw(dir, "box.mp4", s).ok());
  ClipSetStats changed;
  auto none = LoadTrainingClips(*cat, "all", DefaultCaptionPreference(), shape, &changed);
  EXPECT_EQ(changed.loaded, 0);
  EXPECT_EQ(changed.skipped["changed since ingest"], 1);
  ASSERT_EQ(changed.errors.size(), 1u);
  EXPECT_NE(changed.errors[0].find("box.mp4: changed since it was ingested"), std::string::npos)
      << changed.errors[0];
}

// A 25 fps source trained on at 10 fps gets the frames ffmpeg's fps filter keeps, those
// `curate export --fps 10` writes: 1 3 6 8 11 ... (the last frame of each 1/10 s slot).
// Before, it got the first frame at or after each k/10 s (0 3 5 8 10 ...): every other
// frame a source frame early.
TEST(TrainingClipsTest, ConvertTheFrameRateAsFfmpegsFpsFilterDoes) {
  TempDir dir;
  const SyntheticVideo v = Box(32, {230, 40, 40}, {100, 100, 100}, 2, 0, 50, Rational(25, 1));
  ASSERT_TRUE(WriteRaw(dir, "box.mp4", v).ok());
  const std::string path = dir.File("raw/box.mp4");
  std::unique_ptr<Catalog> cat = ScanIntoSubsetAll(dir);
  ASSERT_NE(cat, nullptr);
  ClipShape shape;  // 9 frames, 32x32
  shape.fps = 10;
  auto clips = LoadTrainingClips(*cat, "all", DefaultCaptionPreference(), shape, nullptr);
  ASSERT_TRUE(clips.ok()) << clips.status().ToString();
  ASSERT_EQ(clips->size(), 1u);
  const torch::Tensor got = (*clips)[0].video;
  const torch::Tensor rendered = Render(v, 22);
  auto frames = [&](std::vector<int64_t> picks) {
    return rendered.index_select(1, torch::tensor(picks, torch::kLong));
  };
  const double exact = VideoPsnr(got, frames({1, 3, 6, 8, 11, 13, 16, 18, 21}));
  EXPECT_GT(exact, 30.0);
  EXPECT_LT(VideoPsnr(got, frames({0, 3, 5, 8, 10, 13, 15, 18, 20})), exact - 5.0);
  if (!testing::HaveFfmpegCli()) return;
  auto r = testing::RunProcess({"ffmpeg", "-v", "error", "-i", path, "-vf", "fps=10", "-frames:v",
                                "9", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 9u * 32 * 32 * 3);
  const torch::Tensor ffmpeg = torch::from_blob(r.out.data(), {9, 32, 32, 3}, torch::kByte)
                                       .permute({3, 0, 1, 2})
                                       .to(torch::kFloat) /
                                   127.5 -
                               1;
  EXPECT_GT(VideoPsnr(got, ffmpeg), 40.0) << "ffmpeg -vf fps=10 keeps other frames";
}

// Five 3-second videos of boxes in raw/ scanned into a catalog whose subset "all" holds
// their clips (null when a step failed).
std::unique_ptr<Catalog> ScanFiveBoxes(const TempDir& dir) {
  for (int i = 0; i < 5; ++i) {
    // (A grey background: on a dark one a box that leaves the frame leaves black frames,
    // which the scan trims.)
    const SyntheticVideo v =
        Box(32, {static_cast<uint8_t>(40 * i + 60), 40, static_cast<uint8_t>(200 - 30 * i)},
            {100, 100, 100}, 1 + i % 2, i % 3, 24, Rational(8, 1));
    if (!WriteRaw(dir, "v" + std::to_string(i) + ".mp4", v).ok()) return nullptr;
  }
  return ScanIntoSubsetAll(dir);
}

// The five boxes' catalog and their clips at cpu-tiny's shape, in memory.
class FiveBoxes : public ::testing::Test {
 protected:
  void SetUp() override {
    cat_ = ScanFiveBoxes(dir_);
    ASSERT_NE(cat_, nullptr);
    auto clips = LoadTrainingClips(*cat_, "all", DefaultCaptionPreference(), config_.clip, nullptr);
    ASSERT_TRUE(clips.ok()) << clips.status().ToString();
    clips_ = std::move(clips).value();
  }
  TempDir dir_;
  std::unique_ptr<Catalog> cat_;
  const ModelConfig config_ = *ModelConfig::Named("cpu-tiny");
  std::vector<TrainingClip> clips_;
};
class DecodeClipsTest : public FiveBoxes {};
class PrepareTest : public FiveBoxes {};

// train-vae's clips: decoded once into a file of 8-bit pixels, read back as exactly the
// videos LoadTrainingClips holds in memory (so the VAE trains to the same weights), reused
// by a later run, committed when stopped, and refused before decoding when the disk has
// too little room for them.
TEST_F(DecodeClipsTest, OnDiskAsInMemoryReusedAndResumable) {
  ASSERT_EQ(clips_.size(), 5u);
  LoadClipsOptions lo;
  lo.max_clips = 2;  // spread evenly: clips 0 and 2
  auto some =
      LoadTrainingClips(*cat_, "all", DefaultCaptionPreference(), config_.clip, nullptr, lo);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 2u);
  EXPECT_EQ((*some)[0].clip_id, clips_[0].clip_id);
  EXPECT_EQ((*some)[1].clip_id, clips_[2].clip_id);

  const std::string path = dir_.File("clips.u8");
  std::atomic<bool> stop{false};
  {
    auto file = ClipFile::Open(path, config_.clip);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    auto first = DecodeTrainingClips(
        *cat_, "all", **file, {}, nullptr, [&](int64_t done, int64_t) { stop = stop || done == 1; },
        &stop);
    EXPECT_EQ(first.status().code(), StatusCode::kCancelled);
    EXPECT_NE(first.status().message().find(path), std::string::npos) << first.status().message();
  }
  stop = false;
  auto file = ClipFile::Open(path, config_.clip);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->size(), 1) << "the clip decoded before the stop was committed";
  DecodeClipsOptions o;
  o.max_clips = 2;
  auto two = DecodeTrainingClips(*cat_, "all", **file, o, nullptr, nullptr, &stop);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->reused, 1);
  EXPECT_EQ(two->decoded, 1);
  ASSERT_EQ(two->clips->size(), 2);
  EXPECT_TRUE(torch::equal(*two->clips->Video(1), clips_[2].video));
  ClipSetStats stats;
  auto all = DecodeTrainingClips(*cat_, "all", **file, {}, &stats, nullptr, nullptr);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->reused, 2);
  EXPECT_EQ(all->decoded, 3);
  EXPECT_EQ(stats.loaded, 5);
  EXPECT_EQ((*file)->size(), 5);
  ASSERT_EQ(all->clips->size(), 5);
  for (int64_t i = 0; i < 5; ++i) {
    auto video = all->clips->Video(i);
    ASSERT_TRUE(video.ok());
    EXPECT_TRUE(torch::equal(*video, clips_[static_cast<size_t>(i)].video)) << i;
  }
  EXPECT_EQ(fs::file_size(path), 5 * ClipPixelBytes(config_.clip));
  EXPECT_EQ(two->unused, 0);
  EXPECT_EQ(all->unused, 0);
  // Two of the five again: the other three stay in the file, counted as unused.
  auto again = DecodeTrainingClips(*cat_, "all", **file, o, nullptr, nullptr, nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->reused, 2);
  EXPECT_EQ(again->decoded, 0);
  EXPECT_EQ(again->unused, 3);

  VaeTrainOptions vo;
  vo.steps = 2;
  vo.batch = 2;
  vo.measure_clips = 2;
  ASSERT_TRUE(TrainVae(config_, clips_, vo, dir_.File("memory"), nullptr, nullptr).ok());
  ASSERT_TRUE(TrainVae(config_, *all->clips, vo, dir_.File("disk"), nullptr, nullptr).ok());
  auto memory = LoadVae(dir_.File("memory"), torch::kCPU);
  auto disk = LoadVae(dir_.File("disk"), torch::kCPU);
  ASSERT_TRUE(memory.ok() && disk.ok());
  const auto a = memory->vae->named_parameters(), b = disk->vae->named_parameters();
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  const auto c = memory->vae->named_buffers(), d = disk->vae->named_buffers();
  for (const auto& p : c) EXPECT_TRUE(torch::equal(p.value(), d[p.key()])) << p.key();

  // Compacted first, the file holds just those two, read back as before (the records of
  // `all` are gone).
  o.compact = true;
  auto compacted = DecodeTrainingClips(*cat_, "all", **file, o, nullptr, nullptr, nullptr);
  ASSERT_TRUE(compacted.ok()) << compacted.status().ToString();
  EXPECT_EQ(compacted->dropped, 3);
  EXPECT_EQ(compacted->reused, 2);
  EXPECT_EQ(compacted->decoded, 0);
  EXPECT_EQ(compacted->unused, 0);
  EXPECT_EQ(fs::file_size(path), 2 * ClipPixelBytes(config_.clip));
  ASSERT_EQ(compacted->clips->size(), 2);
  EXPECT_TRUE(torch::equal(*compacted->clips->Video(0), clips_[0].video));
  EXPECT_TRUE(torch::equal(*compacted->clips->Video(1), clips_[2].video));
  o.compact = false;

  // A temporary file leaves nothing in its folder; one with too little room is refused
  // before decoding, with the count that fits.
  fs::create_directories(dir_.File("tmp"));
  auto temporary = ClipFile::CreateTemporary(dir_.File("tmp"), config_.clip);
  ASSERT_TRUE(temporary.ok()) << temporary.status().ToString();
  EXPECT_TRUE(fs::is_empty(dir_.File("tmp")));
  o.max_clips = 0;
  o.max_bytes = 3 * ClipPixelBytes(config_.clip) + 1;
  auto too_many = DecodeTrainingClips(*cat_, "all", **temporary, o, nullptr, nullptr, nullptr);
  EXPECT_EQ(too_many.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(too_many.status().message().find("--max-clips 3"), std::string::npos)
      << too_many.status().message();
  EXPECT_EQ((*temporary)->size(), 0);
}

// `reel generate prepare`'s job: stopped after two clips, the cache is unfinished and
// refused for training; resumed, it keeps them and encodes the rest, ending equal to a
// cache made in one go. An unreadable clip is named and left out; a cache is resumed with
// its own VAE only.
TEST_F(PrepareTest, StoppedThenResumedEqualsStraight) {
  VaeTrainOptions vo;
  vo.steps = 1;
  vo.batch = 2;
  vo.measure_clips = 2;
  ASSERT_TRUE(TrainVae(config_, clips_, vo, dir_.File("vae"), nullptr, nullptr).ok());
  vo.seed = 1;
  ASSERT_TRUE(TrainVae(config_, clips_, vo, dir_.File("other_vae"), nullptr, nullptr).ok());
  // One video goes bad after the scan: overwritten, so it is no longer what was ingested.
  { std::ofstream(dir_.File("raw/v4.mp4"), std::ios::trunc) << "not a video any more"; }

  PrepareOptions po;
  po.prefer = DefaultCaptionPreference();
  ClipSetStats stats;
  int64_t last_done = -1;  // the unreadable clip counts as done too: the bar ends full
  auto straight = PrepareLatents(
      *cat_, "all", dir_.File("vae"), po, dir_.File("straight.pt"), &stats,
      [&](int64_t done, int64_t total) { last_done = done == total ? done : -1; }, nullptr);
  ASSERT_TRUE(straight.ok()) << straight.status().ToString();
  EXPECT_EQ(straight->encoded, 4);
  EXPECT_EQ(last_done, 5);
  EXPECT_EQ(straight->total, 4);
  EXPECT_EQ(stats.listed, 5);
  EXPECT_EQ(stats.skipped["changed since ingest"], 1);
  ASSERT_EQ(stats.errors.size(), 1u);
  EXPECT_NE(stats.errors[0].find("v4.mp4: changed since it was ingested"), std::string::npos)
      << stats.errors[0];
  auto want = LoadLatentCache(dir_.File("straight.pt"));
  ASSERT_TRUE(want.ok()) << want.status().ToString();

  std::atomic<bool> stop{true};  // stopped before the first clip: nothing is written
  auto none = PrepareLatents(*cat_, "all", dir_.File("vae"), po, dir_.File("none.pt"), nullptr,
                             nullptr, &stop);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->cancelled);
  EXPECT_EQ(none->total, 0);
  EXPECT_FALSE(fs::exists(dir_.File("none.pt")));

  const std::string path = dir_.File("latents.pt");
  stop = false;
  std::vector<int64_t> totals;
  auto stopped = PrepareLatents(
      *cat_, "all", dir_.File("vae"), po, path, nullptr,
      [&](int64_t done, int64_t total) {
        totals.push_back(total);
        if (done == 2) stop = true;
      },
      &stop);
  ASSERT_TRUE(stopped.ok()) << stopped.status().ToString();
  EXPECT_TRUE(stopped->cancelled);
  EXPECT_EQ(stopped->encoded, 2);
  EXPECT_EQ(totals.front(), 5) << "the progress starts with the clips to do";
  auto refused = LoadLatentCache(path);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--resume"), std::string::npos);
  auto partial = LoadLatentCache(path, /*allow_unfinished=*/true);
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->complete);
  EXPECT_EQ(partial->examples.size(), 2u);
  auto again = PrepareLatents(*cat_, "all", dir_.File("vae"), po, path, nullptr, nullptr, nullptr);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition) << "work is not thrown away";

  po.resume = true;
  auto other =
      PrepareLatents(*cat_, "all", dir_.File("other_vae"), po, path, nullptr, nullptr, nullptr);
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("another VAE"), std::string::npos);
  auto resumed =
      PrepareLatents(*cat_, "all", dir_.File("vae"), po, path, nullptr, nullptr, nullptr);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_FALSE(resumed->cancelled);
  EXPECT_EQ(resumed->kept, 2);
  EXPECT_EQ(resumed->encoded, 2);
  auto got = LoadLatentCache(path);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->clip_ids, want->clip_ids);
  for (size_t i = 0; i < want->examples.size(); ++i) {
    EXPECT_TRUE(torch::equal(got->examples[i].latent, want->examples[i].latent)) << i;
    EXPECT_EQ(got->examples[i].caption, want->examples[i].caption);
  }
  // Resuming a finished cache encodes nothing new.
  auto idle = PrepareLatents(*cat_, "all", dir_.File("vae"), po, path, nullptr, nullptr, nullptr);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->encoded, 0);
  EXPECT_EQ(idle->kept, 4);

  // A cache of format 1 (an older reel, which picked other frames of each clip) still
  // trains, marked; resumed, its latents are all encoded again from the frames export gives.
  {
    torch::Tensor z;
    c10::IValue meta;
    torch::serialize::InputArchive in;
    in.load_from(path);
    in.read("latents", z);
    in.read("meta", meta);
    std::string text = meta.toStringRef();
    const size_t at = text.find("reel-latents 2");
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 14, "reel-latents 1");
    torch::serialize::OutputArchive out;
    out.write("latents", z);
    out.write("meta", c10::IValue(text));
    out.save_to(path);
  }
  auto old = LoadLatentCache(path);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->old_frame_picks);
  EXPECT_FALSE(want->old_frame_picks);
  auto renewed =
      PrepareLatents(*cat_, "all", dir_.File("vae"), po, path, nullptr, nullptr, nullptr);
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_EQ(renewed->stale, 4);
  EXPECT_EQ(renewed->kept, 0);
  EXPECT_EQ(renewed->encoded, 4);
  auto now = LoadLatentCache(path);
  ASSERT_TRUE(now.ok()) << now.status().ToString();
  EXPECT_FALSE(now->old_frame_picks);
  EXPECT_EQ(now->clip_ids, want->clip_ids);
}

// The whole loop through the command line, with a few steps of each job.
// Latents the configuration's denoiser does not take are named before anything is
// trained or recorded, not met as a shape error inside a step.
TEST(TrainDenoiserTest, LatentsOfAnotherShapeAreNamedBeforeAnyStep) {
  TempDir dir;
  auto catalog = Catalog::Open(dir.File("c.db"), Catalog::Options());
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  const std::vector<LatentExample> data = {{torch::zeros({4, 3, 4, 4}), "a red square"},
                                           {torch::zeros({4, 3, 8, 8}), "a blue circle"}};
  DenoiserTrainOptions options;
  options.steps = 1;
  auto r = TrainDenoiser(catalog->get(), config, data, {"a red square", "a blue circle"}, options,
                         dir.File("dit"), nullptr, nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "training latent 1 is [4, 3, 8, 8], but the cpu-tiny denoiser trains on [4, 3, 4, 4] "
            "(9 frames 32x32 @ 8 fps, 4 latent channels)");
  EXPECT_FALSE(fs::exists(dir.File("dit/config.json")));
  EXPECT_TRUE((*catalog)->ListRuns("train")->empty());
}

// The training loop reads each step's loss once the next step is queued: every step is
// still reported once, in order, with the loss a trainer stepping on its own gives; the
// curve in the catalog holds them all; and a stop asked at step k's report takes effect
// after step k + 1 (the one already queued), which the checkpoint and curve include.
TEST(TrainDenoiserTest, ReportsEveryStepsLossOnceTheNextIsQueued) {
  TempDir dir;
  auto catalog = Catalog::Open(dir.File("c.db"), Catalog::Options());
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  torch::manual_seed(4);
  const std::vector<std::string> captions = {"a red square", "a blue circle", "a green bar"};
  std::vector<LatentExample> data;
  for (const std::string& c : captions) data.push_back({torch::randn({4, 3, 4, 4}), c});
  DenoiserTrainOptions options;
  options.steps = 6;
  options.save_every = 0;
  options.train.batch = 2;
  options.train.seed = 9;

  // A trainer created as TrainDenoiser creates it, stepped on its own.
  std::vector<double> expected;
  {
    auto tok = BpeTokenizer::Train(captions, config.text.vocab_size);
    ASSERT_TRUE(tok.ok());
    auto t = Trainer::Create(config, *tok, options.train, torch::kCPU);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    for (int i = 0; i < 6; ++i) expected.push_back(*(*t)->Step(data));
  }

  std::vector<std::pair<int64_t, double>> reported;
  std::atomic<bool> cancel{false};
  auto r = TrainDenoiser(
      catalog->get(), config, data, captions, options, dir.File("dit"),
      [&](int64_t step, int64_t steps, double loss) {
        EXPECT_EQ(steps, 6);
        reported.emplace_back(step, loss);
        if (step == 3) cancel = true;
      },
      &cancel);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->cancelled);
  EXPECT_EQ(r->steps_done, 4) << "step 4 was queued when step 3 was reported";
  ASSERT_EQ(reported.size(), 4u);
  for (size_t i = 0; i < reported.size(); ++i) {
    EXPECT_EQ(reported[i].first, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(reported[i].second, expected[i]) << "step " << i + 1;
  }
  EXPECT_EQ(r->final_loss, expected[3]);
  auto saved = ReadTrainerCheckpoint(dir.File("dit"));
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->step, 4);
  auto metrics = (*catalog)->ListMetrics(r->run_id);
  ASSERT_TRUE(metrics.ok() && metrics->size() == 1u);
  const Json& losses = *(*metrics)[0].details.Find("loss");
  ASSERT_EQ(losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(losses.at(i).as_double(), expected[i]);
}

TEST(GenerateCliTest, TrainVaePrepareTrainResumeSampleAndEvaluate) {
  TempDir dir;
  fs::create_directories(dir.File("raw"));
  for (int i = 0; i < 3; ++i) {
    const SyntheticVideo v = Box(48, {static_cast<uint8_t>(60 * i + 80), 40, 40}, {100, 100, 100},
                                 1 + i, 0, 40, Rational(10, 1));
    ASSERT_TRUE(WriteSyntheticVideo(dir.File("raw/v" + std::to_string(i) + ".mp4"), v).ok());
  }
  const std::string db = dir.File("c.db");
  auto run = [&](std::vector<std::string> args) { return reel::testing::RunReel(args); };
  ASSERT_EQ(run({"curate", "scan", "--db", db, dir.File("raw"), "-q"}).exit_code, 0);
  ASSERT_EQ(run({"caption", "--db", db, "--backend", "signals", "-q"}).exit_code, 0);
  ASSERT_EQ(
      run({"curate", "filter", "--db", db, "--where", "duration >= 1", "--subset", "train", "-q"})
          .exit_code,
      0);
  ASSERT_EQ(
      run({"curate", "filter", "--db", db, "--where", "duration > 1000", "--subset", "none", "-q"})
          .exit_code,
      0);

  auto vae = run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                  dir.File("vae"), "--steps", "3", "--batch", "2", "-q"});
  ASSERT_EQ(vae.exit_code, 0) << vae.err;
  EXPECT_NE(vae.out.find("PSNR"), std::string::npos);
  // The folder is not overwritten by accident; --resume with more steps goes on.
  auto again = run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                    dir.File("vae"), "--steps", "4", "--batch", "2", "-q"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  // (Its clips decoded into a kept file this time, which a later run reuses.)
  auto more =
      run({"generate", "train-vae", "--db", db, "--subset", "train", "--out", dir.File("vae"),
           "--steps", "4", "--resume", "-q", "--clip-cache", dir.File("clips.u8")});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  EXPECT_NE(more.out.find(": 1 steps"), std::string::npos) << more.out;
  EXPECT_NE(more.out.find("of its 3 training clips"), std::string::npos) << more.out;
  // A resume is exact: options given with other values than the saved ones, or another
  // configuration, are refused and named instead of being silently not used.
  auto other = run({"generate",      "train-vae", "--db", db,         "--subset",  "train", "--out",
                    dir.File("vae"), "--steps",   "5",    "--resume", "--batch",   "3",     "--lr",
                    "0.002",         "--seed",    "0",    "--config", "cpu-small", "-q"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find(dir.File("vae") + ": --resume continues the training saved there "
                                             "exactly (cpu-tiny, step 4)"),
            std::string::npos)
      << other.err;
  EXPECT_NE(other.err.find("configuration cpu-small: vae.base_channels 24 (saved: 16)"),
            std::string::npos)
      << other.err;
  EXPECT_NE(other.err.find("clip.frames 17 (saved: 9)"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("; --batch 3 (saved: 2); --lr 0.002 (saved: 0.001)."), std::string::npos)
      << other.err;
  EXPECT_EQ(other.err.find("--seed"), std::string::npos) << "given as saved: " << other.err;
  EXPECT_EQ(ReadVaeCheckpoint(dir.File("vae"))->step, 4) << "the refused run trained nothing";
  // The saved values may be given (the same command line again, with more steps).
  auto cached =
      run({"generate", "train-vae", "--db", db, "--subset", "train", "--out", dir.File("vae"),
           "--steps", "5", "--resume", "--batch", "2", "--clip-cache", dir.File("clips.u8")});
  ASSERT_EQ(cached.exit_code, 0) << cached.err;
  EXPECT_NE(cached.err.find("(3 already decoded in " + dir.File("clips.u8") + ")"),
            std::string::npos)
      << cached.err;
  // The same command again (a job started twice) finds nothing to do, before decoding.
  auto finished = run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                       dir.File("vae"), "--steps", "5", "--resume", "--batch", "2"});
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_NE(finished.out.find(dir.File("vae") + ": already trained 5 steps (--steps 5): nothing "
                                                "to do"),
            std::string::npos)
      << finished.out;
  EXPECT_EQ(finished.err.find("decode"), std::string::npos) << finished.err;
  // A run on fewer clips says what the rest of the file holds.
  auto fewer =
      run({"generate", "train-vae", "--db", db, "--subset", "train", "--out", dir.File("vae-fewer"),
           "--steps", "1", "--max-clips", "2", "--clip-cache", dir.File("clips.u8")});
  ASSERT_EQ(fewer.exit_code, 0) << fewer.err;
  EXPECT_NE(
      fewer.err.find("(2 already decoded in " + dir.File("clips.u8") + "); 1 of the clips in"),
      std::string::npos)
      << fewer.err;
  const uintmax_t three = fs::file_size(dir.File("clips.u8"));  // 3 clips
  auto compact = run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                      dir.File("vae-compact"), "--steps", "1", "--max-clips", "2", "--clip-cache",
                      dir.File("clips.u8"), "--compact-clip-cache"});
  ASSERT_EQ(compact.exit_code, 0) << compact.err;
  EXPECT_NE(compact.err.find("; dropped from " + dir.File("clips.u8") +
                             " 1 clip this run does not use ("),
            std::string::npos)
      << compact.err;
  EXPECT_EQ(fs::file_size(dir.File("clips.u8")) * 3, three * 2);
  EXPECT_EQ(run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                 dir.File("vae-compact"), "--compact-clip-cache"})
                .exit_code,
            2);
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".reel-clips"), std::string::npos)
        << "a temporary clip file was left: " << e.path();
  auto empty =
      run({"generate", "train-vae", "--db", db, "--subset", "none", "--out", dir.File("x"), "-q"});
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("no passing clips"), std::string::npos) << empty.err;
  auto prep = run({"generate", "prepare", "--db", db, "--subset", "train", "--vae", dir.File("vae"),
                   "--out", dir.File("latents.pt"), "-q"});
  ASSERT_EQ(prep.exit_code, 0) << prep.err;

  auto train = [&](const std::string& steps, bool resume) {
    std::vector<std::string> a = {
        "generate",      "train",   "--db", db,        "--latents", dir.File("latents.pt"), "--out",
        dir.File("dit"), "--steps", steps,  "--batch", "2",         "--save-every",         "2",
        "--name",        "tiny",    "-q"};
    if (resume) {
      a.push_back("--resume");
      a.push_back("--grad-checkpointing");  // a resumed run may turn it on
    }
    return run(a);
  };
  auto t1 = train("4", false);
  ASSERT_EQ(t1.exit_code, 0) << t1.err;
  EXPECT_EQ(train("8", false).exit_code, 1) << "an existing checkpoint needs --resume";
  {
    auto other = run({"generate",
                      "train",
                      "--db",
                      db,
                      "--latents",
                      dir.File("latents.pt"),
                      "--out",
                      dir.File("dit"),
                      "--steps",
                      "8",
                      "--resume",
                      "--batch",
                      "2",
                      "--lr",
                      "0.001",
                      "--ema",
                      "0.99",
                      "--text-encoder",
                      "clip-vit-b-32",
                      "-q"});
    EXPECT_EQ(other.exit_code, 1);
    EXPECT_NE(other.err.find("(cpu-tiny, step 4), and this command line asks for another: "
                             "configuration cpu-tiny: text.encoder clip-vit-b-32 (saved: reel); "
                             "--lr 0.001 (saved: 0.0003); --ema 0.99 (saved: 0.999). Leave these "
                             "options out"),
              std::string::npos)
        << other.err;
    EXPECT_EQ(ReadTrainerCheckpoint(dir.File("dit"))->step, 4) << "nothing trained";
    // Another configuration: this checkpoint's latents do not fit it, but a resume trains
    // the saved configuration, so that is what is named.
    auto small = run({"generate", "train", "--db", db, "--latents", dir.File("latents.pt"), "--out",
                      dir.File("dit"), "--steps", "8", "--resume", "--config", "cpu-small", "-q"});
    EXPECT_EQ(small.exit_code, 1);
    EXPECT_NE(small.err.find("configuration cpu-small: vae.base_channels 24 (saved: 16), "
                             "text.vocab_size 1024 (saved: 512), text.max_tokens 32 (saved: 24), "
                             "text.width 96 (saved: 64) and 5 more fields."),
              std::string::npos)
        << small.err;
  }
  auto t2 = train("8", true);
  ASSERT_EQ(t2.exit_code, 0) << t2.err;
  EXPECT_NE(t2.out.find("4 steps"), std::string::npos) << t2.out;
  // The same command again (a job started twice) finds nothing to do and records no run.
  auto t3 = train("8", true);
  ASSERT_EQ(t3.exit_code, 0) << t3.err;
  EXPECT_NE(t3.out.find(dir.File("dit") + ": already trained 8 steps (--steps 8): nothing to do"),
            std::string::npos)
      << t3.out;
  {
    Catalog::Options ro;
    ro.read_only = true;
    auto cat = Catalog::Open(db, ro);
    auto runs = (*cat)->ListRuns("train");
    ASSERT_EQ(runs->size(), 2u);
    auto metrics = (*cat)->ListMetrics(runs->back().id);
    ASSERT_EQ(metrics->size(), 1u);
    EXPECT_EQ((*metrics)[0].name, "loss_curve");
    EXPECT_EQ((*metrics)[0].details.Find("step")->size(), 8u)
        << "the curve continues across the resume";
  }

  auto sample = [&](const std::string& out, const std::string& seed) {
    return run({"generate", "sample", "--db", db, "--subset", "train", "--ckpt", dir.File("dit"),
                "--vae", dir.File("vae"), "--out", dir.File(out), "--steps", "3", "--seed", seed,
                "--name", "tiny@8", "-q"});
  };
  auto s1 = sample("a", "1");
  ASSERT_EQ(s1.exit_code, 0) << s1.err;
  ASSERT_EQ(sample("b", "1").exit_code, 0);
  ASSERT_EQ(sample("c", "2").exit_code, 0);
  EXPECT_EQ(testing::ReadFile(dir.File("a/000000.mp4")),
            testing::ReadFile(dir.File("b/000000.mp4")))
      << "same seed, same clip";
  EXPECT_NE(testing::ReadFile(dir.File("a/000000.mp4")),
            testing::ReadFile(dir.File("c/000000.mp4")));
  {
    // Samples say they are BT.709 (players would otherwise guess by size).
    auto info = ProbeVideo(dir.File("a/000000.mp4"));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->color_space, "bt709");
    EXPECT_EQ(info->color_primaries, "bt709");
    EXPECT_EQ(info->color_transfer, "bt709");
  }
  {
    // --resume on the finished run (the newest named tiny@8) keeps all its files.
    auto again = run({"generate", "sample", "--db", db, "--subset", "train", "--ckpt",
                      dir.File("dit"), "--vae", dir.File("vae"), "--out", dir.File("c"), "--steps",
                      "3", "--seed", "2", "--name", "tiny@8", "--resume"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("kept from the run resumed"), std::string::npos) << again.out;
  }
  {
    // Another run into that folder, named or not, would make the catalog's records of
    // tiny@8 describe its files: refused, and the files stay.
    const std::string before = testing::ReadFile(dir.File("c/000000.mp4"));
    for (const char* name : {"other", "tiny@8"}) {
      auto over = run({"generate", "sample", "--db", db, "--subset", "train", "--ckpt",
                       dir.File("dit"), "--vae", dir.File("vae"), "--out", dir.File("c"), "--steps",
                       "3", "--seed", "3", "--name", name});
      EXPECT_EQ(over.exit_code, 1) << name;
      EXPECT_NE(over.err.find("c/000000.mp4 belongs to generation run"), std::string::npos)
          << over.err;
      EXPECT_NE(over.err.find("--resume --name tiny@8"), std::string::npos) << over.err;
    }
    EXPECT_EQ(testing::ReadFile(dir.File("c/000000.mp4")), before);
  }
  EXPECT_EQ(run({"generate", "sample", "--ckpt", dir.File("nope"), "--vae", dir.File("vae"),
                 "--prompt", "x", "--out", dir.File("d")})
                .exit_code,
            1);
  EXPECT_EQ(run({"generate", "sample", "--ckpt", dir.File("dit"), "--vae", dir.File("vae"), "--out",
                 dir.File("d")})
                .exit_code,
            2)
      << "no prompts given";
  // A prompt longer than the text encoder reads is cut, and said so (once, for all).
  {
    std::string words;
    for (int i = 0; i < 40; ++i) words += " a red box";
    auto cut =
        run({"generate", "sample", "--ckpt", dir.File("dit"), "--vae", dir.File("vae"), "--prompt",
             "a red box", "--prompt", words, "--out", dir.File("cut"), "--steps", "1", "--json"});
    ASSERT_EQ(cut.exit_code, 0) << cut.err;
    EXPECT_NE(cut.err.find("warning: 1 prompt longer than the text encoder's 24 tokens was cut to "
                           "them (the longest, prompt 1, has "),
              std::string::npos)
        << cut.err;
    auto j = Json::Parse(cut.out);
    ASSERT_TRUE(j.ok()) << cut.out;
    ASSERT_EQ(j->Find("cut_prompts")->size(), 1u);
    EXPECT_EQ(j->Find("cut_prompts")->at(0).Find("index")->as_int(), 1);
    EXPECT_GT(j->Find("cut_prompts")->at(0).Find("tokens")->as_int(), 24);
  }
  // A prompts file that is not text, or not a file, says so (before, NULs went on as
  // prompts and a folder read as empty).
  testing::WriteFile(dir.File("prompts16.txt"), std::string("a\0 \0r\0e\0d\0", 10));
  for (const auto& [file, why] :
       {std::pair<std::string, std::string>{dir.File("prompts16.txt"), "a NUL byte at byte 1"},
        {dir.File("vae"), "Is a directory"}}) {
    auto bad = run({"generate", "sample", "--ckpt", dir.File("dit"), "--vae", dir.File("vae"),
                    "--prompts", file, "--out", dir.File("d")});
    EXPECT_EQ(bad.exit_code, 1) << file;
    EXPECT_NE(bad.err.find(file + ": " + why), std::string::npos) << bad.err;
  }
  // Sampling stopped after its first batch and resumed gives the files of a run made in
  // one go; a file of the stopped run that went missing is sampled again, and the resumed
  // run (the newest of that name) lists all of them. Another seed is refused.
  {
    auto cat = Catalog::Open(db);
    ASSERT_TRUE(cat.ok());
    SampleJob job;
    job.prompts = {"a red box", "a blue box", "a green box"};
    job.sample.steps = 3;
    job.sample.seed = 5;
    job.batch = 2;
    job.name = "straight";
    auto straight = SampleToFiles(cat->get(), dir.File("dit"), dir.File("vae"), job,
                                  dir.File("straight"), torch::kCPU);
    ASSERT_TRUE(straight.ok()) << straight.status().ToString();
    EXPECT_TRUE(straight->cut.empty());
    EXPECT_EQ(straight->max_tokens, 24);
    job.name = "resumable";
    std::atomic<bool> stop{false};
    std::vector<int64_t> progress;
    auto stopped = SampleToFiles(
        cat->get(), dir.File("dit"), dir.File("vae"), job, dir.File("resumed"), torch::kCPU,
        [&](int64_t done, int64_t total) {
          progress.push_back(done);
          EXPECT_EQ(total, 3);
          stop = done >= 2;
        },
        &stop);
    EXPECT_EQ(stopped.status().code(), StatusCode::kCancelled);
    EXPECT_NE(stopped.status().message().find("after 2 of 3 clips"), std::string::npos)
        << stopped.status().message();
    EXPECT_EQ(progress, (std::vector<int64_t>{0, 2}));
    auto interrupted = (*cat)->FindRunByName("generate", "resumable");
    ASSERT_TRUE(interrupted.ok());
    EXPECT_EQ(interrupted->status, RunStatus::kInterrupted);
    EXPECT_EQ((*cat)->ListGenerations(interrupted->id)->size(), 2u);
    fs::remove(dir.File("resumed/000001.mp4"));
    job.resume = true;
    job.sample.seed = 6;
    auto other = SampleToFiles(cat->get(), dir.File("dit"), dir.File("vae"), job,
                               dir.File("resumed"), torch::kCPU);
    EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(other.status().message().find("seed 5, not 6"), std::string::npos)
        << other.status().message();
    job.sample.seed = 5;
    auto resumed = SampleToFiles(cat->get(), dir.File("dit"), dir.File("vae"), job,
                                 dir.File("resumed"), torch::kCPU);
    ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
    EXPECT_EQ(resumed->kept, 1);
    for (const char* f : {"000000.mp4", "000001.mp4", "000002.mp4"}) {
      EXPECT_EQ(testing::ReadFile(dir.File(std::string("straight/") + f)),
                testing::ReadFile(dir.File(std::string("resumed/") + f)))
          << f;
    }
    auto newest = (*cat)->FindRunByName("generate", "resumable");
    ASSERT_TRUE(newest.ok());
    EXPECT_EQ(newest->status, RunStatus::kOk);
    EXPECT_EQ(newest->config.Find("resumed_from")->as_int(), interrupted->id);
    EXPECT_EQ((*cat)->ListGenerations(newest->id)->size(), 3u);
    // A prompt added: the three files are kept, the new one sampled.
    job.prompts.push_back("a white box");
    auto added = SampleToFiles(cat->get(), dir.File("dit"), dir.File("vae"), job,
                               dir.File("resumed"), torch::kCPU);
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    EXPECT_EQ(added->kept, 3);
    EXPECT_EQ(added->files.size(), 4u);
    EXPECT_TRUE(fs::exists(dir.File("resumed/000003.mp4")));
  }
  // The generation run is a source for reel eval.
  auto ev = run({"eval", "run", "--db", db, "--name", "tiny@8", "--fake", "run:" + db + "#tiny@8",
                 "--frames", "9", "--metrics", "flicker", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  auto j = Json::Parse(ev.out);
  ASSERT_TRUE(j.ok());
  EXPECT_GT(j->Find("metrics")->at(0).Find("details")->Find("used")->as_int(), 0);
}

// Options out of range are usage errors (exit 2) found before any work: the catalog,
// checkpoints and latents named here do not exist.
TEST(GenerateCliTest, OutOfRangeOptionsAreUsageErrorsBeforeAnyWork) {
  TempDir dir;
  const std::string db = dir.File("none.db"), out = dir.File("out");
  const std::vector<std::string> train_vae = {"generate", "train-vae", "--db",  db,
                                              "--subset", "s",         "--out", out};
  const std::vector<std::string> train = {"generate",          "train", "--db", db, "--latents",
                                          dir.File("none.pt"), "--out", out};
  const std::vector<std::string> sample = {"generate", "sample",   "--ckpt",       out,     "--vae",
                                           out,        "--prompt", "a red square", "--out", out};
  const std::vector<std::string> prepare = {
      "generate", "prepare", "--db", db, "--subset", "s", "--vae", out, "--out", dir.File("l.pt")};
  struct Case {
    std::vector<std::string> command, extra;
    std::string says;
  };
  const std::vector<Case> cases = {
      {train_vae, {"--lr", "-1"}, "VAE learning rate -1: must be above 0"},
      {train_vae, {"--batch", "0"}, "VAE batch 0: must be at least 1"},
      {train_vae, {"--max-clips", "-1"}, "--max-clips must be 0 (all) or more"},
      {train_vae, {"--jobs", "0"}, "--jobs must be at least 1"},
      {train_vae, {"--compact-clip-cache"}, "--compact-clip-cache needs --clip-cache"},
      {train, {"--lr", "inf"}, "learning rate inf: must be above 0"},
      {train, {"--weight-decay", "-0.1"}, "weight decay -0.1: must be 0 or more"},
      {train, {"--ema", "1"}, "EMA decay 1: must be in [0, 1)"},
      {train, {"--caption-dropout", "2"}, "caption dropout 2: must be in [0, 1]"},
      {train, {"--steps", "0"}, "--steps must be at least 1"},
      {sample, {"--batch", "0"}, "--batch must be at least 1"},
      {sample, {"--cfg", "nan"}, "--cfg must be finite"},
      {prepare, {"--jobs", "0"}, "--jobs must be at least 1"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.command;
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = reel::testing::RunReel(args);
    SCOPED_TRACE(c.command[1] + " " + c.extra[0]);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(db));
  EXPECT_FALSE(fs::exists(out));
}

// Four clips with distinct captions: the CPU-size model overfits them, and then each caption
// brings back its own clip and not the others.
TEST(ConditioningTest, EachCaptionSamplesItsOwnClip) {
  // Minutes of training: use every logical core (libtorch starts with one thread per
  // physical core, 1 of the 2 vCPUs here; this process runs this one test).
  torch::set_num_threads(
      std::max(torch::get_num_threads(), static_cast<int>(std::thread::hardware_concurrency())));
  TempDir dir;
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  const int frames = config.clip.frames, size = config.clip.width;
  std::vector<TrainingClip> clips;
  auto add = [&](const std::string& caption, torch::Tensor video) {
    TrainingClip c;
    c.clip_id = static_cast<int64_t>(clips.size() + 1);
    c.caption = caption;
    c.video = std::move(video);
    clips.push_back(std::move(c));
  };
  auto spec = [](Shape shape, std::array<uint8_t, 3> colour, std::array<uint8_t, 3> background,
                 double x0, double y0, double vx, double vy) {
    ShapeClipSpec s;
    s.shape = shape;
    s.colour = colour;
    s.background = background;
    s.x0 = x0;
    s.y0 = y0;
    s.vx = vx;
    s.vy = vy;
    return s;
  };
  const std::array<uint8_t, 3> dark{20, 20, 20};
  for (const auto& [caption, s] : std::vector<std::pair<std::string, ShapeClipSpec>>{
           {"a red square moving right", spec(Shape::kSquare, {230, 30, 30}, dark, 8, 16, 2, 0)},
           {"a blue circle moving down", spec(Shape::kDisc, {30, 30, 230}, dark, 16, 8, 0, 2)},
           {"a green square moving left", spec(Shape::kSquare, {30, 220, 30}, dark, 24, 16, -2, 0)},
           {"a white circle on grey",
            spec(Shape::kDisc, {240, 240, 240}, {110, 110, 110}, 10, 10, 1.5, 1.5)}}) {
    add(caption, RenderShapeClip(s, frames, size));
  }

  VaeTrainOptions vo;
  vo.steps = 500;
  vo.batch = 4;
  vo.lr = 1e-3;
  auto vae_result = TrainVae(config, clips, vo, dir.File("vae"), nullptr, nullptr);
  ASSERT_TRUE(vae_result.ok()) << vae_result.status().ToString();
  std::printf("VAE reconstruction: %.2f dB\n", vae_result->psnr);
  RecordProperty("vae_psnr", std::to_string(vae_result->psnr));
  // 25.7 dB measured here; the samples cannot be better than the VAE's reconstructions.
  ASSERT_GT(vae_result->psnr, 22.0) << "the VAE must reconstruct the clips first";
  auto vae = LoadVae(dir.File("vae"), torch::kCPU);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  const std::vector<LatentExample> latents = EncodeLatents(vae->vae, clips);

  std::vector<std::string> captions;
  for (const TrainingClip& c : clips) captions.push_back(c.caption);
  auto tokenizer = BpeTokenizer::Train(captions, config.text.vocab_size);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  TrainOptions to;
  to.batch = 4;
  to.lr = 1e-3;
  to.warmup_steps = 20;
  to.ema_decay = 0.99;
  auto trainer = Trainer::Create(config, *tokenizer, to, torch::kCPU);
  ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
  const int dit_steps = 1000;
  for (int i = 0; i < dit_steps; ++i) {
    auto st = (*trainer)->Step(latents);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
  }

  SampleOptions so;
  so.steps = 30;
  so.cfg = 3.0;
  so.seed = 7;
  const torch::Tensor z = SampleLatents((*trainer)->ema_dit(), (*trainer)->ema_text(),
                                        (*trainer)->tokenizer(), config, captions, so, torch::kCPU);
  torch::NoGradGuard g;
  const torch::Tensor videos = vae->vae->Decode(vae->vae->Denormalize(z));
  for (size_t i = 0; i < clips.size(); ++i) {
    const double own = VideoPsnr(videos[static_cast<int64_t>(i)], clips[i].video);
    std::printf("'%s': %.2f dB against its clip, against the others:", captions[i].c_str(), own);
    RecordProperty("psnr_" + std::to_string(i), std::to_string(own));
    EXPECT_GT(own, 20.0) << "'" << captions[i] << "' does not reproduce its clip";
    for (size_t j = 0; j < clips.size(); ++j) {
      if (j == i) continue;
      const double other = VideoPsnr(videos[static_cast<int64_t>(i)], clips[j].video);
      std::printf(" %.2f", other);
      EXPECT_LT(other, own - 5.0) << "'" << captions[i] << "' looks like '" << captions[j] << "'";
    }
    std::printf("\n");
  }
}

using reel::testing::FreePort;

double MaxDifference(Trainer& a, Trainer& b) {
  double d = 0;
  const auto pa = a.Parameters(), pb = b.Parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    d = std::max(d, (pa[i] - pb[i]).abs().max().item<double>());
  return d;
}

// Two processes started torchrun-style, each with half of the global batch, averaging
// gradients over Gloo on loopback, make the same update as one process with all of it.
TEST(DataParallelTest, TwoProcessesOverGlooMatchOneOnTheUnionBatch) {
  TempDir dir;
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  torch::manual_seed(3);
  LatentCache cache;
  cache.model = config.ToJson();
  const char* words[] = {"red", "blue", "green", "white", "black", "grey"};
  for (int i = 0; i < 6; ++i) {
    cache.examples.push_back({torch::randn({config.vae.latent_channels, 3, 4, 4}),
                              std::string("a ") + words[i] + " box"});
    cache.clip_ids.push_back(i + 1);
  }
  const std::string latents = dir.File("latents.pt");
  ASSERT_TRUE(SaveLatentCache(cache, latents).ok());
  const std::string db = dir.File("c.db");
  auto train = [&](const std::string& out, const std::string& batch) {
    return std::vector<std::string>{"generate", "train", "--db",    db,     "--latents", latents,
                                    "--out",    out,     "--steps", "4",    "--batch",   batch,
                                    "--warmup", "2",     "--lr",    "1e-3", "--ema",     "0.5",
                                    "--seed",   "11",    "-q"};
  };
  auto one = reel::testing::RunReel(train(dir.File("one"), "4"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto half = reel::testing::RunReel(train(dir.File("half"), "2"));
  ASSERT_EQ(half.exit_code, 0) << half.err;

  // Both ranks at once, through a shell so they run side by side.
  const std::string port = std::to_string(FreePort());
  std::string script;
  for (int rank = 0; rank < 2; ++rank) {
    script += "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
              " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " '" +
              reel::testing::ReelBinary() + "'";
    for (const std::string& a : train(dir.File("two"), "4")) script += " '" + a + "'";
    // Several buckets for cpu-tiny's gradients; the blocks' gradients arrive inside the
    // checkpoints' own backward passes (same arithmetic, so the weights still match).
    script += " --dist-bucket-mb 1 --grad-checkpointing";
    script += " > '" + dir.File("rank" + std::to_string(rank) + ".log") + "' 2>&1 & p" +
              std::to_string(rank) + "=$!\n";
  }
  script += "wait $p0; r0=$?; wait $p1; r1=$?; exit $((r0 | r1))\n";
  auto two = reel::testing::RunProcess({"/bin/sh", "-c", script});
  ASSERT_EQ(two.exit_code, 0) << testing::ReadFile(dir.File("rank0.log"))
                              << testing::ReadFile(dir.File("rank1.log"));

  auto a = Trainer::Load(dir.File("one"), torch::kCPU);
  auto b = Trainer::Load(dir.File("two"), torch::kCPU);
  auto c = Trainer::Load(dir.File("half"), torch::kCPU);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*b)->step(), 4);
  const double two_vs_one = MaxDifference(**a, **b);
  const double half_vs_one = MaxDifference(**a, **c);
  RecordProperty("two_vs_one", std::to_string(two_vs_one));
  std::printf(
      "largest weight difference after 4 steps: two processes vs one %.3g, one on half "
      "the batch vs one %.3g\n",
      two_vs_one, half_vs_one);
  EXPECT_LT(two_vs_one, 1e-5) << "two processes must make one process's update";
  // Rank 0's summary says how the gradients went: in several buckets, sent while backward
  // still ran, each gradient once.
  const std::string log0 = testing::ReadFile(dir.File("rank0.log"));
  const size_t at = log0.find("gradients averaged in ");
  ASSERT_NE(at, std::string::npos) << log0;
  long long buckets = 0, early = 0;
  ASSERT_EQ(std::sscanf(log0.c_str() + at, "gradients averaged in %lld buckets, %lld sent",
                        &buckets, &early),
            2)
      << log0;
  EXPECT_GT(buckets, 1) << log0;
  EXPECT_GT(early, 0) << log0;
  EXPECT_EQ(log0.find("then all again"), std::string::npos) << "no gradient arrived twice";
  EXPECT_GT(half_vs_one, 1e-4) << "the comparison must be able to tell batches apart";

  // Only rank 0 recorded the run.
  auto catalog = Catalog::Open(db);
  ASSERT_TRUE(catalog.ok());
  auto runs = (*catalog)->ListRuns("train");
  ASSERT_TRUE(runs.ok());
  int64_t with_two = 0;
  for (const RunRecord& r : *runs) {
    if (r.config.Find("processes") != nullptr && r.config.Find("processes")->as_int() == 2)
      ++with_two;
  }
  EXPECT_EQ(with_two, 1);

  // Ctrl-C in one process stops both after the same step: the vote travels with the
  // gradients, so rank 0 records an interrupted run instead of waiting for its peer.
  const std::string port2 = std::to_string(FreePort());
  std::string long_run;
  for (int rank = 0; rank < 2; ++rank) {
    long_run += "RANK=" + std::to_string(rank) +
                " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port2 + " '" +
                reel::testing::ReelBinary() + "'";
    std::vector<std::string> args = train(dir.File("stopped"), "4");
    args[9] = "1000000";  // --steps
    for (const std::string& a : args) long_run += " '" + a + "'";
    long_run +=
        " --name stopped --dist-timeout 30 > /dev/null 2>&1 & p" + std::to_string(rank) + "=$!\n";
  }
  long_run += "sleep 4; kill -INT $p1; wait $p0; r0=$?; wait $p1; r1=$?; echo $r0 $r1\n";
  auto stopped = reel::testing::RunProcess({"/bin/sh", "-c", long_run});
  EXPECT_EQ(stopped.out, "1 1\n") << "both exit as interrupted";
  runs = (*catalog)->ListRuns("train");
  ASSERT_TRUE(runs.ok());
  bool interrupted = false;
  for (const RunRecord& r : *runs)
    if (r.name == "stopped") interrupted = r.status == RunStatus::kInterrupted;
  EXPECT_TRUE(interrupted) << "rank 0 saw rank 1's interrupt";
  auto resumable = Trainer::Load(dir.File("stopped"), torch::kCPU);
  ASSERT_TRUE(resumable.ok()) << resumable.status().ToString();
  EXPECT_GT((*resumable)->step(), 0);

  // A malformed launch environment is named.
  auto bad = reel::testing::RunProcess({"/usr/bin/env", "WORLD_SIZE=2", reel::testing::ReelBinary(),
                                        "generate", "train", "--db", db, "--latents", latents,
                                        "--out", dir.File("bad"), "-q"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("RANK"), std::string::npos) << bad.err;

  // So are a backend c10d does not have here and NCCL for CPU training (usage errors).
  for (const char* backend : {"mpi", "nccl"}) {
    auto usage = reel::testing::RunReel({"generate", "train", "--db", db, "--latents", latents,
                                         "--out", dir.File("bad"), "--dist-backend", backend});
    EXPECT_EQ(usage.exit_code, 2) << backend << ": " << usage.err;
    EXPECT_NE(usage.err.find("--dist-backend"), std::string::npos) << usage.err;
  }
}

// ---------------------------------------------------------------- frozen CLIP text tower

// A models folder holding a tiny CLIP (OpenAI's names and layout, text width 64, CLIP's
// real vocabulary size) as clip-vit-b-32, and CLIP's real BPE vocabulary as clip-vocab.
class FrozenClipTextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string data = reel::testing::SharedDataDir();
    const std::string vocab = data + "/clip/bpe_simple_vocab_16e6.txt.gz";
    if (data.empty() || !fs::exists(vocab)) {
      GTEST_SKIP() << "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not present; the CLIP "
                      "text encoder needs CLIP's real vocabulary";
    }
    models_ = dir_.File("models");
    fs::create_directories(models_);
    state_ = reel::testing::TinyState(TextClip(), 21);
    reel::testing::SaveArchive(state_, models_ + "/ViT-B-32.pt");
    fs::copy_file(vocab, models_ + "/bpe_simple_vocab_16e6.txt.gz");
    const char* old = std::getenv("REEL_MODELS_DIR");
    old_models_ = old != nullptr ? old : "";
    had_models_ = old != nullptr;
    setenv("REEL_MODELS_DIR", models_.c_str(), 1);
  }
  void TearDown() override {
    if (had_models_)
      setenv("REEL_MODELS_DIR", old_models_.c_str(), 1);
    else
      unsetenv("REEL_MODELS_DIR");
  }
  // Text width 64 with CLIP's real vocabulary size.
  static reel::testing::TinyClip TextClip() {
    reel::testing::TinyClip c;
    c.vocab = ClipTokenizer::kVocabSize;
    c.tw = 64;
    return c;
  }
  TempDir dir_;
  std::map<std::string, torch::Tensor> state_;  // the installed model's parameters
  std::string models_, old_models_;
  bool had_models_ = false;
};

TEST_F(FrozenClipTextTest, FeaturesAreClipsTokenFeaturesCutCausally) {
  auto frozen = LoadFrozenTextEncoder("clip-vit-b-32", torch::kCPU);
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  const FrozenClipText& f = **frozen;
  EXPECT_EQ(f.width(), 64);
  EXPECT_EQ(f.context_length(), 77);
  auto model = ClipModel::Load(models_ + "/ViT-B-32.pt");
  ASSERT_TRUE(model.ok());
  auto tokenizer = ClipTokenizer::Load(models_ + "/bpe_simple_vocab_16e6.txt.gz");
  ASSERT_TRUE(tokenizer.ok());

  const std::vector<std::string> captions = {"a red square moving right", "",
                                             "a very long caption that goes on and on"};
  const torch::Tensor tokens = f.Batch(captions, 8);
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{3, 8}));
  // CLIP's own tokens, start and end included, zero-padded; a long caption keeps its end token.
  auto full = (*tokenizer)->Tokenize(captions[0]);
  ASSERT_TRUE(full.ok());
  for (int64_t k = 0; k < 8; ++k) EXPECT_EQ(tokens[0][k].item<int64_t>(), (*full)[k]) << k;
  EXPECT_EQ(tokens[1][0].item<int64_t>(), ClipTokenizer::kStartToken);
  EXPECT_EQ(tokens[1][1].item<int64_t>(), ClipTokenizer::kEndToken);
  EXPECT_EQ(tokens[1][2].item<int64_t>(), 0);
  EXPECT_EQ(tokens[2][7].item<int64_t>(), ClipTokenizer::kEndToken);
  const torch::Tensor mask = FrozenClipText::Mask(tokens);
  EXPECT_EQ(mask.sum(1)[0].item<int64_t>(),
            static_cast<int64_t>((*tokenizer)->Encode(captions[0]).size()) + 2);
  EXPECT_EQ(mask.sum(1)[1].item<int64_t>(), 2);
  EXPECT_EQ(mask.sum(1)[2].item<int64_t>(), 8);

  // Cutting the context at 8 tokens changes no feature: the end token's features, through
  // CLIP's projection, are CLIP's text embedding of the whole 77-token context.
  const torch::Tensor feats = f.Features(tokens);
  ASSERT_EQ(feats.sizes(), (std::vector<int64_t>{3, 8, 64}));
  std::vector<int64_t> row0(full->begin(), full->end());
  const torch::Tensor tokens77 = torch::tensor(row0, torch::kLong).unsqueeze(0);
  const torch::Tensor embedding = (*model)->EncodeText(tokens77);
  const int64_t end = mask.sum(1)[0].item<int64_t>() - 1;
  const torch::Tensor projected = torch::matmul(feats[0][end], state_.at("text_projection"));
  EXPECT_LT((projected - embedding[0]).abs().max().item<double>(), 1e-4);

  // Captions are computed once, then served from the cache.
  const int64_t computed = f.computed();
  EXPECT_EQ(computed, 3);
  const torch::Tensor again = f.Features(f.Batch({captions[1], captions[0]}, 8));
  EXPECT_EQ(f.computed(), computed);
  EXPECT_TRUE(torch::equal(again[1], feats[0]));
  EXPECT_FALSE(again.requires_grad());
}

TEST_F(FrozenClipTextTest, TrainsSavesLoadsAndNamesWhatIsMissing) {
  auto frozen = LoadFrozenTextEncoder("clip-vit-b-32", torch::kCPU);
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  ModelConfig config = *ModelConfig::Named("cpu-tiny");
  config.text.encoder = "clip-vit-b-32";
  config = WithFrozenText(config, **frozen);
  EXPECT_EQ(config.text.width, 64);
  EXPECT_EQ(config.text.vocab_size, ClipTokenizer::kVocabSize);
  EXPECT_TRUE(config.Validate().ok());
  TrainOptions to;
  to.batch = 2;
  to.seed = 4;
  to.warmup_steps = 1;
  EXPECT_EQ(Trainer::Create(config, BpeTokenizer(), to, torch::kCPU).status().code(),
            StatusCode::kInvalidArgument)
      << "a frozen-tower configuration without the tower";
  auto trainer = Trainer::Create(config, BpeTokenizer(), to, torch::kCPU, *frozen);
  ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
  Trainer& t = **trainer;
  // The tower is not trained: the text side's only parameter is the learned null caption.
  int64_t dit_params = 0, text_params = 0;
  for (const auto& p : t.dit()->parameters()) dit_params += p.numel();
  for (const auto& p : t.text()->parameters()) text_params += p.numel();
  EXPECT_EQ(text_params, 64);
  int64_t all = 0;
  for (const auto& p : t.Parameters()) all += p.numel();
  EXPECT_EQ(all, dit_params + 64);

  std::vector<LatentExample> data;
  torch::manual_seed(2);
  for (const char* c : {"a red square", "a blue circle", "a green bar"})
    data.push_back({torch::randn({4, 3, 4, 4}), c});
  const torch::Tensor null_before = t.text()->parameters()[0].clone();
  for (int i = 0; i < 4; ++i) {
    auto loss = t.Step(data);
    ASSERT_TRUE(loss.ok()) << loss.status().ToString();
    EXPECT_TRUE(std::isfinite(*loss));
  }
  EXPECT_GT((t.text()->parameters()[0] - null_before).abs().max().item<double>(), 0)
      << "the null caption learns (caption dropout)";

  const std::string ckpt = dir_.File("ckpt");
  ASSERT_TRUE(t.Save(ckpt).ok());
  EXPECT_FALSE(fs::exists(ckpt + "/tokenizer.txt"));
  auto no_loader = Trainer::Load(ckpt, torch::kCPU, false);
  EXPECT_EQ(no_loader.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_loader.status().message().find("clip-vit-b-32"), std::string::npos);
  auto loaded = Trainer::Load(ckpt, torch::kCPU, false, LoadFrozenTextEncoder);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  SampleOptions so;
  so.steps = 3;
  so.cfg = 4;
  so.seed = 1;
  const std::vector<std::string> prompts = {"a red square", "a blue circle"};
  const torch::Tensor a =
      SampleLatents(t.ema_dit(), t.ema_text(), t.tokenizer(), config, prompts, so, torch::kCPU);
  const torch::Tensor b =
      SampleLatents((*loaded)->ema_dit(), (*loaded)->ema_text(), (*loaded)->tokenizer(),
                    (*loaded)->config(), prompts, so, torch::kCPU);
  EXPECT_TRUE(torch::equal(a, b)) << "the checkpoint samples as the trainer did";

  // Another CLIP under the same name is caught by the stored fingerprint.
  reel::testing::SaveArchive(reel::testing::TinyState(TextClip(), 22), models_ + "/ViT-B-32.pt");
  auto wrong = Trainer::Load(ckpt, torch::kCPU, false, LoadFrozenTextEncoder);
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("another clip-vit-b-32"), std::string::npos)
      << wrong.status().ToString();
  // Without the model installed, the error says which and how to get it.
  fs::remove(models_ + "/ViT-B-32.pt");
  auto missing = Trainer::Load(ckpt, torch::kCPU, false, LoadFrozenTextEncoder);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("reel models fetch clip-vit-b-32"), std::string::npos)
      << missing.status().ToString();
}

// Training feeds the tower the tokens sampling gives it: CLIP's, not those of the BPE
// tokenizer the trainer was created with (an untrained one, unused with a tower). The
// tower's feature cache is keyed by token rows, so the captions' CLIP rows, tokenized as
// sampling does, are served from what the training steps computed.
TEST_F(FrozenClipTextTest, TrainingFeedsTheTowerTheTokensSamplingDoes) {
  auto frozen = LoadFrozenTextEncoder("clip-vit-b-32", torch::kCPU);
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  const FrozenClipText& f = **frozen;
  ModelConfig config = *ModelConfig::Named("cpu-tiny");
  config.text.encoder = "clip-vit-b-32";
  config = WithFrozenText(config, f);
  TrainOptions to;
  to.batch = 2;
  to.caption_dropout = 0;
  auto trainer = Trainer::Create(config, BpeTokenizer(), to, torch::kCPU, *frozen);
  ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
  const std::vector<std::string> captions = {"a red square", "a blue circle"};
  std::vector<LatentExample> data;
  torch::manual_seed(3);
  for (const std::string& c : captions) data.push_back({torch::randn({4, 3, 4, 4}), c});
  const int64_t before = f.computed();
  ASSERT_TRUE((*trainer)->Step(data).ok());
  const int64_t trained = f.computed();
  EXPECT_EQ(trained - before, 2) << "one feature row per caption";
  EXPECT_TRUE(&(*trainer)->tokenizer() == static_cast<const CaptionTokenizer*>(&f));
  const torch::Tensor features = f.Features(f.Batch(captions, config.text.max_tokens));
  EXPECT_EQ(f.computed(), trained) << "sampling's token rows are not those training used";
  EXPECT_EQ(features.size(0), 2);

  // The step hands the encoder its tokens' host copy too (the cache is looked up with it,
  // not with tokens read back from the device): the same features and mask.
  TextEncoder encoder(config.text, *frozen);
  const torch::Tensor tokens = f.Batch(captions, config.text.max_tokens);
  const auto [a, mask_a] = encoder->forward(tokens);
  const auto [b, mask_b] = encoder->forward(tokens, tokens.clone());
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_TRUE(torch::equal(mask_a, mask_b));
  EXPECT_THROW(encoder->forward(tokens, tokens.narrow(0, 0, 1)), c10::Error);
}

TEST_F(FrozenClipTextTest, TrainAndSampleFromTheCommandLine) {
  // Latents and a VAE made directly (the CLI test above covers making them from a catalog).
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  std::vector<TrainingClip> clips;
  for (int i = 0; i < 2; ++i) {
    TrainingClip c;
    c.clip_id = i + 1;
    c.caption = i == 0 ? "a red square moving right" : "a blue circle moving down";
    c.video = torch::rand({3, 9, 32, 32}) * 2 - 1;
    clips.push_back(std::move(c));
  }
  VaeTrainOptions vo;
  vo.steps = 1;
  vo.batch = 2;
  ASSERT_TRUE(TrainVae(config, clips, vo, dir_.File("vae"), nullptr, nullptr).ok());
  auto vae = LoadVae(dir_.File("vae"), torch::kCPU);
  ASSERT_TRUE(vae.ok());
  LatentCache cache;
  cache.examples = EncodeLatents(vae->vae, clips);
  cache.clip_ids = {1, 2};
  cache.vae_dir = dir_.File("vae");
  cache.model = config.ToJson();
  ASSERT_TRUE(SaveLatentCache(cache, dir_.File("latents.pt")).ok());
  const std::string db = dir_.File("c.db");
  ASSERT_TRUE(Catalog::Open(db).ok());

  auto train = [&](const std::string& out) {
    return reel::testing::RunReel({"generate", "train", "--db", db, "--latents",
                                   dir_.File("latents.pt"), "--out", dir_.File(out), "--steps", "3",
                                   "--batch", "2", "--text-encoder", "clip-vit-b-32", "-q"});
  };
  auto ok = train("dit");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto ckpt = Json::Parse(testing::ReadFile(dir_.File("dit/config.json")));
  ASSERT_TRUE(ckpt.ok());
  EXPECT_EQ(ckpt->Find("model")->Find("text")->Find("encoder")->as_string(), "clip-vit-b-32");
  EXPECT_EQ(ckpt->Find("model")->Find("text")->Find("width")->as_int(), 64);
  auto sample = reel::testing::RunReel({"generate", "sample", "--ckpt", dir_.File("dit"), "--vae",
                                        dir_.File("vae"), "--prompt", "a red square moving right",
                                        "--out", dir_.File("out"), "--steps", "2", "-q"});
  ASSERT_EQ(sample.exit_code, 0) << sample.err;
  EXPECT_TRUE(fs::exists(dir_.File("out/000000.mp4")));
  // CLIP's count, start and end included: 7 positions fit cpu-tiny's 24, 37 do not.
  std::string words = "a red square moving right";
  for (int i = 0; i < 5; ++i) words += " and a red square moving right";
  auto cut =
      reel::testing::RunReel({"generate", "sample", "--ckpt", dir_.File("dit"), "--vae",
                              dir_.File("vae"), "--prompt", "a red square moving right", "--prompt",
                              words, "--out", dir_.File("cut"), "--steps", "1", "--json"});
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  auto cj = Json::Parse(cut.out);
  ASSERT_TRUE(cj.ok()) << cut.out;
  ASSERT_EQ(cj->Find("cut_prompts")->size(), 1u) << cut.out;
  EXPECT_EQ(cj->Find("cut_prompts")->at(0).Find("index")->as_int(), 1);
  EXPECT_EQ(cj->Find("cut_prompts")->at(0).Find("tokens")->as_int(), 37);

  // Without CLIP installed: exit 1, naming the model and the command that fetches it.
  fs::remove(models_ + "/ViT-B-32.pt");
  auto missing = train("dit2");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("reel models fetch clip-vit-b-32"), std::string::npos) << missing.err;
  auto sample_missing =
      reel::testing::RunReel({"generate", "sample", "--ckpt", dir_.File("dit"), "--vae",
                              dir_.File("vae"), "--prompt", "x", "--out", dir_.File("out2"), "-q"});
  EXPECT_EQ(sample_missing.exit_code, 1);
  EXPECT_NE(sample_missing.err.find("clip-vit-b-32"), std::string::npos) << sample_missing.err;
}

}  // namespace
}  // namespace reel::gen
