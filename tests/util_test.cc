// Tests for util/: Status, Rational, Json, SHA-256, strings, Progress.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"
#include "util/files.h"
#include "util/json.h"
#include "util/parallel.h"
#include "util/progress.h"
#include "util/rational.h"
#include "util/sha256.h"
#include "util/status.h"
#include "util/strings.h"

namespace reel {
namespace {

// ---------------------------------------------------------------- Status / Result

Result<int> Half(int v) {
  if (v % 2 != 0) return Status::InvalidArgument(std::to_string(v) + " is odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  REEL_ASSIGN_OR_RETURN(int h, Half(v));
  REEL_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = Status::Corruption("clip.mp4: moov atom not found");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.ToString(), "corruption: clip.mp4: moov atom not found");
  EXPECT_EQ(s.WithContext("ingest").message(), "ingest: clip.mp4: moov atom not found");
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(Status::OK().ToString(), "OK");
}

TEST(StatusTest, ResultPropagatesErrors) {
  EXPECT_EQ(*Quarter(12), 3);
  Result<int> r = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
  EXPECT_EQ(r.value_or(-1), -1);
}

// ---------------------------------------------------------------- Rational

TEST(RationalTest, Normalises) {
  Rational r(60000, 2002);
  EXPECT_EQ(r.num(), 30000);
  EXPECT_EQ(r.den(), 1001);
  EXPECT_EQ(Rational(3, -6), Rational(-1, 2));
  EXPECT_EQ(Rational(0, 5), Rational(0, 1));
  EXPECT_FALSE(Rational(1, 0).valid());
}

TEST(RationalTest, ExactTimestamps) {
  // Frame 1 of 29.97 fps in a 1/30000 time base.
  EXPECT_EQ(TicksToSeconds(1001, Rational(1, 30000)), Rational(1001, 30000));
  // Frame n at 30000/1001 fps is at n * 1001/30000 s exactly, for any n.
  const Rational fps(30000, 1001);
  for (int64_t n : {0LL, 1LL, 30LL, 1798LL, 107892LL}) {
    const Rational t = Rational::FromInt(n) / fps;
    EXPECT_EQ(t * fps, Rational::FromInt(n));
  }
  EXPECT_EQ(Rational(1, 3) + Rational(1, 6), Rational(1, 2));
  EXPECT_EQ(Rational(1, 3) - Rational(1, 2), Rational(-1, 6));
  EXPECT_EQ(Rational(2, 3) * Rational(3, 4), Rational(1, 2));
  EXPECT_EQ(Rational(1, 2) / Rational(1, 4), Rational(2, 1));
  EXPECT_FALSE((Rational(1, 2) / Rational(0, 1)).valid());
}

TEST(RationalTest, ComparesExactly) {
  // Doubles cannot tell these apart; 128-bit cross multiplication can.
  const Rational a(9007199254740993LL, 9007199254740992LL);
  const Rational b(1, 1);
  EXPECT_TRUE(b < a);
  EXPECT_TRUE(Rational(1001, 30000) < Rational(1, 29));
  EXPECT_TRUE(Rational(-1, 2) < Rational(1, 3));
}

TEST(RationalTest, OverflowIsReportedNotWrapped) {
  const Rational big(INT64_MAX, 1);
  EXPECT_FALSE((big + big).valid());
  EXPECT_FALSE((big * Rational(2, 1)).valid());
  // But large intermediate products that reduce are fine.
  EXPECT_EQ(Rational(INT64_MAX, 3) * Rational(3, INT64_MAX), Rational(1, 1));
}

TEST(RationalTest, Rounding) {
  EXPECT_EQ(Rational(7, 2).Floor(), 3);
  EXPECT_EQ(Rational(7, 2).Ceil(), 4);
  EXPECT_EQ(Rational(7, 2).Round(), 4);
  EXPECT_EQ(Rational(-7, 2).Floor(), -4);
  EXPECT_EQ(Rational(-7, 2).Ceil(), -3);
  EXPECT_EQ(Rational(-7, 2).Round(), -4);
  EXPECT_EQ(Rational(5, 3).Round(), 2);
  EXPECT_EQ(Rational(4, 3).Round(), 1);
}

TEST(RationalTest, ParseAndFormat) {
  EXPECT_EQ(*Rational::Parse("30000/1001"), Rational(30000, 1001));
  EXPECT_EQ(*Rational::Parse("25"), Rational(25, 1));
  EXPECT_EQ(*Rational::Parse("-3/4"), Rational(-3, 4));
  EXPECT_FALSE(Rational::Parse("29.97").ok());
  EXPECT_FALSE(Rational::Parse("1/0").ok());
  EXPECT_FALSE(Rational::Parse("").ok());
  EXPECT_FALSE(Rational::Parse("a/b").ok());
  EXPECT_EQ(Rational(30000, 1001).ToString(), "30000/1001");
  EXPECT_EQ(Rational(25, 1).ToString(), "25");
  EXPECT_EQ(*Rational::ParseDecimal("1.5"), Rational(3, 2));
  EXPECT_EQ(*Rational::ParseDecimal("-0.25"), Rational(-1, 4));
  EXPECT_EQ(*Rational::ParseDecimal(".5"), Rational(1, 2));
  EXPECT_EQ(*Rational::ParseDecimal("2"), Rational(2, 1));
  EXPECT_EQ(*Rational::ParseDecimal("3/4"), Rational(3, 4));
  EXPECT_FALSE(Rational::ParseDecimal("1.").ok());
  EXPECT_FALSE(Rational::ParseDecimal("1.2.3").ok());
  EXPECT_FALSE(Rational::ParseDecimal("x.5").ok());
  EXPECT_EQ(Rational::Approximate(29.97002997, 1001), Rational(30000, 1001));
  EXPECT_EQ(Rational::Approximate(0.5), Rational(1, 2));
  EXPECT_EQ(FormatTimecode(Rational(3661500, 1000)), "01:01:01.500");
  EXPECT_EQ(FormatTimecode(Rational(1001, 30000)), "00:00:00.033");
}

// ---------------------------------------------------------------- Json

TEST(JsonTest, ParsesAndDumpsRoundTrip) {
  const std::string text =
      R"({"a":1,"b":[true,false,null],"c":"x\"y\\z\n","d":-2.5,"e":{},"f":[],"g":1e300})";
  Result<Json> j = Json::Parse(text);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j).Find("a")->as_int(), 1);
  EXPECT_TRUE((*j).Find("a")->is_int());
  EXPECT_EQ((*j).Find("b")->size(), 3u);
  EXPECT_EQ((*j).Find("c")->as_string(), "x\"y\\z\n");
  EXPECT_DOUBLE_EQ((*j).Find("d")->as_double(), -2.5);
  Result<Json> again = Json::Parse(j->Dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *j);
  EXPECT_EQ(Json::Parse(j->Dump(2))->Dump(), j->Dump());
}

TEST(JsonTest, KeepsInsertionOrder) {
  Json o = Json::MakeObject();
  o["zeta"] = 1;
  o["alpha"] = 2;
  o["mid"] = "x";
  EXPECT_EQ(o.Dump(), R"({"zeta":1,"alpha":2,"mid":"x"})");
}

TEST(JsonTest, UnicodeEscapes) {
  Result<Json> j = Json::Parse(R"("caf\u00e9 \ud83c\udfac")");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->as_string(), "caf\xC3\xA9 \xF0\x9F\x8E\xAC");
  EXPECT_FALSE(Json::Parse(R"("\ud83c")").ok());  // unpaired surrogate
}

TEST(JsonTest, BytesNotInUtf8AreWrittenAsPythonsSurrogateEscapesAndReadBack) {
  // A Latin-1 file name: json.loads in Python gives 'caf\udce9.mp4', which open() and
  // os.fsencode turn back into these bytes (U+FFFD, written before, named no file).
  const std::string name = "caf\xe9 \xff\xC3.mp4 \xC3\xA9";
  Json s(name);
  EXPECT_EQ(s.Dump(), "\"caf\\udce9 \\udcff\\udcc3.mp4 \xC3\xA9\"");
  auto back = Json::Parse(s.Dump());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->as_string(), name);
  // Every byte value round-trips.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(Json::Parse(Json(all).Dump())->as_string(), all);
  // Lone surrogates that no byte gives stay errors.
  EXPECT_FALSE(Json::Parse(R"("\udc7f")").ok());
  EXPECT_FALSE(Json::Parse(R"("\udfff")").ok());
  Json ctl(std::string("a\x01z"));
  EXPECT_EQ(ctl.Dump(), "\"a\\u0001z\"");
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));
  EXPECT_FALSE(IsValidUtf8(name));
  EXPECT_EQ(ReplaceInvalidUtf8("a\xe9"
                               "b\xC3\xA9"),
            "a\xEF\xBF\xBD"
            "b\xC3\xA9");
}

TEST(JsonTest, ErrorsNameLineAndColumn) {
  Result<Json> j = Json::Parse("{\n  \"a\": [1, 2,]\n}");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("line 2"), std::string::npos) << j.status().message();
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"abc", "[1] 2",
                          "{\"a\":1,}", "-", "1e", "\"\t\""}) {
    EXPECT_FALSE(Json::Parse(bad).ok()) << bad;
  }
}

TEST(JsonTest, NumbersRoundTrip) {
  for (double v : {0.1, 1.0 / 3.0, 1e-300, 123456789.125, -0.0}) {
    Json j(v);
    EXPECT_EQ(Json::Parse(j.Dump())->as_double(), v);
  }
  EXPECT_EQ(Json(2.0).Dump(), "2.0");
  EXPECT_EQ(Json(std::nan("")).Dump(), "null");
  EXPECT_EQ(Json(INT64_MAX).Dump(), "9223372036854775807");
  EXPECT_TRUE(Json::Parse("9223372036854775807")->is_int());
  EXPECT_FALSE(Json::Parse("9223372036854775808")->is_int());  // too big: a double
}

// ---------------------------------------------------------------- SHA-256

struct ShaVector {
  std::string input;
  const char* hex;
};

const ShaVector kShaVectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
     "lmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

TEST(Sha256Test, NistVectorsBothImplementations) {
  for (auto impl : {Sha256::Impl::kAuto, Sha256::Impl::kPortable}) {
    for (const auto& v : kShaVectors) {
      Sha256 h(impl);
      h.Update(v.input);
      EXPECT_EQ(Sha256::ToHex(h.Finish()), v.hex) << "input '" << v.input << "'";
    }
  }
}

TEST(Sha256Test, MillionAs) {
  const std::string chunk(1000, 'a');
  for (auto impl : {Sha256::Impl::kAuto, Sha256::Impl::kPortable}) {
    Sha256 h(impl);
    for (int i = 0; i < 1000; ++i) h.Update(chunk);
    EXPECT_EQ(Sha256::ToHex(h.Finish()),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
}

TEST(Sha256Test, HardwareAndPortableAgreeOnRandomSplits) {
  std::mt19937_64 rng(42);
  std::string data(100000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (int trial = 0; trial < 20; ++trial) {
    Sha256 a(Sha256::Impl::kAuto), b(Sha256::Impl::kPortable);
    size_t pos = 0;
    const size_t len = rng() % data.size();
    while (pos < len) {
      const size_t n = std::min<size_t>(len - pos, rng() % 300);
      a.Update(data.data() + pos, n);
      b.Update(data.data() + pos, n);
      pos += n;
    }
    EXPECT_EQ(a.Finish(), b.Finish()) << "length " << len;
  }
}

TEST(Sha256Test, FileDigestMatchesAndErrorsNameThePath) {
  testing::TempDir dir;
  const std::string path = dir.File("data.bin");
  testing::WriteFile(path, "abc");
  Result<std::string> h = Sha256File(path);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, kShaVectors[1].hex);
  Result<std::string> missing = Sha256File(dir.File("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

// ---------------------------------------------------------------- strings

TEST(StringsTest, NaturalOrder) {
  EXPECT_TRUE(NaturalLess("frame2.png", "frame10.png"));
  EXPECT_FALSE(NaturalLess("frame10.png", "frame2.png"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("img_0009", "img_0010"));
  EXPECT_TRUE(NaturalLess("x9", "x09"));  // equal value: fewer leading zeros first
  EXPECT_FALSE(NaturalLess("same", "same"));
  EXPECT_TRUE(NaturalLess("abc", "abcd"));
}

TEST(StringsTest, SplitTrimFormat) {
  EXPECT_EQ(Split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(Split("a,,b", ',', true), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Trim("  x y \n"), "x y");
  EXPECT_EQ(FormatBytes(17), "17 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatDuration(185), "3m05s");
}

TEST(StringsTest, Base64RoundTripsAndRejectsGarbage) {
  // RFC 4648 test vectors.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    auto back = Base64Decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded;
    EXPECT_EQ(*back, plain);
  }
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  EXPECT_EQ(*Base64Decode(Base64Encode(bytes)), bytes);
  EXPECT_FALSE(Base64Decode("Zm9v!").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zg").ok());
  EXPECT_FALSE(Base64Decode("Z").ok());
}

TEST(StringsTest, AtomicWriteReplacesWhole) {
  testing::TempDir dir;
  const std::string path = dir.File("out.txt");
  ASSERT_TRUE(WriteFileAtomic(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second").ok());
  EXPECT_EQ(*ReadFile(path), "second");
  EXPECT_FALSE(WriteFileAtomic(dir.File("no/such/dir/f"), "x").ok());
}

TEST(StringsTest, ReadFileRefusesAFolder) {
  testing::TempDir dir;
  auto r = ReadFile(dir.path());  // a stream would read it as empty
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Is a directory"), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(ReadFile(dir.File("missing")).ok());
}

TEST(StringsTest, TextAsUtf8DecodesWhatEditorsSave) {
  // "héllo €𝄞" as UTF-8 and UTF-16 both ways (𝄞 is U+1D11E, a surrogate pair).
  const std::string utf8 = "h\xC3\xA9llo \xE2\x82\xAC\xF0\x9D\x84\x9E\n";
  const std::string le("\xFF\xFEh\0\xE9\0l\0l\0o\0 \0\xAC\x20\x34\xD8\x1E\xDD\n\0", 22);
  const std::string be("\xFE\xFF\0h\0\xE9\0l\0l\0o\0 \x20\xAC\xD8\x34\xDD\x1E\0\n", 22);
  EXPECT_EQ(*TextAsUtf8(utf8, "a.txt"), utf8);
  EXPECT_EQ(*TextAsUtf8("\xEF\xBB\xBF" + utf8, "a.txt"), utf8);
  EXPECT_EQ(*TextAsUtf8(le, "a.txt"), utf8);
  EXPECT_EQ(*TextAsUtf8(be, "a.txt"), utf8);
  EXPECT_EQ(*TextAsUtf8("\xFF\xFE", "a.txt"), "");
  EXPECT_EQ(*TextAsUtf8("caf\xE9", "a.txt"), "caf\xE9");  // Latin-1 passes as it is

  auto odd = TextAsUtf8(le.substr(0, 21), "odd.txt");
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("odd.txt: UTF-16 text (byte-order mark FF FE)"),
            std::string::npos)
      << odd.status().ToString();
  auto lone = TextAsUtf8(std::string("\xFF\xFEh\0\x34\xD8h\0", 8), "lone.txt");
  ASSERT_FALSE(lone.ok());
  EXPECT_NE(lone.status().message().find("at byte 4: a high surrogate without a low one"),
            std::string::npos)
      << lone.status().ToString();
  // UTF-16 without a mark, and UTF-32 with one: NULs, not text.
  auto bare = TextAsUtf8(le.substr(2), "bare.txt");
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("bare.txt: a NUL byte at byte 1"), std::string::npos)
      << bare.status().ToString();
  EXPECT_FALSE(TextAsUtf8(std::string("\xFF\xFE\0\0h\0\0\0", 8), "u32.txt").ok());
}

// ---------------------------------------------------------------- ProcessInParallel

TEST(ParallelTest, EveryItemOnceOnTheCallingThread) {
  for (int jobs : {1, 2, 8, 100}) {
    std::vector<int> seen(1000, 0);
    const auto caller = std::this_thread::get_id();
    ParallelOptions o;
    o.jobs = jobs;
    Status s = ProcessInParallel<size_t>(
        seen.size(), o, [](size_t i) { return i; },
        [&](size_t&& i) {
          EXPECT_EQ(std::this_thread::get_id(), caller);
          ++seen[i];
          return Status::OK();
        });
    ASSERT_TRUE(s.ok());
    for (int v : seen) ASSERT_EQ(v, 1) << "jobs " << jobs;
  }
  ParallelOptions o;
  EXPECT_TRUE(ProcessInParallel<int>(
                  0, o, [](size_t) { return 0; }, [](int&&) { return Status::OK(); })
                  .ok());
}

TEST(ParallelTest, AConsumerErrorStopsTheWork) {
  std::atomic<int> worked{0};
  int consumed = 0;
  ParallelOptions o;
  o.jobs = 2;
  Status s = ProcessInParallel<int>(
      10000, o,
      [&](size_t i) {
        ++worked;
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // 10000 items: >= 1 s
        return static_cast<int>(i);
      },
      [&](int&&) { return ++consumed == 5 ? Status::IOError("disk full") : Status::OK(); });
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_EQ(consumed, 5);
  EXPECT_LT(worked.load(), 10000);
}

TEST(ParallelTest, CancelConsumesWhatIsInFlightAndIdleRuns) {
  std::atomic<bool> cancel{false};
  std::atomic<int> worked{0};
  int consumed = 0, idle = 0;
  ParallelOptions o;
  o.jobs = 2;
  o.cancel = &cancel;
  o.idle_seconds = 0.01;
  o.on_idle = [&] {
    ++idle;
    return Status::OK();
  };
  Status s = ProcessInParallel<int>(
      1000, o,
      [&](size_t i) {
        if (++worked == 3) cancel.store(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        return static_cast<int>(i);
      },
      [&](int&&) {
        ++consumed;
        return Status::OK();
      });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(consumed, worked.load());  // nothing computed is lost
  EXPECT_LT(worked.load(), 10);
  EXPECT_GT(idle, 0);
}

// ---------------------------------------------------------------- Progress

TEST(ProgressTest, PlainLinesWhenNotATerminal) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress::Options o;
    o.label = "ingest";
    o.unit = "files";
    o.total = 10;
    o.line_every = 4;
    o.style = Progress::Style::kLines;
    o.out = f;
    Progress p(o);
    for (int i = 0; i < 10; ++i) p.Advance();
    p.Finish("done");
  }
  std::rewind(f);
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), f) != nullptr) text += buf;
  std::fclose(f);
  const std::vector<std::string> lines = Split(Trim(text), '\n');
  ASSERT_EQ(lines.size(), 4u) << text;  // at 4, 8, the final 10, and the summary
  EXPECT_TRUE(StartsWith(lines[0], "ingest: 4/10 files (40%)")) << lines[0];
  EXPECT_TRUE(StartsWith(lines[2], "ingest: 10/10 files (100%)")) << lines[2];
  EXPECT_EQ(lines[3], "done");
}

TEST(RemoveTreeTest, RemovesNestedFoldersButNotWhatLinksPointTo) {
  namespace fs = std::filesystem;
  testing::TempDir dir;
  const std::string keep = dir.File("keep.txt");
  std::ofstream(keep) << "outside";
  const std::string tree = dir.File("tree");
  fs::create_directories(tree + "/a/b");
  std::ofstream(tree + "/a/b/file") << "x";
  std::ofstream(tree + "/top") << "y";
  fs::create_symlink(keep, tree + "/a/link");
  fs::create_directory_symlink(dir.path(), tree + "/a/dirlink");
  ASSERT_TRUE(RemoveTree(tree).ok());
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(fs::exists(keep)) << "a link's target stays";
  EXPECT_TRUE(RemoveTree(tree).ok()) << "a missing path is fine";
  std::ofstream(tree) << "a plain file";
  EXPECT_TRUE(RemoveTree(tree).ok());
  EXPECT_FALSE(fs::exists(tree));
}

TEST(WalkTreeTest, FollowsLinksOnceAndEndsLinkLoops) {
  namespace fs = std::filesystem;
  testing::TempDir dir;
  const std::string outside = dir.File("outside");
  fs::create_directories(outside);
  std::ofstream(outside + "/o.mp4") << "o";
  const std::string root = dir.File("root");
  fs::create_directories(root + "/sub/deeper");
  fs::create_directories(root + "/.hidden");
  std::ofstream(root + "/a.mp4") << "a";
  std::ofstream(root + "/.dot.mp4") << "hidden";
  std::ofstream(root + "/.hidden/h.mp4") << "hidden";
  std::ofstream(root + "/sub/deeper/d.mp4") << "d";
  fs::create_directory_symlink("..", root + "/sub/up");          // a loop back to root
  fs::create_directory_symlink(outside, root + "/sub/out");      // a folder elsewhere
  fs::create_directory_symlink(outside, root + "/sub/out2");     // the same folder again
  fs::create_symlink(root + "/a.mp4", root + "/sub/alias.mp4");  // a link to a file
  fs::create_symlink(root + "/nowhere.mp4", root + "/dangling.mp4");
  fs::create_symlink(root + "/self", root + "/self");  // a link to itself

  std::vector<std::string> files, folders;
  std::vector<std::pair<std::string, std::string>> unreadable;
  ASSERT_TRUE(
      WalkTree(
          root, WalkOptions{},
          [&](const std::string& path, TreeEntry kind) {
            (kind == TreeEntry::kFile ? files : folders).push_back(path.substr(root.size()));
          },
          &unreadable)
          .ok());
  std::sort(files.begin(), files.end());
  std::sort(folders.begin(), folders.end());
  // The folder behind out and out2 is listed once, under whichever name came first.
  ASSERT_EQ(files.size(), 4u) << Join(files, " ");
  EXPECT_EQ(files[0], "/a.mp4");
  EXPECT_EQ(files[1], "/sub/alias.mp4");
  EXPECT_EQ(files[2], "/sub/deeper/d.mp4");
  EXPECT_TRUE(files[3] == "/sub/out/o.mp4" || files[3] == "/sub/out2/o.mp4") << files[3];
  ASSERT_EQ(folders.size(), 3u) << Join(folders, " ");
  EXPECT_EQ(folders[0], "/sub");
  EXPECT_EQ(folders[1], "/sub/deeper");
  EXPECT_TRUE(folders[2] == "/sub/out" || folders[2] == "/sub/out2") << folders[2];
  EXPECT_TRUE(unreadable.empty());

  // Not recursive: the root's own entries only.
  files.clear();
  ASSERT_TRUE(
      WalkTree(root, WalkOptions{false, true}, [&](const std::string& path, TreeEntry kind) {
        if (kind == TreeEntry::kFile) files.push_back(path.substr(root.size()));
      }).ok());
  EXPECT_EQ(files, std::vector<std::string>{"/a.mp4"});

  // Hidden names included on request.
  int hidden = 0;
  ASSERT_TRUE(WalkTree(root, WalkOptions{true, false}, [&](const std::string& path, TreeEntry) {
                hidden += path.find("/.") != std::string::npos;
              }).ok());
  EXPECT_EQ(hidden, 3);  // .dot.mp4, .hidden, .hidden/h.mp4

  EXPECT_EQ(
      WalkTree(dir.File("missing"), WalkOptions{}, [](const std::string&, TreeEntry) {}).code(),
      StatusCode::kIOError);
  EXPECT_EQ(WalkTree(root + "/a.mp4", WalkOptions{}, [](const std::string&, TreeEntry) {}).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace reel
