// Tests for nets/: the CLIP tokenizer (with the real vocabulary) and the CLIP model.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "nets/clip_tokenizer.h"
#include "util/strings.h"

namespace reel {
namespace {

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
  EXPECT_EQ(Enc("\xEF\xAC\x81sh"), Enc("fish"));  // the fi ligature
  EXPECT_EQ(Enc("\xEF\xBC\xA1\xEF\xBC\xA2"), Enc("ab"));  // full-width letters
  EXPECT_EQ(ClipTokenizer::HtmlUnescape("&notit; &amp &#0; &#x110000;"),
            "\xC2\xACit; & \xEF\xBF\xBD \xEF\xBF\xBD");
}

TEST_F(TokenizerTest, NonAsciiRoundTrips) {
  for (const char* text : {"caf\xC3\xA9 cr\xC3\xA8me br\xC3\xBBl\xC3\xA9",
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
  EXPECT_EQ(tokenizer_->Decode(Enc("Stra\xC3\x9F" "e")), "stra\xC3\x9F" "e ");
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
  const std::string path = ::testing::TempDir() + "/short_vocab.txt";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("#version\na b\n", f);
    std::fclose(f);
  }
  auto t = ClipTokenizer::Load(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace reel
