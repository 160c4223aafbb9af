#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "caption/frames.h"
#include "eval/compare.h"
#include "util/json.h"
#include "util/strings.h"
#include "video/decoder.h"
#include "video/probe.h"

namespace reel {
namespace {

namespace fs = std::filesystem;

std::string Num(double v, int digits = 4) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string Attr(const std::string& s) {
  return HtmlEscape(s);
}

// ---------------------------------------------------------------- data

struct RunRow {
  RunRecord run;
  std::map<std::string, double> values;
  std::map<std::string, std::string> protocol;  // fvd/kvd protocol, for the page
  std::map<std::string, double> normalised;
  std::optional<double> quality, semantic, total;
  std::vector<std::string> missing;
};

struct Histogram {
  std::string title, unit;
  std::vector<double> edges;  // bins + 1
  std::vector<int64_t> counts;
  int64_t n = 0;
  double mean = 0;
};

struct LossCurve {
  std::string name;
  std::vector<double> step, loss;
};

struct Thumb {
  std::string data_uri;
  int frame_width = 0, height = 0, frames = 0;
  std::string label;
  std::string error;
};

struct GalleryRow {
  std::string prompt;
  std::optional<Thumb> real;
  std::vector<std::optional<Thumb>> generated;  // per gallery run
};

struct Dataset {
  CatalogStats stats;
  double clip_seconds = 0;
  std::vector<std::pair<std::string, int64_t>> captions_by_source;
  struct Subset {
    std::string name, expression;
    int64_t passed = 0, total = 0;
  };
  std::vector<Subset> subsets;
  std::vector<std::pair<std::string, int64_t>> rejections;
  std::vector<std::pair<std::string, int64_t>> video_errors;
  std::vector<Histogram> histograms;
};

const std::set<std::string> kSemantic = {"clipsim"};

Status Query(Catalog& c, const std::string& sql,
             const std::function<void(const std::vector<SqlValue>&)>& row) {
  return c.QueryReadOnly(
      sql, [](const std::vector<std::string>&) { return Status::OK(); },
      [&](const std::vector<SqlValue>& r) {
        row(r);
        return Status::OK();
      });
}

double AsDouble(const SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return static_cast<double>(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return std::get<double>(v);
  return NAN;
}
int64_t AsInt(const SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
  if (std::holds_alternative<double>(v)) return static_cast<int64_t>(std::get<double>(v));
  return 0;
}
std::string AsText(const SqlValue& v) {
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) return Num(std::get<double>(v));
  return "";
}

Histogram MakeHistogram(const std::string& title, const std::string& unit,
                        std::vector<double> values, int bins = 20) {
  Histogram h;
  h.title = title;
  h.unit = unit;
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  h.n = static_cast<int64_t>(values.size());
  if (values.empty()) return h;
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  if (hi <= lo) hi = lo + 1;
  double sum = 0;
  h.counts.assign(static_cast<size_t>(bins), 0);
  for (double v : values) {
    sum += v;
    int b = static_cast<int>((v - lo) / (hi - lo) * bins);
    h.counts[static_cast<size_t>(std::clamp(b, 0, bins - 1))]++;
  }
  for (int i = 0; i <= bins; ++i) h.edges.push_back(lo + (hi - lo) * i / bins);
  h.mean = sum / static_cast<double>(values.size());
  return h;
}

Result<Dataset> LoadDataset(Catalog& c) {
  Dataset d;
  REEL_ASSIGN_OR_RETURN(d.stats, c.Stats());
  std::vector<double> length, motion, aesthetic, words;
  REEL_RETURN_IF_ERROR(Query(c, "SELECT duration_seconds, motion, aesthetic FROM clips",
                             [&](const std::vector<SqlValue>& r) {
                               length.push_back(AsDouble(r[0]));
                               motion.push_back(AsDouble(r[1]));
                               aesthetic.push_back(AsDouble(r[2]));
                             }));
  for (double v : length) {
    if (std::isfinite(v)) d.clip_seconds += v;
  }
  REEL_RETURN_IF_ERROR(
      Query(c,
            "SELECT length(trim(text)) - length(replace(trim(text), ' ', '')) + 1 "
            "FROM captions WHERE trim(text) != ''",
            [&](const std::vector<SqlValue>& r) { words.push_back(AsDouble(r[0])); }));
  d.histograms.push_back(MakeHistogram("Clip length", "s", length));
  d.histograms.push_back(MakeHistogram("Motion", "", motion));
  d.histograms.push_back(MakeHistogram("Aesthetic score", "", aesthetic));
  d.histograms.push_back(MakeHistogram("Caption length", "words", words));
  REEL_RETURN_IF_ERROR(
      Query(c, "SELECT source, count(*) FROM captions GROUP BY source ORDER BY 2 DESC",
            [&](const std::vector<SqlValue>& r) {
              d.captions_by_source.emplace_back(AsText(r[0]), AsInt(r[1]));
            }));
  REEL_RETURN_IF_ERROR(Query(
      c,
      "SELECT s.name, s.expression, coalesce(sum(sc.passed), 0), count(sc.clip_id) FROM subsets s "
      "LEFT JOIN subset_clips sc ON sc.subset_id = s.id GROUP BY s.id ORDER BY s.id",
      [&](const std::vector<SqlValue>& r) {
        Dataset::Subset s;
        s.name = AsText(r[0]);
        s.expression = AsText(r[1]);
        s.passed = AsInt(r[2]);
        s.total = AsInt(r[3]);
        d.subsets.push_back(s);
      }));
  REEL_RETURN_IF_ERROR(
      Query(c,
            "SELECT coalesce(reason, '?'), count(*) FROM subset_clips WHERE passed = 0 "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
            [&](const std::vector<SqlValue>& r) {
              d.rejections.emplace_back(AsText(r[0]), AsInt(r[1]));
            }));
  REEL_RETURN_IF_ERROR(
      Query(c,
            "SELECT coalesce(error, '?'), count(*) FROM videos WHERE status = 'error' "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
            [&](const std::vector<SqlValue>& r) {
              d.video_errors.emplace_back(AsText(r[0]), AsInt(r[1]));
            }));
  return d;
}

std::string RunName(const RunRecord& r) {
  return r.name.empty() ? "run " + std::to_string(r.id) : r.name;
}

// ---------------------------------------------------------------- scores

void Score(const ReportOptions& o, std::vector<RunRow>* rows) {
  for (RunRow& r : *rows) {
    double qsum = 0, qw = 0, ssum = 0, sw = 0;
    for (const MetricInfo& info : AllMetricInfo()) {
      auto it = r.values.find(info.name);
      if (it == r.values.end()) {
        r.missing.push_back(info.name);
        continue;
      }
      auto range = DefaultMetricRange(info.name);
      if (auto rr = o.ranges.find(info.name); rr != o.ranges.end()) range = rr->second;
      double x = (it->second - range.first) / (range.second - range.first);
      if (info.direction == MetricDirection::kLowerIsBetter) x = 1 - x;
      x = std::clamp(x, 0.0, 1.0);
      r.normalised[info.name] = x;
      double w = 1;
      if (auto ww = o.weights.find(info.name); ww != o.weights.end()) w = ww->second;
      if (w <= 0) continue;
      if (kSemantic.count(info.name)) {
        ssum += w * x;
        sw += w;
      } else {
        qsum += w * x;
        qw += w;
      }
    }
    if (qw > 0) r.quality = qsum / qw;
    if (sw > 0) r.semantic = ssum / sw;
    if (r.quality && r.semantic) {
      r.total = (4 * *r.quality + 1 * *r.semantic) / 5;
    } else if (r.quality) {
      r.total = r.quality;
    } else if (r.semantic) {
      r.total = r.semantic;
    }
  }
  std::stable_sort(rows->begin(), rows->end(), [](const RunRow& a, const RunRow& b) {
    const double x = a.total.value_or(-1), y = b.total.value_or(-1);
    if (x != y) return x > y;
    return a.run.id < b.run.id;
  });
}

// ---------------------------------------------------------------- thumbnails

// K frames side by side, each scaled to `height`.
Result<Thumb> Filmstrip(const std::vector<Frame>& frames) {
  if (frames.empty()) return Status::InvalidArgument("no frames");
  const int w = frames[0].width, h = frames[0].height;
  Frame strip;
  strip.width = w * static_cast<int>(frames.size());
  strip.height = h;
  strip.format = frames[0].format;
  strip.data.assign(static_cast<size_t>(strip.width) * h * 3, 0);
  for (size_t k = 0; k < frames.size(); ++k) {
    const Frame& f = frames[k];
    if (f.width != w || f.height != h) return Status::InvalidArgument("frames of different sizes");
    for (int y = 0; y < h; ++y) {
      std::copy_n(f.data.data() + static_cast<size_t>(y) * w * 3, static_cast<size_t>(w) * 3,
                  strip.data.data() + (static_cast<size_t>(y) * strip.width + k * w) * 3);
    }
  }
  REEL_ASSIGN_OR_RETURN(std::string jpeg, EncodeJpeg(strip, 80));
  Thumb t;
  t.data_uri = JpegDataUri(jpeg);
  t.frame_width = w;
  t.height = h;
  t.frames = static_cast<int>(frames.size());
  return t;
}

std::vector<Frame> PickEven(std::vector<Frame> all, int k) {
  if (static_cast<int>(all.size()) <= k) return all;
  std::vector<Frame> out;
  for (int i = 0; i < k; ++i) {
    out.push_back(std::move(all[static_cast<size_t>((2 * i + 1) * all.size() / (2 * k))]));
  }
  return out;
}

Result<Thumb> VideoThumb(const std::string& path, int frames, int height) {
  DecodeOptions d;
  d.height = height;
  d.width = 0;
  d.filter = ResizeFilter::kArea;
  REEL_ASSIGN_OR_RETURN(std::unique_ptr<FrameSource> src, OpenFrameSource(path, d));
  std::vector<Frame> all;
  Frame f;
  while (all.size() < 600) {
    REEL_ASSIGN_OR_RETURN(bool got, src->Next(&f));
    if (!got) break;
    all.push_back(f);
  }
  if (all.empty()) return Status::Corruption(path + ": no frames");
  return Filmstrip(PickEven(std::move(all), frames));
}

Result<Thumb> ClipThumb(Catalog& c, int64_t clip_id, int frames, int height) {
  REEL_ASSIGN_OR_RETURN(std::optional<ClipRecord> clip, c.FindClip(clip_id));
  if (!clip.has_value()) return Status::NotFound("clip " + std::to_string(clip_id) + " is gone");
  REEL_ASSIGN_OR_RETURN(std::optional<VideoRecord> video, c.FindVideoById(clip->video_id));
  if (!video.has_value()) return Status::NotFound("video of clip " + std::to_string(clip_id));
  ClipInput in;
  in.clip = *clip;
  in.video = *video;
  std::vector<Frame> picked;
  // Frames at even points, scaled so that the height is about `height` (SampleClipFrames
  // bounds the longer side).
  int dw = 0, dh = 0;
  DisplaySize(video->width, video->height, video->sample_aspect_ratio, video->rotation, &dw, &dh);
  const int max_side = dh > 0 && dw > dh
                           ? static_cast<int>(std::lround(static_cast<double>(height) * dw / dh))
                           : height;
  REEL_ASSIGN_OR_RETURN(picked, SampleClipFrames(in, EvenPoints(frames), max_side));
  return Filmstrip(picked);
}

// ---------------------------------------------------------------- SVG

const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                          "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string BarChart(const std::string& title, bool lower_better,
                     const std::vector<std::pair<std::string, double>>& bars) {
  const int row = 18, left = 170, width = 520, plot = width - left - 70;
  const int height = 30 + row * static_cast<int>(bars.size()) + 10;
  double hi = 0;
  for (const auto& b : bars) hi = std::max(hi, std::fabs(b.second));
  if (hi <= 0) hi = 1;
  std::string s =
      "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
      "width=\"" +
      std::to_string(width) + "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
      std::to_string(width) + " " + std::to_string(height) + "\">";
  s += "<title>" + HtmlEscape(title) + "</title>";
  s += "<text x=\"4\" y=\"16\" class=\"ct\">" + HtmlEscape(title) +
       (lower_better ? " (lower is better)" : " (higher is better)") + "</text>";
  for (size_t i = 0; i < bars.size(); ++i) {
    const int y = 26 + row * static_cast<int>(i);
    const double w = std::fabs(bars[i].second) / hi * plot;
    std::string label = bars[i].first;
    if (label.size() > 26) label = label.substr(0, 25) + "…";
    s += "<text x=\"" + std::to_string(left - 6) + "\" y=\"" + std::to_string(y + 12) +
         "\" text-anchor=\"end\">" + HtmlEscape(label) + "</text>";
    s += "<rect x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y + 2) + "\" width=\"" +
         Num(w, 1) + "\" height=\"" + std::to_string(row - 5) + "\" fill=\"" + kPalette[i % 10] +
         "\"/>";
    s += "<text x=\"" + Num(left + w + 4, 1) + "\" y=\"" + std::to_string(y + 12) + "\">" +
         Num(bars[i].second) + "</text>";
  }
  s += "</svg></figure>\n";
  return s;
}

std::string HistogramChart(const Histogram& h) {
  const int width = 320, height = 170, left = 36, bottom = 30, top = 24;
  std::string s =
      "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
      "width=\"320\" height=\"170\" viewBox=\"0 0 320 170\">";
  s += "<title>" + HtmlEscape(h.title) + "</title>";
  s += "<text x=\"4\" y=\"16\" class=\"ct\">" + HtmlEscape(h.title) +
       (h.unit.empty() ? "" : " (" + HtmlEscape(h.unit) + ")") + "</text>";
  if (h.n == 0) {
    s += "<text x=\"40\" y=\"90\">no values</text></svg></figure>\n";
    return s;
  }
  const int64_t most = *std::max_element(h.counts.begin(), h.counts.end());
  const double bw = static_cast<double>(width - left - 8) / static_cast<double>(h.counts.size());
  const int plot_h = height - top - bottom;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    const double bh = most > 0 ? static_cast<double>(h.counts[i]) / most * plot_h : 0;
    s += "<rect x=\"" + Num(left + bw * i, 1) + "\" y=\"" + Num(top + plot_h - bh, 1) +
         "\" width=\"" + Num(std::max(1.0, bw - 1), 1) + "\" height=\"" + Num(bh, 1) +
         "\" fill=\"#4e79a7\"><title>" + Num(h.edges[i], 3) + " .. " + Num(h.edges[i + 1], 3) +
         ": " + std::to_string(h.counts[i]) + "</title></rect>";
  }
  s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(height - 14) + "\">" +
       Num(h.edges.front(), 2) + "</text>";
  s += "<text x=\"" + std::to_string(width - 8) + "\" y=\"" + std::to_string(height - 14) +
       "\" text-anchor=\"end\">" + Num(h.edges.back(), 2) + "</text>";
  s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(height - 2) +
       "\">n = " + std::to_string(h.n) + ", mean " + Num(h.mean, 3) + "</text>";
  s += "<text x=\"2\" y=\"" + std::to_string(top + 10) + "\">" + std::to_string(most) + "</text>";
  s += "</svg></figure>\n";
  return s;
}

std::string LossChart(const std::vector<LossCurve>& curves) {
  const int width = 640, height = 260, left = 50, right = 150, top = 24, bottom = 30;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const LossCurve& c : curves) {
    for (size_t i = 0; i < c.step.size() && i < c.loss.size(); ++i) {
      if (!std::isfinite(c.loss[i])) continue;
      x0 = std::min(x0, c.step[i]);
      x1 = std::max(x1, c.step[i]);
      y0 = std::min(y0, c.loss[i]);
      y1 = std::max(y1, c.loss[i]);
    }
  }
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;
  const double pw = width - left - right, ph = height - top - bottom;
  std::string s =
      "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
      "width=\"640\" height=\"260\" viewBox=\"0 0 640 260\">";
  s += "<title>Training loss</title><text x=\"4\" y=\"16\" class=\"ct\">Training loss</text>";
  s += "<line x1=\"" + std::to_string(left) + "\" y1=\"" + Num(top + ph, 0) + "\" x2=\"" +
       Num(left + pw, 0) + "\" y2=\"" + Num(top + ph, 0) + "\" stroke=\"#999\"/>";
  s += "<text x=\"2\" y=\"" + std::to_string(top + 10) + "\">" + Num(y1, 3) + "</text>";
  s += "<text x=\"2\" y=\"" + Num(top + ph, 0) + "\">" + Num(y0, 3) + "</text>";
  s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(height - 8) + "\">step " +
       Num(x0, 0) + "</text>";
  s += "<text x=\"" + Num(left + pw, 0) + "\" y=\"" + std::to_string(height - 8) +
       "\" text-anchor=\"end\">" + Num(x1, 0) + "</text>";
  for (size_t k = 0; k < curves.size(); ++k) {
    const LossCurve& c = curves[k];
    std::string pts;
    for (size_t i = 0; i < c.step.size() && i < c.loss.size(); ++i) {
      if (!std::isfinite(c.loss[i])) continue;
      pts += Num(left + (c.step[i] - x0) / (x1 - x0) * pw, 1) + "," +
             Num(top + ph - (c.loss[i] - y0) / (y1 - y0) * ph, 1) + " ";
    }
    s += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + std::string(kPalette[k % 10]) +
         "\" points=\"" + pts + "\"/>";
    s += "<text x=\"" + Num(left + pw + 8, 0) + "\" y=\"" +
         std::to_string(top + 12 + 16 * static_cast<int>(k)) + "\" fill=\"" + kPalette[k % 10] +
         "\">" + HtmlEscape(c.name) + "</text>";
  }
  s += "</svg></figure>\n";
  return s;
}

// " (without kvd, clipsim)" for a run scored without some of the columns shown.
std::string MissingNote(const RunRow& r, const std::vector<const MetricInfo*>& shown) {
  std::string names;
  for (const MetricInfo* m : shown) {
    if (std::find(r.missing.begin(), r.missing.end(), m->name) != r.missing.end()) {
      names += (names.empty() ? "" : ", ") + m->name;
    }
  }
  return names.empty()
             ? ""
             : " <span class=\"note\" title=\"its totals average the metrics it has\">(without " +
                   HtmlEscape(names) + ")</span>";
}

std::string ThumbHtml(const std::optional<Thumb>& t, const std::string& missing) {
  if (!t.has_value()) return "<td class=\"none\">" + HtmlEscape(missing) + "</td>";
  if (!t->error.empty()) return "<td class=\"none\">" + HtmlEscape(t->error) + "</td>";
  return "<td><div class=\"thumb\" style=\"width:" + std::to_string(t->frame_width) +
         "px;height:" + std::to_string(t->height) + "px;background-image:url(" + t->data_uri +
         ");--strip:-" + std::to_string(t->frame_width * t->frames) +
         "px;animation-timing-function:steps(" + std::to_string(t->frames) + ")\"></div></td>";
}

const char* kCss = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}th.sortable{cursor:pointer}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.none{color:#999;font-style:italic}.note{color:#666;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{margin:0}.chart text{font-size:11px}.chart .ct{font-size:13px;font-weight:600}
.thumb{background-repeat:no-repeat;animation-name:play;animation-duration:1.6s;animation-iteration-count:infinite}
@keyframes play{from{background-position:0 0}to{background-position:var(--strip) 0}}
)css";

const char* kScript = R"js(
(function(){
  var t=document.getElementById('leaderboard');
  if(!t)return;
  var ths=t.tHead.rows[0].cells;
  for(var i=0;i<ths.length;i++){(function(col,th){
    if(!th.classList.contains('sortable'))return;
    th.addEventListener('click',function(){
      var asc=th.getAttribute('data-dir')!=='asc';
      th.setAttribute('data-dir',asc?'asc':'desc');
      var rows=Array.prototype.slice.call(t.tBodies[0].rows);
      rows.sort(function(a,b){
        var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
        var nx=parseFloat(x),ny=parseFloat(y);
        if(isNaN(nx))nx=asc?Infinity:-Infinity;if(isNaN(ny))ny=asc?Infinity:-Infinity;
        return asc?nx-ny:ny-nx;});
      rows.forEach(function(r){t.tBodies[0].appendChild(r);});
    });})(i,ths[i]);}
  document.body.setAttribute('data-ready','1');
})();
)js";

}  // namespace

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::pair<double, double> DefaultMetricRange(const std::string& metric) {
  static const std::map<std::string, std::pair<double, double>> kRanges = {
      {"fvd", {0, 1500}},
      {"kvd", {0, 200}},
      {"clipsim", {0, 40}},
      {"clip-temp", {0.5, 1}},
      {"background-consistency", {0.2615, 1}},
      {"flicker", {0.6293, 1}},
      {"dynamic-degree", {0, 1}},
      {"warp-error", {0, 0.05}}};
  auto it = kRanges.find(metric);
  return it != kRanges.end() ? it->second : std::pair<double, double>{0, 1};
}

Result<ReportSummary> WriteReport(Catalog& catalog, const ReportOptions& o) {
  ReportSummary summary;
  for (const auto& [metric, range] : o.ranges) {
    if (FindMetricInfo(metric) == nullptr)
      return Status::InvalidArgument("range for unknown metric '" + metric + "'");
    if (!(range.second > range.first))
      return Status::InvalidArgument("range of " + metric + ": max must exceed min");
  }
  for (const auto& [metric, w] : o.weights) {
    if (FindMetricInfo(metric) == nullptr)
      return Status::InvalidArgument("weight for unknown metric '" + metric + "'");
    if (!(w >= 0)) return Status::InvalidArgument("weight of " + metric + " must be >= 0");
  }

  // Runs.
  std::vector<RunRow> rows;
  if (o.runs.empty()) {
    REEL_ASSIGN_OR_RETURN(std::vector<RunRecord> all, catalog.ListRuns("eval"));
    for (const RunRecord& r : all) {
      if (r.status == RunStatus::kOk) rows.emplace_back().run = r;
    }
  } else {
    std::set<int64_t> seen;
    for (const std::string& name : o.runs) {
      REEL_ASSIGN_OR_RETURN(RunRecord r, FindEvalRun(catalog, name));
      if (seen.insert(r.id).second) rows.emplace_back().run = r;
    }
  }
  for (RunRow& r : rows) {
    REEL_ASSIGN_OR_RETURN(std::vector<MetricRecord> ms, catalog.ListMetrics(r.run.id));
    for (const MetricRecord& m : ms) {
      r.values[m.name] = m.value;
      if (const Json* p = m.details.Find("protocol"); p != nullptr && p->is_string())
        r.protocol[m.name] = p->as_string();
    }
  }
  Score(o, &rows);
  summary.runs = static_cast<int>(rows.size());

  // Training curves.
  std::vector<LossCurve> curves;
  REEL_ASSIGN_OR_RETURN(std::vector<RunRecord> trains, catalog.ListRuns("train"));
  for (const RunRecord& r : trains) {
    REEL_ASSIGN_OR_RETURN(std::vector<MetricRecord> ms, catalog.ListMetrics(r.id));
    for (const MetricRecord& m : ms) {
      if (m.name != "loss_curve") continue;
      LossCurve c;
      c.name = r.name.empty() ? "train run " + std::to_string(r.id) : r.name;
      for (const Json& v :
           m.details.Find("step") ? m.details.Find("step")->as_array() : Json::Array{})
        c.step.push_back(v.as_double());
      for (const Json& v :
           m.details.Find("loss") ? m.details.Find("loss")->as_array() : Json::Array{})
        c.loss.push_back(v.as_double());
      if (!c.step.empty()) curves.push_back(std::move(c));
    }
  }

  REEL_ASSIGN_OR_RETURN(Dataset data, LoadDataset(catalog));

  // Gallery.
  std::vector<RunRecord> gen_runs;
  {
    REEL_ASSIGN_OR_RETURN(std::vector<RunRecord> all, catalog.ListRuns("generate"));
    for (auto it = all.rbegin();
         it != all.rend() && static_cast<int>(gen_runs.size()) < o.gallery_runs; ++it) {
      gen_runs.push_back(*it);
    }
  }
  std::vector<GalleryRow> gallery;
  std::vector<std::vector<GenerationRecord>> gens(gen_runs.size());
  for (size_t k = 0; k < gen_runs.size(); ++k) {
    REEL_ASSIGN_OR_RETURN(gens[k], catalog.ListGenerations(gen_runs[k].id));
  }
  if (!gen_runs.empty()) {
    std::vector<const GenerationRecord*> distinct;
    std::set<std::string> seen;
    for (const GenerationRecord& g : gens[0]) {
      if (seen.insert(g.prompt).second) distinct.push_back(&g);
    }
    const size_t want =
        std::min(distinct.size(), static_cast<size_t>(std::max(0, o.gallery_prompts)));
    for (size_t i = 0; i < want; ++i) {
      const GenerationRecord* g = distinct[i * distinct.size() / want];
      GalleryRow row;
      row.prompt = g->prompt;
      if (g->clip_id.has_value()) {
        Result<Thumb> t = ClipThumb(catalog, *g->clip_id, o.thumbnail_frames, o.thumbnail_height);
        if (t.ok()) {
          row.real = *t;
          ++summary.thumbnails;
        } else {
          Thumb bad;
          bad.error = t.status().message();
          row.real = bad;
          summary.warnings.push_back("real clip " + std::to_string(*g->clip_id) + ": " +
                                     t.status().message());
        }
      }
      for (size_t k = 0; k < gen_runs.size(); ++k) {
        std::optional<Thumb> cell;
        for (const GenerationRecord& x : gens[k]) {
          if (x.prompt != g->prompt) continue;
          Result<Thumb> t = VideoThumb(x.path, o.thumbnail_frames, o.thumbnail_height);
          if (t.ok()) {
            cell = *t;
            ++summary.thumbnails;
          } else {
            Thumb bad;
            bad.error = t.status().message();
            cell = bad;
            summary.warnings.push_back(t.status().message());
          }
          break;
        }
        row.generated.push_back(cell);
      }
      gallery.push_back(std::move(row));
    }
  }

  // ------------------------------------------------------------ HTML
  std::string h;
  h.reserve(1 << 20);
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width\">"
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">";
  h += "<title>" + HtmlEscape(o.title) + "</title><style>" + kCss + "</style></head><body>\n";
  h += "<h1>" + HtmlEscape(o.title) + "</h1>\n<p class=\"note\">Generated by reel " +
       std::string(HtmlEscape(catalog.path())) + " at " + HtmlEscape(UtcNow()) + ".</p>\n";

  // Leaderboard.
  h += "<h2 id=\"leaderboard-title\">Leaderboard</h2>\n";
  std::vector<const MetricInfo*> shown;
  for (const MetricInfo& info : AllMetricInfo()) {
    for (const RunRow& r : rows) {
      if (r.values.count(info.name)) {
        shown.push_back(&info);
        break;
      }
    }
  }
  if (rows.empty()) {
    h += "<p class=\"none\">No eval runs in this catalog yet (reel eval run).</p>\n";
  }
  h += "<table id=\"leaderboard\"><thead><tr><th>rank</th><th>run</th>"
       "<th class=\"sortable\" title=\"higher is better\">total ↑</th>"
       "<th class=\"sortable\" title=\"higher is better\">quality ↑</th>"
       "<th class=\"sortable\" title=\"higher is better\">semantic ↑</th>";
  for (const MetricInfo* m : shown) {
    const bool lower = m->direction == MetricDirection::kLowerIsBetter;
    h += "<th class=\"sortable\" title=\"" + std::string(lower ? "lower" : "higher") +
         " is better\">" + HtmlEscape(m->name) + (lower ? " ↓" : " ↑") + "</th>";
  }
  h += "</tr></thead><tbody>\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const RunRow& r = rows[i];
    auto cell = [](const std::optional<double>& v) {
      return "<td class=\"num\" data-v=\"" + (v ? Num(*v, 6) : std::string("")) + "\">" +
             (v ? Num(*v) : std::string("-")) + "</td>";
    };
    h += "<tr data-run=\"" + std::to_string(r.run.id) + "\"><td class=\"num\">" +
         std::to_string(i + 1) + "</td><td>" + HtmlEscape(RunName(r.run)) +
         " <span class=\"note\">#" + std::to_string(r.run.id) + "</span>" + MissingNote(r, shown) +
         "</td>" + cell(r.total) + cell(r.quality) + cell(r.semantic);
    for (const MetricInfo* m : shown) {
      auto it = r.values.find(m->name);
      std::optional<double> v;
      if (it != r.values.end()) v = it->second;
      std::string extra;
      if (auto p = r.protocol.find(m->name); p != r.protocol.end())
        extra = " title=\"" + Attr(p->second) + "\"";
      h += "<td class=\"num\" data-v=\"" + (v ? Num(*v, 6) : std::string("")) + "\"" + extra + ">" +
           (v ? Num(*v) : std::string("-")) + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</tbody></table>\n<p class=\"note\">Total = (4 × quality + 1 × semantic) / 5, as VBench. "
       "Each metric is normalised to [0, 1] over a fixed range (lower-is-better metrics flipped) "
       "and averaged with its weight within its group; quality: fvd, kvd, clip-temp, "
       "background-consistency, flicker, dynamic-degree, warp-error; semantic: clipsim. "
       "Click a column to sort. Ranges and weights used: ";
  {
    std::string parts;
    for (const MetricInfo& info : AllMetricInfo()) {
      auto range = DefaultMetricRange(info.name);
      if (auto rr = o.ranges.find(info.name); rr != o.ranges.end()) range = rr->second;
      double w = 1;
      if (auto ww = o.weights.find(info.name); ww != o.weights.end()) w = ww->second;
      parts += (parts.empty() ? "" : "; ") + info.name + " [" + Num(range.first, 4) + ", " +
               Num(range.second, 4) + "] weight " + Num(w, 2);
    }
    h += HtmlEscape(parts) + ".</p>\n";
  }

  // Charts.
  h += "<h2>Metrics per run</h2>\n<div class=\"charts\" id=\"metric-charts\">\n";
  for (const MetricInfo* m : shown) {
    std::vector<std::pair<std::string, double>> bars;
    for (const RunRow& r : rows) {
      auto it = r.values.find(m->name);
      if (it != r.values.end()) bars.emplace_back(RunName(r.run), it->second);
    }
    h += BarChart(m->label + " (" + m->name + ")", m->direction == MetricDirection::kLowerIsBetter,
                  bars);
    ++summary.charts;
  }
  h += "</div>\n<h2>Training</h2>\n";
  if (curves.empty()) {
    h += "<p class=\"none\">No training runs with a loss curve.</p>\n";
  } else {
    h += "<div class=\"charts\" id=\"loss-charts\">" + LossChart(curves) + "</div>\n";
    ++summary.charts;
  }

  // Dataset card.
  const CatalogStats& st = data.stats;
  h += "<h2>Dataset</h2>\n<table id=\"dataset\"><tbody>";
  auto kv = [&](const std::string& k, const std::string& v) {
    h += "<tr><th>" + HtmlEscape(k) + "</th><td>" + HtmlEscape(v) + "</td></tr>";
  };
  kv("videos", std::to_string(st.videos) + " (" + std::to_string(st.videos_ok) + " ok, " +
                   std::to_string(st.videos_error) + " unreadable, " +
                   std::to_string(st.videos_duplicate) + " duplicates)");
  kv("hours of video", Num(st.video_seconds.ToDouble() / 3600.0, 2));
  kv("clips", std::to_string(st.clips));
  kv("hours of clips", Num(data.clip_seconds / 3600.0, 2));
  std::string caps;
  for (const auto& [src, n] : data.captions_by_source)
    caps += (caps.empty() ? "" : ", ") + src + " " + std::to_string(n);
  kv("captions", std::to_string(st.captions) + (caps.empty() ? "" : " (" + caps + ")"));
  kv("runs", std::to_string(st.runs));
  h += "</tbody></table>\n";
  if (!data.subsets.empty()) {
    h += "<h3>Filters applied</h3><table "
         "id=\"subsets\"><thead><tr><th>subset</th><th>expression</th>"
         "<th>passed</th><th>of</th></tr></thead><tbody>";
    for (const auto& s : data.subsets) {
      h += "<tr><td>" + HtmlEscape(s.name) + "</td><td><code>" + HtmlEscape(s.expression) +
           "</code></td><td class=\"num\">" + std::to_string(s.passed) + "</td><td class=\"num\">" +
           std::to_string(s.total) + "</td></tr>";
    }
    h += "</tbody></table>\n";
  }
  if (!data.rejections.empty()) {
    h += "<h3>Commonest rejection reasons</h3><table id=\"rejections\"><tbody>";
    for (const auto& [reason, n] : data.rejections) {
      h += "<tr><td><code>" + HtmlEscape(reason) + "</code></td><td class=\"num\">" +
           std::to_string(n) + "</td></tr>";
    }
    h += "</tbody></table>\n";
  }
  if (!data.video_errors.empty()) {
    h += "<h3>Unreadable videos</h3><table id=\"video-errors\"><tbody>";
    for (const auto& [err, n] : data.video_errors) {
      h += "<tr><td>" + HtmlEscape(err) + "</td><td class=\"num\">" + std::to_string(n) +
           "</td></tr>";
    }
    h += "</tbody></table>\n";
  }
  h += "<div class=\"charts\" id=\"dataset-charts\">\n";
  for (const Histogram& hist : data.histograms) {
    h += HistogramChart(hist);
    ++summary.charts;
  }
  h += "</div>\n";

  // Gallery.
  h += "<h2>Gallery</h2>\n";
  if (gallery.empty()) {
    h += "<p class=\"none\">No generation runs in this catalog yet (reel generate sample).</p>\n";
  } else {
    h += "<table id=\"gallery\"><thead><tr><th>prompt</th><th>real clip</th>";
    for (const RunRecord& r : gen_runs) {
      h += "<th>" + HtmlEscape(r.name.empty() ? "generate run " + std::to_string(r.id) : r.name) +
           "</th>";
    }
    h += "</tr></thead><tbody>\n";
    for (const GalleryRow& row : gallery) {
      h += "<tr><td class=\"prompt\">" + HtmlEscape(row.prompt) + "</td>" +
           ThumbHtml(row.real, "no source clip");
      for (const auto& g : row.generated) h += ThumbHtml(g, "not sampled");
      h += "</tr>\n";
    }
    h += "</tbody></table>\n";
  }
  h += "<script>" + std::string(kScript) + "</script>\n</body></html>\n";

  // ------------------------------------------------------------ JSON and Markdown
  Json j = Json::MakeObject();
  j["title"] = o.title;
  j["catalog"] = catalog.path();
  j["generated_at"] = UtcNow();
  Json scoring = Json::MakeObject();
  for (const MetricInfo& info : AllMetricInfo()) {
    auto range = DefaultMetricRange(info.name);
    if (auto rr = o.ranges.find(info.name); rr != o.ranges.end()) range = rr->second;
    double w = 1;
    if (auto ww = o.weights.find(info.name); ww != o.weights.end()) w = ww->second;
    Json x = Json::MakeObject();
    x["min"] = range.first;
    x["max"] = range.second;
    x["weight"] = w;
    x["better"] = info.direction == MetricDirection::kLowerIsBetter ? "lower" : "higher";
    x["group"] = kSemantic.count(info.name) ? "semantic" : "quality";
    scoring[info.name] = x;
  }
  j["scoring"] = scoring;
  Json lb = Json::MakeArray();
  std::string md =
      "# " + o.title + "\n\n## Leaderboard\n\n| rank | run | total | quality | semantic |";
  for (const MetricInfo* m : shown)
    md += " " + m->name + (m->direction == MetricDirection::kLowerIsBetter ? " ↓" : " ↑") + " |";
  md += "\n| ---: | --- | ---: | ---: | ---: |";
  for (size_t i = 0; i < shown.size(); ++i) md += " ---: |";
  md += "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const RunRow& r = rows[i];
    Json x = Json::MakeObject();
    x["rank"] = static_cast<int64_t>(i + 1);
    x["run_id"] = r.run.id;
    x["name"] = r.run.name;
    x["total"] = r.total ? Json(*r.total) : Json();
    x["quality"] = r.quality ? Json(*r.quality) : Json();
    x["semantic"] = r.semantic ? Json(*r.semantic) : Json();
    Json vals = Json::MakeObject(), norm = Json::MakeObject();
    for (const auto& [k, v] : r.values) vals[k] = v;
    for (const auto& [k, v] : r.normalised) norm[k] = v;
    x["metrics"] = vals;
    x["normalised"] = norm;
    Json missing = Json::MakeArray();
    for (const std::string& m : r.missing) missing.push_back(m);
    x["missing"] = missing;
    lb.push_back(x);
    auto opt = [](const std::optional<double>& v) { return v ? Num(*v) : std::string("-"); };
    md += "| " + std::to_string(i + 1) + " | " + MarkdownEscape(RunName(r.run)) + " (#" +
          std::to_string(r.run.id) + ") | " + opt(r.total) + " | " + opt(r.quality) + " | " +
          opt(r.semantic) + " |";
    for (const MetricInfo* m : shown) {
      auto it = r.values.find(m->name);
      md += " " + (it != r.values.end() ? Num(it->second) : std::string("-")) + " |";
    }
    md += "\n";
  }
  j["leaderboard"] = lb;
  Json ds = Json::MakeObject();
  ds["videos"] = st.videos;
  ds["videos_ok"] = st.videos_ok;
  ds["videos_error"] = st.videos_error;
  ds["video_hours"] = st.video_seconds.ToDouble() / 3600.0;
  ds["clips"] = st.clips;
  ds["clip_hours"] = data.clip_seconds / 3600.0;
  ds["captions"] = st.captions;
  Json subsets = Json::MakeArray();
  for (const auto& s : data.subsets) {
    Json x = Json::MakeObject();
    x["name"] = s.name;
    x["expression"] = s.expression;
    x["passed"] = s.passed;
    x["total"] = s.total;
    subsets.push_back(x);
  }
  ds["subsets"] = subsets;
  Json rej = Json::MakeArray();
  for (const auto& [reason, n] : data.rejections) {
    Json x = Json::MakeObject();
    x["reason"] = reason;
    x["clips"] = n;
    rej.push_back(x);
  }
  ds["rejections"] = rej;
  Json hists = Json::MakeArray();
  for (const Histogram& hist : data.histograms) {
    Json x = Json::MakeObject();
    x["title"] = hist.title;
    x["n"] = hist.n;
    x["mean"] = hist.n > 0 ? Json(hist.mean) : Json();
    Json edges = Json::MakeArray(), counts = Json::MakeArray();
    for (double e : hist.edges) edges.push_back(e);
    for (int64_t c : hist.counts) counts.push_back(c);
    x["edges"] = edges;
    x["counts"] = counts;
    hists.push_back(x);
  }
  ds["histograms"] = hists;
  j["dataset"] = ds;
  Json gal = Json::MakeArray();
  for (const GalleryRow& row : gallery) gal.push_back(row.prompt);
  j["gallery_prompts"] = gal;

  md +=
      "\nTotal = (4 × quality + 1 × semantic) / 5 over metrics normalised to [0, 1] (see "
      "report.json "
      "for the ranges and weights).\n\n## Dataset\n\n";
  md += "- videos: " + std::to_string(st.videos) + " (" + std::to_string(st.videos_ok) + " ok, " +
        std::to_string(st.videos_error) + " unreadable), " +
        Num(st.video_seconds.ToDouble() / 3600.0, 2) + " h\n";
  md += "- clips: " + std::to_string(st.clips) + ", " + Num(data.clip_seconds / 3600.0, 2) + " h\n";
  md += "- captions: " + std::to_string(st.captions) + "\n";
  for (const auto& s : data.subsets) {
    md += "- subset " + MarkdownEscape(s.name) + ": " + std::to_string(s.passed) + " of " +
          std::to_string(s.total) + " clips pass `" + s.expression + "`\n";
  }
  for (const auto& [reason, n] : data.rejections)
    md += "- rejected " + std::to_string(n) + " x: " + MarkdownEscape(reason) + "\n";

  // ------------------------------------------------------------ files
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Status::IOError(o.out_dir + ": " + ec.message());
  auto write = [&](const std::string& name, const std::string& text) -> Result<std::string> {
    const std::string path = o.out_dir + "/" + name;
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << text;
      if (!f.good()) return Status::IOError(tmp + ": cannot write");
    }
    fs::rename(tmp, path, ec);
    if (ec) return Status::IOError(path + ": " + ec.message());
    return path;
  };
  REEL_ASSIGN_OR_RETURN(summary.html_path, write("index.html", h));
  REEL_ASSIGN_OR_RETURN(summary.markdown_path, write("report.md", md));
  REEL_ASSIGN_OR_RETURN(summary.json_path, write("report.json", j.Dump(2) + "\n"));
  summary.html_bytes = static_cast<int64_t>(h.size());
  return summary;
}

}  // namespace reel
