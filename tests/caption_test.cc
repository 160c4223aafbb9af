// Tests for caption/: templates, the signals sentence, sidecars and original captions,
// the VLM and merge backends against a local HTTP server, and the resumable run.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "caption/captioner.h"
#include "caption/chat_client.h"
#include "caption/frames.h"
#include "caption/signals_caption.h"
#include "caption/tag_vocabulary.h"
#include "caption/template.h"
#include "curate/ingest.h"
#include "curate/scan.h"
#include "curate/sidecar.h"
#include "db/catalog.h"
#include "tests/support/http_server.h"
#include "tests/support/test_support.h"
#include "util/json.h"
#include "util/strings.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::HttpTestRequest;
using testing::HttpTestResponse;
using testing::RunReel;
using testing::TempDir;
using testing::TestHttpServer;

// ---------------------------------------------------------------- templates

TEST(TemplateTest, GroupsDropWhenAPlaceholderIsEmpty) {
  auto t = CaptionTemplate::Parse("[{a} of ]{b}[ in {c}][, {d}]", {"a", "b", "c", "d"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Render({{"a", "a close-up"}, {"b", "a dog"}, {"c", "a park"}}),
            "a close-up of a dog in a park");
  EXPECT_EQ(t->Render({{"b", "a dog"}, {"d", "at night"}}), "a dog, at night");
  EXPECT_EQ(t->Render({}), "");
  EXPECT_EQ(t->used_names(), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(TemplateTest, FiltersLiteralsAndNesting) {
  auto t =
      CaptionTemplate::Parse("{{x}} [[{a|sentence}]] [outer [inner {b}] {a|lower}]", {"a", "b"});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Render({{"a", "a Dog runs"}}), "{x} [A Dog runs.] outer a dog runs");
  EXPECT_EQ(t->Render({{"a", "x"}, {"b", "y"}}), "{x} [X.] outer inner y x");
  EXPECT_EQ(AsSentence("  hello   world,  "), "Hello world.");
  EXPECT_EQ(AsSentence("Done!"), "Done!");
  EXPECT_EQ(TidyText(" a ,  b ;c . "), "a, b;c.");
}

TEST(TemplateTest, ErrorsNameTheProblemAndItsOffset) {
  auto unknown = CaptionTemplate::Parse("hello {nmae}", {"name"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown name '{nmae}'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("offset 6"), std::string::npos)
      << unknown.status().message();
  EXPECT_FALSE(CaptionTemplate::Parse("[{name}", {"name"}).ok());
  EXPECT_FALSE(CaptionTemplate::Parse("{name}]", {"name"}).ok());
  EXPECT_FALSE(CaptionTemplate::Parse("{name", {"name"}).ok());
  EXPECT_FALSE(CaptionTemplate::Parse("x}", {"name"}).ok());
  EXPECT_FALSE(CaptionTemplate::Parse("{name|shout}", {"name"}).ok());
}

// ---------------------------------------------------------------- signals sentence

ClipSignals Signals(double brightness, double motion, const std::string& camera,
                    std::vector<std::pair<std::string, double>> colors) {
  ClipSignals s;
  s.brightness = brightness;
  s.motion = motion;
  s.static_ratio = motion < 0.1 ? 1.0 : 0.0;
  s.camera_motion = camera;
  s.sharpness = 1500;
  s.colorfulness = 40;
  s.black_ratio = 0;
  s.text_area = 0;
  for (const auto& [name, fraction] : colors) {
    Json c = Json::MakeObject();
    c["name"] = name;
    c["fraction"] = fraction;
    s.dominant_colors.push_back(c);
  }
  return s;
}

TEST(SignalsSentenceTest, TheIssueExample) {
  const ClipSignals s =
      Signals(0.7, 0.4, "pan_left", {{"green", 0.45}, {"blue", 0.35}, {"red", 0.1}});
  EXPECT_EQ(SignalsSentence(s, Rational(4, 1)),
            "A bright, slow 4-second shot; the camera pans left; mostly green and blue.");
}

TEST(SignalsSentenceTest, WordsFollowTheDocumentedThresholds) {
  EXPECT_EQ(SignalsSentence(Signals(0.5, 0.0, "static", {{"gray", 0.8}}), Rational(12, 1)),
            "A static 12-second shot; mostly gray.");
  EXPECT_EQ(
      SignalsSentence(Signals(0.2, 3.0, "shaky", {{"black", 0.5}, {"blue", 0.3}}), Rational(8, 1)),
      "A dark, fast-moving 8-second shot in low light, possibly at night; the camera is "
      "handheld and shaky; mostly black and blue.");
  EXPECT_EQ(SignalsSentence(Signals(0.5, 1.2, "zoom_in", {{"orange", 0.4}, {"yellow", 0.2}}),
                            Rational(90, 1)),
            "A lively 2-minute shot in warm light; the camera zooms in; mostly orange and "
            "yellow.");
  ClipSignals blurry = Signals(0.5, 0.5, "tilt_up", {});
  blurry.sharpness = 50;
  blurry.colorfulness = 3;
  EXPECT_EQ(SignalsSentence(blurry, Rational(3, 2)),
            "A slow, blurry 2-second shot; the camera tilts up; nearly monochrome.");
  ClipSignals black = Signals(0.05, 0.0, "static", {{"black", 1.0}});
  black.black_ratio = 0.9;
  EXPECT_EQ(SignalsSentence(black, Rational(2, 1)), "A static 2-second shot; mostly black frames.");
  ClipSignals text = Signals(0.5, 0.3, "pan_right", {});
  text.text_area = 0.2;
  EXPECT_EQ(SignalsSentence(text, Rational(1, 1)),
            "A slow 1-second shot with on-screen text; the camera pans right.");
}

// ---------------------------------------------------------------- catalogs with clips

SceneSpec Pan(int64_t frames, Rgb lo, Rgb hi, double dx, double dy = 0) {
  return testing::StillScene(frames, lo, hi, dx, dy);
}

// Writes a video of `scenes` into dir and scans it into the catalog at dir/catalog.db.
std::unique_ptr<Catalog> ScannedCatalog(const TempDir& dir, const std::string& name,
                                        std::vector<SceneSpec> scenes,
                                        const std::map<std::string, std::string>& tags = {}) {
  SyntheticVideo v;
  v.width = 192;
  v.height = 112;
  v.frame_rate = Rational(25, 1);
  v.seed = 5;
  v.scenes = std::move(scenes);
  fs::create_directories(dir.File("videos"));
  const std::string path = dir.File("videos/" + name);
  EncodeOptions o;
  o.metadata = tags;
  EXPECT_TRUE(WriteSyntheticVideo(path, v, o).ok());
  auto catalog = Catalog::Open(dir.File("catalog.db"));
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  ScanOptions so;
  auto s = Scan(**catalog, {path}, so);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(catalog).value();
}

int64_t CountCaptions(Catalog& c) {
  int64_t n = 0;
  for (const ClipRecord& clip : *c.ListClips())
    n += static_cast<int64_t>(c.ListCaptions(clip.id)->size());
  return n;
}

TEST(SignalsCaptionerTest, APanLeftSaysPanLeftAndRerunsSkip) {
  TempDir dir;
  auto catalog = ScannedCatalog(
      dir, "pans.mp4",
      {Pan(50, {30, 140, 40}, {40, 80, 200}, -3), Pan(50, {200, 60, 40}, {230, 200, 60}, 0, -3)});
  const std::vector<ClipRecord> clips = *catalog->ListClips();
  ASSERT_EQ(clips.size(), 2u);
  auto captioner = MakeSignalsCaptioner();
  CaptionRunOptions o;
  auto s = RunCaptions(*catalog, *captioner, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->captioned, 2);
  EXPECT_TRUE(s->all_ok());
  const std::vector<CaptionRecord> first = *catalog->ListCaptions(clips[0].id);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_NE(first[0].text.find("the camera pans left"), std::string::npos) << first[0].text;
  EXPECT_NE(first[0].text.find("2-second shot"), std::string::npos) << first[0].text;
  EXPECT_EQ(first[0].model, kSignalsCaptionModel);
  EXPECT_EQ(first[0].run_id, s->run_id);
  const std::vector<CaptionRecord> second = *catalog->ListCaptions(clips[1].id);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second[0].text.find("the camera tilts up"), std::string::npos) << second[0].text;

  // Resumable: a second run has nothing to do and adds nothing.
  auto again = RunCaptions(*catalog, *captioner, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->captioned, 0);
  EXPECT_EQ(again->done_before, 2);
  EXPECT_EQ(CountCaptions(*catalog), 2);
  // The run and its counters are recorded.
  auto run = catalog->FindRun(s->run_id);
  ASSERT_TRUE(run.ok() && run->has_value());
  EXPECT_EQ((*run)->kind, "caption");
  EXPECT_EQ((*run)->config.Find("backend")->as_string(), "signals");
}

TEST(SignalsCaptionerTest, AClipWithoutSignalsIsAPerClipFailure) {
  TempDir dir;
  auto catalog = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(catalog.ok());
  VideoRecord v;
  v.path = dir.File("x.mp4");
  v.frame_rate = Rational(25, 1);
  v.time_base = Rational(1, 25);
  const int64_t vid = *(*catalog)->UpsertVideo(v);
  ClipRecord bare;
  bare.video_id = vid;
  bare.start_frame = 0;
  bare.end_frame = 50;
  bare.start_time = Rational(0, 1);
  bare.end_time = Rational(2, 1);
  const int64_t bare_id = *(*catalog)->AddClip(bare);
  ClipRecord with = bare;
  with.start_frame = 50;
  with.end_frame = 100;
  with.start_time = Rational(2, 1);
  with.end_time = Rational(4, 1);
  with.signals = Signals(0.7, 0.4, "pan_left", {});
  const int64_t with_id = *(*catalog)->AddClip(with);
  auto captioner = MakeSignalsCaptioner();
  auto s = RunCaptions(**catalog, *captioner, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 1);
  EXPECT_EQ(s->failed, 1);
  ASSERT_EQ(s->failures.size(), 1u);
  EXPECT_EQ(s->failures[0].first, bare_id);
  EXPECT_NE(s->failures[0].second.find("no stored signals"), std::string::npos);
  auto errors = (*catalog)->ListCaptionErrors("signals");
  ASSERT_TRUE(errors.ok());
  ASSERT_EQ(errors->size(), 1u);
  EXPECT_EQ((*errors)[0].clip_id, bare_id);
  EXPECT_EQ((*catalog)->ListCaptions(with_id)->size(), 1u);
}

// ---------------------------------------------------------------- sidecars, original

TEST(SidecarTest, SrtParsing) {
  const std::string srt =
      "\xEF\xBB\xBF"
      "1\r\n00:00:00,500 --> 00:00:01,250\r\n<i>Hello</i> there\r\nsecond line\r\n\r\n"
      "2\n00:00:02.000 --> 00:00:03.5 X1:40 X2:600\n{\\an8}Top text\n\n"
      "00:01:00,000 --> 00:01:02,000\nno number\n";
  auto cues = ParseSrt(srt);
  ASSERT_TRUE(cues.ok()) << cues.status().ToString();
  ASSERT_EQ(cues->size(), 3u);
  EXPECT_EQ((*cues)[0].text, "Hello there second line");
  EXPECT_EQ((*cues)[0].start, Rational(1, 2));
  EXPECT_EQ((*cues)[0].end, Rational(5, 4));
  EXPECT_EQ((*cues)[1].text, "Top text");
  EXPECT_EQ((*cues)[1].end, Rational(7, 2));
  EXPECT_EQ((*cues)[2].start, Rational(60, 1));
  auto bad = ParseSrt("1\n00:00:01 -> 00:00:02\nx\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status().message();
}

TEST(SidecarTest, IngestReadsSidecarsAndWarnsAboutBadOnes) {
  TempDir dir;
  fs::create_directories(dir.File("v"));
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("v/a.mp4"), testing::SimpleVideo(10)).ok());
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("v/b.mp4"), testing::SimpleVideo(12)).ok());
  testing::WriteFile(dir.File("v/a.txt"), "  A red box slides.\n");
  testing::WriteFile(dir.File("v/a.json"),
                     R"({"caption": "a red box", "yt_meta_dict": {"info": {"title": "Boxes"}}})");
  testing::WriteFile(dir.File("v/b.json"), "{not json");
  auto catalog = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(catalog.ok());
  auto s = Ingest(**catalog, {dir.File("v")}, {});
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_NE(s->warnings[0].second.find("b.json: not valid JSON"), std::string::npos)
      << s->warnings[0].second;
  EXPECT_EQ(s->added, 2);
  auto a = (*catalog)->FindVideoByPath(dir.File("v/a.mp4"));
  ASSERT_TRUE(a.ok() && a->has_value());
  std::vector<VideoText> texts = *(*catalog)->ListVideoTexts((*a)->id);
  ASSERT_EQ(texts.size(), 3u);
  EXPECT_EQ(texts[0].origin, "json");
  EXPECT_EQ(texts[0].field, "caption");
  EXPECT_EQ(texts[1].field, "title");
  EXPECT_EQ(texts[1].text, "Boxes");
  EXPECT_EQ(texts[2].origin, "txt");
  EXPECT_EQ(texts[2].text, "A red box slides.");

  // Subtitles saved as UTF-16 ("Unicode" in Windows editors) are read as their text; a
  // text file of NULs is a warning, not a caption of NULs.
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("v/c.mp4"), testing::SimpleVideo(14)).ok());
  std::string srt16("\xFF\xFE", 2);
  for (char ch : std::string("1\r\n00:00:00,000 --> 00:00:00,400\r\nCaf\xE9 box\r\n")) {
    srt16 += ch;
    srt16 += '\0';
  }
  testing::WriteFile(dir.File("v/c.srt"), srt16);
  testing::WriteFile(dir.File("v/c.txt"), std::string("A\0 \0b\0o\0x\0", 10));
  auto more = Ingest(**catalog, {dir.File("v")}, {});
  ASSERT_TRUE(more.ok());
  int nul_warnings = 0;
  for (const auto& w : more->warnings) {
    nul_warnings += w.second.find("c.txt: a NUL byte at byte 1") != std::string::npos;
  }
  EXPECT_EQ(nul_warnings, 1);
  auto c = (*catalog)->FindVideoByPath(dir.File("v/c.mp4"));
  ASSERT_TRUE(c.ok() && c->has_value());
  texts = *(*catalog)->ListVideoTexts((*c)->id);
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].origin, "srt");
  EXPECT_EQ(texts[0].text, "Caf\xC3\xA9 box");
  EXPECT_EQ(texts[0].end_time, Rational(2, 5));
  fs::remove(dir.File("v/c.mp4"));

  // An unchanged video whose sidecar changed: its texts are read again.
  testing::WriteFile(dir.File("v/a.txt"), "A blue box.");
  fs::remove(dir.File("v/a.json"));
  auto again = Ingest(**catalog, {dir.File("v")}, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 2);
  EXPECT_EQ(again->sidecar_updates, 1);
  texts = *(*catalog)->ListVideoTexts((*a)->id);
  ASSERT_EQ(texts.size(), 1u);
  EXPECT_EQ(texts[0].text, "A blue box.");
  // Nothing changed: nothing read.
  auto third = Ingest(**catalog, {dir.File("v")}, {});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->sidecar_updates, 0);
}

TEST(OriginalCaptionerTest, PrefersSidecarsThenCuesByClipTimeThenContainerTags) {
  TempDir dir;
  // Two scenes of 2 s: two clips, [0, 2) and [2, 4).
  auto catalog = ScannedCatalog(
      dir, "talk.mp4",
      {Pan(50, {30, 140, 40}, {40, 80, 200}, -3), Pan(50, {200, 60, 40}, {230, 200, 60}, 3)},
      {{"title", "Container Title"}});
  const std::vector<ClipRecord> clips = *catalog->ListClips();
  ASSERT_EQ(clips.size(), 2u);
  auto original = MakeOriginalCaptioner();
  // Only the container title so far.
  auto s = RunCaptions(*catalog, *original, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 2);
  auto k = catalog->FindCaption(clips[0].id, "original", "");
  ASSERT_TRUE(k.ok() && k->has_value());
  EXPECT_EQ((*k)->text, "Container Title");
  EXPECT_EQ((*k)->params.Find("from")->as_string(), "tag:title");

  // Subtitles arrive: each clip gets the cues that overlap it, replacing the title.
  testing::WriteFile(dir.File("videos/talk.srt"),
                     "1\n00:00:00,200 --> 00:00:01,000\nFirst words.\n\n"
                     "2\n00:00:01,500 --> 00:00:02,500\nAcross the cut.\n\n"
                     "3\n00:00:03,000 --> 00:00:03,800\nLast words.\n");
  ASSERT_TRUE(Ingest(*catalog, {dir.File("videos")}, {}).ok());
  s = RunCaptions(*catalog, *original, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 2);
  EXPECT_EQ(catalog->FindCaption(clips[0].id, "original", "")->value().text,
            "First words. Across the cut.");
  EXPECT_EQ(catalog->FindCaption(clips[1].id, "original", "")->value().text,
            "Across the cut. Last words.");
  // A JSON caption outranks everything; still one caption per clip.
  testing::WriteFile(dir.File("videos/talk.json"), R"({"caption": "Two pans over paintings."})");
  ASSERT_TRUE(Ingest(*catalog, {dir.File("videos")}, {}).ok());
  ASSERT_TRUE(RunCaptions(*catalog, *original, {}).ok());
  EXPECT_EQ(catalog->FindCaption(clips[1].id, "original", "")->value().text,
            "Two pans over paintings.");
  EXPECT_EQ(CountCaptions(*catalog), 2);
}

// ---------------------------------------------------------------- selection policy

TEST(CaptionPolicyTest, PreferenceOrderModelsAndNewest) {
  TempDir dir;
  auto catalog = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(catalog.ok());
  Catalog& c = **catalog;
  VideoRecord v;
  v.path = dir.File("x.mp4");
  const int64_t vid = *c.UpsertVideo(v);
  ClipRecord clip;
  clip.video_id = vid;
  clip.start_frame = 0;
  clip.end_frame = 10;
  clip.start_time = Rational(0, 1);
  clip.end_time = Rational(1, 1);
  const int64_t id = *c.AddClip(clip);
  auto add = [&](const std::string& source, const std::string& model, const std::string& text,
                 const std::string& at) {
    CaptionRecord k;
    k.clip_id = id;
    k.source = source;
    k.model = model;
    k.text = text;
    k.created_at = at;
    return *c.AddCaption(k);
  };
  add("original", "", "orig", "2026-01-01T00:00:00.000Z");
  add("signals", kSignalsCaptionModel, "sig", "2026-01-02T00:00:00.000Z");
  add("vlm", "llava", "llava says", "2026-01-03T00:00:00.000Z");
  add("vlm", "qwen", "qwen says", "2026-01-04T00:00:00.000Z");
  auto text = [&](const std::string& prefer) -> std::string {
    auto p = ParseCaptionPreference(prefer);
    EXPECT_TRUE(p.ok()) << prefer;
    auto k = c.SelectCaption(id, *p);
    EXPECT_TRUE(k.ok());
    return k->has_value() ? (*k)->text : "(none)";
  };
  EXPECT_EQ(text("vlm,merged,clip,signals,original"), "qwen says");  // newest vlm
  EXPECT_EQ(text("vlm:llava,signals"), "llava says");
  EXPECT_EQ(text("merged, signals , original"), "sig");
  EXPECT_EQ(text("original,vlm"), "orig");
  EXPECT_EQ(text("clip"), "(none)");
  EXPECT_EQ(ParseCaptionPreference("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseCaptionPreference("vlm,,clip").ok());
  EXPECT_FALSE(ParseCaptionPreference("vlm'; DROP TABLE captions; --").ok());
  // A model name with a quote is bound safely as a literal.
  add("vlm", "it's", "quoted", "2026-01-05T00:00:00.000Z");
  EXPECT_EQ(text("vlm:it's"), "quoted");

  // One caption per (clip, source, model): the conflict modes.
  CaptionRecord dup;
  dup.clip_id = id;
  dup.source = "vlm";
  dup.model = "qwen";
  dup.text = "again";
  EXPECT_EQ(c.AddCaption(dup).status().code(), StatusCode::kAlreadyExists);
  const int64_t kept = *c.AddCaption(dup, CaptionConflict::kKeep);
  EXPECT_EQ(c.FindCaption(id, "vlm", "qwen")->value().text, "qwen says");
  CaptionScore score;
  score.caption_id = kept;
  score.name = "clip_match";
  score.model = "m";
  score.value = 30;
  ASSERT_TRUE(c.PutCaptionScore(score).ok());
  EXPECT_EQ(*c.AddCaption(dup, CaptionConflict::kReplace), kept);
  EXPECT_EQ(c.FindCaption(id, "vlm", "qwen")->value().text, "again");
  EXPECT_TRUE(c.ListCaptionScores(kept)->empty()) << "a replaced caption's scores are stale";
}

// ---------------------------------------------------------------- VLM backend

// A chat server whose behaviour is scripted per request number (1-based, per clip path).
struct ChatScript {
  std::mutex mu;
  std::vector<HttpTestRequest> seen;
  std::function<HttpTestResponse(int n, const Json& body)> respond;
};

HttpTestResponse Reply(const std::string& content) {
  HttpTestResponse r;
  Json body = Json::MakeObject();
  body["model"] = "test-vlm";
  Json choice = Json::MakeObject();
  Json message = Json::MakeObject();
  message["role"] = "assistant";
  message["content"] = content;
  choice["message"] = message;
  choice["finish_reason"] = "stop";
  Json choices = Json::MakeArray();
  choices.push_back(choice);
  body["choices"] = choices;
  Json usage = Json::MakeObject();
  usage["prompt_tokens"] = 100;
  usage["completion_tokens"] = 20;
  body["usage"] = usage;
  r.body = body.Dump();
  r.headers["Content-Type"] = "application/json";
  return r;
}

class VlmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = ScannedCatalog(
        dir_, "three.mp4",
        {Pan(30, {30, 140, 40}, {40, 80, 200}, -3), Pan(30, {200, 60, 40}, {230, 200, 60}, 3),
         Pan(30, {20, 20, 160}, {240, 240, 240}, 0, 3)});
    clips_ = *catalog_->ListClips();
    ASSERT_EQ(clips_.size(), 3u);
  }

  VlmParams Params(const TestHttpServer& server) {
    VlmParams p;
    p.endpoint.url = server.Url("/v1");
    p.endpoint.retries = 2;
    p.endpoint.retry_wait_seconds = 0.05;
    p.endpoint.timeout_seconds = 5;
    p.endpoint.api_key = "sk-secret-test-key";
    p.model = "test-vlm";
    p.frames = 4;
    p.max_side = 96;
    return p;
  }

  // Runs the VLM captioner over every clip, or only `clip` when given.
  Result<CaptionRunSummary> Run(const VlmParams& p, int jobs = 1, int64_t clip = 0) {
    auto captioner = MakeVlmCaptioner(p);
    if (!captioner.ok()) return captioner.status();
    CaptionRunOptions o;
    o.jobs = jobs;
    if (clip != 0) o.clip_ids = {clip};
    return RunCaptions(*catalog_, **captioner, o);
  }

  TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
  std::vector<ClipRecord> clips_;
};

TEST_F(VlmTest, RequestCarriesModelPromptAndJpegFrames) {
  std::mutex mu;
  std::vector<HttpTestRequest> seen;
  TestHttpServer server([&](const HttpTestRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(r);
    return Reply("A painting pans by.  ");
  });
  VlmParams p = Params(server);
  p.system_prompt = "You caption videos.";
  auto s = Run(p);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->captioned, 3);
  ASSERT_EQ(seen.size(), 3u);
  for (const HttpTestRequest& r : seen) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/v1/chat/completions");
    EXPECT_EQ(r.headers.at("authorization"), "Bearer sk-secret-test-key");
    auto body = Json::Parse(r.body);
    ASSERT_TRUE(body.ok()) << r.body.substr(0, 200);
    EXPECT_EQ(body->Find("model")->as_string(), "test-vlm");
    const Json& messages = *body->Find("messages");
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_EQ(messages.at(0).Find("role")->as_string(), "system");
    EXPECT_EQ(messages.at(0).Find("content")->as_string(), "You caption videos.");
    const Json& parts = *messages.at(1).Find("content");
    ASSERT_EQ(parts.size(), 5u);  // the text, then 4 frames
    EXPECT_EQ(parts.at(0).Find("type")->as_string(), "text");
    EXPECT_NE(parts.at(0).Find("text")->as_string().find("These 4 images"), std::string::npos);
    EXPECT_NE(parts.at(0).Find("text")->as_string().find("1.2-second"), std::string::npos);
    for (size_t i = 1; i < 5; ++i) {
      EXPECT_EQ(parts.at(i).Find("type")->as_string(), "image_url");
      const std::string url = parts.at(i).Find("image_url")->Find("url")->as_string();
      ASSERT_TRUE(StartsWith(url, "data:image/jpeg;base64,")) << url.substr(0, 40);
      auto bytes = Base64Decode(url.substr(23));
      ASSERT_TRUE(bytes.ok());
      const std::vector<uchar> buf(bytes->begin(), bytes->end());
      const cv::Mat img = cv::imdecode(buf, cv::IMREAD_COLOR);
      ASSERT_FALSE(img.empty()) << "frame " << i << " is not a decodable JPEG";
      EXPECT_EQ(img.cols, 96);
      EXPECT_EQ(img.rows, 56);
    }
  }
  const CaptionRecord k = catalog_->FindCaption(clips_[0].id, "vlm", "test-vlm")->value();
  EXPECT_EQ(k.text, "A painting pans by.");
  EXPECT_NE(k.prompt.find("These 4 images"), std::string::npos);
  EXPECT_EQ(k.params.Find("frames")->as_int(), 4);
  EXPECT_EQ(k.params.Find("server_model")->as_string(), "test-vlm");
  EXPECT_EQ(k.params.Find("usage")->Find("completion_tokens")->as_int(), 20);
  EXPECT_EQ(k.params.Find("attempts")->as_int(), 1);
  // The key is nowhere in the catalog.
  const std::string dump = [&] {
    std::string all;
    for (const RunRecord& r : *catalog_->ListRuns()) all += r.config.Dump();
    for (const ClipRecord& c : clips_) {
      for (const CaptionRecord& x : *catalog_->ListCaptions(c.id))
        all += x.params.Dump() + x.prompt;
    }
    return all;
  }();
  EXPECT_EQ(dump.find("sk-secret"), std::string::npos);
}

TEST_F(VlmTest, RetryAfterIsHonouredOn429) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> times;
  TestHttpServer server([&](const HttpTestRequest&) {
    std::lock_guard<std::mutex> lock(mu);
    times.push_back(std::chrono::steady_clock::now());
    if (times.size() == 1) {
      HttpTestResponse r;
      r.status = 429;
      r.headers["Retry-After"] = "1";
      r.body = R"({"error": "rate limited"})";
      return r;
    }
    return Reply("ok");
  });
  auto s = Run(Params(server), 1, clips_[0].id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 1);
  ASSERT_EQ(times.size(), 2u);
  EXPECT_GE(std::chrono::duration<double>(times[1] - times[0]).count(), 0.95)
      << "Retry-After: 1 must delay the retry by a second, not retry_wait (0.05 s)";
  EXPECT_EQ(catalog_->FindCaption(clips_[0].id, "vlm", "test-vlm")
                ->value()
                .params.Find("attempts")
                ->as_int(),
            2);
}

TEST_F(VlmTest, FailuresAreRecordedPerClipAndTheRerunCompletesWithoutDuplicates) {
  // Clip 1: 500 twice then fine (retried to success). Clip 2: malformed JSON always.
  // Clip 3: 400 (not retried).
  std::mutex mu;
  std::map<std::string, int> calls;  // requests per clip (by its first frame)
  std::map<std::string, int> order;  // clip number by first frame, in order of arrival
  std::atomic<bool> healthy{false};
  int total = 0;
  TestHttpServer server([&](const HttpTestRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    ++total;
    if (healthy) return Reply("fine now");
    auto body = Json::Parse(r.body);
    const std::string frame0 = body->Find("messages")
                                   ->at(0)
                                   .Find("content")
                                   ->at(1)
                                   .Find("image_url")
                                   ->Find("url")
                                   ->as_string();
    const int n = ++calls[frame0];
    // Tell the clips apart by their first frame (each scene has its own colours).
    if (!order.count(frame0)) {
      const int next = static_cast<int>(order.size());
      order[frame0] = next;
    }
    const int clip = order[frame0];
    HttpTestResponse resp;
    if (clip == 0) {
      if (n <= 2) {
        resp.status = 500;
        resp.body = "overloaded";
        return resp;
      }
      return Reply("retried fine");
    }
    if (clip == 1) {
      resp.body = R"({"choices": [{"message": {"content": "cut off)";
      return resp;
    }
    resp.status = 400;
    resp.body = R"({"error": "image too large"})";
    return resp;
  });
  VlmParams p = Params(server);
  auto s = Run(p);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->captioned, 1);
  EXPECT_EQ(s->failed, 2);
  EXPECT_EQ(total, 3 + 3 + 1) << "500 x2 then 200; malformed x3; 400 once";
  auto errors = *catalog_->ListCaptionErrors("vlm");
  ASSERT_EQ(errors.size(), 2u);
  std::map<int64_t, CaptionError> by_clip;
  for (const CaptionError& e : errors) by_clip[e.clip_id] = e;
  ASSERT_TRUE(by_clip.count(clips_[1].id));
  EXPECT_EQ(by_clip[clips_[1].id].attempts, 3);
  EXPECT_NE(by_clip[clips_[1].id].error.find("malformed JSON"), std::string::npos)
      << by_clip[clips_[1].id].error;
  ASSERT_TRUE(by_clip.count(clips_[2].id));
  EXPECT_EQ(by_clip[clips_[2].id].attempts, 1);
  EXPECT_NE(by_clip[clips_[2].id].error.find("HTTP 400"), std::string::npos);
  EXPECT_NE(by_clip[clips_[2].id].error.find("image too large"), std::string::npos);
  EXPECT_EQ(CountCaptions(*catalog_), 1);

  // The server recovers: the rerun does exactly the two failed clips.
  healthy = true;
  auto again = Run(p);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->captioned, 2);
  EXPECT_EQ(again->done_before, 1);
  EXPECT_EQ(CountCaptions(*catalog_), 3);
  for (const ClipRecord& c : clips_) EXPECT_EQ(catalog_->ListCaptions(c.id)->size(), 1u);
  EXPECT_TRUE(catalog_->ListCaptionErrors("vlm")->empty());
  EXPECT_EQ(catalog_->FindCaption(clips_[0].id, "vlm", "test-vlm")->value().text, "retried fine");
}

TEST_F(VlmTest, TimeoutsAndRefusedConnectionsArePerClipErrors) {
  TestHttpServer slow([&](const HttpTestRequest&) {
    HttpTestResponse r = Reply("too late");
    r.delay_seconds = 2.0;
    return r;
  });
  VlmParams p = Params(slow);
  p.endpoint.timeout_seconds = 0.5;
  p.endpoint.retries = 1;
  auto s = Run(p, 1, clips_[0].id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->failed, 1);
  ASSERT_EQ(s->failures.size(), 1u);
  EXPECT_NE(s->failures[0].second.find("timed out"), std::string::npos) << s->failures[0].second;
  EXPECT_NE(s->failures[0].second.find("after 2 attempts"), std::string::npos)
      << s->failures[0].second;

  VlmParams refused = p;
  refused.endpoint.url = "http://127.0.0.1:" + std::to_string(testing::UnusedPort()) + "/v1";
  s = Run(refused, 1, clips_[1].id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->failed, 1);
  EXPECT_NE(s->failures[0].second.find("refused"), std::string::npos) << s->failures[0].second;
  EXPECT_EQ(CountCaptions(*catalog_), 0);
  EXPECT_EQ(catalog_->ListCaptionErrors("vlm")->size(), 2u);
}

TEST_F(VlmTest, ConcurrentRequestsOverlap) {
  TestHttpServer server([&](const HttpTestRequest&) {
    HttpTestResponse r = Reply("in parallel");
    r.delay_seconds = 0.5;
    return r;
  });
  auto s = Run(Params(server), /*jobs=*/3);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 3);
  EXPECT_GE(server.max_in_flight(), 2) << "the server never saw two requests at once";
}

TEST(ChatClientTest, UrlsBodiesAndRedaction) {
  EXPECT_EQ(ChatCompletionsUrl("http://h:8000/v1"), "http://h:8000/v1/chat/completions");
  EXPECT_EQ(ChatCompletionsUrl("http://h:8000/v1/"), "http://h:8000/v1/chat/completions");
  EXPECT_EQ(ChatCompletionsUrl("https://x/api/chat/completions"), "https://x/api/chat/completions");
  EXPECT_EQ(RedactUrl("https://user:pw@host.example/v1"), "https://host.example/v1");
  EXPECT_EQ(RedactUrl("http://host/v1?a=b@c"), "http://host/v1?a=b@c");
  ChatRequest r;
  r.model = "m";
  r.text = "hi";
  const Json text_only = ChatRequestBody(r);
  EXPECT_EQ(text_only.Find("messages")->at(0).Find("content")->as_string(), "hi");
  EXPECT_FALSE(text_only.Find("stream")->as_bool(true));
}

TEST(ChatClientTest, ContentAsPartsAndEmptyReplies) {
  std::atomic<int> n{0};
  TestHttpServer server([&](const HttpTestRequest&) {
    HttpTestResponse r;
    if (n++ == 0) {
      r.body = R"({"choices":[{"message":{"content":"   "}}]})";
    } else {
      r.body =
          R"({"choices":[{"message":{"content":[{"type":"text","text":"part one, "},{"type":"text","text":"part two"}]}}]})";
    }
    return r;
  });
  ChatEndpointParams e;
  e.url = server.Url("/v1");
  e.retry_wait_seconds = 0.01;
  ChatRequest req;
  req.model = "m";
  req.text = "hi";
  int attempts = 0;
  auto reply = SendChat(e, req, nullptr, &attempts);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->content, "part one, part two");
  EXPECT_EQ(attempts, 2) << "an empty message is retried";
}

// ---------------------------------------------------------------- merge

TEST(MergeCaptionerTest, TemplateAndRewriteRemergeWhenInputsChange) {
  TempDir dir;
  auto catalog = ScannedCatalog(dir, "one.mp4", {Pan(40, {30, 140, 40}, {40, 80, 200}, -3)},
                                {{"title", "holiday clip"}});
  const int64_t clip = catalog->ListClips()->at(0).id;
  auto signals = MakeSignalsCaptioner();
  ASSERT_TRUE(RunCaptions(*catalog, *signals, {}).ok());
  auto original = MakeOriginalCaptioner();
  ASSERT_TRUE(RunCaptions(*catalog, *original, {}).ok());
  auto merge = MakeMergeCaptioner({});
  ASSERT_TRUE(merge.ok());
  auto s = RunCaptions(*catalog, **merge, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 1);
  const std::string model = (*merge)->model();
  EXPECT_TRUE(StartsWith(model, "template-"));
  const std::string sig = catalog->FindCaption(clip, "signals", kSignalsCaptionModel)->value().text;
  CaptionRecord merged = catalog->FindCaption(clip, "merged", model)->value();
  EXPECT_EQ(merged.text, sig + " Original description: Holiday clip.");
  // Nothing changed: nothing to do.
  EXPECT_EQ(RunCaptions(*catalog, **merge, {})->done_before, 1);
  // A VLM caption appears: merged again, replacing the old merge.
  CaptionRecord vlm;
  vlm.clip_id = clip;
  vlm.source = "vlm";
  vlm.model = "some-vlm";
  vlm.text = "a painting slides to the right";
  ASSERT_TRUE(catalog->AddCaption(vlm).ok());
  s = RunCaptions(*catalog, **merge, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 1);
  merged = catalog->FindCaption(clip, "merged", model)->value();
  EXPECT_TRUE(StartsWith(merged.text, "A painting slides to the right. " + sig)) << merged.text;

  // Rewrite through an LLM: the request carries the pieces.
  std::string asked;
  TestHttpServer server([&](const HttpTestRequest& r) {
    asked = r.body;
    return Reply("A dense caption.");
  });
  MergeParams mp;
  mp.rewrite = true;
  mp.model = "llm";
  mp.endpoint.url = server.Url("/v1");
  auto rewrite = MakeMergeCaptioner(mp);
  ASSERT_TRUE(rewrite.ok()) << rewrite.status().ToString();
  s = RunCaptions(*catalog, **rewrite, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->captioned, 1);
  EXPECT_EQ(catalog->FindCaption(clip, "merged", "llm")->value().text, "A dense caption.");
  auto body = Json::Parse(asked);
  ASSERT_TRUE(body.ok());
  const std::string message = body->Find("messages")->at(0).Find("content")->as_string();
  EXPECT_NE(message.find("Detailed description: a painting slides to the right"), std::string::npos)
      << message;
  EXPECT_NE(message.find("Original title or description: holiday clip"), std::string::npos);
  // Selection: merged outranks signals, vlm outranks merged.
  EXPECT_EQ(catalog->SelectCaption(clip, {"merged", "signals"})->value().text, "A dense caption.");
  EXPECT_EQ(catalog->SelectCaption(clip, DefaultCaptionPreference())->value().source, "vlm");
}

TEST(MergeCaptionerTest, BadParametersFailBeforeAnyClip) {
  MergeParams p;
  p.template_text = "{vlm} and {tags}";
  auto m = MakeMergeCaptioner(p);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("unknown name '{tags}'"), std::string::npos);
  MergeParams r;
  r.rewrite = true;
  EXPECT_FALSE(MakeMergeCaptioner(r).ok()) << "rewrite needs a model";
  VlmParams v;
  v.model = "m";
  v.endpoint.url = "ftp://x";
  EXPECT_FALSE(MakeVlmCaptioner(v).ok());
}

// ---------------------------------------------------------------- tag vocabulary

TEST(TagVocabularyTest, TheBuiltInVocabularyParses) {
  auto v = TagVocabulary::Parse(DefaultClipVocabulary(), "built-in");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->categories.size(), 5u);
  EXPECT_EQ(v->categories[0].name, "shot");
  EXPECT_EQ(v->categories[0].PromptFor("a wide shot"), "a wide shot of a scene");
  EXPECT_DOUBLE_EQ(v->categories[0].min_prob, 0.3);
  EXPECT_GT(v->categories[1].labels.size(), 30u);
  EXPECT_EQ(
      v->caption.Render({{"shot", "a wide shot"}, {"subject", "a dog"}, {"lighting", "at night"}}),
      "a wide shot of a dog at night");
}

TEST(TagVocabularyTest, ErrorsNameTheLine) {
  auto bad = TagVocabulary::Parse("caption: {a}\n[a]\npick: zero\nx\ny\n", "my.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("my.txt, line 3"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(TagVocabulary::Parse("[a]\nonly one\n", "v").ok());
  EXPECT_FALSE(TagVocabulary::Parse("caption: {b}\n[a]\nx\ny\n", "v").ok());
  auto ok =
      TagVocabulary::Parse("[colour]\nred\nblue\n[thing]\nprompt: a photo of {}\nbox\nball\n", "v");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->caption.Render({{"colour", "red"}, {"thing", "a box"}}), "red, a box");
}

// ---------------------------------------------------------------- the command

TEST(CaptionCliTest, UsageErrorsAndASignalsRun) {
  TempDir dir;
  { auto catalog = ScannedCatalog(dir, "a.mp4", {Pan(40, {30, 140, 40}, {40, 80, 200}, -3)}); }
  EXPECT_EQ(RunReel({"caption", "--db", dir.File("catalog.db")}).exit_code, 2);
  auto unknown = RunReel({"caption", "--db", dir.File("catalog.db"), "--backend", "gpt"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown backend 'gpt'"), std::string::npos) << unknown.err;
  auto no_model = RunReel({"caption", "--db", dir.File("catalog.db"), "--backend", "vlm"});
  EXPECT_EQ(no_model.exit_code, 1);
  EXPECT_NE(no_model.err.find("needs --model"), std::string::npos) << no_model.err;
  auto ok = RunReel({"caption", "--db", dir.File("catalog.db"), "--backend", "signals", "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto j = Json::Parse(ok.out);
  ASSERT_TRUE(j.ok()) << ok.out;
  EXPECT_EQ(j->Find("captioned")->as_int(), 1);
  auto vocab = RunReel({"caption", "--print-vocabulary"});
  EXPECT_EQ(vocab.exit_code, 0);
  EXPECT_NE(vocab.out.find("[subject]"), std::string::npos);
  auto help = RunReel({"caption", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Retry-After"), std::string::npos);
}

}  // namespace
}  // namespace reel
