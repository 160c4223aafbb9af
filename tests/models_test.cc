// Tests for the model registry and `reel models`: fetching with SHA-256 verification
// from a local server, and tokenize.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "net/model_fetch.h"
#include "nets/models.h"
#include "tests/support/http_server.h"
#include "tests/support/test_support.h"
#include "util/sha256.h"
#include "util/strings.h"

namespace reel {
namespace {

using testing::HttpTestRequest;
using testing::HttpTestResponse;
using testing::RunReel;

class ModelsTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("REEL_MODELS_DIR", dir_.path().c_str(), 1); }
  void TearDown() override { ::unsetenv("REEL_MODELS_DIR"); }
  testing::TempDir dir_;
};

TEST_F(ModelsTest, RegistryNamesAndMissingModelsSayHowToFetch) {
  auto spec = FindModelSpec("clip-vit-b-32");
  ASSERT_TRUE(spec.ok());
  EXPECT_NE(spec->url.find(spec->sha256), std::string::npos);  // OpenAI's URL holds the digest
  EXPECT_EQ(spec->needs, std::vector<std::string>{"clip-vocab"});
  EXPECT_FALSE(FindModelSpec("clip-vit-h-99").ok());
  auto missing = InstalledModelPath("clip-vit-b-32");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("reel models fetch clip-vit-b-32"), std::string::npos);
  EXPECT_EQ(ModelsDir(), dir_.path());
  // A path is accepted as is.
  testing::WriteFile(dir_.File("mine.pt"), "x");
  EXPECT_EQ(*ResolveModel(dir_.File("mine.pt")), dir_.File("mine.pt"));
  EXPECT_FALSE(ResolveModel("no-such-thing").ok());
}

TEST_F(ModelsTest, FetchKeepsOnlyFilesWithTheRightDigest) {
  const std::string payload = "pretend these are weights";
  testing::TestHttpServer server([&](const HttpTestRequest&) {
    HttpTestResponse r;
    r.body = payload;
    return r;
  });
  ModelSpec good;
  good.name = "toy";
  good.file = "toy.bin";
  good.sha256 = Sha256Hex(payload);
  auto path = FetchModel(good, server.Url("/toy.bin"));
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(*ReadFile(*path), payload);

  ModelSpec bad = good;
  bad.file = "bad.bin";
  bad.sha256 = std::string(64, '0');
  auto refused = FetchModel(bad, server.Url("/bad.bin"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find("expected 0000"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("bad.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("bad.bin.download")));

  // Through the command: a registry model from a mirror with the wrong content is refused.
  auto r = RunReel({"models", "fetch", "clip-vocab", "--url", server.Url("/vocab.gz")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("SHA-256 is " + Sha256Hex(payload)), std::string::npos) << r.err;
  // A file not in the registry needs --url and --sha256.
  r = RunReel({"models", "fetch", "extra.bin"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunReel({"models", "fetch", "extra.bin", "--url", server.Url("/x"), "--sha256",
               Sha256Hex(payload)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir_.File("extra.bin")));
}

TEST_F(ModelsTest, FetchWithoutAServerFailsClearly) {
  auto r = RunReel({"models", "fetch", "clip-vocab", "--url",
                    "http://127.0.0.1:" + std::to_string(testing::UnusedPort()) + "/v.gz"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("fetching model 'clip-vocab'"), std::string::npos) << r.err;
  r = RunReel({"models", "list", "--json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("\"installed\": false"), std::string::npos);
}

TEST_F(ModelsTest, TokenizePrintsTokenIds) {
  const std::string vocab = testing::SourceDir() + "/../shared/data/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!std::filesystem::exists(vocab)) GTEST_SKIP() << "CLIP vocabulary not in ../shared";
  auto r = RunReel({"models", "tokenize", "--vocab", vocab, "a diagram", "a photo of a cat"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "49406 320 22697 49407\n49406 320 1125 539 320 2368 49407\n");
  r = RunReel({"models", "tokenize", "a cat"});  // vocabulary not installed
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("reel models fetch clip-vocab"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace reel
