// `reel report`: one self-contained HTML page (plus report.md and report.json with the same
// numbers) about a catalog: the leaderboard of its eval runs, charts, a dataset card and a
// gallery of generated clips beside the real ones.
//
// Leaderboard: one row per eval run (all finished ones, or those asked for), sorted by
// the total score, best first (ties: the earlier run first). The total is computed in
// VBench's manner: each metric is normalised to [0, 1] with a fixed range (table below;
// lower-is-better metrics are flipped so 1 is always best; values outside are clamped),
// the normalised values are averaged with per-metric weights within two groups, quality
// (fvd, kvd, clip-temp, background-consistency, flicker, dynamic-degree, warp-error) and
// semantic (clipsim), and total = (4 x quality + 1 x semantic) / 5, VBench's weighting.
// A run missing a metric is averaged over the metrics it has (the page says which it is
// without, and report.json lists them); a run
// missing a whole group gets the other group's score as total. Ranges and weights can be
// replaced (ReportOptions), and the page and report.json state the ones used.
//
//   metric                  range          better
//   fvd                     0 .. 1500      lower
//   kvd                     0 .. 200       lower
//   clipsim                 0 .. 40        higher
//   clip-temp               0.5 .. 1       higher
//   background-consistency  0.2615 .. 1    higher  (VBench's empirical range)
//   flicker                 0.6293 .. 1    higher  (VBench's empirical range)
//   dynamic-degree          0 .. 1         higher
//   warp-error              0 .. 0.05      lower
//
// Charts are SVG drawn by reel: one bar chart per metric over the runs, training loss
// curves (runs of kind "train" with a "loss_curve" metric whose details hold "step" and
// "loss" arrays), and histograms of the curated clips (length, motion, aesthetic score,
// caption length in words). The dataset card counts videos, clips, hours, captions by
// backend, subsets with their expressions and pass counts, and the commonest rejection
// reasons. The gallery takes up to `gallery_prompts` prompts of the newest
// `gallery_runs` generation runs and shows, per prompt, the real clip the prompt came
// from and each run's sample as animated filmstrips (JPEG sprites played by CSS; no
// script needed). Thumbnails are sampled, never one per clip, so the page stays small
// whatever the catalog's size.
//
// Every string from the catalog (names, captions, paths, errors) is HTML-escaped; the
// page loads nothing from the network and works opened from disk.
//
// Thread-safety: WriteReport uses the catalog on the calling thread only.

#ifndef REEL_EVAL_REPORT_H_
#define REEL_EVAL_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "db/catalog.h"
#include "util/status.h"

namespace reel {

struct ReportOptions {
  std::string out_dir;
  std::string title = "reel report";
  std::vector<std::string> runs;          // eval runs by id or name; empty = every finished one
  std::map<std::string, double> weights;  // metric -> weight (default 1)
  std::map<std::string, std::pair<double, double>> ranges;  // metric -> (min, max)
  int gallery_prompts = 12;
  int gallery_runs = 4;
  int thumbnail_frames = 8;
  int thumbnail_height = 72;
  std::vector<std::string> caption_preference;  // for the dataset's caption lengths
};

struct ReportSummary {
  std::string html_path, markdown_path, json_path;
  int64_t html_bytes = 0;
  int runs = 0;
  int charts = 0;
  int thumbnails = 0;
  std::vector<std::string> warnings;  // e.g. a gallery video that could not be read
};

// The default normalisation range of a metric (see the table above).
std::pair<double, double> DefaultMetricRange(const std::string& metric);

// Writes index.html, report.md and report.json into options.out_dir (created).
Result<ReportSummary> WriteReport(Catalog& catalog, const ReportOptions& options);

// For tests: HTML text escaping (&, <, >, ", ').
std::string HtmlEscape(const std::string& s);

}  // namespace reel

#endif  // REEL_EVAL_REPORT_H_
