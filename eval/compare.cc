#include "eval/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include <torch/torch.h>

#include "eval/frechet.h"
#include "util/strings.h"

namespace reel {
namespace {

std::string Num(double v, const char* fmt = "%.4f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

const Json* Path(const Json& j, std::initializer_list<const char*> keys) {
  const Json* cur = &j;
  for (const char* k : keys) {
    if (cur == nullptr || !cur->is_object()) return nullptr;
    cur = cur->Find(k);
  }
  return cur;
}

std::string Str(const Json& j, std::initializer_list<const char*> keys) {
  const Json* v = Path(j, keys);
  if (v == nullptr || v->is_null()) return "";
  return v->is_string() ? v->as_string() : v->Dump();
}

// Why two metric rows cannot be compared, or "" when they can.
std::string Incompatibility(const std::string& name, const Json& b, const Json& c) {
  auto differs = [&](std::initializer_list<const char*> keys, const std::string& what,
                     bool show_values = true) -> std::string {
    const std::string x = Str(b, keys), y = Str(c, keys);
    if (x == y) return "";
    if (!show_values) return what;
    return what + " (baseline " + (x.empty() ? "unknown" : x) + ", candidate " +
           (y.empty() ? "unknown" : y) + ")";
  };
  std::string why;
  if (name == "fvd" || name == "kvd") {
    const std::string pb = Str(b, {"protocol"}), pc = Str(c, {"protocol"});
    if (pb != pc) {
      return "FVD under different protocols (baseline " + pb + ", candidate " + pc +
             ") gives numbers that cannot be compared";
    }
    if (!(why = differs({"detector_sha256"}, "different I3D detectors")).empty()) return why;
    if (!(why = differs({"frames"}, "different clip lengths")).empty()) return why;
    if (!(why = differs({"stride"}, "different frame strides")).empty()) return why;
    const std::string rb = Str(b, {"real", "features_key"}), rc = Str(c, {"real", "features_key"});
    if (rb != rc || rb.empty()) {
      return "different reference sets (baseline " + Str(b, {"real", "source"}) + ", candidate " +
             Str(c, {"real", "source"}) + ")";
    }
  }
  if (name == "clipsim" || name == "clip-temp" || name == "background-consistency") {
    if (!(why = differs({"clip_model"}, "different CLIP models")).empty()) return why;
  }
  if (name == "clipsim") {
    if (!(why = differs({"mode"}, "different clipsim modes")).empty()) return why;
  }
  return "";
}

Result<torch::Tensor> LoadFeatures(Catalog& catalog, const std::string& key) {
  REEL_ASSIGN_OR_RETURN(std::optional<FeatureSet> set, catalog.FindFeatureSet(key));
  if (!set.has_value() || set->count < 2) {
    return Status::NotFound("the run's I3D features are not cached in the catalog");
  }
  return torch::from_blob(set->features.data(), {set->count, set->dim}, torch::kFloat).clone();
}

std::vector<double> Doubles(const Json* arr) {
  std::vector<double> out;
  if (arr == nullptr || !arr->is_array()) return out;
  for (size_t i = 0; i < arr->size(); ++i) out.push_back(arr->at(i).as_double());
  return out;
}

// Bootstrap interval of clipsim(candidate) - clipsim(baseline) from per-video scores.
std::optional<Interval> ClipsimInterval(const Json& b, const Json& c, int resamples, uint64_t seed,
                                        std::string* note) {
  const std::vector<double> vb = Doubles(b.Find("per_video")), vc = Doubles(c.Find("per_video"));
  std::vector<double> fb = Doubles(b.Find("per_video_frames")),
                      fc = Doubles(c.Find("per_video_frames"));
  if (vb.size() < 2 || vc.size() < 2) {
    *note = "no per-video scores for an interval";
    return std::nullopt;
  }
  const bool torchmetrics = Str(b, {"mode"}) == "torchmetrics";
  if (fb.size() != vb.size()) fb.assign(vb.size(), 1.0);
  if (fc.size() != vc.size()) fc.assign(vc.size(), 1.0);
  std::mt19937_64 rng(seed);
  auto draw = [&](const std::vector<double>& v, const std::vector<double>& f) {
    std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
    double sum = 0, weight = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      const size_t i = pick(rng);
      const double w = torchmetrics ? f[i] : 1.0;
      sum += v[i] * w;
      weight += w;
    }
    const double mean = weight > 0 ? sum / weight : 0.0;
    return torchmetrics ? std::max(0.0, mean) : mean;
  };
  std::vector<double> diffs;
  for (int k = 0; k < resamples; ++k) {
    const double x = draw(vc, fc);
    const double y = draw(vb, fb);
    diffs.push_back(x - y);
  }
  return PercentileInterval(std::move(diffs));
}

std::string RunLabel(const RunRecord& r) {
  return (r.name.empty() ? "(unnamed)" : r.name) + " (run " + std::to_string(r.id) + ")";
}

}  // namespace

const std::vector<MetricInfo>& AllMetricInfo() {
  static const std::vector<MetricInfo> kInfo = {
      {"fvd", MetricDirection::kLowerIsBetter, "FVD"},
      {"kvd", MetricDirection::kLowerIsBetter, "KVD"},
      {"clipsim", MetricDirection::kHigherIsBetter, "CLIP score"},
      {"clip-temp", MetricDirection::kHigherIsBetter, "CLIP temporal consistency"},
      {"background-consistency", MetricDirection::kHigherIsBetter, "Background consistency"},
      {"flicker", MetricDirection::kHigherIsBetter, "Temporal flickering"},
      {"dynamic-degree", MetricDirection::kHigherIsBetter, "Dynamic degree"},
      {"warp-error", MetricDirection::kLowerIsBetter, "Warping error"},
  };
  return kInfo;
}

const MetricInfo* FindMetricInfo(std::string_view name) {
  for (const MetricInfo& m : AllMetricInfo()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

std::string MarkdownEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '|':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '\\':
      case '#':
        out += '\\';
        out += ch;
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kImproved:
      return "improved";
    case Verdict::kUnchanged:
      return "unchanged";
    case Verdict::kWorse:
      return "worse";
    case Verdict::kWithinTolerance:
      return "within tolerance";
    case Verdict::kRegressed:
      return "regressed";
    case Verdict::kMissing:
      return "missing";
    case Verdict::kIncompatible:
      return "incompatible";
  }
  return "?";
}

Result<std::vector<Tolerance>> ParseTolerances(std::string_view spec) {
  std::vector<Tolerance> out;
  std::set<std::string> seen;
  for (std::string item : Split(spec, ',', /*skip_empty=*/true)) {
    item = std::string(Trim(item));
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("tolerance '" + item +
                                     "' is not METRIC=AMOUNT (e.g. fvd=+5%)");
    }
    Tolerance t;
    t.metric = std::string(Trim(item.substr(0, eq)));
    t.text = std::string(Trim(item.substr(eq + 1)));
    const MetricInfo* info = FindMetricInfo(t.metric);
    if (info == nullptr)
      return Status::InvalidArgument("tolerance for unknown metric '" + t.metric + "'");
    if (!seen.insert(t.metric).second) {
      return Status::InvalidArgument("two tolerances for '" + t.metric + "'");
    }
    std::string v = t.text;
    int sign = 0;
    if (!v.empty() && (v[0] == '+' || v[0] == '-')) {
      sign = v[0] == '+' ? 1 : -1;
      v.erase(0, 1);
    }
    if (!v.empty() && v.back() == '%') {
      t.relative = true;
      v.pop_back();
    }
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x) || x < 0) {
      return Status::InvalidArgument("tolerance '" + item + "': '" + t.text +
                                     "' is not an amount such as +5% or -0.5");
    }
    const int worse = info->direction == MetricDirection::kLowerIsBetter ? 1 : -1;
    if (sign != 0 && sign != worse && x != 0) {
      return Status::InvalidArgument(
          "tolerance '" + item + "': " + t.metric + " is " +
          (worse > 0 ? "lower-is-better, so a regression is an increase; write " + t.metric + "=+" +
                           v + (t.relative ? "%" : "")
                     : "higher-is-better, so a regression is a decrease; write " + t.metric + "=-" +
                           v + (t.relative ? "%" : "")));
    }
    t.amount = t.relative ? x / 100.0 : x;
    out.push_back(t);
  }
  return out;
}

Result<RunRecord> FindEvalRun(Catalog& catalog, const std::string& id_or_name) {
  if (id_or_name.empty()) return Status::InvalidArgument("empty run name");
  const bool numeric = std::all_of(id_or_name.begin(), id_or_name.end(),
                                   [](char ch) { return ch >= '0' && ch <= '9'; });
  if (numeric) {
    REEL_ASSIGN_OR_RETURN(std::optional<RunRecord> run, catalog.FindRun(std::stoll(id_or_name)));
    if (run.has_value()) {
      if (run->kind != "eval") {
        return Status::InvalidArgument("run " + id_or_name + " is a " + run->kind +
                                       " run, not an eval run");
      }
      return *run;
    }
  }
  return catalog.FindRunByName("eval", id_or_name);
}

Result<Comparison> CompareRuns(Catalog& catalog, const std::string& baseline,
                               const std::string& candidate, const CompareOptions& options) {
  Comparison out;
  REEL_ASSIGN_OR_RETURN(out.baseline, FindEvalRun(catalog, baseline));
  REEL_ASSIGN_OR_RETURN(out.candidate, FindEvalRun(catalog, candidate));
  REEL_ASSIGN_OR_RETURN(std::vector<MetricRecord> bm, catalog.ListMetrics(out.baseline.id));
  REEL_ASSIGN_OR_RETURN(std::vector<MetricRecord> cm, catalog.ListMetrics(out.candidate.id));
  std::map<std::string, const MetricRecord*> b, c;
  for (const MetricRecord& m : bm) b[m.name] = &m;
  for (const MetricRecord& m : cm) c[m.name] = &m;
  std::map<std::string, Tolerance> gates;
  for (const Tolerance& t : options.tolerances) gates[t.metric] = t;

  // Known metrics in their usual order, then gated ones neither run has.
  std::vector<std::string> names;
  for (const MetricInfo& info : AllMetricInfo()) {
    if (b.count(info.name) || c.count(info.name) || gates.count(info.name))
      names.push_back(info.name);
  }

  for (const std::string& name : names) {
    const MetricInfo* info = FindMetricInfo(name);
    MetricComparison mc;
    mc.name = name;
    mc.direction = info->direction;
    if (gates.count(name)) mc.tolerance = gates[name];
    const MetricRecord* x = b.count(name) ? b[name] : nullptr;
    const MetricRecord* y = c.count(name) ? c[name] : nullptr;
    if (x != nullptr) mc.baseline = x->value;
    if (y != nullptr) mc.candidate = y->value;
    if (x == nullptr || y == nullptr) {
      mc.verdict = Verdict::kMissing;
      mc.note = x == nullptr && y == nullptr ? "in neither run"
                : x == nullptr               ? "not in the baseline run"
                                             : "not in the candidate run";
      if (mc.tolerance.has_value()) out.failed = true;
      out.metrics.push_back(mc);
      continue;
    }
    if (std::string why = Incompatibility(name, x->details, y->details); !why.empty()) {
      mc.verdict = Verdict::kIncompatible;
      mc.note = why;
      if (mc.tolerance.has_value()) out.failed = true;
      out.metrics.push_back(mc);
      continue;
    }
    mc.difference = y->value - x->value;
    if (x->value != 0) mc.relative = mc.difference / std::fabs(x->value);

    // Interval of the difference.
    if (options.bootstrap >= 2) {
      if (name == "fvd") {
        auto fb = LoadFeatures(catalog, Str(x->details, {"fake", "features_key"}));
        auto fc = LoadFeatures(catalog, Str(y->details, {"fake", "features_key"}));
        auto fr = LoadFeatures(catalog, Str(x->details, {"real", "features_key"}));
        if (fb.ok() && fc.ok() && fr.ok()) {
          const bool unbiased = Str(x->details, {"covariance"}) == "N-1";
          REEL_ASSIGN_OR_RETURN(
              Interval ci,
              BootstrapFrechetDifference(*fc, *fb, *fr, unbiased, options.bootstrap, options.seed));
          mc.ci_low = ci.low;
          mc.ci_high = ci.high;
          mc.ci_resamples = ci.resamples;
        } else {
          mc.note = "no interval: the runs' I3D features are not cached in this catalog";
        }
      } else if (name == "clipsim") {
        std::string note;
        if (auto ci =
                ClipsimInterval(x->details, y->details, options.bootstrap, options.seed, &note)) {
          mc.ci_low = ci->low;
          mc.ci_high = ci->high;
          mc.ci_resamples = ci->resamples;
        } else {
          mc.note = note;
        }
      }
    }

    const double worse_by =
        info->direction == MetricDirection::kLowerIsBetter ? mc.difference : -mc.difference;
    const double eps = 1e-12 * std::max(1.0, std::fabs(x->value));
    if (std::fabs(mc.difference) <= eps) {
      mc.verdict = Verdict::kUnchanged;
    } else if (worse_by < 0) {
      mc.verdict = Verdict::kImproved;
    } else if (!mc.tolerance.has_value()) {
      mc.verdict = Verdict::kWorse;
    } else {
      const double allowed = mc.tolerance->relative ? mc.tolerance->amount * std::fabs(x->value)
                                                    : mc.tolerance->amount;
      mc.verdict = worse_by <= allowed + eps ? Verdict::kWithinTolerance : Verdict::kRegressed;
      if (mc.verdict == Verdict::kRegressed) out.failed = true;
    }
    out.metrics.push_back(mc);
  }
  return out;
}

Json ComparisonJson(const Comparison& c) {
  Json j = Json::MakeObject();
  auto run = [](const RunRecord& r) {
    Json x = Json::MakeObject();
    x["id"] = r.id;
    x["name"] = r.name;
    x["started_at"] = r.started_at;
    return x;
  };
  j["baseline"] = run(c.baseline);
  j["candidate"] = run(c.candidate);
  j["passed"] = !c.failed;
  Json ms = Json::MakeArray();
  for (const MetricComparison& m : c.metrics) {
    Json x = Json::MakeObject();
    x["metric"] = m.name;
    x["better"] = m.direction == MetricDirection::kLowerIsBetter ? "lower" : "higher";
    x["baseline"] = m.baseline.has_value() ? Json(*m.baseline) : Json();
    x["candidate"] = m.candidate.has_value() ? Json(*m.candidate) : Json();
    const bool compared = m.verdict != Verdict::kMissing && m.verdict != Verdict::kIncompatible;
    x["difference"] = compared ? Json(m.difference) : Json();
    x["relative_difference"] = compared && m.relative.has_value() ? Json(*m.relative) : Json();
    if (m.ci_low.has_value()) {
      Json ci = Json::MakeObject();
      ci["low"] = *m.ci_low;
      ci["high"] = *m.ci_high;
      ci["level"] = 0.95;
      ci["resamples"] = m.ci_resamples;
      x["difference_ci"] = ci;
    }
    x["tolerance"] = m.tolerance.has_value() ? Json(m.tolerance->text) : Json();
    x["verdict"] = std::string(VerdictName(m.verdict));
    if (!m.note.empty()) x["note"] = m.note;
    ms.push_back(x);
  }
  j["metrics"] = ms;
  return j;
}

std::string ComparisonMarkdown(const Comparison& c) {
  int regressed = 0, unverifiable = 0;
  for (const MetricComparison& m : c.metrics) {
    if (m.verdict == Verdict::kRegressed) ++regressed;
    if (m.tolerance.has_value() &&
        (m.verdict == Verdict::kMissing || m.verdict == Verdict::kIncompatible)) {
      ++unverifiable;
    }
  }
  std::string s = "### reel eval compare: ";
  if (!c.failed) {
    s += "PASS";
  } else {
    s += "FAIL (";
    if (regressed > 0) s += std::to_string(regressed) + " regressed";
    if (regressed > 0 && unverifiable > 0) s += ", ";
    if (unverifiable > 0) s += std::to_string(unverifiable) + " gate(s) could not be checked";
    s += ")";
  }
  s += "\n\ncandidate **" + MarkdownEscape(RunLabel(c.candidate)) + "** against baseline **" +
       MarkdownEscape(RunLabel(c.baseline)) + "**\n\n";
  s += "| metric | better | baseline | candidate | difference | 95% CI of difference | tolerance | "
       "verdict |\n";
  s += "| --- | --- | ---: | ---: | ---: | --- | --- | --- |\n";
  for (const MetricComparison& m : c.metrics) {
    const bool compared = m.verdict != Verdict::kMissing && m.verdict != Verdict::kIncompatible;
    std::string diff = "";
    if (compared) {
      diff = Num(m.difference, "%+.4f");
      if (m.relative.has_value()) diff += " (" + Num(100 * *m.relative, "%+.2f") + "%)";
    }
    std::string verdict = std::string(VerdictName(m.verdict));
    if (m.verdict == Verdict::kRegressed) verdict = "**regressed**";
    if (!m.note.empty()) verdict += ": " + MarkdownEscape(m.note);
    s += "| " + MarkdownEscape(m.name) + " | " +
         (m.direction == MetricDirection::kLowerIsBetter ? "lower" : "higher") + " | " +
         (m.baseline.has_value() ? Num(*m.baseline) : "-") + " | " +
         (m.candidate.has_value() ? Num(*m.candidate) : "-") + " | " + diff + " | " +
         (m.ci_low.has_value()
              ? "[" + Num(*m.ci_low, "%+.4f") + ", " + Num(*m.ci_high, "%+.4f") + "]"
              : "") +
         " | " + (m.tolerance.has_value() ? MarkdownEscape(m.tolerance->text) : "") + " | " +
         verdict + " |\n";
  }
  return s;
}

}  // namespace reel
