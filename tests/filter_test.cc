// Tests for the clip filter language: compilation, errors with positions, injection
// attempts, and subsets with reasons.

#include <gtest/gtest.h>

#include "curate/filter.h"
#include "db/catalog.h"
#include "tests/support/test_support.h"
#include "util/strings.h"

namespace reel {
namespace {

using testing::TempDir;

TEST(FilterCompileTest, IssueExample) {
  auto f = CompileFilter("duration >= 2 and motion > 0.3 and not duplicate");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_EQ(f->conjuncts.size(), 3u);
  EXPECT_EQ(f->conjuncts[0].text, "duration >= 2");
  EXPECT_EQ(f->conjuncts[1].text, "motion > 0.3");
  EXPECT_EQ(f->conjuncts[2].text, "not duplicate");
  EXPECT_EQ(f->conjuncts[1].columns, std::vector<std::string>{"motion"});
  ASSERT_EQ(f->whole.params.size(), 2u);
  EXPECT_EQ(std::get<int64_t>(f->whole.params[0]), 2);
  EXPECT_DOUBLE_EQ(std::get<double>(f->whole.params[1]), 0.3);
  EXPECT_EQ(f->whole.sql.find("0.3"), std::string::npos);  // literals are parameters
}

TEST(FilterCompileTest, OperatorsFunctionsAndPrecedence) {
  for (const char* ok : {
           "camera in ('pan_left', 'pan_right') or camera = 'static'",
           "camera not in ('shaky')",
           "duration between 2 and 10",
           "motion is not null and motion * 2 - 0.1 >= 0.5 / 2",
           "abs(start - end) > 1 and max(width, height) >= 720",
           "lower(codec) == 'h264' and not vfr",
           "contains(path, \"drone\") or color('green') > 0.25",
           "in_subset('long') and captions = 0",
           "NOT (Duration < 2 OR Motion <= 0.1)",
           "-motion < -0.2",
           "aspect > 1.7 and fps >= 24 and audio = false",
           "sharpness > 1e2",
       }) {
    auto f = CompileFilter(ok);
    EXPECT_TRUE(f.ok()) << ok << ": " << f.status().ToString();
  }
  // "or" binds looser than "and": one conjunct for the whole.
  EXPECT_EQ(CompileFilter("duration > 1 and motion > 1 or black < 0.5")->conjuncts.size(), 1u);
  EXPECT_EQ(CompileFilter("duration > 1 and (motion > 1 or black < 0.5)")->conjuncts.size(), 2u);
}

TEST(FilterCompileTest, MalformedExpressionsSayWhere) {
  struct Case {
    const char* expr;
    size_t column;  // 1-based
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"duration >=", 12, "expected a value"},
           {"duration >= 2 and", 18, "expected a value"},
           {"(duration > 2", 14, "expected ')'"},
           {"motion > 'fast'", 8, "cannot compare a number with text"},
           {"speed > 1", 1, "unknown name 'speed'"},
           {"camera = pan_left", 10, "unknown name 'pan_left'"},
           {"camera = 'pan_left", 10, "unterminated string"},
           {"duration > 2 ; DROP TABLE clips", 14, "unexpected character ';'"},
           {"duration > 2 motion > 1", 14, "expected 'and', 'or' or the end"},
           {"motion", 1, "expected a condition"},
           {"duration + 'a' > 1", 10, "'+' needs numbers"},
           {"duplicate > true", 11, "cannot compare"},
           {"motion = null", 8, "is null"},
           {"camera in (1, 2)", 12, "list item is a number"},
           {"colour('red') > 0", 1, "unknown function 'colour'"},
           {"abs(1, 2) > 0", 1, "takes 1 argument"},
           {"1.2.3 > 1", 1, "malformed number"},
       }) {
    auto f = CompileFilter(c.expr);
    ASSERT_FALSE(f.ok()) << c.expr;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = f.status().message();
    EXPECT_NE(m.find("at column " + std::to_string(c.column) + ":"), std::string::npos)
        << c.expr << "\n" << m;
    EXPECT_NE(m.find(c.message), std::string::npos) << c.expr << "\n" << m;
    EXPECT_NE(m.find(c.expr), std::string::npos);  // the expression is shown with a caret
  }
  EXPECT_FALSE(CompileFilter("").ok());
  EXPECT_FALSE(CompileFilter("   ").ok());
}

TEST(FilterCompileTest, InjectionAttemptsStayData) {
  // Quotes inside strings are data: the SQL text never contains them.
  for (const char* attack : {
           "camera = 'x'' OR 1=1 --'",
           "path = \"a\"\"; DELETE FROM clips; --\"",
           "codec = 'h264'')); DROP TABLE videos; --'",
       }) {
    auto f = CompileFilter(attack);
    ASSERT_TRUE(f.ok()) << attack << ": " << f.status().ToString();
    EXPECT_EQ(f->whole.sql.find("DROP"), std::string::npos);
    EXPECT_EQ(f->whole.sql.find("DELETE"), std::string::npos);
    EXPECT_EQ(f->whole.sql.find("OR 1=1"), std::string::npos);
    ASSERT_EQ(f->whole.params.size(), 1u);
  }
  // Structure-breaking attempts are parse errors, not SQL.
  for (const char* attack : {"duration > 0) OR (1=1", "duration > 0 --", "duration > 0; SELECT 1",
                             "duration > 0 union select path from videos",
                             "videos.path = 'x'", "`duration` > 0", "duration > 0 /* */"}) {
    EXPECT_FALSE(CompileFilter(attack).ok()) << attack;
  }
}

class ApplyFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.File("cat.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(c).value();
    VideoRecord v;
    v.path = "/v/a.mp4";
    v.content_hash = std::string(64, 'a');
    v.codec = "h264";
    v.width = 1280;
    v.height = 720;
    v.frame_rate = Rational(25, 1);
    v.time_base = Rational(1, 25);
    video_ = *catalog_->UpsertVideo(v);
    // Four clips: (duration, motion, camera, colours).
    AddClip(0, 50, 0.5, "pan_left", "green");   // 2 s, moving, green
    AddClip(50, 75, 0.9, "shaky", "blue");       // 1 s: too short
    AddClip(75, 175, 0.1, "static", "green");    // 4 s, static
    AddClip(175, 275, std::nullopt, "", "red");  // 4 s, motion unknown
  }

  int64_t AddClip(int64_t a, int64_t b, std::optional<double> motion, const char* camera,
                  const char* color) {
    ClipRecord c;
    c.video_id = video_;
    c.start_frame = a;
    c.end_frame = b;
    c.start_time = Rational(a, 25);
    c.end_time = Rational(b, 25);
    c.signals.motion = motion;
    c.signals.camera_motion = camera;
    Json col = Json::MakeObject();
    col["name"] = color;
    col["fraction"] = 0.8;
    c.signals.dominant_colors = Json::MakeArray();
    c.signals.dominant_colors.push_back(col);
    const int64_t id = *catalog_->AddClip(c);
    ids_.push_back(id);
    return id;
  }

  std::map<int64_t, SubsetMember> Members(const std::string& name) {
    std::map<int64_t, SubsetMember> out;
    auto subset = catalog_->FindSubset(name);
    EXPECT_TRUE(subset.ok() && subset->has_value()) << name;
    if (!subset.ok() || !subset->has_value()) return out;
    for (const auto& m : *catalog_->ListSubsetMembers((*subset)->id)) out[m.clip_id] = m;
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
  int64_t video_ = 0;
  std::vector<int64_t> ids_;
};

TEST_F(ApplyFilterTest, RecordsPassesAndTheFirstFailedConditionWithValues) {
  ASSERT_TRUE(catalog_->SetClipDuplicate(ids_[2], ids_[0]).ok());
  auto s = ApplyFilter(*catalog_, "duration >= 2 and motion > 0.3 and not duplicate", "train");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->clips, 4);
  EXPECT_EQ(s->passed, 1);
  const auto m = Members("train");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_TRUE(m.at(ids_[0]).passed);
  EXPECT_EQ(m.at(ids_[1]).reason, "duration >= 2 (duration = 1.0)");
  EXPECT_EQ(m.at(ids_[2]).reason, "motion > 0.3 (motion = 0.1)");
  EXPECT_EQ(m.at(ids_[3]).reason, "motion > 0.3 (motion = unknown)");
  EXPECT_EQ(s->failed_at.at("duration >= 2"), 1);
  EXPECT_EQ(s->failed_at.at("motion > 0.3"), 2);
  auto subset = **catalog_->FindSubset("train");
  EXPECT_EQ(subset.expression, "duration >= 2 and motion > 0.3 and not duplicate");
  EXPECT_EQ((*catalog_->FindRun(*subset.run_id))->kind, "filter");
}

TEST_F(ApplyFilterTest, ReapplyingReplacesTheSubsetAndDryRunWritesNothing) {
  ASSERT_TRUE(ApplyFilter(*catalog_, "motion > 0.3", "moving").ok());
  EXPECT_EQ(Members("moving").at(ids_[0]).passed, true);
  auto s = ApplyFilter(*catalog_, "motion > 0.6", "moving");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->passed, 1);
  EXPECT_FALSE(Members("moving").at(ids_[0]).passed);
  EXPECT_TRUE(Members("moving").at(ids_[1]).passed);
  EXPECT_EQ(catalog_->ListSubsets()->size(), 1u);

  auto dry = ApplyFilter(*catalog_, "duration > 0", "preview", /*dry_run=*/true);
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ(dry->passed, 4);
  EXPECT_FALSE(catalog_->FindSubset("preview")->has_value());
}

// Clip lengths are exact: 18 frames at 25 fps is 0.72 s wherever the clip starts. The
// length was end - start of two rounded quotients, 0.7199999999999998 for a clip from
// frame 64, which then failed `duration >= 0.72` while the same length from frame 2 passed.
TEST_F(ApplyFilterTest, DurationIsTheExactLengthWhereverTheClipStarts) {
  const int64_t early = AddClip(2, 20, 0.5, "static", "green");
  const int64_t late = AddClip(64, 82, 0.5, "static", "green");
  auto s = ApplyFilter(*catalog_, "duration >= 0.72 and duration <= 0.72", "exact");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->passed, 2);
  const auto m = Members("exact");
  EXPECT_TRUE(m.at(early).passed);
  EXPECT_TRUE(m.at(late).passed) << m.at(late).reason;
}

TEST_F(ApplyFilterTest, FunctionsColoursAndChainedSubsets) {
  ASSERT_TRUE(ApplyFilter(*catalog_, "duration >= 2", "long").ok());
  auto s = ApplyFilter(*catalog_, "in_subset('long') and color('green') > 0.5", "long_green");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->passed, 2);  // clips 0 and 2
  auto cam = ApplyFilter(*catalog_, "camera in ('pan_left', 'pan_right') or camera = 'shaky'", "cam");
  EXPECT_EQ(cam->passed, 2);
  // Strings that look like SQL match nothing and break nothing.
  auto attack = ApplyFilter(*catalog_, "camera = 'x'' OR 1=1 --'", "attack");
  ASSERT_TRUE(attack.ok());
  EXPECT_EQ(attack->passed, 0);
  EXPECT_EQ(catalog_->ListClips()->size(), 4u);
  EXPECT_EQ(*catalog_->IntegrityCheck(), "ok");
}

}  // namespace
}  // namespace reel
