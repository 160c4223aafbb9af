// Tests for `reel eval compare`: tolerances, verdicts, refusals, intervals, the command.

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "db/catalog.h"
#include "eval/compare.h"
#include "tests/support/test_support.h"
#include "util/json.h"

namespace reel {
namespace {

using testing::TempDir;

Json FvdDetails(const std::string& fake_key, const std::string& protocol = "stylegan-v",
                const std::string& real_key = "real-set") {
  Json d = Json::MakeObject();
  d["protocol"] = protocol;
  d["detector_sha256"] = "0123abcd";
  d["frames"] = 16;
  d["stride"] = 1;
  d["covariance"] = protocol == "stylegan-v" ? "N" : "N-1";
  d["fake"] = Json::MakeObject();
  d["fake"]["features_key"] = fake_key;
  d["fake"]["source"] = "fake/";
  d["real"] = Json::MakeObject();
  d["real"]["features_key"] = real_key;
  d["real"]["source"] = "real/";
  return d;
}

// An eval run with the given metric values (details as given, else a plain object).
int64_t AddRun(Catalog& c, const std::string& name, const std::map<std::string, double>& values,
               const std::map<std::string, Json>& details = {}) {
  const int64_t id = *c.BeginRun("eval", Json::MakeObject(), name);
  for (const auto& [metric, value] : values) {
    auto it = details.find(metric);
    Json d = it != details.end() ? it->second : Json::MakeObject();
    if (metric == "clipsim" && d.Find("clip_model") == nullptr) d["clip_model"] = "clip-vit-b-32";
    EXPECT_TRUE(c.AddMetric(id, metric, value, d).ok());
  }
  EXPECT_TRUE(c.FinishRun(id, RunStatus::kOk).ok());
  return id;
}

const MetricComparison& Get(const Comparison& c, const std::string& name) {
  for (const MetricComparison& m : c.metrics) {
    if (m.name == name) return m;
  }
  ADD_FAILURE() << "no row for " << name;
  static MetricComparison none;
  return none;
}

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.File("cmp.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(c).value();
  }
  CompareOptions Gates(const std::string& spec) {
    CompareOptions o;
    auto t = ParseTolerances(spec);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    o.tolerances = *t;
    o.bootstrap = 0;
    return o;
  }
  TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
};

TEST(ToleranceTest, SignsUnitsAndMistakes) {
  auto t = ParseTolerances("fvd=+5%, clipsim=-0.5,flicker=0.01");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_TRUE((*t)[0].relative);
  EXPECT_DOUBLE_EQ((*t)[0].amount, 0.05);
  EXPECT_FALSE((*t)[1].relative);
  EXPECT_DOUBLE_EQ((*t)[1].amount, 0.5);
  EXPECT_DOUBLE_EQ((*t)[2].amount, 0.01);

  auto wrong_sign = ParseTolerances("fvd=-5%");
  ASSERT_FALSE(wrong_sign.ok());
  EXPECT_NE(wrong_sign.status().message().find("write fvd=+5%"), std::string::npos)
      << wrong_sign.status().message();
  EXPECT_NE(ParseTolerances("clipsim=+1").status().message().find("write clipsim=-1"),
            std::string::npos);
  EXPECT_NE(ParseTolerances("fid=+1").status().message().find("unknown metric 'fid'"),
            std::string::npos);
  EXPECT_FALSE(ParseTolerances("fvd").ok());
  EXPECT_FALSE(ParseTolerances("fvd=abc").ok());
  EXPECT_FALSE(ParseTolerances("fvd=+1,fvd=+2").ok());
  EXPECT_TRUE(ParseTolerances("").ok());
}

TEST_F(CompareTest, ImprovementRegressionAndTolerance) {
  AddRun(*catalog_, "base", {{"fvd", 100.0}, {"clipsim", 30.0}, {"flicker", 0.95}, {"kvd", 2.0}},
         {{"fvd", FvdDetails("b")}, {"kvd", FvdDetails("b")}});
  AddRun(*catalog_, "ok", {{"fvd", 104.0}, {"clipsim", 29.7}, {"flicker", 0.97}, {"kvd", 2.5}},
         {{"fvd", FvdDetails("c")}, {"kvd", FvdDetails("c")}});
  AddRun(*catalog_, "bad", {{"fvd", 106.0}, {"clipsim", 29.2}, {"flicker", 0.95}, {"kvd", 1.0}},
         {{"fvd", FvdDetails("d")}, {"kvd", FvdDetails("d")}});

  auto ok = CompareRuns(*catalog_, "base", "ok", Gates("fvd=+5%,clipsim=-0.5"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_FALSE(ok->failed);
  EXPECT_EQ(Get(*ok, "fvd").verdict, Verdict::kWithinTolerance);
  EXPECT_DOUBLE_EQ(Get(*ok, "fvd").difference, 4.0);
  EXPECT_DOUBLE_EQ(*Get(*ok, "fvd").relative, 0.04);
  EXPECT_EQ(Get(*ok, "clipsim").verdict, Verdict::kWithinTolerance);
  EXPECT_EQ(Get(*ok, "flicker").verdict, Verdict::kImproved);
  EXPECT_EQ(Get(*ok, "kvd").verdict, Verdict::kWorse) << "not gated: reported, not failing";
  EXPECT_EQ(ok->metrics[0].name, "fvd") << "the usual metric order";

  auto bad = CompareRuns(*catalog_, "base", "bad", Gates("fvd=+5%,clipsim=-0.5"));
  ASSERT_TRUE(bad.ok());
  EXPECT_TRUE(bad->failed);
  EXPECT_EQ(Get(*bad, "fvd").verdict, Verdict::kRegressed);
  EXPECT_EQ(Get(*bad, "clipsim").verdict, Verdict::kRegressed);
  EXPECT_EQ(Get(*bad, "flicker").verdict, Verdict::kUnchanged);
  EXPECT_EQ(Get(*bad, "kvd").verdict, Verdict::kImproved);

  // The other way round, the worse run is the baseline: everything gated improved.
  auto reverse = CompareRuns(*catalog_, "bad", "base", Gates("fvd=+0%,clipsim=-0"));
  ASSERT_TRUE(reverse.ok());
  EXPECT_FALSE(reverse->failed);
  EXPECT_EQ(Get(*reverse, "fvd").verdict, Verdict::kImproved);

  // Runs by id work too; an unknown run is NotFound.
  auto by_id = CompareRuns(*catalog_, std::to_string(ok->baseline.id), "ok", Gates(""));
  ASSERT_TRUE(by_id.ok());
  EXPECT_FALSE(by_id->failed) << "no gates, nothing fails";
  EXPECT_EQ(CompareRuns(*catalog_, "base", "nope", Gates("")).status().code(),
            StatusCode::kNotFound);

  const std::string md = ComparisonMarkdown(*bad);
  EXPECT_NE(md.find("FAIL (2 regressed)"), std::string::npos) << md;
  EXPECT_NE(md.find("| fvd | lower | 100.0000 | 106.0000 | +6.0000 (+6.00%)"), std::string::npos)
      << md;
  const Json j = ComparisonJson(*bad);
  EXPECT_FALSE(j.Find("passed")->as_bool());
  EXPECT_EQ(j.Find("metrics")->at(0).Find("verdict")->as_string(), "regressed");
}

TEST_F(CompareTest, AMetricMissingFromOneRun) {
  AddRun(*catalog_, "base", {{"fvd", 100.0}, {"clipsim", 30.0}}, {{"fvd", FvdDetails("b")}});
  AddRun(*catalog_, "cand", {{"fvd", 90.0}}, {{"fvd", FvdDetails("c")}});
  auto ungated = CompareRuns(*catalog_, "base", "cand", Gates("fvd=+5%"));
  ASSERT_TRUE(ungated.ok());
  EXPECT_FALSE(ungated->failed);
  EXPECT_EQ(Get(*ungated, "clipsim").verdict, Verdict::kMissing);
  EXPECT_EQ(Get(*ungated, "clipsim").note, "not in the candidate run");
  auto gated = CompareRuns(*catalog_, "base", "cand", Gates("fvd=+5%,clipsim=-0.5"));
  ASSERT_TRUE(gated.ok());
  EXPECT_TRUE(gated->failed) << "a gate that cannot be checked fails";
  EXPECT_NE(ComparisonMarkdown(*gated).find("1 gate(s) could not be checked"), std::string::npos);
  // A gate on a metric neither run has is reported too.
  auto neither = CompareRuns(*catalog_, "base", "cand", Gates("warp-error=+0.01"));
  ASSERT_TRUE(neither.ok());
  EXPECT_TRUE(neither->failed);
  EXPECT_EQ(Get(*neither, "warp-error").note, "in neither run");
}

TEST_F(CompareTest, IncompatibleProtocolsAreRefused) {
  AddRun(*catalog_, "sgv", {{"fvd", 100.0}}, {{"fvd", FvdDetails("b", "stylegan-v")}});
  AddRun(*catalog_, "cm", {{"fvd", 50.0}}, {{"fvd", FvdDetails("c", "common-metrics")}});
  AddRun(*catalog_, "other-real", {{"fvd", 50.0}}, {{"fvd", FvdDetails("e", "stylegan-v", "r2")}});
  auto c = CompareRuns(*catalog_, "sgv", "cm", Gates("fvd=+5%"));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->failed);
  const MetricComparison& m = Get(*c, "fvd");
  EXPECT_EQ(m.verdict, Verdict::kIncompatible);
  EXPECT_NE(m.note.find("different protocols (baseline stylegan-v, candidate common-metrics)"),
            std::string::npos)
      << m.note;
  const Json j = ComparisonJson(*c);
  EXPECT_TRUE(j.Find("metrics")->at(0).Find("difference")->is_null()) << "not compared";
  auto r = CompareRuns(*catalog_, "sgv", "other-real", Gates(""));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Get(*r, "fvd").verdict, Verdict::kIncompatible);
  EXPECT_NE(Get(*r, "fvd").note.find("different reference sets"), std::string::npos);
  EXPECT_FALSE(r->failed) << "not gated";
  // CLIP metrics from different CLIP models.
  Json l14 = Json::MakeObject();
  l14["clip_model"] = "clip-vit-l-14";
  AddRun(*catalog_, "b32", {{"clipsim", 30.0}});
  AddRun(*catalog_, "l14", {{"clipsim", 25.0}}, {{"clipsim", l14}});
  auto clip = CompareRuns(*catalog_, "b32", "l14", Gates("clipsim=-1"));
  ASSERT_TRUE(clip.ok());
  EXPECT_EQ(Get(*clip, "clipsim").verdict, Verdict::kIncompatible);
}

TEST_F(CompareTest, BootstrapIntervalsFromCachedFeaturesAndPerVideoScores) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n01(0, 1);
  auto put = [&](const std::string& key, float shift) {
    FeatureSet f;
    f.key = key;
    f.extractor = "i3d:0123abcd:stylegan-v";
    f.count = 60;
    f.dim = 4;
    for (int i = 0; i < 240; ++i) f.features.push_back(n01(rng) + shift);
    ASSERT_TRUE(catalog_->PutFeatureSet(f).ok());
  };
  put("real-set", 0);
  put("near", 0.2f);
  put("far", 2.0f);
  Json bc = Json::MakeObject(), cc = Json::MakeObject();
  bc["clip_model"] = cc["clip_model"] = "clip-vit-b-32";
  bc["mode"] = cc["mode"] = "reel";
  Json bv = Json::MakeArray(), cv = Json::MakeArray();
  for (int i = 0; i < 40; ++i) {
    bv.push_back(30.0 + (i % 5) * 0.1);
    cv.push_back(28.0 + (i % 5) * 0.1);
  }
  bc["per_video"] = bv;
  cc["per_video"] = cv;
  AddRun(*catalog_, "near", {{"fvd", 0.5}, {"clipsim", 30.2}},
         {{"fvd", FvdDetails("near")}, {"clipsim", bc}});
  AddRun(*catalog_, "far", {{"fvd", 16.0}, {"clipsim", 28.2}},
         {{"fvd", FvdDetails("far")}, {"clipsim", cc}});
  CompareOptions o;
  o.bootstrap = 100;
  o.seed = 1;
  auto c = CompareRuns(*catalog_, "near", "far", o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const MetricComparison& fvd = Get(*c, "fvd");
  ASSERT_TRUE(fvd.ci_low.has_value()) << fvd.note;
  EXPECT_GT(*fvd.ci_low, 5.0) << "candidate clearly farther from the reference";
  EXPECT_LT(*fvd.ci_low, *fvd.ci_high);
  EXPECT_EQ(fvd.ci_resamples, 100);
  const MetricComparison& clip = Get(*c, "clipsim");
  ASSERT_TRUE(clip.ci_low.has_value()) << clip.note;
  EXPECT_LE(*clip.ci_low, -2.0 + 1e-9);
  EXPECT_GE(*clip.ci_high, -2.0 - 1e-9);
  EXPECT_LT(*clip.ci_high, -1.9);
  // Same seed, same interval.
  auto again = CompareRuns(*catalog_, "near", "far", o);
  EXPECT_EQ(*Get(*again, "fvd").ci_low, *fvd.ci_low);
  // Without the features in the catalog: no interval, and it says why.
  AddRun(*catalog_, "uncached", {{"fvd", 3.0}}, {{"fvd", FvdDetails("gone")}});
  auto u = CompareRuns(*catalog_, "near", "uncached", o);
  EXPECT_FALSE(Get(*u, "fvd").ci_low.has_value());
  EXPECT_NE(Get(*u, "fvd").note.find("not cached"), std::string::npos);
}

TEST(EvalCompareCliTest, ExitCodesJsonAndMarkdown) {
  TempDir dir;
  const std::string db = dir.File("c.db");
  {
    auto c = Catalog::Open(db);
    ASSERT_TRUE(c.ok());
    AddRun(**c, "base", {{"fvd", 100.0}, {"flicker", 0.9}}, {{"fvd", FvdDetails("b")}});
    AddRun(**c, "cand <script>alert(1)</script>", {{"fvd", 103.0}, {"flicker", 0.8}},
           {{"fvd", FvdDetails("c")}});
  }
  const std::string cand = "cand <script>alert(1)</script>";
  auto pass = testing::RunReel({"eval", "compare", "--db", db, "--baseline", "base", "--candidate",
                                cand, "--max-regression", "fvd=+5%"});
  EXPECT_EQ(pass.exit_code, 0) << pass.err;
  EXPECT_NE(pass.out.find("PASS"), std::string::npos) << pass.out;
  EXPECT_NE(pass.out.find("within tolerance"), std::string::npos) << pass.out;

  const std::string md = dir.File("summary.md");
  auto fail =
      testing::RunReel({"eval", "compare", "--db", db, "--baseline", "base", "--candidate", cand,
                        "--max-regression", "fvd=+2%,flicker=-0.05", "--json", "--markdown", md});
  EXPECT_EQ(fail.exit_code, 1) << fail.err;
  auto j = Json::Parse(fail.out);
  ASSERT_TRUE(j.ok()) << fail.out;
  EXPECT_FALSE(j->Find("passed")->as_bool());
  std::ifstream in(md);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("FAIL (2 regressed)"), std::string::npos) << text.str();
  EXPECT_EQ(text.str().find("<script>"), std::string::npos) << "names are escaped";
  EXPECT_NE(text.str().find("&lt;script&gt;"), std::string::npos);

  EXPECT_EQ(
      testing::RunReel({"eval", "compare", "--db", db, "--baseline", "base", "--candidate", "nope"})
          .exit_code,
      2);
  EXPECT_EQ(testing::RunReel({"eval", "compare", "--db", db, "--baseline", "base", "--candidate",
                              cand, "--max-regression", "fvd=-5%"})
                .exit_code,
            2);
  EXPECT_EQ(testing::RunReel({"eval", "compare", "--db", db, "--baseline", "base"}).exit_code, 2);
}

}  // namespace
}  // namespace reel
