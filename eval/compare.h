// `reel eval compare`: two evaluation runs side by side, with regression gates for CI.
//
// For every metric either run has: both values, the difference (candidate - baseline),
// the relative difference, a 95% bootstrap interval of the difference where the metric
// allows one, and a verdict:
//   improved          better than the baseline
//   unchanged         equal
//   worse             worse, but the metric is not gated (informational)
//   within tolerance  worse, by no more than its --max-regression tolerance
//   regressed         worse beyond its tolerance
//   missing           absent from one of the runs
//   incompatible      the two values cannot be compared (FVD/KVD under different
//                     protocols, detectors, clip settings or reference sets; CLIP metrics
//                     with different CLIP models or clipsim modes): refused, not compared
// A comparison fails (exit 1) when a gated metric regressed, or is missing or
// incompatible (the gate cannot be checked). Metrics not named in the tolerances are
// reported and never fail the comparison.
//
// Tolerances: "fvd=+5%,clipsim=-0.5" (ParseTolerances): a relative (percent of the
// baseline's magnitude) or absolute amount by which the candidate may be worse. The sign
// is optional and, when given, must point in the metric's worse direction (+ for
// lower-is-better metrics such as fvd, - for higher-is-better ones such as clipsim).
//
// Intervals (bootstrap, percentile): fvd from the I3D feature sets cached in the catalog
// (candidate, baseline and the shared reference resampled independently); clipsim from
// the per-video scores stored with each run. Others have none.
//
// Thread-safety: CompareRuns uses the catalog on the calling thread only.

#ifndef REEL_EVAL_COMPARE_H_
#define REEL_EVAL_COMPARE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/catalog.h"
#include "util/json.h"
#include "util/status.h"

namespace reel {

enum class MetricDirection { kLowerIsBetter, kHigherIsBetter };

struct MetricInfo {
  std::string name;
  MetricDirection direction;
  std::string label;  // for people: "FVD", "CLIP score", ...
};
// reel's evaluation metrics; nullptr for an unknown name.
const MetricInfo* FindMetricInfo(std::string_view name);
const std::vector<MetricInfo>& AllMetricInfo();

struct Tolerance {
  std::string metric;
  double amount = 0;      // >= 0; in the metric's units, or a fraction when relative
  bool relative = false;  // "5%" -> amount 0.05, relative
  std::string text;       // as written
};
// Parses "name=[+|-]X[%],..." against the known metrics (a wrong sign or unknown metric
// is an InvalidArgument naming it).
Result<std::vector<Tolerance>> ParseTolerances(std::string_view spec);

enum class Verdict {
  kImproved,
  kUnchanged,
  kWorse,
  kWithinTolerance,
  kRegressed,
  kMissing,
  kIncompatible
};
std::string_view VerdictName(Verdict v);

struct MetricComparison {
  std::string name;
  MetricDirection direction = MetricDirection::kLowerIsBetter;
  std::optional<double> baseline, candidate;
  double difference = 0;                  // candidate - baseline
  std::optional<double> relative;         // difference / |baseline|, when baseline != 0
  std::optional<double> ci_low, ci_high;  // of the difference
  int ci_resamples = 0;
  std::optional<Tolerance> tolerance;  // set when gated
  Verdict verdict = Verdict::kUnchanged;
  std::string note;  // why missing/incompatible, or why there is no interval
};

struct Comparison {
  RunRecord baseline, candidate;
  std::vector<MetricComparison> metrics;
  bool failed = false;  // a gated metric regressed, is missing or is incompatible
};

struct CompareOptions {
  std::vector<Tolerance> tolerances;
  int bootstrap = 200;  // resamples for intervals; 0 = none
  uint64_t seed = 0;
};

// Finds an eval run by id ("12") or name (the newest run with that name).
Result<RunRecord> FindEvalRun(Catalog& catalog, const std::string& id_or_name);

Result<Comparison> CompareRuns(Catalog& catalog, const std::string& baseline,
                               const std::string& candidate, const CompareOptions& options);

Json ComparisonJson(const Comparison& c);
// A Markdown summary for CI comments: a verdict line and one table row per metric.
std::string ComparisonMarkdown(const Comparison& c);

// Text made safe inside a Markdown table cell: HTML characters as entities, Markdown
// punctuation backslash-escaped, newlines as spaces.
std::string MarkdownEscape(const std::string& s);

}  // namespace reel

#endif  // REEL_EVAL_COMPARE_H_
