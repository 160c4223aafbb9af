// Tests for the generator's model core (libtorch only): configurations, the causal VAE
// (shapes, causality, chunked = one pass), the BPE tokenizer and text encoder, the
// diffusion transformer (zero-initialised output, rotary positions, factorised
// attention, masks) and rectified flow (targets, shift, the Euler sampler).

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "generate/clip_file.h"
#include "generate/config.h"
#include "generate/distributed.h"
#include "generate/dit.h"
#include "generate/flow.h"
#include "generate/gated_residual.h"
#include "generate/norm_modulate.h"
#include "generate/optim.h"
#include "generate/qk_norm.h"
#include "generate/text.h"
#include "generate/trainer.h"
#include "generate/vae.h"
#include "generate/vae_training.h"
#include "nets/torch_compat.h"
#include "tests/support/free_port.h"
#include "tests/support/host_wait_census.h"
#include "tests/support/scratch_path.h"
#include "util/files.h"
#include "util/json.h"
#include "util/strings.h"

namespace reel::gen {
namespace {

int64_t Params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// ---------------------------------------------------------------- configurations

TEST(ModelConfigTest, NamedConfigsValidateAndRoundTrip) {
  for (const std::string& name : ModelConfig::Names()) {
    auto c = ModelConfig::Named(name);
    ASSERT_TRUE(c.ok()) << name;
    EXPECT_TRUE(c->Validate().ok()) << name << ": " << c->Validate().ToString();
    auto back = ModelConfig::FromJson(c->ToJson());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->ToJson().Dump(), c->ToJson().Dump());
  }
  auto tiny = *ModelConfig::Named("cpu-tiny");
  // Fields changed from the named defaults come back (the name alone would restore those).
  ModelConfig changed = tiny;
  changed.vae.mse_weight = 0.25;
  changed.vae.channel_mult = {1, 2, 4, 4};
  changed.text.max_tokens = 40;
  changed.dit.full_attention_max_tokens = 100;
  changed.dit.attention = AttentionMode::kFactorized;
  changed.clip.fps = 12;
  changed.text.encoder = "clip-vit-b-32";
  auto back = ModelConfig::FromJson(changed.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->vae.mse_weight, 0.25);
  EXPECT_EQ(back->vae.channel_mult, (std::vector<int>{1, 2, 4, 4}));
  EXPECT_EQ(back->text.max_tokens, 40);
  EXPECT_EQ(back->dit.full_attention_max_tokens, 100);
  EXPECT_EQ(back->dit.attention, AttentionMode::kFactorized);
  EXPECT_EQ(back->clip.fps, 12);
  EXPECT_EQ(back->text.encoder, "clip-vit-b-32");
  EXPECT_TRUE(back->frozen_text());
  // A frozen CLIP tower reads at most its 77-token context.
  changed.text.max_tokens = 78;
  EXPECT_NE(ModelConfig::FromJson(changed.ToJson()).status().message().find("at most 77"),
            std::string::npos);
  EXPECT_EQ(tiny.latent_frames(), 3);
  EXPECT_EQ(tiny.tokens(), 3 * 2 * 2);
  // cpu-tiny is about 1-2M parameters in all.
  torch::manual_seed(0);
  VideoVae vae(tiny.vae);
  TextEncoder text(tiny.text);
  DiffusionTransformer dit(tiny.dit, tiny.vae.latent_channels, tiny.text.width);
  const int64_t total = Params(*vae) + Params(*text) + Params(*dit);
  EXPECT_GT(total, 1'000'000);
  EXPECT_LT(total, 2'000'000);
  auto h100 = *ModelConfig::Named("h100-b");
  EXPECT_EQ(h100.tokens(), 5 * 16 * 16);
}

// What a resume compares: the fields of the sections asked, named with both values; not
// the name, and not a frozen text tower's own widths.
TEST(ModelConfigTest, DifferencesNameTheFieldsOfTheSectionsAsked) {
  const std::vector<std::string> all = {"vae", "text", "dit", "clip"};
  const ModelConfig tiny = *ModelConfig::Named("cpu-tiny");
  EXPECT_TRUE(ConfigDifferences(tiny, tiny, all).empty());
  ModelConfig renamed = tiny;
  renamed.name = "mine";
  EXPECT_TRUE(ConfigDifferences(tiny, renamed, all).empty());
  ModelConfig other = tiny;
  other.vae.channel_mult = {1, 2};
  other.dit.width = 128;
  other.clip.fps = 16;
  EXPECT_EQ(ConfigDifferences(tiny, other, all),
            (std::vector<std::string>{"vae.channel_mult [1,2] (saved: [1,2,2,2])",
                                      "dit.width 128 (saved: 96)", "clip.fps 16 (saved: 8)"}));
  EXPECT_EQ(ConfigDifferences(tiny, other, {"vae", "clip"}),
            (std::vector<std::string>{"vae.channel_mult [1,2] (saved: [1,2,2,2])",
                                      "clip.fps 16 (saved: 8)"}));
  ModelConfig frozen = tiny;  // as WithFrozenText saves it: the tower's width
  frozen.text.encoder = "clip-vit-b-32";
  frozen.text.width = 512;
  ModelConfig asked = tiny;
  asked.text.encoder = "clip-vit-b-32";
  EXPECT_TRUE(ConfigDifferences(frozen, asked, all).empty());
  asked.text.encoder = "reel";
  EXPECT_EQ(ConfigDifferences(frozen, asked, all),
            (std::vector<std::string>{"text.encoder reel (saved: clip-vit-b-32)"}));
}

TEST(ModelConfigTest, BadConfigsNameTheField) {
  auto expect_bad = [](ModelConfig c, const std::string& needle) {
    const Status s = c.Validate();
    EXPECT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  ModelConfig c = *ModelConfig::Named("cpu-tiny");
  ModelConfig x = c;
  x.clip.frames = 16;
  expect_bad(x, "clip.frames must be 1 + 4k");
  x = c;
  x.clip.height = 40;
  expect_bad(x, "multiples of 16");
  x = c;
  x.dit.heads = 5;
  expect_bad(x, "dit.width (96) must be a multiple of dit.heads (5)");
  x = c;
  x.dit.heads = 12;
  expect_bad(x, "multiple of 16 for 3D rotary");
  x = c;
  x.vae.norm_groups = 5;
  expect_bad(x, "norm_groups");
  x = c;
  x.text.vocab_size = 100;
  expect_bad(x, "text.vocab_size");
  EXPECT_NE(ModelConfig::Named("huge").status().message().find("known: cpu-tiny"),
            std::string::npos);
  Json j = c.ToJson();
  j["dit"]["attention"] = "sparse";
  EXPECT_NE(ModelConfig::FromJson(j).status().message().find("dit.attention"), std::string::npos);
  EXPECT_FALSE(ModelConfig::FromJson(Json("x")).ok());
}

// Training options out of range are refused naming the value, the defaults pass, and the
// boundaries the ranges include (no weight decay, no clipping, no warm-up, EMA 0, dropout
// 0 or 1) pass too.
TEST(TrainOptionsTest, OutOfRangeValuesAreNamed) {
  const double nan = std::nan(""), inf = HUGE_VAL;
  EXPECT_TRUE(TrainOptions().Validate().ok());
  EXPECT_TRUE(VaeTrainOptions().Validate().ok());
  auto check = [](const Status& s, const std::string& message) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << message;
    EXPECT_EQ(s.message(), message);
  };
  std::vector<std::pair<std::function<void(TrainOptions&)>, std::string>> denoiser = {
      {[](TrainOptions& o) { o.batch = 0; }, "batch 0: must be at least 1"},
      {[](TrainOptions& o) { o.lr = -1; }, "learning rate -1: must be above 0"},
      {[&](TrainOptions& o) { o.lr = inf; }, "learning rate inf: must be above 0"},
      {[&](TrainOptions& o) { o.weight_decay = nan; }, "weight decay nan: must be 0 or more"},
      {[](TrainOptions& o) { o.beta2 = 1; }, "AdamW beta2 1: must be in [0, 1)"},
      {[](TrainOptions& o) { o.warmup_steps = -5; }, "warm-up steps -5: must be 0 or more"},
      {[](TrainOptions& o) { o.grad_clip = -0.5; },
       "gradient clipping norm -0.5: must be 0 (none) or more"},
      {[](TrainOptions& o) { o.ema_decay = 1; }, "EMA decay 1: must be in [0, 1)"},
      {[](TrainOptions& o) { o.caption_dropout = 1.5; }, "caption dropout 1.5: must be in [0, 1]"},
  };
  for (const auto& [change, message] : denoiser) {
    TrainOptions o;
    change(o);
    check(o.Validate(), message);
  }
  TrainOptions edge;
  edge.weight_decay = 0;
  edge.grad_clip = 0;
  edge.warmup_steps = 0;
  edge.ema_decay = 0;
  edge.caption_dropout = 1;
  EXPECT_TRUE(edge.Validate().ok());
  edge.caption_dropout = 0;
  EXPECT_TRUE(edge.Validate().ok());

  std::vector<std::pair<std::function<void(VaeTrainOptions&)>, std::string>> vae = {
      {[](VaeTrainOptions& o) { o.steps = 0; }, "VAE steps 0: must be at least 1"},
      {[](VaeTrainOptions& o) { o.batch = -2; }, "VAE batch -2: must be at least 1"},
      {[](VaeTrainOptions& o) { o.lr = 0; }, "VAE learning rate 0: must be above 0"},
      {[&](VaeTrainOptions& o) { o.weight_decay = -inf; },
       "VAE weight decay -inf: must be 0 or more"},
      {[](VaeTrainOptions& o) { o.measure_clips = 0; }, "clips measured 0: must be at least 1"},
      {[](VaeTrainOptions& o) { o.save_every = -1; },
       "VAE save interval -1: must be 0 or more steps"},
  };
  for (const auto& [change, message] : vae) {
    VaeTrainOptions o;
    change(o);
    check(o.Validate(), message);
  }
}

// ---------------------------------------------------------------- VAE

class VaeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(1);
    vae_ = VideoVae(config_.vae);
    vae_->eval();
  }
  ModelConfig config_ = *ModelConfig::Named("cpu-tiny");
  VideoVae vae_{nullptr};
};

TEST_F(VaeTest, ShapesForClipsAndImages) {
  torch::NoGradGuard g;
  const torch::Tensor clip = torch::rand({2, 3, 17, 32, 32}) * 2 - 1;
  auto [mean, logvar] = vae_->Encode(clip);
  EXPECT_EQ(mean.sizes(), (std::vector<int64_t>{2, 4, 5, 4, 4}));
  EXPECT_EQ(logvar.sizes(), mean.sizes());
  EXPECT_EQ(vae_->Decode(mean).sizes(), clip.sizes());
  const torch::Tensor image = torch::rand({1, 3, 1, 32, 32});
  EXPECT_EQ(vae_->Encode(image).first.sizes(), (std::vector<int64_t>{1, 4, 1, 4, 4}));
  EXPECT_EQ(vae_->Decode(vae_->Encode(image).first).sizes(), image.sizes());
  vae_->train();
  torch::Tensor rec;
  VaeLoss l = vae_->Loss(clip, &rec);
  EXPECT_EQ(rec.sizes(), clip.sizes());
  EXPECT_GT(l.l1.item<double>(), 0);
  EXPECT_NEAR(l.mse.item<double>(), (rec - clip).pow(2).mean().item<double>(), 1e-6);
  EXPECT_NEAR(l.total.item<double>(),
              l.l1.item<double>() + config_.vae.mse_weight * l.mse.item<double>() +
                  config_.vae.kl_weight * l.kl.item<double>(),
              1e-6);
}

TEST_F(VaeTest, LatentFramesSeeOnlyThePast) {
  torch::NoGradGuard g;
  const torch::Tensor a = torch::rand({1, 3, 17, 32, 32}) * 2 - 1;
  torch::Tensor b = a.clone();
  b.narrow(2, 9, 8).uniform_(-1, 1);  // frames 9..16 differ
  const torch::Tensor za = vae_->Encode(a).first, zb = vae_->Encode(b).first;
  // Latent frame j summarises input frames up to 4j: frames 0..2 (inputs <= 8) agree.
  EXPECT_LT((za.narrow(2, 0, 3) - zb.narrow(2, 0, 3)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((za.narrow(2, 3, 2) - zb.narrow(2, 3, 2)).abs().max().item<double>(), 1e-4);
  // Decoded frame t depends on latent frames up to ceil(t / 4).
  torch::Tensor zc = za.clone();
  zc.narrow(2, 3, 2).normal_();
  const torch::Tensor da = vae_->Decode(za), dc = vae_->Decode(zc);
  EXPECT_LT((da.narrow(2, 0, 9) - dc.narrow(2, 0, 9)).abs().max().item<double>(), 1e-6);
}

TEST_F(VaeTest, ChunkedEqualsOnePass) {
  torch::NoGradGuard g;
  const torch::Tensor v = torch::rand({1, 3, 25, 32, 32}) * 2 - 1;
  const torch::Tensor whole = vae_->Encode(v).first;
  const torch::Tensor chunked = vae_->EncodeMeanChunked(v, 9);
  ASSERT_EQ(chunked.sizes(), whole.sizes());
  EXPECT_LT((chunked - whole).abs().max().item<double>(), 1e-5);
  const torch::Tensor dw = vae_->Decode(whole);
  const torch::Tensor dc = vae_->DecodeChunked(whole, 3);
  ASSERT_EQ(dc.sizes(), dw.sizes());
  EXPECT_LT((dc - dw).abs().max().item<double>(), 1e-5);
  // Streaming state does not leak into the next one-pass call.
  EXPECT_LT((vae_->Encode(v).first - whole).abs().max().item<double>(), 1e-7);
}

TEST_F(VaeTest, LatentStatisticsNormalise) {
  torch::NoGradGuard g;
  const torch::Tensor z = torch::randn({6, 4, 5, 4, 4}) * 3 + 2;
  vae_->SetLatentStats(z);
  const torch::Tensor n = vae_->Normalize(z);
  EXPECT_NEAR(n.mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(n.std().item<double>(), 1.0, 0.01);
  EXPECT_LT((vae_->Denormalize(n) - z).abs().max().item<double>(), 1e-5);
  // The statistics are saved with the weights.
  std::vector<std::string> names;
  for (const auto& b : vae_->named_buffers()) names.push_back(b.key());
  EXPECT_NE(std::find(names.begin(), names.end(), "latent_std"), names.end());
}

TEST_F(VaeTest, CheckpointRoundTripAndBrokenOnesAreNamed) {
  const std::string dir = testing::ScratchPath("vae-ckpt");
  {
    torch::NoGradGuard g;
    vae_->SetLatentStats(torch::randn({2, 4, 3, 4, 4}) * 2 + 1);
  }
  ASSERT_TRUE(SaveVae(vae_, config_, dir).ok());
  auto loaded = LoadVae(dir, torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const torch::Tensor x = torch::rand({1, 3, 5, 32, 32}) * 2 - 1;
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(loaded->vae->Encode(x).first, vae_->Encode(x).first));
  const torch::Tensor z = torch::randn({1, 4, 2, 4, 4});
  EXPECT_TRUE(torch::equal(loaded->vae->Normalize(z), vae_->Normalize(z))) << "latent statistics";
  // A checkpoint of an older layout says so instead of failing on tensor names.
  const std::string config_path = dir + "/config.json";
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();
  in.close();
  std::string json = text.str();
  json.replace(json.find("reel-vae 2"), 10, "reel-vae 1");
  std::ofstream(config_path) << json;
  auto old = LoadVae(dir, torch::kCPU);
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("older layout"), std::string::npos)
      << old.status().message();
  // Truncated weights are named.
  ASSERT_TRUE(SaveVae(vae_, config_, dir).ok());
  std::filesystem::resize_file(dir + "/vae.pt", std::filesystem::file_size(dir + "/vae.pt") / 2);
  auto truncated = LoadVae(dir, torch::kCPU);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("vae.pt"), std::string::npos)
      << truncated.status().message();
  EXPECT_TRUE(RemoveTree(dir).ok());
}

// ---------------------------------------------------------------- VAE training

// Random 9-frame 32x32 clips (no captions: the VAE does not read them).
std::vector<TrainingClip> RandomClips(int n) {
  std::vector<TrainingClip> clips(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    clips[static_cast<size_t>(i)].clip_id = i + 1;
    clips[static_cast<size_t>(i)].video = torch::rand({3, 9, 32, 32}) * 2 - 1;
  }
  return clips;
}

// A VAE's weights and latent statistics by name.
std::map<std::string, torch::Tensor> VaeTensors(const VideoVae& vae) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : vae->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : vae->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

// The same of the VAE in a folder.
std::map<std::string, torch::Tensor> VaeTensors(const std::string& dir) {
  auto vae = LoadVae(dir, torch::kCPU);
  EXPECT_TRUE(vae.ok()) << vae.status().ToString();
  if (!vae.ok()) return {};
  return VaeTensors(vae->vae);
}

// The ClipFile tests' clips: `n` random 8-bit clips of kPixelShape.
const ClipShape kPixelShape{5, 16, 24, 8};
std::vector<torch::Tensor> RandomPixels(int n) {
  std::vector<torch::Tensor> pixels;
  for (int i = 0; i < n; ++i) {
    pixels.push_back(torch::randint(0, 256,
                                    {3, kPixelShape.frames, kPixelShape.height, kPixelShape.width},
                                    torch::kLong)
                         .to(torch::kByte));
  }
  return pixels;
}

// Compacting keeps the records asked for (reporting where each went) and shrinks the file;
// a compaction that stopped after marking its holes, with a record half moved, leaves a
// file that opens with the holes as no clip's and compacts again.
TEST(ClipFileTest, CompactKeepsTheRecordsAskedForAndSurvivesAnInterruptedOne) {
  const std::string dir = testing::ScratchPath("clip-file-compact");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  const ClipShape shape = kPixelShape;
  const std::vector<torch::Tensor> pixels = RandomPixels(6);
  auto key = [](int i) { return ClipFile::Key{10 + i, 1, 9 * i, 9 * i + 9}; };
  const std::string path = dir + "/clips.u8";
  {
    auto file = ClipFile::Open(path, shape);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    for (int i = 0; i < 6; ++i) ASSERT_TRUE((*file)->Append(key(i), pixels[i]).ok());
    EXPECT_EQ((*file)->Compact({0, 0}).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*file)->Compact({6}).status().code(), StatusCode::kInvalidArgument);
    // Records 1, 3 and 5 kept: 3 moves into 0's place, 5 into 2's.
    auto placed = (*file)->Compact({5, 1, 3});
    ASSERT_TRUE(placed.ok()) << placed.status().ToString();
    EXPECT_EQ(*placed, (std::vector<int64_t>{2, 1, 0}));
    EXPECT_EQ((*file)->size(), 3);
    EXPECT_EQ(std::filesystem::file_size(path), 3 * ClipPixelBytes(shape));
  }
  {
    auto file = ClipFile::Open(path, shape);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_EQ((*file)->size(), 3);
    const int was[3] = {3, 1, 5};
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(i);
      EXPECT_TRUE((*file)->keys()[static_cast<size_t>(i)] == key(was[i]));
      EXPECT_TRUE(torch::equal(*(*file)->Read(i), VideoFromPixels(pixels[was[i]])));
    }
    EXPECT_EQ(*(*file)->Compact({0, 1, 2}), (std::vector<int64_t>{0, 1, 2}));  // nothing to do
  }
  // An interrupted compaction of records 0-3 keeping 1 and 3: the index marks 0 and 2 as
  // holes, and record 3 was being copied into 0's place.
  {
    std::filesystem::remove(path);
    std::filesystem::remove(path + ".json");
    auto file = ClipFile::Open(path, shape);
    ASSERT_TRUE(file.ok());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE((*file)->Append(key(i), pixels[i]).ok());
    ASSERT_TRUE((*file)->Commit().ok());
    ASSERT_TRUE((*file)->Append(key(4), pixels[4]).ok());  // never committed
  }
  {
    auto index = ReadFile(path + ".json");
    ASSERT_TRUE(index.ok());
    auto j = Json::Parse(*index);
    ASSERT_TRUE(j.ok());
    (*j)["records"].at(0) = Json();
    (*j)["records"].at(2) = Json();
    ASSERT_TRUE(WriteFileAtomic(path + ".json", j->Dump()).ok());
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.write(static_cast<const char*>(pixels[3].data_ptr()), 1000);  // part of record 3
  }
  auto file = ClipFile::Open(path, shape);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ((*file)->size(), 4);
  EXPECT_TRUE((*file)->keys()[0].hole());
  EXPECT_TRUE((*file)->keys()[1] == key(1));
  EXPECT_TRUE((*file)->keys()[2].hole());
  EXPECT_TRUE(torch::equal(*(*file)->Read(3), VideoFromPixels(pixels[3])));
  auto placed = (*file)->Compact({1, 3});
  ASSERT_TRUE(placed.ok()) << placed.status().ToString();
  EXPECT_EQ(*placed, (std::vector<int64_t>{1, 0}));
  EXPECT_TRUE(torch::equal(*(*file)->Read(0), VideoFromPixels(pixels[3])));
  EXPECT_TRUE(torch::equal(*(*file)->Read(1), VideoFromPixels(pixels[1])));
  EXPECT_EQ(std::filesystem::file_size(path), 2 * ClipPixelBytes(shape));
}

// Decoded clips on disk: records read back as the videos of their pixels, a kept file's
// committed records survive reopening (those appended after the commit do not), and
// another shape, a bad record, a damaged index or a short file each give a clear error.
TEST(ClipFileTest, RecordsReadBackAndCommittedOnesSurviveReopening) {
  const std::string dir = testing::ScratchPath("clip-file");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  const ClipShape shape = kPixelShape;
  const std::vector<torch::Tensor> pixels = RandomPixels(4);
  EXPECT_EQ(ClipPixelBytes(shape), 3u * 5 * 16 * 24);
  {
    auto temporary = ClipFile::CreateTemporary(dir, shape);
    ASSERT_TRUE(temporary.ok()) << temporary.status().ToString();
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << "a temporary file has no name";
    ASSERT_TRUE((*temporary)->Append({7, 1, 0, 40}, pixels[0]).ok());
    ASSERT_TRUE((*temporary)->Commit().ok());
    auto video = (*temporary)->Read(0);
    ASSERT_TRUE(video.ok()) << video.status().ToString();
    EXPECT_TRUE(torch::equal(*video, pixels[0].to(torch::kFloat) / 127.5 - 1.0));
    EXPECT_GE(video->min().item<float>(), -1.0f);
    EXPECT_LE(video->max().item<float>(), 1.0f);
    EXPECT_EQ((*temporary)->Read(1).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ((*temporary)->Append({8, 1, 0, 40}, pixels[1].to(torch::kFloat)).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ((*temporary)->Append({8, 1, 0, 40}, pixels[1].narrow(1, 0, 4)).code(),
              StatusCode::kInvalidArgument);
  }
  const std::string path = dir + "/clips.u8";
  {
    auto file = ClipFile::Open(path, shape);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ((*file)->size(), 0);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE((*file)->Append({10 + i, 1, 9 * i, 9 * i + 9}, pixels[i]).ok());
    ASSERT_TRUE((*file)->Commit().ok());
    ASSERT_TRUE((*file)->Append({13, 1, 27, 36}, pixels[3]).ok());  // never committed
  }
  {
    auto file = ClipFile::Open(path, shape);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_EQ((*file)->size(), 3);
    EXPECT_EQ(std::filesystem::file_size(path), 3 * ClipPixelBytes(shape));
    EXPECT_TRUE((*file)->keys()[2] == (ClipFile::Key{12, 1, 18, 27}));
    for (int i = 0; i < 3; ++i) {
      auto video = (*file)->Read(i);
      ASSERT_TRUE(video.ok());
      EXPECT_TRUE(torch::equal(*video, VideoFromPixels(pixels[static_cast<size_t>(i)]))) << i;
    }
    // The records, some of them in another order, as a set to train on.
    ClipRecords records(**file, {2, 0});
    ASSERT_EQ(records.size(), 2);
    EXPECT_TRUE(torch::equal(*records.Video(0), VideoFromPixels(pixels[2])));
  }
  // An index of format 1 (an older reel, which picked other frames of each clip): its
  // records are dropped, counted as stale, and the file opens empty and stays so.
  {
    const std::string index = path + ".json";
    const std::string text = *ReadFile(index);
    const size_t at = text.find("reel-clips 2");
    ASSERT_NE(at, std::string::npos) << text;
    std::string old = text;
    old.replace(at, 12, "reel-clips 1");
    ASSERT_TRUE(WriteFileAtomic(index, old).ok());
    {
      auto file = ClipFile::Open(path, shape);
      ASSERT_TRUE(file.ok()) << file.status().ToString();
      EXPECT_EQ((*file)->stale(), 3);
      EXPECT_EQ((*file)->size(), 0);
      EXPECT_EQ(std::filesystem::file_size(path), 0u);
    }
    auto reopened = ClipFile::Open(path, shape);
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    EXPECT_EQ((*reopened)->stale(), 0);
    EXPECT_EQ((*reopened)->size(), 0);
    ASSERT_TRUE(WriteFileAtomic(index, text).ok());  // 3 records again, for the checks below
  }
  const ClipShape other{9, 16, 24, 8};
  auto refused = ClipFile::Open(path, other);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("holds clips of 5 frames 24x16 @ 8 fps, not 9 frames"),
            std::string::npos)
      << refused.status().message();
  std::filesystem::resize_file(path, 2 * ClipPixelBytes(shape));
  auto short_file = ClipFile::Open(path, shape);
  EXPECT_EQ(short_file.status().code(), StatusCode::kCorruption);
  EXPECT_NE(short_file.status().message().find(path), std::string::npos);
  { std::ofstream(path + ".json", std::ios::trunc) << "{\"format\": \"reel-clips 1\", \"shape\""; }
  auto damaged = ClipFile::Open(path, shape);
  EXPECT_EQ(damaged.status().code(), StatusCode::kCorruption);
  EXPECT_NE(damaged.status().message().find(path + ".json"), std::string::npos)
      << damaged.status().message();
  EXPECT_TRUE(RemoveTree(dir).ok());
}

// Training runs write their folders under one scratch folder, removed after the test.
class VaeTrainingTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(RemoveTree(dir_).ok()); }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  const ModelConfig config_ = *ModelConfig::Named("cpu-tiny");
  const std::string dir_ = testing::ScratchPath("vae-training");
};

// After training, the VAE is measured (and its latent statistics taken) on at most
// measure_clips clips spread evenly over the set.
TEST_F(VaeTrainingTest, MeasuresAnEvenSampleOfALargeSet) {
  torch::manual_seed(3);
  const std::vector<TrainingClip> clips = RandomClips(5);
  VaeTrainOptions vo;
  vo.steps = 1;
  vo.batch = 2;
  vo.measure_clips = 2;
  auto two = TrainVae(config_, clips, vo, File("vae"), nullptr, nullptr);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->measured_clips, 2);
  auto vae = LoadVae(File("vae"), torch::kCPU);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  torch::NoGradGuard g;
  double expected = 0;
  for (size_t i : {0, 2}) {  // clips 0 and 5/2 of 5
    const torch::Tensor z = vae->vae->Encode(clips[i].video.unsqueeze(0)).first;
    expected += VideoPsnr(vae->vae->Decode(z)[0], clips[i].video) / 2;
  }
  EXPECT_NEAR(two->psnr, expected, 1e-6);

  vo.measure_clips = 10;  // (trains under the NoGradGuard above too)
  auto all = TrainVae(config_, clips, vo, File("all"), nullptr, nullptr);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->measured_clips, 5);
  vo.measure_clips = 0;
  EXPECT_EQ(TrainVae(config_, clips, vo, File("none"), nullptr, nullptr).status().code(),
            StatusCode::kInvalidArgument);
  if (!compat::CudaAvailable()) {
    vo.measure_clips = 1;
    vo.device = torch::kCUDA;
    EXPECT_EQ(TrainVae(config_, clips, vo, File("cuda"), nullptr, nullptr).status().code(),
              StatusCode::kFailedPrecondition);
  }
}

// Interrupted, the VAE's training saves its state; --resume then ends with the weights of
// a run that was never interrupted, and unfinished folders are not used as VAEs.
TEST_F(VaeTrainingTest, InterruptedThenResumedEqualsStraight) {
  torch::manual_seed(5);
  const std::vector<TrainingClip> clips = RandomClips(5);
  VaeTrainOptions vo;
  vo.steps = 6;
  vo.batch = 2;
  vo.seed = 11;
  vo.save_every = 2;
  int64_t saved_step = -1;
  auto periodic = TrainVae(
      config_, clips, vo, File("periodic"),
      [&](int64_t step, int64_t, double) {
        if (step != 5) return;  // the folder as saved after step 4, while training goes on
        auto partial = LoadVaeForTraining(File("periodic"), torch::kCPU);
        if (partial.ok()) saved_step = partial->train.Find("step")->as_int();
      },
      nullptr);
  ASSERT_TRUE(periodic.ok()) << periodic.status().ToString();
  EXPECT_EQ(saved_step, 4) << "save_every 2 wrote the state after step 4";
  // (Loading a VAE draws on libtorch's generator, so the run to compare with loads none.)
  auto straight = TrainVae(config_, clips, vo, File("straight"), nullptr, nullptr);
  ASSERT_TRUE(straight.ok()) << straight.status().ToString();

  std::atomic<bool> stop{false};
  auto stopped = TrainVae(
      config_, clips, vo, File("resumed"), [&](int64_t step, int64_t, double) { stop = step == 3; },
      &stop);
  ASSERT_EQ(stopped.status().code(), StatusCode::kCancelled) << stopped.status().ToString();
  EXPECT_NE(stopped.status().message().find("step 3 of 6"), std::string::npos)
      << stopped.status().ToString();
  auto unfinished = LoadVae(File("resumed"), torch::kCPU);
  ASSERT_EQ(unfinished.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(unfinished.status().message().find("--resume"), std::string::npos)
      << unfinished.status().ToString();
  EXPECT_EQ(TrainVae(config_, clips, vo, File("resumed"), nullptr, nullptr).status().code(),
            StatusCode::kAlreadyExists);

  VaeTrainOptions resume = vo;
  resume.resume = true;
  resume.batch = 3;  // ignored: the saved training's batch is used
  auto rest = TrainVae(config_, clips, resume, File("resumed"), nullptr, nullptr);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_EQ(rest->steps_done, 3);
  const auto a = VaeTensors(File("straight"));
  const auto b = VaeTensors(File("resumed"));
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (const auto& [name, t] : a) {
    EXPECT_LE((t - b.at(name)).abs().max().item<double>(), 1e-6) << name;
  }

  // Finished: more steps are needed to go on; another VAE configuration is refused.
  auto done = TrainVae(config_, clips, resume, File("resumed"), nullptr, nullptr);
  EXPECT_NE(done.status().message().find("--steps must be more"), std::string::npos)
      << done.status().ToString();
  ModelConfig other = config_;
  other.vae.latent_channels = 8;
  resume.steps = 8;
  auto mismatch = TrainVae(other, clips, resume, File("resumed"), nullptr, nullptr);
  EXPECT_EQ(mismatch.status().code(), StatusCode::kFailedPrecondition)
      << mismatch.status().ToString();
}

// ---------------------------------------------------------------- text

TEST(BpeTest, LearnsMergesAndRoundTripsAnyBytes) {
  std::vector<std::string> captions;
  for (int i = 0; i < 50; ++i) {
    captions.push_back("a red square moving right");
    captions.push_back("a blue circle moving down");
    captions.push_back("the camera pans left over a green field");
  }
  auto tok = BpeTokenizer::Train(captions, 400);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_GT(tok->vocab_size(), 300);
  EXPECT_LE(tok->vocab_size(), 400) << "stops when no pair occurs twice";
  // Frequent words become single tokens.
  EXPECT_EQ(tok->Encode(" moving").size(), 1u);
  EXPECT_EQ(tok->Encode("a red square moving right").size(), 5u) << "one token per word";
  for (const std::string& s :
       {std::string("a red square"), std::string(""), std::string("  two  spaces "),
        std::string("caf\xc3\xa9 \xe2\x80\x94 \x01\xff"),
        std::string("unseen words, punctuation!")}) {
    EXPECT_EQ(tok->Decode(tok->Encode(s)), s);
  }
  // Deterministic: the same captions give the same merges.
  EXPECT_EQ(BpeTokenizer::Train(captions, 400)->merges(), tok->merges());
  // Save and load.
  const std::string path = testing::ScratchPath("bpe.txt");
  ASSERT_TRUE(tok->Save(path).ok());
  auto back = BpeTokenizer::Load(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Encode("a blue circle moving down"), tok->Encode("a blue circle moving down"));
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("reel-bpe 1\n2 999999\n", f);
  std::fclose(f);
  EXPECT_NE(BpeTokenizer::Load(path).status().message().find(":2: bad merge"), std::string::npos);
  EXPECT_EQ(BpeTokenizer::Load(path + ".absent").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(BpeTokenizer::Train(captions, 100).ok());
  // Batches: ids, the end token, padding; long texts cut so the end token fits.
  const torch::Tensor b = tok->Batch({"a red square", std::string(200, 'x')}, 8);
  EXPECT_EQ(b.sizes(), (std::vector<int64_t>{2, 8}));
  const auto ids = tok->Encode("a red square");
  EXPECT_EQ(b[0][static_cast<int64_t>(ids.size())].item<int64_t>(), BpeTokenizer::kEnd);
  EXPECT_EQ(b[0][7].item<int64_t>(), BpeTokenizer::kPad);
  EXPECT_EQ(b[1][7].item<int64_t>(), BpeTokenizer::kEnd);
  // Length says when Batch cuts: a text of Length <= max_tokens keeps all its ids.
  EXPECT_EQ(tok->Length(""), 1);
  EXPECT_EQ(tok->Length("a red square"), static_cast<int64_t>(ids.size()) + 1);
  for (const std::string& s : {std::string("a red square moving right"),
                               std::string("unseen words, punctuation!"), std::string(9, 'x')}) {
    const int64_t n = tok->Length(s);
    for (int64_t max_tokens : {n - 1, n, n + 1}) {
      const torch::Tensor row = tok->Batch({s}, static_cast<int>(max_tokens))[0];
      const bool whole = row.eq(BpeTokenizer::kEnd).nonzero().item<int64_t>() == n - 1;
      EXPECT_EQ(whole, n <= max_tokens) << s << " in " << max_tokens;
    }
  }
}

TEST(TextEncoderTest, ShapesMasksAndPaddingDoesNotLeak) {
  torch::manual_seed(2);
  TextConfig c;
  TextEncoder enc(c);
  enc->eval();
  torch::NoGradGuard g;
  torch::Tensor tokens = torch::zeros({2, 24}, torch::kLong);
  tokens[0].narrow(0, 0, 4).copy_(torch::tensor({10, 20, 30, 1}));
  tokens[1].narrow(0, 0, 2).copy_(torch::tensor({10, 1}));
  auto [f, mask] = enc->forward(tokens);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 24, 64}));
  EXPECT_EQ(mask.sum(1)[0].item<int64_t>(), 4);
  EXPECT_EQ(mask.sum(1)[1].item<int64_t>(), 2);
  auto [n, nmask] = enc->NullCaption(3, 24);
  EXPECT_EQ(n.sizes(), (std::vector<int64_t>{3, 24, 64}));
  EXPECT_EQ(nmask.sum().item<int64_t>(), 3);
}

// ---------------------------------------------------------------- DiT

TEST(AttentionTest, CompatMatchesTheFormulaWithMasks) {
  torch::manual_seed(3);
  const torch::Tensor q = torch::randn({2, 3, 5, 8}), k = torch::randn({2, 3, 7, 8}),
                      v = torch::randn({2, 3, 7, 8});
  torch::Tensor mask = torch::ones({2, 1, 1, 7}, torch::kBool);
  mask[1].narrow(-1, 4, 3).fill_(false);
  torch::Tensor s = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0);
  s = s.masked_fill(mask.logical_not(), -1e30);
  const torch::Tensor want = torch::matmul(torch::softmax(s, -1), v);
  EXPECT_LT((compat::Attention(q, k, v, mask) - want).abs().max().item<double>(), 1e-5);
}

TEST(RopeTest, ScoresDependOnRelativePositionOnly) {
  torch::manual_seed(4);
  const int hd = 32;
  auto [cos, sin] = Rope3d(6, 1, 1, hd, torch::kCPU);  // six frames, one position each
  const torch::Tensor q = torch::randn({hd}), k = torch::randn({hd});
  auto at = [&](const torch::Tensor& x, int64_t i) {
    return ApplyRope(x.view({1, hd}), cos.narrow(0, i, 1), sin.narrow(0, i, 1))[0];
  };
  const double s02 = (at(q, 0) * at(k, 2)).sum().item<double>();
  const double s35 = (at(q, 3) * at(k, 5)).sum().item<double>();
  const double s00 = (at(q, 0) * at(k, 0)).sum().item<double>();
  EXPECT_NEAR(s02, s35, 1e-4);
  EXPECT_NEAR(s00, (q * k).sum().item<double>(), 1e-4) << "position 0 is the identity";
  EXPECT_GT(std::fabs(s02 - s00), 1e-3);
  EXPECT_NEAR(at(q, 4).norm().item<double>(), q.norm().item<double>(), 1e-4) << "a rotation";
}

// The fused query/key norm + rotary positions against the same math as separate ATen
// operators: a strided slice of a qkv projection in, with and without rotary positions,
// forward and both gradients.
struct QkNormCase {
  torch::Tensor qkv, x, weight, cos, sin, grad_out;
};

QkNormCase MakeQkNormCase(torch::ScalarType dtype, bool rope, torch::Device device = torch::kCPU,
                          int64_t b = 2, int64_t n = 12, int64_t h = 3, int64_t d = 16) {
  torch::manual_seed(11);
  QkNormCase c;
  const auto on = torch::TensorOptions().dtype(torch::kDouble);
  c.qkv = (torch::randn({b, n, 3, h, d}, on) * 3 + 0.5).to(device, dtype).requires_grad_();
  c.x = c.qkv.select(2, 1);  // [B, N, H, D] with the projection's strides
  c.weight = (1 + 0.3 * torch::randn({d}, on)).to(device, torch::kFloat).requires_grad_();
  if (rope) {
    auto tables = Rope3d(3, 2, n / 6, static_cast<int>(d), device);
    c.cos = tables.first;
    c.sin = tables.second;
  }
  c.grad_out = torch::randn({b, n, h, d}, on).to(device, dtype);
  return c;
}

struct QkNormResult {
  torch::Tensor out, grad_qkv, grad_weight;
};

QkNormResult RunQkNorm(const QkNormCase& c, bool fused) {
  for (const torch::Tensor& t : {c.qkv, c.weight})
    if (t.grad().defined()) t.mutable_grad().zero_();
  SetFusedQkNorm(fused);
  const torch::Tensor out = QkNormRope(c.x, c.weight, c.cos, c.sin);
  SetFusedQkNorm(true);
  (out.to(torch::kDouble) * c.grad_out.to(torch::kDouble)).sum().backward();
  return {out.detach(), c.qkv.grad().clone(), c.weight.grad().clone()};
}

double RelDiff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kCPU, torch::kDouble), y = b.to(torch::kCPU, torch::kDouble);
  return ((x - y).norm() / (y.norm() + 1e-30)).item<double>();
}

// run() on one intra-op thread, then on three (the thread count restored after): the
// fused operators' CPU loops must give the same bits either way.
template <typename Run>
auto OnOneThenThreeThreads(Run run) -> std::pair<decltype(run()), decltype(run())> {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  auto one = run();
  torch::set_num_threads(3);
  auto three = run();
  torch::set_num_threads(threads);
  return {std::move(one), std::move(three)};
}

TEST(QkNormTest, FusedEqualsTheCompositeOperatorsForwardAndBackward) {
  for (bool rope : {false, true}) {
    SCOPED_TRACE(rope ? "with rotary positions" : "without");
    const QkNormCase c = MakeQkNormCase(torch::kDouble, rope);
    const QkNormResult fused = RunQkNorm(c, true), composite = RunQkNorm(c, false);
    EXPECT_EQ(fused.out.sizes(), c.x.sizes());
    EXPECT_TRUE(fused.out.is_contiguous());
    EXPECT_EQ(fused.out.scalar_type(), torch::kDouble);
    // The weight is float32 in both; the rest is float64, so they agree to rounding.
    EXPECT_LT(RelDiff(fused.out, composite.out), 1e-12);
    EXPECT_LT(RelDiff(fused.grad_qkv, composite.grad_qkv), 1e-12);
    EXPECT_LT(RelDiff(fused.grad_weight, composite.grad_weight), 1e-6);
    // Only the slice that was normalised gets a gradient.
    EXPECT_EQ(fused.grad_qkv.select(2, 0).abs().max().item<double>(), 0);
    EXPECT_GT(fused.grad_qkv.select(2, 1).abs().max().item<double>(), 0);
    // The output rows have the weight's RMS before rotation, which keeps norms per pair.
    EXPECT_GT(fused.grad_weight.abs().max().item<double>(), 0);
  }
  // Float32 and bfloat16 inputs: computed in float32, returned in the input's dtype.
  for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
    const QkNormCase c = MakeQkNormCase(dtype, true);
    const QkNormResult fused = RunQkNorm(c, true), composite = RunQkNorm(c, false);
    EXPECT_EQ(fused.out.scalar_type(), dtype);
    const double tol = dtype == torch::kFloat ? 1e-6 : 1e-2;
    EXPECT_LT(RelDiff(fused.out, composite.out), tol);
    EXPECT_LT(RelDiff(fused.grad_qkv, composite.grad_qkv), tol);
    EXPECT_LT(RelDiff(fused.grad_weight, composite.grad_weight), tol);
  }
}

TEST(QkNormTest, SameResultOnAnyThreadCountAndShapesAreChecked) {
  // Enough rows for several of the backward's fixed blocks of partial sums.
  const QkNormCase c = MakeQkNormCase(torch::kFloat, true, torch::kCPU, 4, 48, 6, 32);
  const auto [one, three] = OnOneThenThreeThreads([&] { return RunQkNorm(c, true); });
  EXPECT_TRUE(torch::equal(one.out, three.out));
  EXPECT_TRUE(torch::equal(one.grad_qkv, three.grad_qkv));
  EXPECT_TRUE(torch::equal(one.grad_weight, three.grad_weight));
  // The choice of CUDA kernel leaves the CPU loop as it is.
  SetQkNormVectorKernels(true);
  const QkNormResult vector_switch = RunQkNorm(c, true);
  SetQkNormVectorKernels(false);
  EXPECT_TRUE(torch::equal(vector_switch.out, three.out));
  EXPECT_TRUE(torch::equal(vector_switch.grad_weight, three.grad_weight));

  const torch::Tensor w = torch::ones({16});
  EXPECT_THROW(QkNormRope(torch::randn({2, 4, 16}), w), c10::Error);
  EXPECT_THROW(QkNormRope(torch::randn({1, 4, 2, 15}), torch::ones({15})), c10::Error);
  EXPECT_THROW(QkNormRope(torch::randn({1, 4, 2, 16}), torch::ones({8})), c10::Error);
  EXPECT_THROW(QkNormRope(torch::randn({1, 4, 2, 16}), w, torch::ones({5, 8}), torch::ones({5, 8})),
               c10::Error);
  EXPECT_THROW(QkNormRope(torch::randn({1, 4, 2, 16}), w, torch::ones({4, 8})), c10::Error);
  // No rows at all is not an error.
  EXPECT_EQ(QkNormRope(torch::randn({0, 4, 2, 16}), w).numel(), 0);
}

// The fused LayerNorm + modulation against layer_norm, addcmul and a cast: x a strided
// [B, N, D] view, shift and scale slices of one [B, 6D] projection as in the DiT block.
struct NormModulateCase {
  torch::Tensor x_storage, x, ada, shift, scale, grad_out;
};

NormModulateCase MakeNormModulateCase(torch::ScalarType dtype, torch::Device device = torch::kCPU,
                                      int64_t b = 3, int64_t n = 150, int64_t d = 48) {
  torch::manual_seed(12);
  NormModulateCase c;
  const auto on = torch::TensorOptions().dtype(torch::kDouble);
  c.x_storage = (torch::randn({b, n, d + 8}, on) * 2 + 0.7).to(device, dtype).requires_grad_();
  c.x = c.x_storage.narrow(2, 4, d);  // rows with a gap between them
  c.ada = (0.5 * torch::randn({b, 6 * d}, on)).to(device, dtype).requires_grad_();
  c.shift = c.ada.narrow(1, 0, d);
  c.scale = c.ada.narrow(1, d, d);
  c.grad_out = torch::randn({b, n, d}, on).to(device, dtype);
  return c;
}

struct NormModulateResult {
  torch::Tensor out, grad_x, grad_ada;
};

NormModulateResult RunNormModulate(const NormModulateCase& c, bool fused,
                                   torch::ScalarType out_dtype) {
  for (const torch::Tensor& t : {c.x_storage, c.ada})
    if (t.grad().defined()) t.mutable_grad().zero_();
  SetFusedNormModulate(fused);
  const torch::Tensor out = NormModulate(c.x, c.shift, c.scale, out_dtype);
  SetFusedNormModulate(true);
  (out.to(torch::kDouble) * c.grad_out.to(torch::kDouble)).sum().backward();
  return {out.detach(), c.x_storage.grad().clone(), c.ada.grad().clone()};
}

TEST(NormModulateTest, FusedEqualsTheCompositeOperatorsForwardAndBackward) {
  for (torch::ScalarType dtype : {torch::kDouble, torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)));
    const NormModulateCase c = MakeNormModulateCase(dtype);
    const NormModulateResult fused = RunNormModulate(c, true, dtype);
    const NormModulateResult composite = RunNormModulate(c, false, dtype);
    EXPECT_EQ(fused.out.scalar_type(), dtype);
    EXPECT_TRUE(fused.out.is_contiguous());
    const double tol = dtype == torch::kDouble ? 1e-12 : dtype == torch::kFloat ? 1e-5 : 2e-2;
    EXPECT_LT(RelDiff(fused.out, composite.out), tol);
    EXPECT_LT(RelDiff(fused.grad_x, composite.grad_x), tol);
    EXPECT_LT(RelDiff(fused.grad_ada, composite.grad_ada), tol);
    // Gradients reach shift and scale and nothing else of the projection.
    EXPECT_GT(fused.grad_ada.narrow(1, 0, 96).abs().min().item<double>(), 0);
    EXPECT_EQ(fused.grad_ada.narrow(1, 96, 4 * 48).abs().max().item<double>(), 0);
  }
}

TEST(NormModulateTest, SameResultOnAnyThreadCountAndShapesAreChecked) {
  const NormModulateCase c = MakeNormModulateCase(torch::kFloat, torch::kCPU, 4, 700, 64);
  const auto [one, three] =
      OnOneThenThreeThreads([&] { return RunNormModulate(c, true, torch::kFloat); });
  EXPECT_TRUE(torch::equal(one.out, three.out));
  EXPECT_TRUE(torch::equal(one.grad_x, three.grad_x));
  EXPECT_TRUE(torch::equal(one.grad_ada, three.grad_ada));

  const torch::Tensor s = torch::zeros({2, 8});
  EXPECT_THROW(NormModulate(torch::randn({2, 8}), s, s, torch::kFloat), c10::Error);
  EXPECT_THROW(NormModulate(torch::randn({2, 5, 8}), torch::zeros({2, 7}), s, torch::kFloat),
               c10::Error);
  EXPECT_THROW(NormModulate(torch::randn({3, 5, 8}), s, s, torch::kFloat), c10::Error);
  EXPECT_EQ(NormModulate(torch::randn({2, 0, 8}), s, s, torch::kFloat).numel(), 0);
  // Another output dtype than x's on the CPU: computed, then cast.
  EXPECT_EQ(NormModulate(torch::randn({2, 5, 8}), s, s, torch::kBFloat16).scalar_type(),
            torch::kBFloat16);
}

// LayerNorm with torch::nn::LayerNorm's weight and bias (the cross-attention's): the same
// output and gradients as layer_norm with them, in x's dtype, as AffineLayerNorm gives it
// (on the CPU: layer_norm when fused, the composite operators when not) and as the fused
// operator computes it, which is what runs on CUDA.
struct AffineCase {
  torch::Tensor x, w, bias, grad_out;
};

std::vector<torch::Tensor> RunAffine(const AffineCase& c,
                                     const std::function<torch::Tensor()>& forward) {
  for (const torch::Tensor& t : {c.x, c.w, c.bias})
    if (t.grad().defined()) t.mutable_grad().zero_();
  const torch::Tensor out = forward();
  (out.to(torch::kDouble) * c.grad_out.to(torch::kDouble)).sum().backward();
  return {out.detach(), c.x.grad().clone(), c.w.grad().clone(), c.bias.grad().clone()};
}

AffineCase MakeAffineCase(torch::ScalarType dtype, torch::Device device = torch::kCPU,
                          int64_t b = 3, int64_t n = 70, int64_t d = 40) {
  torch::manual_seed(13);
  const auto on = torch::TensorOptions().dtype(torch::kDouble);
  AffineCase c;
  c.x = (torch::randn({b, n, d}, on) * 2 + 0.3).to(device, dtype).requires_grad_();
  // Weights both inside and outside [0.5, 2], where 1 + (w - 1) rounds.
  c.w = (1 + 1.5 * torch::randn({d}, on)).to(device, dtype).requires_grad_();
  c.bias = (0.5 * torch::randn({d}, on)).to(device, dtype).requires_grad_();
  c.grad_out = torch::randn({b, n, d}, on).to(device, dtype);
  return c;
}

TEST(NormModulateTest, AffineLayerNormIsLayerNormWithItsWeightAndBias) {
  for (torch::ScalarType dtype : {torch::kDouble, torch::kFloat}) {
    const AffineCase c = MakeAffineCase(dtype);
    const auto want = RunAffine(c, [&] { return torch::layer_norm(c.x, {40}, c.w, c.bias, 1e-6); });
    auto affine = [&](bool fused) {
      SetFusedNormModulate(fused);
      const auto out = RunAffine(c, [&] { return AffineLayerNorm(c.x, c.w, c.bias, dtype, 1e-6); });
      SetFusedNormModulate(true);
      return out;
    };
    const std::vector<std::pair<std::string, std::vector<torch::Tensor>>> runs = {
        {"fused", affine(true)},
        {"composite", affine(false)},
        {"as NormModulate", RunAffine(c, [&] {
           return AffineLayerNormAsNormModulate(c.x, c.w, c.bias, dtype, 1e-6);
         })}};
    const double tol = dtype == torch::kDouble ? 1e-12 : 1e-5;
    for (const auto& [name, got] : runs) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + ", " + name);
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_LT(RelDiff(got[i], want[i]), tol) << "tensor " << i;
        EXPECT_EQ(got[i].scalar_type(), dtype);
      }
    }
  }
  const torch::Tensor x = torch::randn({2, 5, 8});
  EXPECT_EQ(AffineLayerNorm(x, torch::ones({8}), torch::zeros({8}), torch::kBFloat16).scalar_type(),
            torch::kBFloat16);
  EXPECT_THROW(AffineLayerNorm(x, torch::ones({7}), torch::zeros({8}), torch::kFloat), c10::Error);
  EXPECT_THROW(AffineLayerNorm(x, torch::ones({8}), torch::zeros({2, 8}), torch::kFloat),
               c10::Error);
  EXPECT_THROW(
      AffineLayerNorm(torch::randn({5, 8}), torch::ones({8}), torch::zeros({8}), torch::kFloat),
      c10::Error);
}

// The fused gated residual add against addcmul: the residual a float stream, the gate a
// slice of one [B, 6D] projection as in the DiT block, y the branch's output.
struct GatedResidualCase {
  torch::Tensor residual, ada, gate, y, grad_out;
};

GatedResidualCase MakeGatedResidualCase(torch::ScalarType dtype, torch::ScalarType y_dtype,
                                        torch::Device device = torch::kCPU, int64_t b = 3,
                                        int64_t n = 150, int64_t d = 48) {
  torch::manual_seed(14);
  GatedResidualCase c;
  const auto on = torch::TensorOptions().dtype(torch::kDouble);
  c.residual = (torch::randn({b, n, d}, on) * 2).to(device, dtype).requires_grad_();
  c.ada = (0.5 * torch::randn({b, 6 * d}, on)).to(device, y_dtype).requires_grad_();
  c.gate = c.ada.narrow(1, 2 * d, d);
  c.y = torch::randn({b, n, d}, on).to(device, y_dtype).requires_grad_();
  c.grad_out = torch::randn({b, n, d}, on).to(device, dtype);
  return c;
}

struct GatedResidualResult {
  torch::Tensor out, grad_residual, grad_ada, grad_y;
};

GatedResidualResult RunGatedResidual(const GatedResidualCase& c, bool fused) {
  for (const torch::Tensor& t : {c.residual, c.ada, c.y})
    if (t.grad().defined()) t.mutable_grad().zero_();
  SetFusedGatedResidual(fused);
  const torch::Tensor out = GatedResidual(c.residual, c.gate, c.y);
  SetFusedGatedResidual(true);
  (out.to(torch::kDouble) * c.grad_out.to(torch::kDouble)).sum().backward();
  return {out.detach(), c.residual.grad().clone(), c.ada.grad().clone(), c.y.grad().clone()};
}

TEST(GatedResidualTest, FusedEqualsAddcmulForwardAndBackward) {
  for (torch::ScalarType dtype : {torch::kDouble, torch::kFloat}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)));
    const GatedResidualCase c = MakeGatedResidualCase(dtype, dtype);
    const GatedResidualResult fused = RunGatedResidual(c, true);
    const GatedResidualResult composite = RunGatedResidual(c, false);
    EXPECT_EQ(fused.out.scalar_type(), dtype);
    EXPECT_EQ(fused.grad_y.scalar_type(), dtype);
    const double tol = dtype == torch::kDouble ? 1e-13 : 1e-6;
    EXPECT_LT(RelDiff(fused.out, composite.out), tol);
    EXPECT_LT(RelDiff(fused.grad_residual, composite.grad_residual), tol);
    EXPECT_LT(RelDiff(fused.grad_y, composite.grad_y), tol);
    EXPECT_LT(RelDiff(fused.grad_ada, composite.grad_ada), tol);
    // The gradient reaches the gate's slice of the projection and nothing else of it.
    EXPECT_GT(fused.grad_ada.narrow(1, 96, 48).abs().min().item<double>(), 0);
    EXPECT_EQ(fused.grad_ada.narrow(1, 0, 96).abs().max().item<double>(), 0);
    EXPECT_EQ(fused.grad_ada.narrow(1, 144, 3 * 48).abs().max().item<double>(), 0);
  }
  // A bfloat16 y with a float32 residual (CUDA autocast's case) is not fused on the CPU:
  // it is addcmul, in float32.
  const GatedResidualCase c = MakeGatedResidualCase(torch::kFloat, torch::kBFloat16);
  const GatedResidualResult mixed = RunGatedResidual(c, true);
  EXPECT_EQ(mixed.out.scalar_type(), torch::kFloat);
  EXPECT_EQ(mixed.grad_y.scalar_type(), torch::kBFloat16);
  const torch::Tensor want = c.residual.detach() + c.gate.detach().to(torch::kFloat).unsqueeze(1) *
                                                       c.y.detach().to(torch::kFloat);
  EXPECT_LT(RelDiff(mixed.out, want), 1e-7);
}

TEST(GatedResidualTest, SameResultOnAnyThreadCountAndShapesAreChecked) {
  // Enough tokens for several of the backward's chunks.
  const GatedResidualCase c =
      MakeGatedResidualCase(torch::kFloat, torch::kFloat, torch::kCPU, 4, 700, 64);
  const auto [one, three] = OnOneThenThreeThreads([&] { return RunGatedResidual(c, true); });
  EXPECT_TRUE(torch::equal(one.out, three.out));
  EXPECT_TRUE(torch::equal(one.grad_y, three.grad_y));
  EXPECT_TRUE(torch::equal(one.grad_ada, three.grad_ada));

  const torch::Tensor x = torch::randn({2, 5, 8}), gate = torch::zeros({2, 8});
  EXPECT_THROW(GatedResidual(torch::randn({2, 8}), gate, torch::randn({2, 8})), c10::Error);
  EXPECT_THROW(GatedResidual(x, gate, torch::randn({2, 6, 8})), c10::Error);
  EXPECT_THROW(GatedResidual(x, torch::zeros({2, 7}), x), c10::Error);
  EXPECT_THROW(GatedResidual(x, torch::zeros({1, 8}), x), c10::Error);
  EXPECT_EQ(GatedResidual(torch::randn({2, 0, 8}), gate, torch::randn({2, 0, 8})).numel(), 0);
  // A transposed (non-contiguous) y is read as its values.
  const torch::Tensor yt = torch::randn({2, 8, 5}).transpose(1, 2);
  EXPECT_TRUE(torch::allclose(GatedResidual(x, gate + 0.5, yt), x + 0.5 * yt));
}

class DitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    dit_ = DiffusionTransformer(config_.dit, 4, 64);
    dit_->eval();
  }
  // Gives the zero-initialised layers random weights, as training would.
  void Wake() {
    torch::NoGradGuard g;
    for (auto& p : dit_->named_parameters()) {
      if (p.key().find("ada") != std::string::npos || p.key().find("final_") != std::string::npos) {
        p.value().normal_(0, 0.05);
      }
    }
  }
  ModelConfig config_ = *ModelConfig::Named("cpu-tiny");
  DiffusionTransformer dit_{nullptr};
  torch::Tensor z_ = torch::randn({2, 4, 5, 4, 4});
  torch::Tensor t_ = torch::tensor({0.3f, 0.8f});
  torch::Tensor text_ = torch::randn({2, 6, 64});
  torch::Tensor mask_ = torch::ones({2, 6}, torch::kBool);
};

TEST_F(DitTest, StartsAtZeroAndKeepsShapes) {
  torch::NoGradGuard g;
  const torch::Tensor v = dit_->forward(z_, t_, text_, mask_);
  EXPECT_EQ(v.sizes(), z_.sizes());
  EXPECT_EQ(v.abs().max().item<double>(), 0.0) << "adaLN-Zero and a zero output layer";
  Wake();
  const torch::Tensor w = dit_->forward(z_, t_, text_, mask_);
  EXPECT_GT(w.abs().max().item<double>(), 1e-4);
  EXPECT_FALSE(torch::isnan(w).any().item<bool>());
}

TEST_F(DitTest, TextTimestepAndMasksMatter) {
  torch::NoGradGuard g;
  Wake();
  const torch::Tensor base = dit_->forward(z_, t_, text_, mask_);
  EXPECT_GT(
      (dit_->forward(z_, t_, torch::randn({2, 6, 64}), mask_) - base).abs().max().item<double>(),
      1e-5);
  EXPECT_GT((dit_->forward(z_, t_ * 0.5, text_, mask_) - base).abs().max().item<double>(), 1e-5);
  // Masked text tokens do not influence the output.
  torch::Tensor m = mask_.clone();
  m.narrow(1, 3, 3).fill_(false);
  torch::Tensor other = text_.clone();
  other.narrow(1, 3, 3).normal_();
  const torch::Tensor a = dit_->forward(z_, t_, text_, m), b = dit_->forward(z_, t_, other, m);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  // Each sample is independent of the others in the batch.
  const torch::Tensor one = dit_->forward(z_.narrow(0, 0, 1), t_.narrow(0, 0, 1),
                                          text_.narrow(0, 0, 1), mask_.narrow(0, 0, 1));
  EXPECT_LT((one - base.narrow(0, 0, 1)).abs().max().item<double>(), 1e-5);
}

TEST_F(DitTest, FactorisedAttentionForLongClips) {
  DitConfig c = config_.dit;
  c.attention = AttentionMode::kAuto;
  c.full_attention_max_tokens = 16;
  DiffusionTransformer auto_dit(c, 4, 64);
  EXPECT_TRUE(auto_dit->Factorized(20));
  EXPECT_FALSE(auto_dit->Factorized(16));
  torch::NoGradGuard g;
  // Same weights, full vs factorised: same shapes, different functions.
  c.attention = AttentionMode::kFull;
  DiffusionTransformer full(c, 4, 64);
  c.attention = AttentionMode::kFactorized;
  DiffusionTransformer fact(c, 4, 64);
  Wake();
  auto copy = [&](DiffusionTransformer& dst) {
    auto from = dit_->named_parameters();
    for (auto& p : dst->named_parameters()) p.value().copy_(from[p.key()]);
  };
  copy(full);
  copy(fact);
  const torch::Tensor a = full->forward(z_, t_, text_, mask_);
  const torch::Tensor b = fact->forward(z_, t_, text_, mask_);
  EXPECT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((a - dit_->forward(z_, t_, text_, mask_)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-5);
  // Factorised spatial attention keeps frames apart in even blocks; the model as a whole
  // still mixes time through the odd blocks.
  EXPECT_FALSE(torch::isnan(b).any().item<bool>());
}

TEST_F(DitTest, GradientsReachEveryParameter) {
  Wake();
  dit_->train();
  const torch::Tensor v = dit_->forward(z_, t_, text_, mask_);
  v.pow(2).mean().backward();
  for (const auto& p : dit_->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

// ---------------------------------------------------------------- flow

// The output v and the gradients of `leaves` and of every parameter of `dit`, in float64
// on the CPU (zeros for a parameter without one), after backward() of mean(v^2).
std::vector<torch::Tensor> OutputAndGradients(const torch::Tensor& v, DiffusionTransformer& dit,
                                              const std::vector<torch::Tensor>& leaves = {}) {
  v.to(torch::kFloat).pow(2).mean().backward();
  std::vector<torch::Tensor> out = {v.detach().to(torch::kCPU, torch::kDouble)};
  for (const torch::Tensor& l : leaves) out.push_back(l.grad().to(torch::kCPU, torch::kDouble));
  for (const auto& p : dit->parameters())
    out.push_back(p.grad().defined() ? p.grad().to(torch::kCPU, torch::kDouble)
                                     : torch::zeros({1}, torch::kDouble));
  return out;
}

// The largest relative difference (in norm) between matching tensors of `got` and `want`.
double WorstRelativeDifference(const std::vector<torch::Tensor>& got,
                               const std::vector<torch::Tensor>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double scale = want[i].norm().item<double>();
    if (scale == 0) continue;
    worst = std::max(worst, (got[i] - want[i]).norm().item<double>() / scale);
  }
  return worst;
}

// The denoiser's output and gradients with the fused operators (query/key norm, norm +
// modulation, gated residual) and with the composite ones, on `device` (bf16 autocast on CUDA): the
// largest relative difference.
double FusedAgainstCompositeDit(DiffusionTransformer& dit, const torch::Tensor& z,
                                const torch::Tensor& t, const torch::Tensor& text,
                                const torch::Tensor& mask, torch::Device device) {
  dit->to(device);
  auto run = [&](bool fused) {
    SetFusedQkNorm(fused);
    SetFusedNormModulate(fused);
    SetFusedGatedResidual(fused);
    dit->zero_grad();
    torch::Tensor v;
    {
      compat::CudaBf16Autocast amp(device.is_cuda());
      v = dit->forward(z.to(device), t.to(device), text.to(device), mask.to(device));
    }
    SetFusedQkNorm(true);
    SetFusedNormModulate(true);
    SetFusedGatedResidual(true);
    return OutputAndGradients(v, dit);
  };
  const auto fused = run(true), composite = run(false);
  return WorstRelativeDifference(fused, composite);
}

TEST_F(DitTest, FusedOperatorsTrainAsTheCompositeOnes) {
  Wake();
  dit_->train();
  // Full attention, then factorised (the 5 x 4 x 4 latent has 80 tokens).
  EXPECT_LT(FusedAgainstCompositeDit(dit_, z_, t_, text_, mask_, torch::kCPU), 1e-4);
  config_.dit.attention = AttentionMode::kFactorized;
  DiffusionTransformer factorized(config_.dit, 4, 64);
  factorized->train();
  EXPECT_LT(FusedAgainstCompositeDit(factorized, z_, t_, text_, mask_, torch::kCPU), 1e-4);
}

TEST_F(DitTest, FusedOperatorsOnTheGpuAsTheCompositeOnes) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  Wake();
  dit_->train();
  const double worst = FusedAgainstCompositeDit(dit_, z_, t_, text_, mask_, torch::kCUDA);
  std::printf("DiT on the GPU in bf16, fused against composite operators: %.2e apart at most\n",
              worst);
  std::fflush(stdout);
  EXPECT_LT(worst, 0.05);
}

// The number of nodes in the autograd graph that ends at `root`, and how many of them are
// checkpointed blocks.
int64_t CountGraph(const torch::Tensor& root, int64_t* checkpointed_blocks) {
  std::set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> todo = {root.grad_fn().get()};
  *checkpointed_blocks = 0;
  while (!todo.empty()) {
    torch::autograd::Node* n = todo.back();
    todo.pop_back();
    if (n == nullptr || !seen.insert(n).second) continue;
    if (n->name().find("CheckpointedBlock") != std::string::npos) ++*checkpointed_blocks;
    for (const auto& e : n->next_edges()) todo.push_back(e.function.get());
  }
  return static_cast<int64_t>(seen.size());
}

// The denoiser trained with and without activation checkpointing, on `device` (bf16
// autocast on CUDA): the largest relative difference of the output, the text's gradient
// and every parameter's gradient. `nodes` gets the autograd graph's size each way and how
// many checkpointed blocks it holds.
struct GraphCounts {
  int64_t plain = 0, checkpointed = 0, checkpointed_blocks = 0;
};
double CheckpointedAgainstPlainDit(DiffusionTransformer& dit, const torch::Tensor& z,
                                   const torch::Tensor& t, const torch::Tensor& text,
                                   const torch::Tensor& mask, torch::Device device,
                                   GraphCounts* nodes) {
  dit->to(device);
  dit->train();
  auto run = [&](bool checkpoint) {
    dit->SetActivationCheckpointing(checkpoint);
    dit->zero_grad();
    const torch::Tensor txt = text.to(device).detach().requires_grad_(true);
    torch::Tensor v;
    {
      compat::CudaBf16Autocast amp(device.is_cuda());
      v = dit->forward(z.to(device), t.to(device), txt, mask.to(device));
    }
    int64_t blocks = 0;
    (checkpoint ? nodes->checkpointed : nodes->plain) = CountGraph(v, &blocks);
    if (checkpoint) nodes->checkpointed_blocks = blocks;
    std::vector<torch::Tensor> out = OutputAndGradients(v, dit, {txt});
    dit->SetActivationCheckpointing(false);
    return out;
  };
  const auto plain = run(false), checkpointed = run(true);
  return WorstRelativeDifference(checkpointed, plain);
}

TEST_F(DitTest, ActivationCheckpointingTrainsAsWithoutIt) {
  Wake();
  GraphCounts full;
  const double apart = CheckpointedAgainstPlainDit(dit_, z_, t_, text_, mask_, torch::kCPU, &full);
  std::printf(
      "with activation checkpointing against without: %.2e apart; graph %lld nodes "
      "against %lld\n",
      apart, static_cast<long long>(full.checkpointed), static_cast<long long>(full.plain));
  EXPECT_LT(apart, 1e-6);
  // Each block is one node of the graph, in place of its dozens.
  EXPECT_EQ(full.checkpointed_blocks, config_.dit.depth);
  EXPECT_LT(full.checkpointed * 3, full.plain) << full.checkpointed << " against " << full.plain;
  config_.dit.attention = AttentionMode::kFactorized;
  DiffusionTransformer factorized(config_.dit, 4, 64);
  {
    torch::NoGradGuard g;
    auto from = dit_->named_parameters();
    for (auto& p : factorized->named_parameters()) p.value().copy_(from[p.key()]);
  }
  GraphCounts fact;
  EXPECT_LT(CheckpointedAgainstPlainDit(factorized, z_, t_, text_, mask_, torch::kCPU, &fact),
            1e-6);
  EXPECT_EQ(fact.checkpointed_blocks, config_.dit.depth);
  // Only in training: in evaluation the graph (if any) is the ordinary one.
  dit_->SetActivationCheckpointing(true);
  dit_->eval();
  int64_t blocks = -1;
  EXPECT_GT(CountGraph(dit_->forward(z_, t_, text_, mask_), &blocks), full.checkpointed * 3);
  EXPECT_EQ(blocks, 0);
}

TEST_F(DitTest, ActivationCheckpointingOnTheGpuAsWithoutIt) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  Wake();
  GraphCounts nodes;
  const double worst =
      CheckpointedAgainstPlainDit(dit_, z_, t_, text_, mask_, torch::kCUDA, &nodes);
  std::printf(
      "DiT on the GPU in bf16, with activation checkpointing against without: %.2e apart at "
      "most; graph %lld nodes against %lld\n",
      worst, static_cast<long long>(nodes.checkpointed), static_cast<long long>(nodes.plain));
  std::fflush(stdout);
  EXPECT_EQ(nodes.checkpointed_blocks, config_.dit.depth);
  EXPECT_LT(worst, 1e-2);
}

TEST(FlowTest, PairsShiftAndTimesteps) {
  const torch::Tensor x0 = torch::randn({3, 4, 2, 2, 2}), eps = torch::randn({3, 4, 2, 2, 2});
  const torch::Tensor t = torch::tensor({0.0f, 0.5f, 1.0f});
  const FlowPair p = MakeFlowPair(x0, eps, t);
  EXPECT_LT((p.x_t[0] - x0[0]).abs().max().item<double>(), 1e-7);
  EXPECT_LT((p.x_t[1] - 0.5 * (x0[1] + eps[1])).abs().max().item<double>(), 1e-6);
  EXPECT_LT((p.x_t[2] - eps[2]).abs().max().item<double>(), 1e-7);
  EXPECT_LT((p.target - (eps - x0)).abs().max().item<double>(), 1e-7);

  EXPECT_DOUBLE_EQ(TimestepShiftFor(20), 1.0);
  EXPECT_DOUBLE_EQ(TimestepShiftFor(1024), 2.0);
  EXPECT_DOUBLE_EQ(TimestepShiftFor(1 << 30), 8.0);
  const torch::Tensor s = ShiftTimesteps(torch::tensor({0.0, 0.25, 0.5, 1.0}, torch::kDouble), 3.0);
  EXPECT_DOUBLE_EQ(s[0].item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(s[2].item<double>(), 0.75);
  EXPECT_DOUBLE_EQ(s[3].item<double>(), 1.0);

  auto g1 = at::make_generator<at::CPUGeneratorImpl>(42);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(42);
  const torch::Tensor a = SampleTrainingTimesteps(1000, 2.0, g1),
                      b = SampleTrainingTimesteps(1000, 2.0, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_GT(a.min().item<double>(), 0.0);
  EXPECT_LT(a.max().item<double>(), 1.0);
  EXPECT_GT(a.mean().item<double>(), 0.5) << "shifted towards noise";
}

TEST(FlowTest, EulerWithTheExactVelocityLandsOnTheData) {
  // For a single data point a, the flow's velocity is (x - a) / t, and paths are straight:
  // Euler is exact for any number of steps.
  const torch::Tensor a = torch::randn({1, 4, 3, 2, 2});
  const torch::Tensor noise = torch::randn({1, 4, 3, 2, 2});
  int calls = 0;
  auto exact = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    EXPECT_EQ(x.size(0), 2) << "conditional and unconditional in one batch";
    torch::Tensor v = (x - torch::cat({a, torch::zeros_like(a)}, 0)) / t.view({-1, 1, 1, 1, 1});
    return v;
  };
  const torch::Tensor out = SampleEuler(exact, noise, 7, 1.0, 2.5);
  EXPECT_EQ(calls, 7);
  EXPECT_LT((out - a).abs().max().item<double>(), 1e-4);
  // Guidance: cfg 2 extrapolates from the unconditional (target 0) past the conditional.
  const torch::Tensor g = SampleEuler(exact, noise, 7, 2.0, 1.0);
  EXPECT_LT((g - 2 * a).abs().max().item<double>(), 1e-4);
}

// ---------------------------------------------------------------- optimiser

// The multi-tensor optimiser steps give libtorch's numbers (on the CPU the same kernels
// run), and keep their state where torch::optim::AdamW finds it: after three of our steps,
// libtorch's own AdamW::step continues from our moments, not from fresh ones.
TEST(OptimTest, MultiTensorStepsEqualLibtorchsAndShareItsState) {
  auto make = [] {
    torch::manual_seed(4);
    torch::nn::Sequential m(torch::nn::Linear(6, 8), torch::nn::Tanh(), torch::nn::Linear(8, 3));
    return m;
  };
  torch::nn::Sequential ours = make(), theirs = make();
  torch::nn::Linear unused_ours(2, 2), unused_theirs(2, 2);  // no gradient: skipped by both
  unused_theirs->weight.data().copy_(unused_ours->weight.data());
  unused_theirs->bias.data().copy_(unused_ours->bias.data());
  auto params = [](torch::nn::Sequential& m, torch::nn::Linear& u) {
    std::vector<torch::Tensor> ps = m->parameters();
    for (const auto& p : u->parameters()) ps.push_back(p);
    return ps;
  };
  const std::vector<torch::Tensor> p_ours = params(ours, unused_ours),
                                   p_theirs = params(theirs, unused_theirs);
  const auto options = torch::optim::AdamWOptions(0.05).weight_decay(0.1).betas({0.8, 0.95});
  torch::optim::AdamW opt_ours(p_ours, options), opt_theirs(p_theirs, options);
  const std::vector<torch::Tensor> ema = {torch::zeros({8, 6}), torch::zeros({8})};
  torch::Tensor ema_expected_w = torch::zeros({8, 6}), ema_expected_b = torch::zeros({8});
  for (int step = 0; step < 5; ++step) {
    const torch::Tensor x = torch::randn({16, 6}), y = torch::randn({16, 3});
    ZeroGrads(p_ours);
    opt_theirs.zero_grad();
    (ours->forward(x) - y).pow(2).sum().backward();
    (theirs->forward(x) - y).pow(2).sum().backward();
    const double norm = ClipGradNorm(p_ours, 0.5).item<double>();  // bites: the norm is larger
    const double norm_theirs = torch::nn::utils::clip_grad_norm_(p_theirs, 0.5);
    EXPECT_NEAR(norm, norm_theirs, 1e-5 * norm_theirs);
    EXPECT_GT(norm, 0.5);
    if (step < 3) {
      AdamWStep(opt_ours);
    } else {
      opt_ours.step();  // libtorch's step on the state ours wrote
    }
    opt_theirs.step();
    EmaUpdate(ema, {p_ours[0], p_ours[1]}, 0.9);
    ema_expected_w = ema_expected_w * 0.9 + p_theirs[0].detach() * 0.1;
    ema_expected_b = ema_expected_b * 0.9 + p_theirs[1].detach() * 0.1;
    double diff = 0;
    for (size_t i = 0; i < p_ours.size(); ++i)
      diff = std::max(diff, (p_ours[i] - p_theirs[i]).abs().max().item<double>());
    EXPECT_LT(diff, 1e-6) << "step " << step;
  }
  EXPECT_FALSE(p_ours.back().grad().defined());
  EXPECT_TRUE(torch::equal(p_ours.back(), p_theirs.back())) << "no gradient, no update";
  EXPECT_LT((ema[0] - ema_expected_w).abs().max().item<double>(), 1e-6);
  EXPECT_LT((ema[1] - ema_expected_b).abs().max().item<double>(), 1e-6);
}

// Clipping below the limit leaves the gradients bit for bit (the coefficient, 1, is
// applied on the device, not skipped on the host); above it, it scales them to the limit.
TEST(OptimTest, ClipGradNormScalesOnlyAboveTheLimit) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> params = {torch::randn({7, 5}, torch::requires_grad()),
                                       torch::randn({3}, torch::requires_grad())};
  (params[0].sum(1).pow(2).sum() + params[1].exp().sum()).backward();
  const torch::Tensor g0 = params[0].grad().clone(), g1 = params[1].grad().clone();
  const torch::Tensor norm = ClipGradNorm(params, 1e6);
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_NEAR(norm.item<double>(), torch::cat({g0.flatten(), g1}).norm().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(params[0].grad(), g0));
  EXPECT_TRUE(torch::equal(params[1].grad(), g1));
  const double limit = norm.item<double>() / 4;
  ClipGradNorm(params, limit);
  const double after =
      torch::cat({params[0].grad().flatten(), params[1].grad()}).norm().item<double>();
  EXPECT_NEAR(after, limit, 1e-5 * limit);
  EXPECT_EQ(ClipGradNorm({torch::zeros({2})}, 1.0).item<double>(), 0) << "no gradients";
}

// ---------------------------------------------------------------- training

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    const char* caps[] = {"a red square moving right",
                          "a blue circle moving down",
                          "a green bar",
                          "a yellow dot",
                          "a white box",
                          "a black frame"};
    for (int i = 0; i < 6; ++i) data_.push_back({torch::randn({4, 3, 4, 4}), caps[i]});
    std::vector<std::string> texts;
    for (const auto& d : data_) texts.push_back(d.caption);
    tok_ = *BpeTokenizer::Train(texts, 300);
    options_.batch = 4;
    options_.warmup_steps = 2;
    options_.lr = 1e-3;
    options_.ema_decay = 0.9;
    options_.caption_dropout = 0.25;
    options_.seed = 3;
  }
  std::unique_ptr<Trainer> Make(torch::Device device = torch::kCPU) {
    torch::manual_seed(12);  // the same initial weights every time
    auto t = Trainer::Create(config_, tok_, options_, device);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return std::move(t).value();
  }
  static double MaxDiff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i)
      m = std::max(m, (a[i].cpu() - b[i].cpu()).abs().max().item<double>());
    return m;
  }
  ModelConfig config_ = *ModelConfig::Named("cpu-tiny");
  std::vector<LatentExample> data_;
  BpeTokenizer tok_;
  TrainOptions options_;
};

TEST(ExampleOrderTest, EachEpochIsAPermutation) {
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t i = 0; i < 7; ++i) seen.insert(ExampleIndex(9, 7, epoch * 7 + i));
    EXPECT_EQ(seen.size(), 7u);
  }
  EXPECT_EQ(ExampleIndex(9, 7, 12), ExampleIndex(9, 7, 12));
  // The cached order is the same, across epochs, seeds and sizes.
  ExampleOrder order;
  for (const auto& [seed, size] :
       std::vector<std::pair<uint64_t, int64_t>>{{9, 7}, {9, 5}, {4, 5}}) {
    for (int64_t k = 0; k < 3 * size; ++k)
      EXPECT_EQ(order.Index(seed, size, k), ExampleIndex(seed, size, k));
  }
}

TEST_F(TrainerTest, ResumingGivesTheSameWeightsAsTrainingStraight) {
  const std::string dir = testing::ScratchPath("ckpt");
  auto straight = Make();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(straight->Step(data_).ok());
  auto first = Make();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(first->Step(data_).ok());
  ASSERT_TRUE(first->Save(dir).ok());
  auto resumed = Trainer::Load(dir, torch::kCPU);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ((*resumed)->step(), 3);
  // Activation checkpointing is not part of the training's state: the same weights with it.
  (*resumed)->dit()->SetActivationCheckpointing(true);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*resumed)->Step(data_).ok());
  EXPECT_LT(MaxDiff((*resumed)->Parameters(), straight->Parameters()), 1e-6);
  EXPECT_LT(MaxDiff((*resumed)->ema_dit()->parameters(), straight->ema_dit()->parameters()), 1e-6);
  EXPECT_GT(MaxDiff(first->Parameters(), straight->Parameters()), 1e-5)
      << "training moved the weights";
  // The data must not change under a resumed run.
  std::vector<LatentExample> fewer(data_.begin(), data_.begin() + 5);
  EXPECT_EQ((*resumed)->Step(fewer).status().code(), StatusCode::kFailedPrecondition);
  // For sampling the optimiser state is not read; such a trainer neither trains nor saves.
  std::filesystem::remove(dir + "/optimizer.pt");
  auto frozen = Trainer::Load(dir, torch::kCPU, /*optimizer=*/false);
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  EXPECT_LT(MaxDiff((*frozen)->ema_dit()->parameters(), first->ema_dit()->parameters()), 1e-7);
  EXPECT_EQ((*frozen)->Step(data_).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*frozen)->Save(dir).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(RemoveTree(dir).ok());
}

// Each step draws the next one's examples ahead; a step given other data draws its own.
TEST_F(TrainerTest, DrawsAheadOnlyForTheSameData) {
  const std::string dir = testing::ScratchPath("ckpt_ahead");
  std::vector<LatentExample> other = data_;  // another vector of as many examples
  for (auto& e : other) e.latent = 0.5 - e.latent;
  auto ahead = Make();
  ASSERT_TRUE(ahead->Step(data_).ok());
  ASSERT_TRUE(ahead->Save(dir).ok());
  const Result<double> switched = ahead->Step(other);
  ASSERT_TRUE(switched.ok()) << switched.status().ToString();
  // A trainer loaded from the checkpoint has nothing drawn ahead.
  auto fresh = Trainer::Load(dir, torch::kCPU);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  const Result<double> expected = (*fresh)->Step(other);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  EXPECT_NEAR(*switched, *expected, 1e-6 * std::abs(*expected));
  auto again = Trainer::Load(dir, torch::kCPU);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  const Result<double> same_data = (*again)->Step(data_);
  ASSERT_TRUE(same_data.ok()) << same_data.status().ToString();
  EXPECT_GT(std::abs(*same_data - *expected), 1e-3 * std::abs(*expected))
      << "the two data vectors give different losses";
  EXPECT_TRUE(RemoveTree(dir).ok());
}

// LaunchStep() is Step() without the wait: the same losses and weights, step for step;
// a run told its length (set_steps_planned) trains as one that is not.
TEST_F(TrainerTest, LaunchedStepsTrainAsWaitedOnes) {
  auto waited = Make();
  auto launched = Make();
  launched->set_steps_planned(4);
  for (int i = 0; i < 4; ++i) {
    const Result<double> a = waited->Step(data_);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    const Result<torch::Tensor> b = launched->LaunchStep(data_);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(b->dim(), 0);
    const Result<double> value = Trainer::LossValue(*b, i);
    ASSERT_TRUE(value.ok()) << value.status().ToString();
    EXPECT_EQ(*value, *a) << "step " << i;
  }
  EXPECT_EQ(MaxDiff(waited->Parameters(), launched->Parameters()), 0);
  // Past the planned length the next batch is drawn in the step itself.
  const Result<double> a = waited->Step(data_);
  const Result<double> b = launched->Step(data_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(MaxDiff(waited->Parameters(), launched->Parameters()), 0);
}

// What two launched steps on `device` wait for (after a first step, which makes what
// later steps reuse: the rotary tables, autocast's caches), then what a Step() waits for.
struct StepWaits {
  std::vector<std::string> launched, waited;
};
StepWaits CountStepWaits(Trainer& trainer, const std::vector<LatentExample>& data) {
  StepWaits w;
  EXPECT_TRUE(trainer.LaunchStep(data).ok());
  {
    testing::HostWaitCensus census;
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(trainer.LaunchStep(data).ok());
    w.launched = census.waits();
  }
  testing::HostWaitCensus census;
  EXPECT_TRUE(trainer.Step(data).ok());
  w.waited = census.waits();
  return w;
}

// A launched step reads nothing on the host: no loss, no clipping coefficient. (On the CPU
// the copies cannot be told apart from no copy; the GPU variant below checks them.)
TEST_F(TrainerTest, ALaunchedStepReadsNothingOnTheHost) {
  const StepWaits w = CountStepWaits(*Make(), data_);
  EXPECT_TRUE(w.launched.empty()) << Join(w.launched, "\n");
  EXPECT_EQ(w.waited.size(), 1u) << "Step() reads its loss: " << Join(w.waited, "\n");
}

TEST_F(TrainerTest, ALaunchedStepWaitsForNothingOnTheGpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  const StepWaits w = CountStepWaits(*Make(torch::Device(torch::kCUDA, 0)), data_);
  EXPECT_TRUE(w.launched.empty()) << Join(w.launched, "\n");
  EXPECT_FALSE(w.waited.empty()) << "Step() reads its loss from the GPU";
}

TEST_F(TrainerTest, TheLossFallsOnAFixedBatch) {
  options_.caption_dropout = 0;
  options_.batch = 6;
  auto t = Make();
  std::vector<double> losses;
  for (int i = 0; i < 80; ++i) {
    auto l = t->Step(data_);
    ASSERT_TRUE(l.ok());
    losses.push_back(*l);
  }
  // Noise and t differ every step, so compare averages.
  const double first = (losses[0] + losses[1] + losses[2] + losses[3] + losses[4]) / 5;
  double last = 0;
  for (int i = 70; i < 80; ++i) last += losses[static_cast<size_t>(i)] / 10;
  EXPECT_LT(last, first * 0.8) << first << " -> " << last;
}

TEST_F(TrainerTest, SamplingIsDeterministicPerPrompt) {
  auto t = Make();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(t->Step(data_).ok());
  SampleOptions so;
  so.steps = 4;
  so.cfg = 3;
  so.seed = 5;
  const std::vector<std::string> prompts = {"a red square moving right",
                                            "a blue circle moving down"};
  const torch::Tensor a =
      SampleLatents(t->ema_dit(), t->ema_text(), t->tokenizer(), config_, prompts, so, torch::kCPU);
  const torch::Tensor b =
      SampleLatents(t->ema_dit(), t->ema_text(), t->tokenizer(), config_, prompts, so, torch::kCPU);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{2, 4, 3, 4, 4}));
  EXPECT_TRUE(torch::equal(a, b)) << "same seed and checkpoint, same output";
  const torch::Tensor one = SampleLatents(t->ema_dit(), t->ema_text(), t->tokenizer(), config_,
                                          {prompts[0]}, so, torch::kCPU);
  EXPECT_LT((one[0] - a[0]).abs().max().item<double>(), 1e-5)
      << "a prompt's sample ignores its batch";
  so.seed = 6;
  const torch::Tensor c =
      SampleLatents(t->ema_dit(), t->ema_text(), t->tokenizer(), config_, prompts, so, torch::kCPU);
  EXPECT_GT((c - a).abs().max().item<double>(), 1e-3);
}

TEST_F(TrainerTest, BadOptionsAndBrokenCheckpointsAreNamed) {
  TrainOptions bad = options_;
  bad.batch = 0;
  EXPECT_EQ(Trainer::Create(config_, tok_, bad, torch::kCPU).status().code(),
            StatusCode::kInvalidArgument);
  if (!compat::CudaAvailable()) {  // a clear error, not libtorch's exception
    EXPECT_EQ(Trainer::Create(config_, tok_, options_, torch::kCUDA).status().code(),
              StatusCode::kFailedPrecondition);
  }
  ModelConfig small = config_;
  small.text.vocab_size = 260;
  EXPECT_NE(
      Trainer::Create(small, tok_, options_, torch::kCPU).status().message().find("tokenizer has"),
      std::string::npos);
  auto t = Make();
  EXPECT_EQ(t->Step({}).status().code(), StatusCode::kInvalidArgument);
  DataParallel dp;
  dp.world = 3;
  EXPECT_NE(t->Step(data_, dp).status().message().find("divide evenly"), std::string::npos);

  const std::string dir = testing::ScratchPath("broken");
  EXPECT_EQ(Trainer::Load(dir, torch::kCPU).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(t->Step(data_).ok());
  ASSERT_TRUE(t->Save(dir).ok());
  // What a resume continues with, read without the weights.
  auto saved = ReadTrainerCheckpoint(dir);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_EQ(saved->step, 1);
  EXPECT_EQ(saved->config.ToJson(), config_.ToJson());
  EXPECT_EQ(saved->train, options_.ToJson());
  // Truncated weights.
  const std::string model = dir + "/model.pt";
  std::filesystem::resize_file(model, std::filesystem::file_size(model) / 2);
  auto r = Trainer::Load(dir, torch::kCPU);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.pt"), std::string::npos) << r.status().message();
  // Missing optimiser state.
  ASSERT_TRUE(t->Save(dir).ok());
  std::filesystem::remove(dir + "/optimizer.pt");
  r = Trainer::Load(dir, torch::kCPU);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("optimizer.pt"), std::string::npos);
  // Not a checkpoint at all.
  std::filesystem::remove(dir + "/config.json");
  EXPECT_NE(Trainer::Load(dir, torch::kCPU).status().message().find("config.json"),
            std::string::npos);
  EXPECT_TRUE(RemoveTree(dir).ok());
}

// ---------------------------------------------------------------- launch environment

TEST(LaunchEnvTest, ReadsTorchrunVariablesAndNamesBadOnes) {
  const char* vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
  for (const char* v : vars) ::unsetenv(v);
  auto one = LaunchEnvFromEnvironment();
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->world, 1);
  EXPECT_EQ(one->rank, 0);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("MASTER_ADDR", "10.0.0.7", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  auto four = LaunchEnvFromEnvironment();
  ASSERT_TRUE(four.ok()) << four.status().ToString();
  EXPECT_EQ(four->world, 4);
  EXPECT_EQ(four->rank, 3);
  EXPECT_EQ(four->local_rank, 3) << "LOCAL_RANK defaults to RANK";
  EXPECT_EQ(four->master_addr, "10.0.0.7");
  EXPECT_EQ(four->master_port, 29511);
  ::setenv("RANK", "4", 1);
  EXPECT_NE(LaunchEnvFromEnvironment().status().message().find("RANK=4"), std::string::npos);
  ::setenv("RANK", "x", 1);
  EXPECT_NE(LaunchEnvFromEnvironment().status().message().find("RANK='x'"), std::string::npos);
  ::unsetenv("RANK");
  EXPECT_NE(LaunchEnvFromEnvironment().status().message().find("RANK is not set"),
            std::string::npos);
  ::setenv("RANK", "0", 1);
  ::setenv("MASTER_PORT", "70000", 1);
  EXPECT_NE(LaunchEnvFromEnvironment().status().message().find("MASTER_PORT"), std::string::npos);
  for (const char* v : vars) ::unsetenv(v);
}

TEST(CollectiveTest, BackendsByNameAndWhatThisBuildLacks) {
  EXPECT_EQ(*ParseCollectiveBackend("gloo", true), CollectiveBackend::kGloo);
  EXPECT_EQ(*ParseCollectiveBackend("nccl", false), CollectiveBackend::kNccl);
  EXPECT_EQ(*ParseCollectiveBackend("auto", false), CollectiveBackend::kGloo);
  EXPECT_EQ(*ParseCollectiveBackend("auto", true), CollectiveBackendBuilt(CollectiveBackend::kNccl)
                                                       ? CollectiveBackend::kNccl
                                                       : CollectiveBackend::kGloo);
  auto bad = ParseCollectiveBackend("mpi", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'mpi'"), std::string::npos) << bad.status().ToString();

  // A backend this build lacks is refused before anything listens, saying what it needs.
  for (CollectiveBackend b : {CollectiveBackend::kGloo, CollectiveBackend::kNccl}) {
    if (CollectiveBackendBuilt(b)) continue;
    auto c = Collective::Connect(LaunchEnv(), std::chrono::seconds(5), b);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kNotSupported);
    const char* needs = b == CollectiveBackend::kGloo ? "libgloo-dev" : "--dist-backend gloo";
    EXPECT_NE(c.status().message().find(needs), std::string::npos) << c.status().ToString();
  }
}

// ---------------------------------------------------------------- on a GPU (skipped without)

// ||a - b|| / ||b|| over all elements of two lists of tensors (on any device).
double RelativeDistance(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff +=
        (a[i].cpu().to(torch::kDouble) - b[i].cpu().to(torch::kDouble)).pow(2).sum().item<double>();
    norm += b[i].cpu().to(torch::kDouble).pow(2).sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

std::vector<torch::Tensor> Minus(const std::vector<torch::Tensor>& a,
                                 const std::vector<torch::Tensor>& b) {
  std::vector<torch::Tensor> d;
  for (size_t i = 0; i < a.size(); ++i) d.push_back(a[i].detach().cpu() - b[i].detach().cpu());
  return d;
}

// bf16 autocast on CUDA trains the same model as fp32 on the CPU: from the same weights on
// the same batches (noise and t are drawn on the CPU), the updates agree up to rounding;
// the loss falls; a checkpoint written on the GPU loads on the CPU; GPU sampling is
// deterministic and close to the CPU's from the same weights.
TEST_F(TrainerTest, TrainsInBf16OnTheGpuAsInFp32OnTheCpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  const torch::Device gpu(torch::kCUDA, 0);
  options_.caption_dropout = 0;
  options_.batch = 6;
  auto cpu = Make();
  auto cuda = Make(gpu);
  std::vector<torch::Tensor> start;
  for (const auto& p : cpu->Parameters()) start.push_back(p.detach().clone());
  std::vector<double> losses;
  double loss_off = 0;  // the largest relative difference of a step's loss
  for (int i = 0; i < 10; ++i) {
    auto cpu_loss = cpu->Step(data_);
    ASSERT_TRUE(cpu_loss.ok()) << cpu_loss.status().ToString();
    auto l = cuda->Step(data_);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    losses.push_back(*l);
    loss_off = std::max(loss_off, std::abs(*l - *cpu_loss) / *cpu_loss);
  }
  const double off =
      RelativeDistance(Minus(cuda->Parameters(), start), Minus(cpu->Parameters(), start));
  // (Flushed: a crash later in the test must not lose the figure.)
  std::printf(
      "GPU bf16 vs CPU fp32 after 10 steps: updates differ by %.3f of their norm, losses by "
      "%.4f at most\n",
      off, loss_off);
  std::fflush(stdout);
  EXPECT_LT(off, 0.5);
  // Each step's loss is of the same draws (examples, timesteps, noise), though the GPU
  // draws each step's during the step before; another step's draws give another loss.
  EXPECT_LT(loss_off, 0.03);
  for (int i = 10; i < 80; ++i) {
    auto l = cuda->Step(data_);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    losses.push_back(*l);
  }
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += losses[static_cast<size_t>(i)] / 5;
  for (int i = 70; i < 80; ++i) last += losses[static_cast<size_t>(i)] / 10;
  EXPECT_LT(last, first * 0.8) << first << " -> " << last;

  const std::string dir = testing::ScratchPath("gpu_ckpt");
  ASSERT_TRUE(cuda->Save(dir).ok());
  auto loaded = Trainer::Load(dir, torch::kCPU, /*optimizer=*/false);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(MaxDiff((*loaded)->ema_dit()->parameters(), cuda->ema_dit()->parameters()), 0);
  EXPECT_TRUE(RemoveTree(dir).ok());

  SampleOptions so;
  so.steps = 4;
  so.cfg = 3;
  so.seed = 5;
  const std::vector<std::string> prompts = {"a red square moving right", "a green bar"};
  const torch::Tensor a = SampleLatents(cuda->ema_dit(), cuda->ema_text(), cuda->tokenizer(),
                                        config_, prompts, so, gpu);
  const torch::Tensor b = SampleLatents(cuda->ema_dit(), cuda->ema_text(), cuda->tokenizer(),
                                        config_, prompts, so, gpu);
  EXPECT_TRUE(torch::equal(a, b)) << "same seed and checkpoint, same output";
  const torch::Tensor c = SampleLatents((*loaded)->ema_dit(), (*loaded)->ema_text(),
                                        (*loaded)->tokenizer(), config_, prompts, so, torch::kCPU);
  const double sample_off = RelativeDistance({a}, {c});
  std::printf("GPU bf16 vs CPU fp32 sample: %.4f of its norm\n", sample_off);
  std::fflush(stdout);
  EXPECT_LT(sample_off, 0.05);
}

// The VAE's loss and gradients in bf16 autocast on the GPU match fp32 on the CPU.
TEST_F(VaeTest, Bf16OnTheGpuMatchesFp32OnTheCpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  const torch::Device gpu(torch::kCUDA, 0);
  torch::manual_seed(1);
  VideoVae on_gpu(config_.vae);  // the same weights as vae_
  on_gpu->to(gpu);
  on_gpu->eval();  // the latent mean, no sampling: both see the same computation
  const torch::Tensor clip = torch::rand({2, 3, 9, 32, 32}) * 2 - 1;
  const torch::Tensor cpu_loss = vae_->Loss(clip).total;
  cpu_loss.backward();
  torch::Tensor gpu_loss;
  {
    compat::CudaBf16Autocast amp(true);
    gpu_loss = on_gpu->Loss(clip.to(gpu)).total;
  }
  gpu_loss.backward();
  EXPECT_NEAR(gpu_loss.item<double>(), cpu_loss.item<double>(), 0.02 * cpu_loss.item<double>());
  std::vector<torch::Tensor> g_cpu, g_gpu;
  for (const auto& p : vae_->parameters()) g_cpu.push_back(p.grad());
  for (const auto& p : on_gpu->parameters()) g_gpu.push_back(p.grad());
  const double off = RelativeDistance(g_gpu, g_cpu);
  std::printf("VAE loss %.5f (CPU fp32) vs %.5f (GPU bf16); gradients differ by %.3f\n",
              cpu_loss.item<double>(), gpu_loss.item<double>(), off);
  EXPECT_LT(off, 0.1);
}

// TrainVae on the GPU (bf16 autocast): it trains, writes a folder the CPU loads, and a run
// interrupted and resumed on the GPU (the CUDA generator's state restored with the
// optimiser) ends where a straight one does, up to the GPU's nondeterministic reductions.
TEST_F(VaeTrainingTest, TrainsSavesAndResumesOnTheGpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  torch::manual_seed(7);
  const std::vector<TrainingClip> clips = RandomClips(4);
  VaeTrainOptions vo;
  vo.steps = 6;
  vo.batch = 2;
  vo.seed = 3;
  vo.save_every = 0;
  vo.device = torch::Device(torch::kCUDA, 0);
  auto straight = TrainVae(config_, clips, vo, File("straight"), nullptr, nullptr);
  ASSERT_TRUE(straight.ok()) << straight.status().ToString();
  EXPECT_TRUE(std::isfinite(straight->psnr) && straight->psnr > 5) << straight->psnr;
  std::atomic<bool> stop{false};
  auto stopped = TrainVae(
      config_, clips, vo, File("resumed"), [&](int64_t step, int64_t, double) { stop = step == 3; },
      &stop);
  ASSERT_EQ(stopped.status().code(), StatusCode::kCancelled) << stopped.status().ToString();
  vo.resume = true;
  auto resumed = TrainVae(config_, clips, vo, File("resumed"), nullptr, nullptr);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->steps_done, 3);
  const auto a = VaeTensors(File("straight"));  // loaded on the CPU
  const auto b = VaeTensors(File("resumed"));
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  torch::manual_seed(vo.seed);  // TrainVae's initial weights
  const auto initial = VaeTensors(VideoVae(config_.vae));
  double moved = 0, apart = 0;
  for (const auto& [name, t] : a) {
    if (name.find("latent_") != std::string::npos) continue;  // statistics, not weights
    moved = std::max(moved, (t - initial.at(name)).abs().max().item<double>());
    apart = std::max(apart, (t - b.at(name)).abs().max().item<double>());
  }
  std::printf("VAE on the GPU: weights moved up to %.3g; resumed and straight %.3g apart\n", moved,
              apart);
  std::fflush(stdout);
  EXPECT_LT(apart, 0.05 * moved);
}

// A group of one process (what a one-GPU machine can run over NCCL): the sum is the tensor
// itself, a broadcast from rank 0 keeps it, and the group is joined and left cleanly.
void CheckGroupOfOne(CollectiveBackend backend, torch::Device device) {
  LaunchEnv env;
  env.master_port = 0;  // rank 0 serves the store on any free port
  auto c = Collective::Connect(env, std::chrono::seconds(30), backend);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->world(), 1);
  torch::Tensor x = torch::arange(6, torch::dtype(torch::kFloat).device(device));
  ASSERT_TRUE((*c)->AllReduceSum(x).ok());
  EXPECT_TRUE(torch::equal(x.cpu(), torch::arange(6, torch::kFloat)));
  std::vector<torch::Tensor> all = {x, torch::ones({2, 3}, x.options())};
  ASSERT_TRUE((*c)->Broadcast(all, 0).ok());
  EXPECT_TRUE(torch::equal(all[1].cpu(), torch::ones({2, 3})));
}

TEST(QkNormTest, CudaKernelsMatchTheCpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  std::printf("reel CUDA kernels in this build: %s\n", HaveCudaKernels() ? "yes" : "no");
  std::fflush(stdout);
  struct Shape {
    int64_t b, n, h, d;
  };
  // h100-b's heads (64 wide; 240 positions will do, 1,280 would be slow on the CPU); 21
  // rows, which leave the vectorised kernels' last warp part empty; 128 wide (16 lanes a
  // row there); 48 wide, which only the one-warp-a-row kernel takes.
  const std::vector<Shape> shapes = {
      {3, 240, 12, 64}, {1, 7, 3, 64}, {2, 30, 4, 128}, {2, 12, 3, 48}};
  for (bool vector_kernels : {false, true}) {
    for (const Shape& shape : shapes) {
      for (torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
        for (bool rope : {false, true}) {
          if (rope && shape.n % 6 != 0) continue;  // the test's rotary grid is 3 x 2 x n/6
          const std::string name = std::string(vector_kernels ? "vector kernels, " : "") +
                                   std::to_string(shape.d) + " wide, " +
                                   std::to_string(shape.b * shape.n * shape.h) + " rows, " +
                                   (dtype == torch::kFloat ? "float32" : "bfloat16") +
                                   (rope ? ", rotary" : ", no rotary");
          SCOPED_TRACE(name);
          const QkNormCase cpu =
              MakeQkNormCase(dtype, rope, torch::kCPU, shape.b, shape.n, shape.h, shape.d);
          const QkNormCase gpu =
              MakeQkNormCase(dtype, rope, torch::kCUDA, shape.b, shape.n, shape.h, shape.d);
          const QkNormResult want = RunQkNorm(cpu, true);
          SetQkNormVectorKernels(vector_kernels);
          const QkNormResult got = RunQkNorm(gpu, true);
          const bool same_twice = torch::equal(RunQkNorm(gpu, true).grad_weight, got.grad_weight);
          SetQkNormVectorKernels(false);
          const QkNormResult composite = RunQkNorm(gpu, false);
          const double tol = dtype == torch::kFloat ? 1e-5 : 1e-2;
          std::printf("%s: out %.2e, grad x %.2e, grad w %.2e apart (CUDA composite: %.2e)\n",
                      name.c_str(), RelDiff(got.out, want.out),
                      RelDiff(got.grad_qkv, want.grad_qkv),
                      RelDiff(got.grad_weight, want.grad_weight), RelDiff(composite.out, want.out));
          std::fflush(stdout);
          EXPECT_EQ(got.out.scalar_type(), dtype);
          EXPECT_LT(RelDiff(got.out, want.out), tol);
          EXPECT_LT(RelDiff(got.grad_qkv, want.grad_qkv), tol);
          EXPECT_LT(RelDiff(got.grad_weight, want.grad_weight), tol);
          // Deterministic: the weight's gradient is summed in a fixed order.
          EXPECT_TRUE(same_twice);
        }
      }
    }
  }
}

TEST(NormModulateTest, CudaKernelsMatchTheCpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  // h100-b's width; float32 x (the residual stream), float32 or bfloat16 out.
  const NormModulateCase cpu = MakeNormModulateCase(torch::kFloat, torch::kCPU, 3, 300, 768);
  const NormModulateCase gpu = MakeNormModulateCase(torch::kFloat, torch::kCUDA, 3, 300, 768);
  const NormModulateResult want = RunNormModulate(cpu, true, torch::kFloat);
  for (torch::ScalarType out : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE(out == torch::kFloat ? "float32 out" : "bfloat16 out");
    const NormModulateResult got = RunNormModulate(gpu, true, out);
    const double tol = out == torch::kFloat ? 1e-5 : 1e-2;
    std::printf("NormModulate %s: out %.2e, grad x %.2e, grad shift/scale %.2e apart\n",
                out == torch::kFloat ? "float32" : "bfloat16", RelDiff(got.out, want.out),
                RelDiff(got.grad_x, want.grad_x), RelDiff(got.grad_ada, want.grad_ada));
    std::fflush(stdout);
    EXPECT_EQ(got.out.scalar_type(), out);
    EXPECT_LT(RelDiff(got.out, want.out), tol);
    EXPECT_LT(RelDiff(got.grad_x, want.grad_x), tol);
    EXPECT_LT(RelDiff(got.grad_ada, want.grad_ada), tol);
    EXPECT_TRUE(torch::equal(RunNormModulate(gpu, true, out).grad_ada, got.grad_ada));
  }
  // The cross-attention's LayerNorm with weight and bias, through the kernels, in bf16.
  const AffineCase cpu_affine = MakeAffineCase(torch::kFloat, torch::kCPU, 3, 300, 768);
  const AffineCase gpu_affine = MakeAffineCase(torch::kFloat, torch::kCUDA, 3, 300, 768);
  const auto want_affine = RunAffine(cpu_affine, [&] {
    return torch::layer_norm(cpu_affine.x, {768}, cpu_affine.w, cpu_affine.bias, 1e-6);
  });
  const auto got_affine = RunAffine(gpu_affine, [&] {
    return AffineLayerNorm(gpu_affine.x, gpu_affine.w, gpu_affine.bias, torch::kBFloat16, 1e-6);
  });
  std::printf(
      "AffineLayerNorm bfloat16: out %.2e, grad x %.2e, grad w %.2e, grad bias %.2e apart\n",
      RelDiff(got_affine[0], want_affine[0]), RelDiff(got_affine[1], want_affine[1]),
      RelDiff(got_affine[2], want_affine[2]), RelDiff(got_affine[3], want_affine[3]));
  std::fflush(stdout);
  EXPECT_EQ(got_affine[0].scalar_type(), torch::kBFloat16);
  for (size_t i = 0; i < got_affine.size(); ++i)
    EXPECT_LT(RelDiff(got_affine[i], want_affine[i]), 1e-2) << "tensor " << i;
}

TEST(GatedResidualTest, CudaKernelsMatchTheCpu) {
  if (!compat::CudaAvailable()) GTEST_SKIP() << "needs a CUDA libtorch and a GPU";
  // h100-b's width; float32 residual, y float32 or bfloat16 (autocast's matmul output). A
  // width of 750 is not a multiple of 4: the kernels' one-element path.
  for (int64_t d : {768, 750}) {
    for (torch::ScalarType y_dtype : {torch::kFloat, torch::kBFloat16}) {
      const bool bf16 = y_dtype == torch::kBFloat16;
      SCOPED_TRACE(std::to_string(d) + (bf16 ? " wide, bfloat16 y" : " wide, float32 y"));
      // The CPU reference takes float32 y: the bfloat16 values widened.
      const GatedResidualCase gpu =
          MakeGatedResidualCase(torch::kFloat, y_dtype, torch::kCUDA, 3, 300, d);
      GatedResidualCase cpu =
          MakeGatedResidualCase(torch::kFloat, torch::kFloat, torch::kCPU, 3, 300, d);
      {
        torch::NoGradGuard no_grad;
        cpu.ada.copy_(gpu.ada.to(torch::kCPU, torch::kFloat));
        cpu.y.copy_(gpu.y.to(torch::kCPU, torch::kFloat));
      }
      const GatedResidualResult want = RunGatedResidual(cpu, true),
                                got = RunGatedResidual(gpu, true);
      const GatedResidualResult composite = RunGatedResidual(gpu, false);
      const double tol = bf16 ? 1e-2 : 1e-6;
      std::printf(
          "GatedResidual %s y, width %lld: out %.2e, grad y %.2e, grad gate %.2e apart "
          "(CUDA composite: grad gate %.2e)\n",
          bf16 ? "bfloat16" : "float32", static_cast<long long>(d), RelDiff(got.out, want.out),
          RelDiff(got.grad_y, want.grad_y), RelDiff(got.grad_ada, want.grad_ada),
          RelDiff(composite.grad_ada, want.grad_ada));
      std::fflush(stdout);
      EXPECT_EQ(got.out.scalar_type(), torch::kFloat);
      EXPECT_EQ(got.grad_y.scalar_type(), y_dtype);
      EXPECT_LT(RelDiff(got.out, want.out), 1e-6);  // float32 arithmetic on the same values
      EXPECT_LT(RelDiff(got.grad_residual, want.grad_residual), 1e-12);
      EXPECT_LT(RelDiff(got.grad_y, want.grad_y), tol);
      EXPECT_LT(RelDiff(got.grad_ada, want.grad_ada), bf16 ? 1e-2 : 1e-5);  // in the gate's dtype
      // Deterministic: the gate's gradient is summed in a fixed order.
      EXPECT_TRUE(torch::equal(RunGatedResidual(gpu, true).grad_ada, got.grad_ada));
    }
  }
}

TEST(CollectiveTest, GlooGroupOfOne) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kGloo))
    GTEST_SKIP() << "built without Gloo's headers (Debian: libgloo-dev)";
  CheckGroupOfOne(CollectiveBackend::kGloo, torch::kCPU);
}

// Tensors of mixed dtypes, one of them a transposed (non-contiguous) view, one larger
// than the 64-byte buckets of CollectiveTest.BroadcastCoalesces; rank r's hold r's values.
std::vector<torch::Tensor> BroadcastCase(int rank) {
  const float v = static_cast<float>(rank);
  return {torch::arange(8, torch::kFloat).view({2, 4}) + 10 * v,
          torch::full({4}, 1 + v),
          torch::full({2}, 7 + rank, torch::kLong),
          (torch::arange(6, torch::kFloat).view({3, 2}) - v).t(),
          torch::full({4}, 2 * v),
          torch::linspace(0, 1, 40) * v};
}

TEST(CollectiveTest, BroadcastCoalesces) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kGloo))
    GTEST_SKIP() << "built without Gloo's headers (Debian: libgloo-dev)";
  const std::vector<std::vector<size_t>> want = {{0, 1}, {2}, {3, 4}, {5}};
  EXPECT_EQ(GroupForBroadcast(BroadcastCase(0), 64), want);
  EXPECT_EQ(GroupForBroadcast(BroadcastCase(0), 0).size(), 6u);
  EXPECT_EQ(GroupForBroadcast(BroadcastCase(0), 1 << 20).size(), 3u);  // by dtype only

  const int port = reel::testing::FreePort();
  ASSERT_GT(port, 0);
  std::vector<torch::Tensor> got[2];
  Status status[2];
  auto run = [&](int rank) {
    LaunchEnv env;
    env.rank = rank;
    env.world = 2;
    env.master_port = port;
    auto comm = Collective::Connect(env, std::chrono::seconds(60), CollectiveBackend::kGloo);
    if (!comm.ok()) {
      status[rank] = comm.status();
      return;
    }
    got[rank] = BroadcastCase(rank);
    status[rank] = (*comm)->Broadcast(got[rank], /*root=*/1, /*bucket_bytes=*/64);
  };
  std::thread t0(run, 0), t1(run, 1);
  t0.join();
  t1.join();
  ASSERT_TRUE(status[0].ok()) << status[0].ToString();
  ASSERT_TRUE(status[1].ok()) << status[1].ToString();
  const std::vector<torch::Tensor> root = BroadcastCase(1);
  for (int rank : {0, 1}) {
    ASSERT_EQ(got[rank].size(), root.size());
    for (size_t i = 0; i < root.size(); ++i) {
      SCOPED_TRACE("rank " + std::to_string(rank) + ", tensor " + std::to_string(i));
      EXPECT_EQ(got[rank][i].sizes(), root[i].sizes());
      EXPECT_EQ(got[rank][i].dtype(), root[i].dtype());
      EXPECT_TRUE(torch::equal(got[rank][i], root[i]));
    }
  }
}

// One rank of GradientReducerTest: a chain of four 8x8 layers, a weight only rank 1 uses
// and one that needs no gradient; rank r's input is r + 1.
struct ReducerRank {
  std::vector<torch::Tensor> local;     // this rank's own gradients of one backward
  std::vector<torch::Tensor> averaged;  // per step: the reducer's result, flattened
  std::vector<GradientReducer::Stats> stats;
  std::vector<double> extras;
  Status status;
};

void RunReducerRank(int rank, int port, int64_t bucket_bytes, ReducerRank* out) {
  LaunchEnv env;
  env.rank = rank;
  env.world = 2;
  env.local_rank = rank;
  env.master_port = port;
  auto comm = Collective::Connect(env, std::chrono::seconds(60), CollectiveBackend::kGloo);
  if (!comm.ok()) {
    out->status = comm.status();
    return;
  }
  // Listed last layer first, so that the first step's packing (reverse order) puts the
  // layer whose gradient comes last into the first bucket.
  std::vector<torch::Tensor> chain;
  for (int k = 0; k < 4; ++k) {
    chain.push_back(
        (torch::arange(64, torch::kFloat).view({8, 8}) * 0.01 + 0.1 * k - 0.3).requires_grad_());
  }
  torch::Tensor only_rank1 = torch::full({8}, 0.5).requires_grad_();
  torch::Tensor frozen = torch::ones({8});
  std::vector<torch::Tensor> params = {chain[3], chain[2], chain[1], chain[0], only_rank1, frozen};
  auto loss = [&] {
    torch::Tensor h = torch::full({2, 8}, static_cast<float>(rank + 1));
    for (const torch::Tensor& w : chain) h = torch::tanh(h.matmul(w));
    torch::Tensor l = (h * frozen).sum();
    if (rank == 1) l = l + (h.sum(0) * only_rank1).sum();
    return l;
  };
  auto zero = [&] {
    for (auto& p : params)
      if (p.grad().defined()) p.mutable_grad().zero_();
  };
  loss().backward();  // before the reducer: this rank's own gradients
  for (auto& p : params)
    out->local.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  zero();
  GradientReducer reducer(params, **comm, bucket_bytes);
  // Steps 1 and 2 are plain; step 3 runs backward twice (gradient accumulation).
  for (int step = 1; step <= 3; ++step) {
    zero();
    reducer.Begin();
    loss().backward();
    if (step == 3) loss().backward();
    auto extras = reducer.Finish(torch::full({1}, static_cast<float>(rank + 1)));
    if (!extras.ok()) {
      out->status = extras.status();
      return;
    }
    out->extras.push_back(extras->item<double>());
    out->stats.push_back(reducer.stats());
    std::vector<torch::Tensor> flat;
    for (auto& p : params)
      flat.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::full({p.numel()}, -1.0));
    out->averaged.push_back(torch::cat(flat));
  }
}

// Two ranks on two threads, each with its own Gloo group over loopback: the gradients come
// out as the mean of the ranks' own, whether sent in several buckets during backward, in
// one, or (backward run twice) all again after it.
TEST(GradientReducerTest, AveragesWhileBackwardRunsAndFallsBackWhenAGradientRepeats) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kGloo))
    GTEST_SKIP() << "built without Gloo's headers (Debian: libgloo-dev)";
  // Two 8x8 float32 layers per bucket; 0 is one bucket for everything.
  for (int64_t bucket_bytes : {int64_t{2 * 64 * 4}, int64_t{0}}) {
    SCOPED_TRACE("bucket_bytes " + std::to_string(bucket_bytes));
    const int port = reel::testing::FreePort();
    ASSERT_GT(port, 0);
    ReducerRank r0, r1;
    std::thread t0(RunReducerRank, 0, port, bucket_bytes, &r0);
    std::thread t1(RunReducerRank, 1, port, bucket_bytes, &r1);
    t0.join();
    t1.join();
    ASSERT_TRUE(r0.status.ok()) << r0.status.ToString();
    ASSERT_TRUE(r1.status.ok()) << r1.status.ToString();
    // The mean of the ranks' own gradients, `passes` backward passes each; the frozen
    // weight keeps no gradient (-1 in the flattened result).
    auto mean = [&](double passes) {
      std::vector<torch::Tensor> m;
      for (size_t i = 0; i + 1 < r0.local.size(); ++i)
        m.push_back((passes * (r0.local[i] + r1.local[i]) / 2).reshape({-1}));
      m.push_back(torch::full({8}, -1.0));
      return torch::cat(m);
    };
    ASSERT_EQ(r0.averaged.size(), 3u);
    for (int step = 0; step < 3; ++step) {
      SCOPED_TRACE("step " + std::to_string(step + 1));
      const torch::Tensor expected = mean(step == 2 ? 2 : 1);
      EXPECT_TRUE(torch::allclose(r0.averaged[step], expected, 1e-6, 1e-6));
      EXPECT_TRUE(torch::equal(r0.averaged[step], r1.averaged[step])) << "ranks disagree";
      EXPECT_EQ(r0.extras[step], 3.0);
      EXPECT_EQ(r1.extras[step], 3.0);
      EXPECT_EQ(r0.stats[step].fell_back, step == 2);
      EXPECT_EQ(r1.stats[step].fell_back, step == 2) << "rank 1 follows rank 0's vote";
    }
    // rank 0 never computes only_rank1's gradient, yet it gets the mean (half rank 1's).
    EXPECT_GT(r1.local[4].abs().sum().item<double>(), 0);
    if (bucket_bytes == 0) {
      EXPECT_EQ(r0.stats[0].buckets, 1);
      EXPECT_EQ(r0.stats[1].started_in_backward, 0) << "one bucket waits for a gradient rank 0 "
                                                       "never computes";
    } else {
      // Chain layers two per bucket, then only_rank1 alone (frozen is not packed).
      EXPECT_EQ(r0.stats[0].buckets, 3);
      // Step 1 packs in reverse listing order: the first bucket holds the first and second
      // layers, whose gradients come last, so nothing can start before backward ends.
      EXPECT_EQ(r0.stats[0].started_in_backward, 0);
      // From step 2 the buckets follow the arrival order: both chain buckets start during
      // backward on either rank; the last waits for only_rank1, which rank 0 never computes.
      EXPECT_EQ(r0.stats[1].started_in_backward, 2);
      EXPECT_EQ(r1.stats[1].started_in_backward, 3);
    }
  }
}

// A group of one on `device`: the hooks run on autograd's thread for that device, and the
// buckets (three, two started during backward from step 2) leave each gradient as it was.
void CheckReducerGroupOfOne(CollectiveBackend backend, torch::Device device) {
  LaunchEnv env;
  env.master_port = 0;
  auto comm = Collective::Connect(env, std::chrono::seconds(30), backend);
  ASSERT_TRUE(comm.ok()) << comm.status().ToString();
  std::vector<torch::Tensor> chain;
  for (int k = 0; k < 6; ++k) {
    chain.push_back(
        (torch::randn({64, 64}, torch::dtype(torch::kFloat).device(device)) / 8).requires_grad_());
  }
  const torch::Tensor x = torch::randn({16, 64}, torch::dtype(torch::kFloat).device(device));
  auto backward = [&] {
    torch::Tensor h = x;
    for (const torch::Tensor& w : chain) h = torch::tanh(h.matmul(w));
    h.pow(2).sum().backward();
  };
  backward();
  std::vector<torch::Tensor> own;
  for (auto& w : chain) own.push_back(w.grad().clone());
  GradientReducer reducer(chain, **comm, 2 * 64 * 64 * 4);
  for (int step = 1; step <= 2; ++step) {
    for (auto& w : chain) w.mutable_grad().zero_();
    reducer.Begin();
    backward();
    auto extras = reducer.Finish(torch::ones({2}, x.options()));
    ASSERT_TRUE(extras.ok()) << extras.status().ToString();
    EXPECT_TRUE(torch::equal(extras->cpu(), torch::ones({2})));
    EXPECT_EQ(reducer.stats().buckets, 3);
    EXPECT_FALSE(reducer.stats().fell_back);
    for (size_t i = 0; i < chain.size(); ++i)
      EXPECT_TRUE(torch::equal(chain[i].grad(), own[i])) << "step " << step << ", weight " << i;
  }
  EXPECT_EQ(reducer.stats().started_in_backward, 3) << "the last starts at the last gradient";
}

TEST(GradientReducerTest, GlooGroupOfOne) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kGloo))
    GTEST_SKIP() << "built without Gloo's headers (Debian: libgloo-dev)";
  CheckReducerGroupOfOne(CollectiveBackend::kGloo, torch::kCPU);
}

TEST(GradientReducerTest, NcclGroupOfOneOnTheGpu) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kNccl) || !compat::CudaAvailable())
    GTEST_SKIP() << "needs a CUDA libtorch with NCCL and a GPU";
  CheckReducerGroupOfOne(CollectiveBackend::kNccl, torch::Device(torch::kCUDA, 0));
}

TEST(CollectiveTest, NcclGroupOfOneOnTheGpu) {
  if (!CollectiveBackendBuilt(CollectiveBackend::kNccl) || !compat::CudaAvailable())
    GTEST_SKIP() << "needs a CUDA libtorch with NCCL and a GPU";
  CheckGroupOfOne(CollectiveBackend::kNccl, torch::Device(torch::kCUDA, 0));
}

}  // namespace
}  // namespace reel::gen
