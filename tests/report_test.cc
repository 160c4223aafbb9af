// Tests for `reel report`: scores and order, escaping of untrusted text, the gallery, the
// Markdown and JSON twins, and the page rendered in headless Chromium.

#include "eval/report.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "curate/filter.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "tests/support/test_support.h"
#include "util/json.h"
#include "video/synthetic.h"

namespace reel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const char kEvil[] = "<script>document.title='pwned'</script>";

int64_t AddRun(Catalog& c, const std::string& name, const std::map<std::string, double>& values) {
  const int64_t id = *c.BeginRun("eval", Json::MakeObject(), name);
  for (const auto& [metric, value] : values)
    EXPECT_TRUE(c.AddMetric(id, metric, value, Json::MakeObject()).ok());
  EXPECT_TRUE(c.FinishRun(id, RunStatus::kOk).ok());
  return id;
}

// A catalog with scanned clips, a subset, captions, three eval runs (one named with a
// script), a training run with a loss curve and a generation run whose prompt carries a
// script.
class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.File("r.db");
    auto c = Catalog::Open(db_);
    ASSERT_TRUE(c.ok());
    Catalog& cat = **c;
    fs::create_directories(dir_.File("raw"));
    SyntheticVideo v;
    v.width = 96;
    v.height = 64;
    SceneSpec s;
    s.kind = SceneKind::kMovingBox;
    s.frames = 40;
    s.dx = 2;
    s.background = {200, 40, 40};
    v.scenes = {s};
    ASSERT_TRUE(WriteSyntheticVideo(dir_.File("raw/red.mp4"), v).ok());
    auto scanned = Scan(cat, {dir_.File("raw")}, {});
    ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
    ASSERT_TRUE(ApplyFilter(cat, "duration >= 1", "train").ok());
    const std::vector<ClipRecord> clips = *cat.ListClips();
    ASSERT_FALSE(clips.empty());
    CaptionRecord k;
    k.clip_id = clips[0].id;
    k.source = "signals";
    k.model = "m";
    k.text = std::string("a red box ") + kEvil;
    ASSERT_TRUE(cat.AddCaption(k).ok());

    a_ = AddRun(cat, "model-a", {{"fvd", 300}, {"clipsim", 30}});
    b_ = AddRun(cat, "model-b", {{"fvd", 150}, {"clipsim", 28}});
    c_ = AddRun(cat, kEvil, {{"fvd", 900}, {"flicker", 0.9}});
    const int64_t unfinished = *cat.BeginRun("eval", Json::MakeObject(), "crashed");
    (void)unfinished;

    const int64_t train = *cat.BeginRun("train", Json::MakeObject(), "dit-tiny");
    Json curve = Json::MakeObject();
    Json step = Json::MakeArray(), loss = Json::MakeArray();
    for (int i = 0; i < 50; ++i) {
      step.push_back(i * 10);
      loss.push_back(1.0 / (1 + i));
    }
    curve["step"] = step;
    curve["loss"] = loss;
    ASSERT_TRUE(cat.AddMetric(train, "loss_curve", 0.02, curve).ok());

    SyntheticVideo g = v;
    g.scenes[0].frames = 17;
    g.scenes[0].background = {190, 50, 45};
    ASSERT_TRUE(WriteSyntheticVideo(dir_.File("gen0.mp4"), g).ok());
    const int64_t gen = *cat.BeginRun("generate", Json::MakeObject(), "dit-tiny@50");
    GenerationRecord r;
    r.run_id = gen;
    r.path = dir_.File("gen0.mp4");
    r.prompt = k.text;
    r.clip_id = clips[0].id;
    r.seed = 1;
    ASSERT_TRUE(cat.AddGeneration(r).ok());
    r.path = dir_.File("missing.mp4");
    r.prompt = "a prompt whose sample is gone";
    r.clip_id.reset();
    ASSERT_TRUE(cat.AddGeneration(r).ok());
    ASSERT_TRUE(cat.FinishRun(gen, RunStatus::kOk).ok());
  }

  Result<ReportSummary> Write(ReportOptions o = {}) {
    auto c = Catalog::Open(db_);
    if (!c.ok()) return c.status();
    o.out_dir = dir_.File("report");
    return WriteReport(**c, o);
  }

  TempDir dir_;
  std::string db_;
  int64_t a_ = 0, b_ = 0, c_ = 0;
};

TEST(HtmlEscapeTest, EveryDangerousCharacter) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST_F(ReportTest, ScoresOrderEscapingAndTwins) {
  auto r = Write();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->runs, 3) << "unfinished runs are left out";
  EXPECT_GE(r->thumbnails, 2) << "the real clip and the generated one";
  ASSERT_EQ(r->warnings.size(), 1u) << "the missing sample";
  EXPECT_NE(r->warnings[0].find("missing.mp4"), std::string::npos);

  // Totals by hand: fvd over [0, 1500] flipped, clipsim over [0, 40], flicker over
  // [0.6293, 1]; total = (4 quality + semantic) / 5, or quality alone.
  const double ta = (4 * (1 - 300.0 / 1500) + 30.0 / 40) / 5;
  const double tb = (4 * (1 - 150.0 / 1500) + 28.0 / 40) / 5;
  const double tc = ((1 - 900.0 / 1500) + (0.9 - 0.6293) / (1 - 0.6293)) / 2;
  auto j = Json::Parse(testing::ReadFile(r->json_path));
  ASSERT_TRUE(j.ok());
  const Json& lb = *j->Find("leaderboard");
  ASSERT_EQ(lb.size(), 3u);
  EXPECT_EQ(lb.at(0).Find("run_id")->as_int(), b_);
  EXPECT_EQ(lb.at(1).Find("run_id")->as_int(), a_);
  EXPECT_EQ(lb.at(2).Find("run_id")->as_int(), c_);
  EXPECT_NEAR(lb.at(0).Find("total")->as_double(), tb, 1e-12);
  EXPECT_NEAR(lb.at(1).Find("total")->as_double(), ta, 1e-12);
  EXPECT_NEAR(lb.at(2).Find("total")->as_double(), tc, 1e-12);
  EXPECT_TRUE(lb.at(2).Find("semantic")->is_null());
  EXPECT_EQ(lb.at(1).Find("missing")->size(), 6u) << "model-a has fvd and clipsim of 8 metrics";
  EXPECT_EQ(j->Find("scoring")->Find("fvd")->Find("max")->as_double(), 1500);
  EXPECT_EQ(j->Find("dataset")->Find("subsets")->at(0).Find("name")->as_string(), "train");

  const std::string html = testing::ReadFile(r->html_path);
  EXPECT_EQ(html.find(kEvil), std::string::npos) << "untrusted text reached the page raw";
  EXPECT_NE(html.find("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"),
            std::string::npos);
  // The only script element is reel's own.
  size_t scripts = 0;
  for (size_t p = html.find("<script"); p != std::string::npos; p = html.find("<script", p + 1))
    ++scripts;
  EXPECT_EQ(scripts, 1u);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"))
      << "no network resources";
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("data:image/jpeg;base64,"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos) << "the loss curve";
  // Runs scored without some of the shown columns say so.
  EXPECT_NE(html.find("model-a <span class=\"note\">#" + std::to_string(a_) +
                      "</span> <span class=\"note\" title=\"its totals average the metrics it "
                      "has\">(without flicker)</span>"),
            std::string::npos);
  EXPECT_NE(html.find("(without clipsim)"), std::string::npos);

  const std::string md = testing::ReadFile(r->markdown_path);
  EXPECT_NE(md.find("| 1 | model-b (#" + std::to_string(b_) + ")"), std::string::npos) << md;
  EXPECT_EQ(md.find(kEvil), std::string::npos);

  // Weights change the order: all weight on fvd within quality and nothing else.
  ReportOptions o;
  o.weights = {{"clipsim", 0}, {"flicker", 0}};
  o.runs = {"model-a", std::to_string(c_)};
  auto w = Write(o);
  ASSERT_TRUE(w.ok());
  auto j2 = Json::Parse(testing::ReadFile(w->json_path));
  ASSERT_EQ(j2->Find("leaderboard")->size(), 2u);
  EXPECT_EQ(j2->Find("leaderboard")->at(0).Find("run_id")->as_int(), a_);
  EXPECT_NEAR(j2->Find("leaderboard")->at(1).Find("total")->as_double(), 1 - 900.0 / 1500, 1e-12);

  ReportOptions bad;
  bad.weights = {{"fid", 1}};
  EXPECT_EQ(Write(bad).status().code(), StatusCode::kInvalidArgument);
  bad = {};
  bad.runs = {"no-such-run"};
  EXPECT_EQ(Write(bad).status().code(), StatusCode::kNotFound);
}

TEST_F(ReportTest, TheCommand) {
  auto ok = testing::RunReel({"report", "--db", db_, "--out", dir_.File("cli"), "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto j = Json::Parse(ok.out);
  ASSERT_TRUE(j.ok()) << ok.out;
  EXPECT_EQ(j->Find("runs")->as_int(), 3);
  EXPECT_TRUE(fs::exists(dir_.File("cli/index.html")));
  EXPECT_EQ(testing::RunReel({"report", "--db", db_, "--out", dir_.File("x"), "--weights", "fvd"})
                .exit_code,
            2);
  EXPECT_EQ(
      testing::RunReel({"report", "--db", db_, "--out", dir_.File("x"), "--ranges", "fvd=5:1"})
          .exit_code,
      2);
  EXPECT_EQ(testing::RunReel({"report", "--db", db_}).exit_code, 2);
}

// Chromium: the page as a browser builds it.
std::string FindChromium() {
  for (const char* p :
       {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (fs::exists(p)) return p;
  }
  return "";
}

TEST_F(ReportTest, RenderedInHeadlessChromium) {
  const std::string chromium = FindChromium();
  if (chromium.empty()) {
    GTEST_SKIP() << "Chromium is not installed (scripts/install-deps.sh installs Debian's "
                    "chromium package)";
  }
  auto r = Write();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string url = "file://" + r->html_path;
  std::vector<std::string> base = {chromium,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--no-first-run",
                                   "--no-default-browser-check",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--disable-extensions",
                                   "--proxy-server=127.0.0.1:9",
                                   "--user-data-dir=" + dir_.File("chromium-profile"),
                                   "--virtual-time-budget=3000"};
  std::vector<std::string> dump = base;
  dump.push_back("--dump-dom");
  dump.push_back(url);
  const testing::ProcessResult p = testing::RunProcess(dump);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const std::string& dom = p.out;
  ASSERT_NE(dom.find("data-ready=\"1\""), std::string::npos) << "reel's script ran";
  EXPECT_NE(dom.find("<title>reel report</title>"), std::string::npos)
      << "the injected script did not run";
  EXPECT_EQ(dom.find("pwned</title>"), std::string::npos);
  // One leaderboard row per run, best first.
  std::vector<int64_t> order;
  const std::regex row("<tr data-run=\"([0-9]+)\"");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), row); it != std::sregex_iterator();
       ++it) {
    order.push_back(std::stoll((*it)[1]));
  }
  EXPECT_EQ(order, (std::vector<int64_t>{b_, a_, c_}));
  // Charts: a bar chart per metric shown (fvd, clipsim, flicker), the loss curve, four
  // dataset histograms.
  size_t svgs = 0;
  for (size_t q = dom.find("<svg"); q != std::string::npos; q = dom.find("<svg", q + 1)) ++svgs;
  EXPECT_EQ(svgs, 8u);
  EXPECT_NE(dom.find("class=\"thumb\""), std::string::npos);
  // The injected caption is text in the gallery, not an element.
  EXPECT_NE(dom.find("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), std::string::npos);

  // A screenshot beside the build, for people.
  const std::string shots =
      fs::path(testing::ReelBinary()).parent_path().string() + "/test-artifacts";
  fs::create_directories(shots);
  std::vector<std::string> shot = base;
  shot.push_back("--window-size=1280,2000");
  shot.push_back("--screenshot=" + shots + "/report.png");
  shot.push_back(url);
  const testing::ProcessResult s = testing::RunProcess(shot);
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_TRUE(fs::exists(shots + "/report.png"));
}

}  // namespace
}  // namespace reel
