// RunCaptions: the resumable, parallel, batch-committing driver of every captioner.

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_map>

#include "caption/captioner.h"
#include "util/parallel.h"
#include "util/version.h"

namespace reel {

const CaptionRecord* ClipInput::Newest(std::string_view source) const {
  const CaptionRecord* best = nullptr;
  for (const CaptionRecord& c : captions) {
    if (c.source != source) continue;
    if (best == nullptr || c.created_at > best->created_at ||
        (c.created_at == best->created_at && c.id > best->id)) {
      best = &c;
    }
  }
  return best;
}

bool Captioner::NeedsWork(const ClipInput& in) const {
  const std::string s = source(), m = model();
  for (const CaptionRecord& c : in.captions) {
    if (c.source == s && c.model == m) return false;
  }
  return true;
}

namespace {

struct WorkResult {
  size_t index = 0;
  std::optional<CaptionOutput> output;
  CaptionFailure failure;
};

}  // namespace

Result<CaptionRunSummary> RunCaptions(Catalog& catalog, Captioner& captioner,
                                      const CaptionRunOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  CaptionRunSummary summary;
  REEL_RETURN_IF_ERROR(catalog.MarkInterruptedRuns().status());
  const std::string source = captioner.source();
  const std::string model = captioner.model();

  // Which clips.
  REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> clips, catalog.ListClips());
  if (!options.subset.empty()) {
    REEL_ASSIGN_OR_RETURN(auto subset, catalog.FindSubset(options.subset));
    if (!subset.has_value()) {
      return Status::NotFound("no subset named '" + options.subset +
                              "' in the catalog (see `reel curate filter`)");
    }
    REEL_ASSIGN_OR_RETURN(std::vector<SubsetMember> members, catalog.ListSubsetMembers(subset->id));
    std::set<int64_t> passed;
    for (const SubsetMember& m : members) {
      if (m.passed) passed.insert(m.clip_id);
    }
    clips.erase(std::remove_if(clips.begin(), clips.end(),
                               [&](const ClipRecord& c) { return passed.count(c.id) == 0; }),
                clips.end());
  }
  if (!options.clip_ids.empty()) {
    const std::set<int64_t> wanted(options.clip_ids.begin(), options.clip_ids.end());
    clips.erase(std::remove_if(clips.begin(), clips.end(),
                               [&](const ClipRecord& c) { return wanted.count(c.id) == 0; }),
                clips.end());
  }
  if (!options.include_rejected) {
    clips.erase(std::remove_if(clips.begin(), clips.end(),
                               [](const ClipRecord& c) { return c.state == ClipState::kRejected; }),
                clips.end());
  }
  std::stable_sort(clips.begin(), clips.end(), [](const ClipRecord& a, const ClipRecord& b) {
    return a.video_id != b.video_id ? a.video_id < b.video_id : a.start_frame < b.start_frame;
  });
  summary.clips = static_cast<int64_t>(clips.size());

  std::set<int64_t> failed_before;
  {
    REEL_ASSIGN_OR_RETURN(std::vector<CaptionError> errors, catalog.ListCaptionErrors(source));
    for (const CaptionError& e : errors) {
      if (e.model == model) failed_before.insert(e.clip_id);
    }
  }

  // What each clip needs, loaded here (workers never touch the catalog).
  std::vector<ClipInput> inputs;
  std::unordered_map<int64_t, VideoRecord> videos;
  std::unordered_map<int64_t, std::vector<VideoText>> texts;
  std::unordered_map<int64_t, std::vector<int64_t>> pts;  // only the current video's
  for (const ClipRecord& c : clips) {
    if (options.limit > 0 && static_cast<int64_t>(inputs.size()) >= options.limit) break;
    if (!options.retry_failed && failed_before.count(c.id)) {
      ++summary.skipped_failed;
      continue;
    }
    ClipInput in;
    in.clip = c;
    REEL_ASSIGN_OR_RETURN(in.captions, catalog.ListCaptions(c.id));
    REEL_ASSIGN_OR_RETURN(in.scores, catalog.ListClipCaptionScores(c.id));
    if (!videos.count(c.video_id)) {
      REEL_ASSIGN_OR_RETURN(auto v, catalog.FindVideoById(c.video_id));
      if (!v.has_value())
        return Status::Corruption("clip " + std::to_string(c.id) + ": no video row");
      videos[c.video_id] = *v;
      REEL_ASSIGN_OR_RETURN(texts[c.video_id], catalog.ListVideoTexts(c.video_id));
    }
    in.video = videos[c.video_id];
    in.redo = options.redo;
    in.texts = texts[c.video_id];
    if (!options.redo && !captioner.NeedsWork(in)) {
      ++summary.done_before;
      continue;
    }
    if (captioner.needs_frames()) {
      if (!pts.count(c.video_id)) {
        pts.clear();
        Result<std::vector<int64_t>> p = catalog.GetFrameDataI64(c.video_id, "pts");
        if (p.ok()) {
          pts[c.video_id] = std::move(*p);
        } else if (p.status().code() == StatusCode::kNotFound) {
          pts[c.video_id] = {};
        } else {
          return p.status();
        }
      }
      const std::vector<int64_t>& all = pts[c.video_id];
      if (static_cast<int64_t>(all.size()) >= c.end_frame) {
        in.frame_pts.assign(all.begin() + c.start_frame, all.begin() + c.end_frame);
      }
    }
    inputs.push_back(std::move(in));
  }

  Json config = captioner.config();
  config["backend"] = source;
  config["model"] = model;
  config["subset"] = options.subset;
  config["redo"] = options.redo;
  config["jobs"] = options.jobs;
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("caption", config));
  if (options.on_start) options.on_start(static_cast<int64_t>(inputs.size()));

  // Workers caption; this thread writes, one transaction per batch.
  auto write = [&](std::vector<WorkResult>& batch) -> Status {
    std::vector<std::pair<int64_t, Status>> events;
    {
      REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
      for (WorkResult& r : batch) {
        const ClipInput& in = inputs[r.index];
        const int64_t clip_id = in.clip.id;
        if (!r.output.has_value()) {
          CaptionError e;
          e.clip_id = clip_id;
          e.source = source;
          e.model = model;
          e.run_id = summary.run_id;
          e.error = r.failure.status.ToString();
          e.attempts = r.failure.attempts;
          REEL_RETURN_IF_ERROR(catalog.PutCaptionError(e));
          events.push_back({clip_id, r.failure.status});
          continue;
        }
        CaptionOutput& out = *r.output;
        int64_t new_id = 0;
        if (!out.text.empty()) {
          CaptionRecord k;
          k.clip_id = clip_id;
          k.text = out.text;
          k.source = source;
          k.model = model;
          k.prompt = out.prompt;
          k.params = out.params;
          k.params["attempts"] = out.attempts;
          k.run_id = summary.run_id;
          REEL_ASSIGN_OR_RETURN(new_id, catalog.AddCaption(k, CaptionConflict::kReplace));
        }
        for (const auto& [caption_id, value] : out.scores) {
          const int64_t id = caption_id == 0 ? new_id : caption_id;
          if (id == 0) continue;
          CaptionScore score;
          score.caption_id = id;
          score.name = out.score_name;
          score.model = out.score_model;
          score.value = value;
          REEL_RETURN_IF_ERROR(catalog.PutCaptionScore(score));
        }
        if (out.aesthetic.has_value()) {
          REEL_RETURN_IF_ERROR(catalog.SetClipAesthetic(clip_id, out.aesthetic));
        }
        REEL_RETURN_IF_ERROR(catalog.ClearCaptionError(clip_id, source, model));
        Status ev;
        if (!out.text.empty()) {
          ++summary.captioned;
        } else if (!out.scores.empty() || out.aesthetic.has_value()) {
          ++summary.scored_only;
        } else {
          ++summary.no_text;
          ev = Status::NotFound("no text");
        }
        events.push_back({clip_id, ev});
      }
      REEL_RETURN_IF_ERROR(txn.Commit());
    }
    for (const auto& [clip_id, status] : events) {
      if (!status.ok() && status.code() != StatusCode::kNotFound) {
        ++summary.failed;
        summary.failures.emplace_back(clip_id, status.ToString());
      }
      if (options.on_clip) options.on_clip(clip_id, status);
    }
    return Status::OK();
  };

  BatchOptions batching;
  batching.jobs = options.jobs;
  batching.cancel = options.cancel;
  batching.batch_size = options.batch_size;
  batching.batch_seconds = options.batch_seconds;
  size_t taken = 0;
  Status write_status = ProcessInBatches<WorkResult>(
      inputs.size(), batching,
      [&](size_t i) {
        WorkResult r;
        r.index = i;
        r.output = captioner.Caption(inputs[i], &r.failure, options.cancel);
        if (!r.output.has_value() && r.failure.status.ok()) {
          r.failure.status = Status::Internal("the captioner gave neither a caption nor an error");
        }
        return r;
      },
      write, &taken,
      // A clip stopped by a cancel is neither done nor failed: the next run does it.
      [](const WorkResult& r) {
        return r.output.has_value() || r.failure.status.code() != StatusCode::kCancelled;
      });
  if (!write_status.ok()) {
    catalog.FinishRun(summary.run_id, RunStatus::kFailed, write_status.message()).IgnoreError();
    return write_status;
  }

  summary.cancelled = options.cancel != nullptr && options.cancel->load() && taken < inputs.size();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto count = [](int64_t v) { return static_cast<double>(v); };
  REEL_RETURN_IF_ERROR(
      catalog.FinishRunWithMetrics(summary.run_id, summary.cancelled,
                                   {{"caption.clips", count(summary.clips)},
                                    {"caption.done_before", count(summary.done_before)},
                                    {"caption.captioned", count(summary.captioned)},
                                    {"caption.scored_only", count(summary.scored_only)},
                                    {"caption.no_text", count(summary.no_text)},
                                    {"caption.failed", count(summary.failed)},
                                    {"caption.skipped_failed", count(summary.skipped_failed)},
                                    {"caption.seconds", summary.seconds}}));
  return summary;
}

}  // namespace reel
