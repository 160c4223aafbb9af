#include "curate/split.h"

namespace reel {

std::string DescribeSplit(const SplitOptions& o) {
  std::string d = o.detector.Describe();
  if (o.fades) d += " fades";
  if (o.gradual) d += " gradual";
  return d;
}

Result<std::vector<ClipRecord>> MakeClips(const VideoRecord& video, const FrameSeries& series,
                                          Rational time_base, const SplitOptions& options,
                                          ClipPlan* plan_out) {
  VideoTiming timing;
  timing.time_base = time_base;
  timing.frame_rate = video.frame_rate;
  timing.end_time = video.duration;
  // Clip times count from the scan's first frame; the video's start and length count
  // from the probe's. They differ when the probe's first frame is not the first the
  // decoder showed (catalogs from before the probe skipped a mid-GOP start's leading
  // packets), and the last clip ends where the video does either way. (PlanClips moves
  // an end at or before the last frame, or an invalid one, a frame period past it.)
  if (!series.pts.empty() && video.start_time.valid() && video.duration.valid()) {
    timing.end_time =
        video.start_time + video.duration - TicksToSeconds(series.pts.front(), time_base);
  }
  REEL_ASSIGN_OR_RETURN(ClipPlan plan, PlanClips(series, timing, options));
  const std::string detector = DescribeSplit(options);
  std::vector<ClipRecord> clips;
  clips.reserve(plan.clips.size());
  for (const PlannedClip& p : plan.clips) {
    ClipRecord c;
    c.video_id = video.id;
    c.start_frame = p.start_frame;
    c.end_frame = p.end_frame;
    c.start_time = p.start_time;
    c.end_time = p.end_time;
    c.detector = detector;
    c.signals = ComputeClipSignals(series, p.start_frame, p.end_frame, options.black_luma);
    clips.push_back(std::move(c));
  }
  if (plan_out != nullptr) *plan_out = std::move(plan);
  return clips;
}

Result<SplitSummary> Split(Catalog& catalog, const SplitOptions& options, const ShardSpec& shard,
                           const std::function<void(int64_t, int64_t)>& progress) {
  REEL_RETURN_IF_ERROR(options.detector.Validate());
  SplitSummary summary;
  Json config = Json::MakeObject();
  config["detector"] = DescribeSplit(options);
  config["min_seconds"] = options.min_seconds.ToString();
  config["max_seconds"] = options.max_seconds.ToString();
  config["shard"] = shard.ToString();
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("split", config));
  REEL_ASSIGN_OR_RETURN(auto states, catalog.LoadScanStates());
  REEL_ASSIGN_OR_RETURN(std::vector<VideoRecord> videos, catalog.ListVideos(VideoStatus::kOk));
  std::vector<const VideoRecord*> todo;
  for (const VideoRecord& v : videos) {
    auto it = states.find(v.id);
    if (it != states.end() && it->second == ScanStatus::kOk && shard.Contains(v.path)) {
      todo.push_back(&v);
    }
  }
  int64_t done = 0;
  for (const VideoRecord* v : todo) {
    Status s = [&]() -> Status {
      REEL_ASSIGN_OR_RETURN(auto scan, catalog.FindScan(v->id));
      REEL_ASSIGN_OR_RETURN(FrameSeries series, LoadFrameSeries(catalog, v->id));
      ClipPlan plan;
      REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> clips,
                            MakeClips(*v, series, scan->time_base, options, &plan));
      REEL_RETURN_IF_ERROR(catalog.ReplaceClips(v->id, clips).status());
      summary.clips += static_cast<int64_t>(clips.size());
      summary.dropped_short += plan.dropped_short;
      summary.split_long += plan.split_long;
      return Status::OK();
    }();
    if (s.ok()) {
      ++summary.videos;
    } else if (s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kNotFound ||
               s.code() == StatusCode::kCorruption) {
      summary.failures.emplace_back(v->path, s.message());  // per-video problem
    } else {
      catalog.FinishRun(summary.run_id, RunStatus::kFailed, s.message()).IgnoreError();
      return s;
    }
    if (progress) progress(++done, static_cast<int64_t>(todo.size()));
  }
  REEL_RETURN_IF_ERROR(catalog.AddMetric(summary.run_id, "split.clips", static_cast<double>(summary.clips)).status());
  REEL_RETURN_IF_ERROR(catalog.FinishRun(summary.run_id, RunStatus::kOk));
  return summary;
}

}  // namespace reel
