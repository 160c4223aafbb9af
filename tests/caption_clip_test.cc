// Tests for the "clip" caption backend on a tiny CLIP made in the test: tags, matching
// scores for every caption, LAION-style aesthetic scores, resumability.

#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "caption/captioner.h"
#include "caption/frames.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "nets/aesthetic.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_clip.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string SharedVocab() {
  const std::string data = testing::SharedDataDir();
  const std::string path = data + "/clip/bpe_simple_vocab_16e6.txt.gz";
  return !data.empty() && fs::exists(path) ? path : "";
}

class ClipCaptionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vocab_ = SharedVocab();
    if (vocab_.empty()) {
      GTEST_SKIP() << "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not present; the CLIP "
                      "backend needs the real vocabulary";
    }
    testing::TinyClip c;
    c.vocab = ClipTokenizer::kVocabSize;
    c.tw = 64;
    model_path_ = dir_.File("tiny-clip.pt");
    testing::SaveArchive(testing::TinyState(c, 11), model_path_);
    aesthetic_path_ = dir_.File("aesthetic.pth");
    ASSERT_TRUE(SaveStateDict(testing::TinyAestheticState(c.embed, 3), aesthetic_path_).ok());

    SyntheticVideo v;
    v.width = 160;
    v.height = 96;
    v.seed = 9;
    SceneSpec a;
    a.kind = SceneKind::kStillImage;
    a.frames = 40;
    a.background = {30, 140, 40};
    a.foreground = {40, 80, 200};
    a.dx = -3;
    SceneSpec b = a;
    b.background = {220, 60, 40};
    b.foreground = {240, 220, 80};
    b.dx = 0;
    b.dy = 2;
    v.scenes = {a, b};
    const std::string path = dir_.File("v.mp4");
    ASSERT_TRUE(WriteSyntheticVideo(path, v).ok());
    auto catalog = Catalog::Open(dir_.File("c.db"));
    ASSERT_TRUE(catalog.ok());
    catalog_ = std::move(catalog).value();
    ASSERT_TRUE(Scan(*catalog_, {path}, {}).ok());
    clips_ = *catalog_->ListClips();
    ASSERT_EQ(clips_.size(), 2u);
    auto signals = MakeSignalsCaptioner();
    ASSERT_TRUE(RunCaptions(*catalog_, *signals, {}).ok());
  }

  ClipTaggerParams Params() const {
    ClipTaggerParams p;
    p.model = model_path_;
    p.vocab = vocab_;
    p.aesthetic = aesthetic_path_;
    return p;
  }

  TempDir dir_;
  std::string vocab_, model_path_, aesthetic_path_;
  std::unique_ptr<Catalog> catalog_;
  std::vector<ClipRecord> clips_;
};

TEST_F(ClipCaptionerTest, TagsScoresAndAestheticsMatchADirectComputation) {
  auto captioner = MakeClipCaptioner(Params());
  ASSERT_TRUE(captioner.ok()) << captioner.status().ToString();
  EXPECT_EQ((*captioner)->model(), "tiny-clip.pt");
  auto s = RunCaptions(*catalog_, **captioner, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->captioned, 2);
  EXPECT_TRUE(s->all_ok()) << (s->failures.empty() ? "" : s->failures[0].second);

  auto model = ClipModel::Load(model_path_);
  ASSERT_TRUE(model.ok());
  auto tokenizer = ClipTokenizer::Load(vocab_);
  ASSERT_TRUE(tokenizer.ok());
  auto predictor = AestheticPredictor::Load(aesthetic_path_);
  ASSERT_TRUE(predictor.ok()) << predictor.status().ToString();
  for (const ClipRecord& clip : clips_) {
    const CaptionRecord tags = catalog_->FindCaption(clip.id, "clip", "tiny-clip.pt")->value();
    EXPECT_FALSE(tags.text.empty());
    EXPECT_EQ(tags.text.back(), '.');
    ASSERT_NE(tags.params.Find("tags"), nullptr);
    EXPECT_EQ(tags.params.Find("tags")->Find("subject")->size(), 3u) << "the top 3 are kept";

    // Independently: frames at 10/50/90%, OpenAI preprocessing, the same CLIP.
    ClipInput in;
    in.clip = catalog_->FindClip(clip.id)->value();
    in.video = catalog_->FindVideoById(clip.video_id)->value();
    auto frames = SampleClipFrames(in, {0.1, 0.5, 0.9}, 0);
    ASSERT_TRUE(frames.ok());
    std::vector<torch::Tensor> images;
    for (const Frame& f : *frames)
      images.push_back(PreprocessImage(f.data.data(), f.width, f.height, 32));
    torch::NoGradGuard no_grad;
    torch::Tensor feats = (*model)->EncodeImage(torch::stack(images));
    feats = feats / feats.norm(2, -1, true);
    const double aesthetic = (*predictor)->Predict(feats).mean().item<double>();
    ASSERT_TRUE(in.clip.aesthetic.has_value());
    EXPECT_NEAR(*in.clip.aesthetic, aesthetic, 1e-5);

    const std::vector<CaptionScore> scores = *catalog_->ListClipCaptionScores(clip.id);
    ASSERT_EQ(scores.size(), 2u) << "the signals caption and the tag caption";
    for (const CaptionScore& score : scores) {
      EXPECT_EQ(score.name, "clip_match");
      EXPECT_EQ(score.model, "tiny-clip.pt");
      std::string text;
      for (const CaptionRecord& k : *catalog_->ListCaptions(clip.id)) {
        if (k.id == score.caption_id) text = k.text;
      }
      auto tokens = (*tokenizer)->Tokenize(text, 77, true);
      ASSERT_TRUE(tokens.ok());
      std::vector<int64_t> t(tokens->begin(), tokens->end());
      torch::Tensor tf = (*model)->EncodeText(torch::tensor(t).view({1, 77}));
      tf = tf / tf.norm(2, -1, true);
      const double expected = (*model)->logit_scale() * (tf[0] * feats[1]).sum().item<double>();
      EXPECT_NEAR(score.value, expected, 1e-4) << text;
    }
  }

  // Resumable: nothing left to do.
  auto again = RunCaptions(*catalog_, **captioner, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->done_before, 2);
  // A new caption lacks a score: the next run scores it without re-tagging.
  CaptionRecord vlm;
  vlm.clip_id = clips_[0].id;
  vlm.source = "vlm";
  vlm.model = "m";
  vlm.text = "a green painting drifts to the right";
  const int64_t vlm_id = *catalog_->AddCaption(vlm);
  const std::string tag_time =
      catalog_->FindCaption(clips_[0].id, "clip", "tiny-clip.pt")->value().created_at;
  auto third = RunCaptions(*catalog_, **captioner, {});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->scored_only, 1);
  EXPECT_EQ(third->captioned, 0);
  EXPECT_EQ(third->done_before, 1);
  EXPECT_EQ(catalog_->ListCaptionScores(vlm_id)->size(), 1u);
  EXPECT_EQ(catalog_->FindCaption(clips_[0].id, "clip", "tiny-clip.pt")->value().created_at,
            tag_time);
}

TEST_F(ClipCaptionerTest, ScoreOnlyWritesNoCaptions) {
  ClipTaggerParams p = Params();
  p.tags = false;
  p.aesthetic.clear();
  auto captioner = MakeClipCaptioner(p);
  ASSERT_TRUE(captioner.ok());
  auto s = RunCaptions(*catalog_, **captioner, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scored_only, 2);
  EXPECT_EQ(s->captioned, 0);
  for (const ClipRecord& clip : clips_) {
    EXPECT_EQ(catalog_->ListCaptions(clip.id)->size(), 1u);
    EXPECT_EQ(catalog_->ListClipCaptionScores(clip.id)->size(), 1u);
  }
}

TEST_F(ClipCaptionerTest, BadModelsAndVocabulariesFailUpFront) {
  ClipTaggerParams wrong_dims = Params();
  ASSERT_TRUE(SaveStateDict(testing::TinyAestheticState(768, 1), dir_.File("l14.pth")).ok());
  wrong_dims.aesthetic = dir_.File("l14.pth");
  auto a = MakeClipCaptioner(wrong_dims);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("expects 768-value CLIP embeddings"), std::string::npos)
      << a.status().message();

  ClipTaggerParams missing = Params();
  missing.model = "clip-vit-l-14";
  setenv("REEL_MODELS_DIR", dir_.File("no-models").c_str(), 1);
  auto m = MakeClipCaptioner(missing);
  unsetenv("REEL_MODELS_DIR");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("reel models fetch clip-vit-l-14"), std::string::npos)
      << m.status().message();

  ClipTaggerParams vocab = Params();
  testing::WriteFile(dir_.File("v.txt"), "[only]\none label\n");
  vocab.vocabulary_file = dir_.File("v.txt");
  auto v = MakeClipCaptioner(vocab);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("at least two labels"), std::string::npos);
}

}  // namespace
}  // namespace reel
