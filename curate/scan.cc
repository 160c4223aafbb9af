#include "curate/scan.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "curate/split.h"
#include "db/video_file.h"
#include "util/parallel.h"
#include "video/decoder.h"

namespace reel {
namespace {

struct ScanJob {
  VideoRecord video;
};

struct ScanOutcome {
  VideoRecord video;
  Status status;
  VideoScan scan;
  std::vector<ClipRecord> clips;
};

}  // namespace

Json ScanParams(const ScanOptions& o) {
  Json p = Json::MakeObject();
  p["analysis_width"] = o.analysis_width;
  p["resize"] = o.resize == ResizeMode::kExact ? "exact" : "fast";
  p["skip_loop_filter"] = o.skip_loop_filter;
  Json groups = Json::MakeArray();
  const std::pair<unsigned, const char*> names[] = {{kAnalyzeShots, "shots"},
                                                    {kAnalyzeMotion, "motion"},
                                                    {kAnalyzeSharpness, "sharpness"},
                                                    {kAnalyzeColor, "color"},
                                                    {kAnalyzeText, "text"}};
  for (const auto& [bit, name] : names) {
    if (o.analysis.groups & bit) groups.push_back(name);
  }
  p["analysis"] = groups;
  p["edges"] = o.analysis.edges;
  p["hist_bins"] = o.analysis.hist_bins;
  p["hash_size"] = o.analysis.hash_size;
  p["hash_lowpass"] = o.analysis.hash_lowpass;
  p["long_range"] = o.analysis.long_range;
  return p;
}

Result<VideoScan> ScanFile(const std::string& path, const ScanOptions& options,
                           const std::function<void(int64_t)>& on_frames,
                           const std::atomic<bool>* cancel) {
  DecodeOptions dec;
  dec.format = PixelFormat::kBgr24;
  dec.threads = options.decode_threads;
  dec.skip_loop_filter = options.skip_loop_filter;
  // First learn the display size to choose the analysis size.
  REEL_ASSIGN_OR_RETURN(auto probe, VideoDecoder::Open(path, dec));
  const int display_w = probe->width(), display_h = probe->height();
  int aw = display_w, ah = display_h;
  if (options.analysis_width > 0 && display_w > options.analysis_width) {
    // PySceneDetect: factor = width / 256, size = (round(w / f), round(h / f)).
    const Rational factor(display_w, options.analysis_width);
    aw = static_cast<int>((Rational::FromInt(display_w) / factor).Round());
    ah = std::max(1, static_cast<int>((Rational::FromInt(display_h) / factor).Round()));
  }
  std::unique_ptr<VideoDecoder> decoder;
  if (options.resize == ResizeMode::kExact) {
    decoder = std::move(probe);  // full size; resized below with OpenCV
  } else {
    dec.width = aw;
    dec.height = ah;
    dec.filter = ResizeFilter::kArea;
    dec.tone_map_full_size = false;  // HDR mapped after the downscale: the fast path
    probe.reset();
    REEL_ASSIGN_OR_RETURN(decoder, VideoDecoder::Open(path, dec));
  }

  VideoScan out;
  out.time_base = decoder->info().time_base;
  out.analysis_width = aw;
  out.analysis_height = ah;

  // Two stages overlap: a producer thread decodes, converts and resizes frames into a
  // small queue of recycled buffers while this thread analyses them, so the decoder is
  // kept fed while analysis runs (and the other way round).
  constexpr size_t kDepth = 4;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Frame> ready, spare(kDepth);
  bool producer_done = false;
  Status producer_status;
  std::atomic<bool> stop{false};
  const bool exact = options.resize == ResizeMode::kExact;
  std::thread producer([&] {
    Frame frame;
    Status status;
    while (!stop.load()) {
      Result<bool> more = decoder->Next(&frame);
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      Frame slot;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !spare.empty() || stop.load(); });
        if (stop.load()) break;
        slot = std::move(spare.front());
        spare.pop_front();
      }
      if (exact && (frame.width != aw || frame.height != ah)) {
        slot.Allocate(aw, ah, PixelFormat::kBgr24);
        const cv::Mat src(frame.height, frame.width, CV_8UC3, frame.data.data());
        cv::Mat dst(ah, aw, CV_8UC3, slot.data.data());
        try {
          cv::resize(src, dst, cv::Size(aw, ah), 0, 0, cv::INTER_LINEAR);
        } catch (const cv::Exception& e) {
          status = Status::Internal(path + ": resizing frame " + std::to_string(frame.index) +
                                    " for analysis: OpenCV: " + e.err);
          break;
        }
        slot.pts = frame.pts;
        slot.index = frame.index;
        slot.time = frame.time;
      } else {
        std::swap(slot, frame);
      }
      std::lock_guard<std::mutex> lock(mu);
      ready.push_back(std::move(slot));
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    producer_status = status;
    producer_done = true;
    cv.notify_all();
  });
  auto finish = [&](Status s) {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop.store(true);
      cv.notify_all();
    }
    producer.join();
    return s;
  };

  FrameAnalyzer analyzer(options.analysis);
  int64_t pending = 0;
  while (true) {
    if (cancel != nullptr && cancel->load()) {
      return finish(Status::Cancelled(path + ": scan cancelled"));
    }
    Frame frame;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !ready.empty() || producer_done; });
      if (ready.empty()) break;  // producer finished and everything is analysed
      frame = std::move(ready.front());
      ready.pop_front();
    }
    Status s = analyzer.Add(frame).WithContext(path);
    {
      std::lock_guard<std::mutex> lock(mu);
      spare.push_back(std::move(frame));
      cv.notify_all();
    }
    if (!s.ok()) return finish(s);
    if (on_frames && ++pending == 32) {
      on_frames(pending);
      pending = 0;
    }
  }
  REEL_RETURN_IF_ERROR(finish(Status::OK()));
  REEL_RETURN_IF_ERROR(producer_status);
  if (on_frames && pending > 0) on_frames(pending);
  out.decode_errors = decoder->decode_errors();
  out.series = analyzer.TakeSeries();
  if (out.series.size() == 0) return Status::Corruption(path + ": no frame could be decoded");
  return out;
}

Result<ScanSummary> Scan(Catalog& catalog, const std::vector<std::string>& paths,
                         const ScanOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ScanSummary summary;
  REEL_RETURN_IF_ERROR(options.split.detector.Validate());
  if (!paths.empty()) {
    IngestOptions ingest = options.ingest;
    ingest.cancel = options.cancel;
    if (!options.shard.all()) {
      // Each shard ingests only its own files.
      std::vector<std::pair<std::string, std::string>> missing;
      std::vector<std::string> mine;
      for (const std::string& f : FindVideoFiles(paths, ingest, &missing)) {
        if (options.shard.Contains(f)) mine.push_back(f);
      }
      REEL_ASSIGN_OR_RETURN(summary.ingest, Ingest(catalog, mine, ingest));
      summary.ingest.missing.insert(summary.ingest.missing.end(), missing.begin(), missing.end());
    } else {
      REEL_ASSIGN_OR_RETURN(summary.ingest, Ingest(catalog, paths, ingest));
    }
  }
  REEL_RETURN_IF_ERROR(catalog.MarkInterruptedRuns().status());

  Json config = ScanParams(options);
  config["detector"] = DescribeSplit(options.split);
  config["fades"] = options.split.fades;
  config["gradual"] = options.split.gradual;
  config["min_seconds"] = options.split.min_seconds.ToString();
  config["max_seconds"] = options.split.max_seconds.ToString();
  config["shard"] = options.shard.ToString();
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("scan", config));

  REEL_ASSIGN_OR_RETURN(auto states, catalog.LoadScanStates());
  REEL_ASSIGN_OR_RETURN(std::vector<VideoRecord> videos, catalog.ListVideos(VideoStatus::kOk));
  std::vector<ScanJob> jobs;
  int64_t total_frames = 0;
  for (VideoRecord& v : videos) {
    if (!options.shard.Contains(v.path)) continue;
    auto it = states.find(v.id);
    const bool done = it != states.end() &&
                      (it->second == ScanStatus::kOk ? !options.rescan
                                                     : !(options.retry_errors || options.rescan));
    if (done) {
      ++summary.skipped;
      continue;
    }
    total_frames += v.frame_count;
    jobs.push_back({std::move(v)});
  }
  summary.videos = static_cast<int64_t>(jobs.size());
  if (options.on_start) options.on_start(summary.videos, total_frames);

  const Json params = ScanParams(options);
  ParallelOptions parallel;
  parallel.jobs = options.jobs;
  parallel.cancel = options.cancel;
  // Stored in video order, so the same videos get the same clip ids however the scans
  // finish (a finished scan waits, in memory, for those before it).
  parallel.ordered = true;
  Status status = ProcessInParallel<ScanOutcome>(
      jobs.size(), parallel,
      [&](size_t i) {
        ScanOutcome out;
        out.video = jobs[i].video;
        // Clips are cut by the recorded frame rate and time base: not of another file.
        if (Status s = CheckUnchangedSinceIngest(out.video); !s.ok()) {
          out.status = s;
          return out;
        }
        Result<VideoScan> scan =
            ScanFile(out.video.path, options, options.on_frames, options.cancel);
        if (!scan.ok()) {
          out.status = scan.status();
          return out;
        }
        out.scan = std::move(scan).value();
        Result<std::vector<ClipRecord>> clips =
            MakeClips(out.video, out.scan.series, out.scan.time_base, options.split);
        if (!clips.ok()) {
          out.status = clips.status().WithContext(out.video.path);
          return out;
        }
        out.clips = std::move(clips).value();
        return out;
      },
      [&](ScanOutcome&& r) -> Status {
        if (r.status.code() == StatusCode::kCancelled) return Status::OK();
        ScanRecord rec;
        rec.video_id = r.video.id;
        rec.run_id = summary.run_id;
        rec.params = params;
        REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
        int64_t clip_count = 0;
        if (!r.status.ok()) {
          rec.status = ScanStatus::kError;
          rec.error = r.status.message();
          REEL_RETURN_IF_ERROR(catalog.PutScan(rec));
        } else {
          rec.status = ScanStatus::kOk;
          rec.frames = static_cast<int64_t>(r.scan.series.size());
          rec.decode_errors = r.scan.decode_errors;
          rec.analysis_width = r.scan.analysis_width;
          rec.analysis_height = r.scan.analysis_height;
          rec.time_base = r.scan.time_base;
          rec.start_pts = r.scan.series.pts.front();
          REEL_RETURN_IF_ERROR(catalog.PutScan(rec));
          REEL_RETURN_IF_ERROR(SaveFrameSeries(catalog, r.video.id, r.scan.series));
          REEL_RETURN_IF_ERROR(catalog.ReplaceClips(r.video.id, r.clips).status());
          clip_count = static_cast<int64_t>(r.clips.size());
        }
        REEL_RETURN_IF_ERROR(txn.Commit());
        if (r.status.ok()) {
          ++summary.scanned;
          summary.frames += static_cast<int64_t>(r.scan.series.size());
          summary.clips += clip_count;
        } else {
          ++summary.failed;
          summary.failures.emplace_back(r.video.path, r.status.message());
        }
        if (options.on_video) options.on_video(r.video.path, r.status, clip_count);
        return Status::OK();
      });
  summary.cancelled = options.cancel != nullptr && options.cancel->load() &&
                      summary.scanned + summary.failed < summary.videos;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!status.ok()) {
    catalog.FinishRun(summary.run_id, RunStatus::kFailed, status.message()).IgnoreError();
    return status;
  }
  REEL_RETURN_IF_ERROR(catalog.FinishRunWithMetrics(
      summary.run_id, summary.cancelled,
      {{"scan.videos", static_cast<double>(summary.videos)},
       {"scan.scanned", static_cast<double>(summary.scanned)},
       {"scan.failed", static_cast<double>(summary.failed)},
       {"scan.frames", static_cast<double>(summary.frames)},
       {"scan.clips", static_cast<double>(summary.clips)},
       {"scan.seconds", summary.seconds},
       {"scan.fps", summary.seconds > 0 ? summary.frames / summary.seconds : 0.0}}));
  return summary;
}

}  // namespace reel
