// Tests for nets/: the CLIP tokenizer (with the real vocabulary) and the CLIP model.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "nets/aesthetic.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "tests/support/scratch_path.h"
#include "tests/support/tiny_clip.h"
#include "util/strings.h"

namespace reel {
namespace {

using testing::SaveArchive;
using testing::TinyClip;
using testing::TinyState;

std::string VocabPath() {
  const std::string dir = std::string(REEL_SOURCE_DIR) + "/../shared/data/clip";
  const std::string path = dir + "/bpe_simple_vocab_16e6.txt.gz";
  return std::filesystem::exists(path) ? path : "";
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = VocabPath();
    if (path.empty()) return;
    auto t = ClipTokenizer::Load(path);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = std::move(t).value().release();
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) {
      GTEST_SKIP() << "../shared/data/clip/bpe_simple_vocab_16e6.txt.gz not present; "
                      "tokenizer tests skipped";
    }
  }
  std::vector<int> Enc(std::string_view s) { return tokenizer_->Encode(s); }
  std::vector<int> Cat(std::initializer_list<std::vector<int>> parts) {
    std::vector<int> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
  static ClipTokenizer* tokenizer_;
};
ClipTokenizer* TokenizerTest::tokenizer_ = nullptr;

TEST_F(TokenizerTest, MatchesOpenAIOnKnownTexts) {
  auto a = tokenizer_->Tokenize("a diagram");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(std::vector<int>(a->begin(), a->begin() + 4),
            (std::vector<int>{49406, 320, 22697, 49407}));
  EXPECT_EQ(a->size(), 77u);
  EXPECT_EQ((*a)[4], 0);
  auto b = tokenizer_->Tokenize("a photo of a cat");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(std::vector<int>(b->begin(), b->begin() + 7),
            (std::vector<int>{49406, 320, 1125, 539, 320, 2368, 49407}));
}

TEST_F(TokenizerTest, PunctuationNumbersAndApostrophes) {
  // Punctuation runs are their own pieces.
  EXPECT_EQ(Enc("hello, world!"), Cat({Enc("hello"), Enc(","), Enc("world"), Enc("!")}));
  EXPECT_EQ(Enc("wait...what?!"), Cat({Enc("wait"), Enc("..."), Enc("what"), Enc("?!")}));
  // Every digit is its own piece.
  EXPECT_EQ(Enc("2024"), Cat({Enc("2"), Enc("0"), Enc("2"), Enc("4")}));
  EXPECT_EQ(Enc("4k60fps"), Cat({Enc("4"), Enc("k"), Enc("6"), Enc("0"), Enc("fps")}));
  // English contractions split off; curly apostrophes are straightened first (ftfy).
  EXPECT_EQ(Enc("it's"), Cat({Enc("it"), Enc("'s")}));
  EXPECT_EQ(Enc("don't"), Cat({Enc("don"), Enc("'t")}));
  EXPECT_EQ(Enc("we're"), Cat({Enc("we"), Enc("'re")}));
  EXPECT_EQ(Enc("it\xE2\x80\x99s"), Enc("it's"));
  EXPECT_EQ(Enc("\xE2\x80\x9Cquoted\xE2\x80\x9D"), Enc("\"quoted\""));
  // A leading apostrophe that is no contraction stays punctuation.
  EXPECT_EQ(Enc("'hello"), Cat({Enc("'"), Enc("hello")}));
}

TEST_F(TokenizerTest, CaseWhitespaceAndEntities) {
  EXPECT_EQ(Enc("A Photo OF a CAT"), Enc("a photo of a cat"));
  EXPECT_EQ(Enc("  a \t photo\n\nof   a cat  "), Enc("a photo of a cat"));
  EXPECT_EQ(Enc("a\xC2\xA0photo"), Enc("a photo"));  // no-break space is whitespace
  EXPECT_EQ(Enc("fish &amp; chips"), Enc("fish & chips"));
  EXPECT_EQ(Enc("fish &amp;amp; chips"), Enc("fish & chips"));  // unescaped twice
  EXPECT_EQ(Enc("&lt;b&gt;bold&lt;/b&gt;"), Enc("<b>bold</b>"));
  EXPECT_EQ(Enc("caf&eacute; &#233; &#xE9;"), Enc("caf\xC3\xA9 \xC3\xA9 \xC3\xA9"));
  EXPECT_EQ(Enc("\xEF\xAC\x81sh"), Enc("fish"));          // the fi ligature
  EXPECT_EQ(Enc("\xEF\xBC\xA1\xEF\xBC\xA2"), Enc("ab"));  // full-width letters
  EXPECT_EQ(ClipTokenizer::HtmlUnescape("&notit; &amp &#0; &#x110000;"),
            "\xC2\xACit; & \xEF\xBF\xBD \xEF\xBF\xBD");
}

TEST_F(TokenizerTest, NonAsciiRoundTrips) {
  for (const char* text :
       {"caf\xC3\xA9 cr\xC3\xA8me br\xC3\xBBl\xC3\xA9",
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE5\x8B\x95\xE7\x94\xBB",
        "\xD0\xBA\xD0\xBE\xD1\x82 \xD0\xBD\xD0\xB0 \xD0\xBA\xD1\x80\xD1\x8B\xD1\x88\xD0\xB5",
        "emoji \xF0\x9F\x8E\xAC time"}) {
    const std::vector<int> ids = Enc(text);
    EXPECT_FALSE(ids.empty()) << text;
    // Decode joins pieces with spaces after each word; compare without spaces.
    std::string decoded = tokenizer_->Decode(ids), original = ClipTokenizer::CleanText(text);
    decoded.erase(std::remove(decoded.begin(), decoded.end(), ' '), decoded.end());
    original.erase(std::remove(original.begin(), original.end(), ' '), original.end());
    EXPECT_EQ(decoded, original) << text;
  }
  // A letter run is one piece even across scripts' letters.
  EXPECT_EQ(tokenizer_->Decode(Enc("Stra\xC3\x9F"
                                   "e")),
            "stra\xC3\x9F"
            "e ");
}

TEST_F(TokenizerTest, SpecialTokensAndContextLength) {
  EXPECT_EQ(Enc("<|endoftext|>"), std::vector<int>{ClipTokenizer::kEndToken});
  EXPECT_EQ(Enc("<|startoftext|>"), std::vector<int>{ClipTokenizer::kStartToken});
  std::string longtext;
  for (int i = 0; i < 100; ++i) longtext += "cat ";
  auto refused = tokenizer_->Tokenize(longtext);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("context length 77"), std::string::npos);
  auto cut = tokenizer_->Tokenize(longtext, 77, /*truncate=*/true);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->size(), 77u);
  EXPECT_EQ(cut->front(), ClipTokenizer::kStartToken);
  EXPECT_EQ(cut->back(), ClipTokenizer::kEndToken);
  EXPECT_EQ((*cut)[1], Enc("cat")[0]);
  EXPECT_EQ(tokenizer_->Decode(*tokenizer_->Tokenize("a photo of a cat!")), "a photo of a cat ! ");
  EXPECT_EQ(*tokenizer_->Tokenize(""), std::vector<int>([] {
    std::vector<int> v(77, 0);
    v[0] = 49406;
    v[1] = 49407;
    return v;
  }()));
}

TEST(TokenizerLoadTest, BadVocabularyFiles) {
  EXPECT_EQ(ClipTokenizer::Load("/no/such/vocab.txt.gz").status().code(), StatusCode::kNotFound);
  const std::string path = testing::ScratchPath("short_vocab.txt");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("#version\na b\n", f);
    std::fclose(f);
  }
  auto t = ClipTokenizer::Load(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kCorruption);
}

// ---------------------------------------------------------------- CLIP model

namespace F = torch::nn::functional;

// An independent forward pass built from torch::nn modules (sequence-first, as OpenAI).
torch::Tensor RefTransformer(torch::Tensor x, const std::map<std::string, torch::Tensor>& s,
                             const std::string& prefix, int64_t layers, int64_t width,
                             const torch::Tensor& mask) {
  torch::NoGradGuard no_grad;
  const int64_t heads = width / 64;
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = prefix + std::to_string(i) + ".";
    torch::nn::LayerNorm ln1(torch::nn::LayerNormOptions({width})),
        ln2(torch::nn::LayerNormOptions({width}));
    ln1->weight.copy_(s.at(p + "ln_1.weight"));
    ln1->bias.copy_(s.at(p + "ln_1.bias"));
    ln2->weight.copy_(s.at(p + "ln_2.weight"));
    ln2->bias.copy_(s.at(p + "ln_2.bias"));
    torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(width, heads));
    mha->in_proj_weight.copy_(s.at(p + "attn.in_proj_weight"));
    mha->in_proj_bias.copy_(s.at(p + "attn.in_proj_bias"));
    mha->out_proj->weight.copy_(s.at(p + "attn.out_proj.weight"));
    mha->out_proj->bias.copy_(s.at(p + "attn.out_proj.bias"));
    torch::nn::Linear fc(width, 4 * width), proj(4 * width, width);
    fc->weight.copy_(s.at(p + "mlp.c_fc.weight"));
    fc->bias.copy_(s.at(p + "mlp.c_fc.bias"));
    proj->weight.copy_(s.at(p + "mlp.c_proj.weight"));
    proj->bias.copy_(s.at(p + "mlp.c_proj.bias"));
    torch::Tensor h = ln1(x);
    x = x + std::get<0>(mha->forward(h, h, h, torch::Tensor(), false, mask));
    h = fc(ln2(x));
    x = x + proj(h * torch::sigmoid(1.702 * h));
  }
  return x;
}

torch::Tensor RefImage(const torch::Tensor& images, const std::map<std::string, torch::Tensor>& s,
                       const TinyClip& c) {
  torch::NoGradGuard no_grad;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, c.vw, c.patch).stride(c.patch).bias(false));
  conv->weight.copy_(s.at("visual.conv1.weight"));
  torch::Tensor x = conv(images);                                // [N, W, g, g]
  x = x.reshape({x.size(0), x.size(1), -1}).permute({2, 0, 1});  // [g*g, N, W]
  torch::Tensor cls = s.at("visual.class_embedding").expand({1, x.size(1), c.vw});
  x = torch::cat({cls, x}, 0) + s.at("visual.positional_embedding").unsqueeze(1);
  x = F::layer_norm(x, F::LayerNormFuncOptions({c.vw})
                           .weight(s.at("visual.ln_pre.weight"))
                           .bias(s.at("visual.ln_pre.bias")));
  x = RefTransformer(x, s, "visual.transformer.resblocks.", c.vlayers, c.vw, {});
  x = F::layer_norm(x[0], F::LayerNormFuncOptions({c.vw})
                              .weight(s.at("visual.ln_post.weight"))
                              .bias(s.at("visual.ln_post.bias")));
  return x.mm(s.at("visual.proj"));
}

torch::Tensor RefText(const torch::Tensor& tokens, const std::map<std::string, torch::Tensor>& s,
                      const TinyClip& c) {
  torch::NoGradGuard no_grad;
  torch::Tensor x =
      F::embedding(tokens, s.at("token_embedding.weight")) + s.at("positional_embedding");
  x = x.permute({1, 0, 2});
  torch::Tensor mask =
      torch::full({c.context, c.context}, -std::numeric_limits<float>::infinity()).triu(1);
  x = RefTransformer(x, s, "transformer.resblocks.", c.tlayers, c.tw, mask).permute({1, 0, 2});
  x = F::layer_norm(
      x,
      F::LayerNormFuncOptions({c.tw}).weight(s.at("ln_final.weight")).bias(s.at("ln_final.bias")));
  std::vector<torch::Tensor> rows;
  const torch::Tensor eot = tokens.argmax(-1);
  for (int64_t i = 0; i < tokens.size(0); ++i) rows.push_back(x[i][eot[i].item<int64_t>()]);
  return torch::stack(rows).mm(s.at("text_projection"));
}

class ClipModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = TinyState(config_);
    path_ = testing::ScratchPath("tiny_clip.pt");
    SaveArchive(state_, path_);
  }
  TinyClip config_;
  std::map<std::string, torch::Tensor> state_;
  std::string path_;
};

TEST_F(ClipModelTest, InfersTheArchitectureFromShapes) {
  auto m = ClipModel::Load(path_);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const ClipConfig& c = (*m)->config();
  EXPECT_EQ(c.vision_width, 128);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.vision_heads(), 2);
  EXPECT_EQ(c.vision_patch_size, 8);
  EXPECT_EQ(c.image_resolution, 32);
  EXPECT_EQ(c.transformer_width, 128);
  EXPECT_EQ(c.transformer_layers, 2);
  EXPECT_EQ(c.transformer_heads, 2);
  EXPECT_EQ(c.context_length, 77);
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.embed_dim, 64);
  EXPECT_NEAR((*m)->logit_scale(), 1 / 0.07, 1e-4);
}

TEST_F(ClipModelTest, FeaturesMatchAnIndependentComputation) {
  auto m = ClipModel::Load(path_);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  torch::manual_seed(11);
  const torch::Tensor images = torch::randn({3, 3, 32, 32});
  const torch::Tensor got = (*m)->EncodeImage(images);
  const torch::Tensor want = RefImage(images, state_, config_);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-5) << (got - want).abs().max().item<float>();

  torch::Tensor tokens = torch::zeros({2, 77}, torch::kLong);
  const std::vector<std::vector<int64_t>> texts = {{998, 5, 17, 400, 999}, {998, 42, 999}};
  for (size_t i = 0; i < texts.size(); ++i) {
    for (size_t j = 0; j < texts[i].size(); ++j) tokens[i][j] = texts[i][j];
  }
  const torch::Tensor tgot = (*m)->EncodeText(tokens);
  const torch::Tensor twant = RefText(tokens, state_, config_);
  EXPECT_LT((tgot - twant).abs().max().item<float>(), 1e-5)
      << (tgot - twant).abs().max().item<float>();
  // Padding after the end token does not change the features.
  torch::Tensor padded = tokens.clone();
  padded[1][10] = 3;
  EXPECT_LT(((*m)->EncodeText(padded)[1] - tgot[1]).abs().max().item<float>(), 1e-6);
}

TEST_F(ClipModelTest, Bfloat16RunsCloseToFloat) {
  ClipLoadOptions bf16;
  bf16.dtype = torch::kBFloat16;
  auto a = ClipModel::Load(path_);
  auto b = ClipModel::Load(path_, bf16);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  torch::manual_seed(3);
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  const torch::Tensor fa =
      F::normalize((*a)->EncodeImage(images), F::NormalizeFuncOptions().dim(-1));
  const torch::Tensor fb =
      F::normalize((*b)->EncodeImage(images), F::NormalizeFuncOptions().dim(-1));
  EXPECT_GT((fa * fb).sum(-1).min().item<float>(), 0.99);
}

TEST_F(ClipModelTest, MissingOrMisshapedParametersAreNamed) {
  auto missing = state_;
  missing.erase("visual.transformer.resblocks.1.mlp.c_fc.bias");
  SaveArchive(missing, path_);
  auto r = ClipModel::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("missing parameter 'visual.transformer.resblocks.1.mlp.c_fc.bias'"),
      std::string::npos)
      << r.status().message();

  auto wrong = state_;
  wrong["text_projection"] = torch::randn({128, 64});
  wrong["ln_final.bias"] = torch::randn({127});
  SaveArchive(wrong, path_);
  r = ClipModel::Load(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'ln_final.bias' has shape [127], expected [128]"),
            std::string::npos)
      << r.status().message();

  auto resnet = state_;
  resnet["visual.layer1.0.conv1.weight"] = torch::randn({4, 4, 1, 1});
  SaveArchive(resnet, path_);
  EXPECT_EQ(ClipModel::Load(path_).status().code(), StatusCode::kNotSupported);

  const std::string junk = testing::ScratchPath("junk.pt");
  std::FILE* f = std::fopen(junk.c_str(), "w");
  std::fputs("not an archive", f);
  std::fclose(f);
  r = ClipModel::Load(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("junk.pt"), std::string::npos);
}

// Pillow 9.4.0, Image.resize(size, Image.BICUBIC) on a 37x23 RGB test image whose values
// are (7x + 13y + 50c) % 256: output size, byte sum, first 12 and last 6 bytes.
struct PillowCase {
  int w, h;
  int64_t sum;
  std::vector<int> head, tail;
};

// ---------------------------------------------------------------- aesthetic predictor

TEST(AestheticTest, StateDictRoundTripAndTheReleasedArchitecture) {
  const std::string path = testing::ScratchPath("aesthetic.pth");
  const auto state = testing::TinyAestheticState(768);
  ASSERT_TRUE(SaveStateDict(state, path).ok());
  auto p = AestheticPredictor::Load(path);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->input_dim(), 768);
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({4, 768});
  x = x / x.norm(2, -1, true);
  // nn.Sequential(Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear) in eval.
  torch::nn::Sequential ref(torch::nn::Linear(768, 1024), torch::nn::Dropout(0.2),
                            torch::nn::Linear(1024, 128), torch::nn::Dropout(0.2),
                            torch::nn::Linear(128, 64), torch::nn::Dropout(0.1),
                            torch::nn::Linear(64, 16), torch::nn::Linear(16, 1));
  {
    torch::NoGradGuard g;
    for (auto& item : ref->named_parameters()) item.value().copy_(state.at("layers." + item.key()));
  }
  ref->eval();
  const torch::Tensor want = ref->forward(x).squeeze(-1);
  const torch::Tensor got = (*p)->Predict(x);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
}

TEST(AestheticTest, MissingOrMisshapedTensorsAreNamed) {
  auto state = testing::TinyAestheticState(512);
  state.erase("layers.4.bias");
  auto missing = AestheticPredictor::FromStateDict(state, torch::kCPU, "a.pth");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing parameter 'layers.4.bias'"),
            std::string::npos);
  state = testing::TinyAestheticState(512);
  state["layers.2.weight"] = torch::zeros({128, 1000});
  auto shaped = AestheticPredictor::FromStateDict(state, torch::kCPU, "a.pth");
  ASSERT_FALSE(shaped.ok());
  EXPECT_NE(shaped.status().message().find("'layers.2.weight' has shape [128, 1000]"),
            std::string::npos)
      << shaped.status().message();
  const std::string text = testing::ScratchPath("not-a-zip.pth");
  {
    std::FILE* f = std::fopen(text.c_str(), "w");
    std::fputs("legacy pickle", f);
    std::fclose(f);
  }
  auto legacy = AestheticPredictor::Load(text);
  ASSERT_FALSE(legacy.ok());
  EXPECT_EQ(legacy.status().code(), StatusCode::kNotSupported);
}

TEST(ClipPreprocessTest, ResizeMatchesPillowByteForByte) {
  const int w = 37, h = 23;
  std::vector<uint8_t> img(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c)
        img[(y * w + x) * 3 + c] = static_cast<uint8_t>((x * 7 + y * 13 + c * 50) % 256);
    }
  }
  const std::vector<PillowCase> cases = {
      {11,
       7,
       29403,
       {25, 75, 125, 47, 97, 147, 71, 121, 171, 95, 145, 200},
       {225, 28, 79, 128, 41, 101}},
      {80,
       50,
       1527344,
       {0, 48, 98, 0, 50, 100, 3, 53, 103, 7, 57, 107},
       {27, 76, 126, 28, 78, 128}},
      {37,
       9,
       127115,
       {11, 61, 111, 18, 68, 118, 25, 75, 125, 32, 82, 132},
       {71, 58, 108, 14, 65, 115}},
      {20,
       23,
       175652,
       {3, 53, 103, 16, 66, 116, 29, 79, 129, 42, 92, 142},
       {7, 60, 110, 22, 73, 123}},
  };
  for (const PillowCase& c : cases) {
    std::vector<uint8_t> out(static_cast<size_t>(c.w) * c.h * 3);
    PillowResizeBicubic(img.data(), w, h, out.data(), c.w, c.h);
    int64_t sum = 0;
    for (uint8_t v : out) sum += v;
    EXPECT_EQ(sum, c.sum) << c.w << "x" << c.h;
    EXPECT_EQ(std::vector<int>(out.begin(), out.begin() + 12), c.head) << c.w << "x" << c.h;
    EXPECT_EQ(std::vector<int>(out.end() - 6, out.end()), c.tail) << c.w << "x" << c.h;
  }
}

TEST(ClipPreprocessTest, OpenAIPipelineOnAWideImage) {
  // 300x200 -> resize to 336x224 (Pillow bicubic) -> centre crop at x 56 -> normalise.
  // Pillow 9.4.0 reference: crop byte sum 19188503, first pixels 149 219 33 ..., last 219 33 103.
  const int w = 300, h = 200;
  std::vector<uint8_t> img(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        img[(y * w + x) * 3 + c] =
            static_cast<uint8_t>((x * 3 + y * 5 + c * 70 + (x * y) % 17) % 256);
      }
    }
  }
  const torch::Tensor t = PreprocessImage(img.data(), w, h, 224);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 224, 224}));
  // Undo the normalisation to recover the bytes.
  torch::Tensor bytes = torch::empty_like(t);
  for (int c = 0; c < 3; ++c) bytes[c] = ((t[c] * kClipStd[c] + kClipMean[c]) * 255).round();
  EXPECT_EQ(bytes.to(torch::kDouble).sum().item<double>(), 19188503.0);
  EXPECT_EQ(bytes[0][0][0].item<float>(), 149);
  EXPECT_EQ(bytes[1][0][0].item<float>(), 219);
  EXPECT_EQ(bytes[2][0][0].item<float>(), 33);
  EXPECT_EQ(bytes[0][223][223].item<float>(), 219);
  EXPECT_EQ(bytes[2][223][223].item<float>(), 103);
}

}  // namespace
}  // namespace reel
