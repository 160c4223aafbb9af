#include "db/merge.h"

#include <map>
#include <set>
#include <tuple>

namespace reel {
namespace {

Status CopyFrameData(Catalog& in, int64_t in_id, Catalog& out, int64_t out_id) {
  REEL_ASSIGN_OR_RETURN(std::vector<Catalog::FrameArray> arrays, in.GetFrameArrays(in_id));
  for (const Catalog::FrameArray& a : arrays) REEL_RETURN_IF_ERROR(out.PutFrameArray(out_id, a));
  return Status::OK();
}

Status MergeOne(Catalog& in, Catalog& out, MergeSummary* s) {
  std::map<int64_t, int64_t> video_map, clip_map, run_map;
  std::vector<std::pair<int64_t, int64_t>> gen_runs;  // (in run, out run)

  // Runs first, so scans can point at them.
  REEL_ASSIGN_OR_RETURN(std::vector<RunRecord> runs, in.ListRuns());
  for (const RunRecord& r : runs) {
    bool fresh = false;
    REEL_ASSIGN_OR_RETURN(int64_t id, out.ImportRun(r, &fresh));
    run_map[r.id] = id;
    gen_runs.emplace_back(r.id, id);
    if (fresh) {
      REEL_ASSIGN_OR_RETURN(std::vector<MetricRecord> metrics, in.ListMetrics(r.id));
      for (const MetricRecord& m : metrics) {
        REEL_RETURN_IF_ERROR(out.AddMetric(id, m.name, m.value, m.details).status());
      }
      ++s->runs;
    }
  }

  // Videos by path.
  REEL_ASSIGN_OR_RETURN(std::vector<VideoRecord> videos, in.ListVideos());
  std::vector<std::pair<int64_t, int64_t>> dup_links;  // (out video, in duplicate_of)
  for (VideoRecord v : videos) {
    REEL_ASSIGN_OR_RETURN(auto existing, out.FindVideoByPath(v.path));
    const int64_t in_id = v.id;
    const std::optional<int64_t> in_dup = v.duplicate_of;
    v.duplicate_of.reset();
    if (!existing.has_value()) {
      REEL_ASSIGN_OR_RETURN(video_map[in_id], out.UpsertVideo(v));
      ++s->videos_added;
    } else if (v.updated_at > existing->updated_at) {
      REEL_ASSIGN_OR_RETURN(video_map[in_id], out.UpsertVideo(v));
      ++s->videos_updated;
    } else {
      video_map[in_id] = existing->id;
      continue;
    }
    if (in_dup.has_value()) dup_links.emplace_back(video_map[in_id], *in_dup);
  }
  for (const auto& [out_id, in_dup] : dup_links) {
    auto it = video_map.find(in_dup);
    if (it == video_map.end()) continue;
    REEL_ASSIGN_OR_RETURN(auto v, out.FindVideoById(out_id));
    v->duplicate_of = it->second;
    REEL_RETURN_IF_ERROR(out.UpsertVideo(*v).status());
  }

  // Scans, per-frame data and clips: the more recent scan wins.
  for (const auto& [in_id, out_id] : video_map) {
    REEL_ASSIGN_OR_RETURN(auto in_scan, in.FindScan(in_id));
    REEL_ASSIGN_OR_RETURN(auto out_scan, out.FindScan(out_id));
    REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> in_clips, in.ListClips(in_id));
    const bool take = in_scan.has_value() &&
                      (!out_scan.has_value() || in_scan->scanned_at > out_scan->scanned_at);
    if (take) {
      ScanRecord scan = *in_scan;
      scan.video_id = out_id;
      scan.run_id = scan.run_id.has_value() && run_map.count(*scan.run_id)
                        ? std::optional<int64_t>(run_map[*scan.run_id])
                        : std::nullopt;
      REEL_RETURN_IF_ERROR(out.PutScan(scan));
      REEL_RETURN_IF_ERROR(CopyFrameData(in, in_id, out, out_id));
      std::vector<ClipRecord> clips = in_clips;
      for (ClipRecord& c : clips) {
        c.video_id = out_id;
        c.duplicate_of.reset();
      }
      REEL_ASSIGN_OR_RETURN(std::vector<int64_t> ids, out.ReplaceClips(out_id, clips));
      for (size_t k = 0; k < in_clips.size(); ++k) clip_map[in_clips[k].id] = ids[k];
      s->clips += static_cast<int64_t>(ids.size());
      ++s->scans;
    } else {
      // Keep the catalog's clips; map the input's clips that have the same range.
      REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> out_clips, out.ListClips(out_id));
      std::map<std::pair<int64_t, int64_t>, int64_t> by_range;
      for (const ClipRecord& c : out_clips) by_range[{c.start_frame, c.end_frame}] = c.id;
      for (const ClipRecord& c : in_clips) {
        auto it = by_range.find({c.start_frame, c.end_frame});
        if (it != by_range.end()) clip_map[c.id] = it->second;
      }
    }
  }
  // Clip duplicate links.
  REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> all_in_clips, in.ListClips());
  for (const ClipRecord& c : all_in_clips) {
    if (!c.duplicate_of.has_value() || !clip_map.count(c.id) || !clip_map.count(*c.duplicate_of)) {
      continue;
    }
    REEL_RETURN_IF_ERROR(out.SetClipDuplicate(clip_map[c.id], clip_map[*c.duplicate_of]));
  }

  // Captions by (clip, source, model), the newer one winning, with their scores; clip
  // aesthetic scores where the catalog has none.
  for (const auto& [in_clip, out_clip] : clip_map) {
    REEL_ASSIGN_OR_RETURN(std::vector<CaptionRecord> caps, in.ListCaptions(in_clip));
    for (CaptionRecord k : caps) {
      REEL_ASSIGN_OR_RETURN(auto have, out.FindCaption(out_clip, k.source, k.model));
      if (have.has_value() && have->created_at >= k.created_at) continue;
      REEL_ASSIGN_OR_RETURN(std::vector<CaptionScore> scores, in.ListCaptionScores(k.id));
      k.clip_id = out_clip;
      k.run_id = k.run_id.has_value() && run_map.count(*k.run_id)
                     ? std::optional<int64_t>(run_map[*k.run_id])
                     : std::nullopt;
      REEL_ASSIGN_OR_RETURN(int64_t id, out.AddCaption(k, CaptionConflict::kReplace));
      for (CaptionScore score : scores) {
        score.caption_id = id;
        REEL_RETURN_IF_ERROR(out.PutCaptionScore(score));
      }
      ++s->captions;
    }
    REEL_ASSIGN_OR_RETURN(std::optional<double> in_aes, in.GetClipAesthetic(in_clip));
    REEL_ASSIGN_OR_RETURN(std::optional<double> out_aes, out.GetClipAesthetic(out_clip));
    if (in_aes.has_value() && !out_aes.has_value()) {
      REEL_RETURN_IF_ERROR(out.SetClipAesthetic(out_clip, in_aes));
    }
  }
  // Sidecar texts follow the video row that won.
  for (const auto& [in_id, out_id] : video_map) {
    REEL_ASSIGN_OR_RETURN(std::vector<VideoText> in_texts, in.ListVideoTexts(in_id));
    if (in_texts.empty()) continue;
    REEL_ASSIGN_OR_RETURN(std::vector<VideoText> out_texts, out.ListVideoTexts(out_id));
    if (!out_texts.empty()) continue;
    for (VideoText& t : in_texts) t.video_id = out_id;
    REEL_RETURN_IF_ERROR(out.ReplaceVideoTexts(out_id, in_texts, ""));
  }

  // Subsets by name, members unioned.
  REEL_ASSIGN_OR_RETURN(std::vector<SubsetRecord> subsets, in.ListSubsets());
  for (const SubsetRecord& sub : subsets) {
    REEL_ASSIGN_OR_RETURN(auto existing, out.FindSubset(sub.name));
    int64_t out_id = 0;
    if (existing.has_value()) {
      out_id = existing->id;
    } else {
      SubsetRecord copy = sub;
      copy.run_id = sub.run_id.has_value() && run_map.count(*sub.run_id)
                        ? std::optional<int64_t>(run_map[*sub.run_id])
                        : std::nullopt;
      REEL_ASSIGN_OR_RETURN(out_id, out.PutSubset(copy));
    }
    REEL_ASSIGN_OR_RETURN(std::vector<SubsetMember> members, in.ListSubsetMembers(sub.id));
    std::vector<SubsetMember> mapped;
    for (SubsetMember m : members) {
      auto it = clip_map.find(m.clip_id);
      if (it == clip_map.end()) continue;
      m.clip_id = it->second;
      mapped.push_back(m);
    }
    REEL_RETURN_IF_ERROR(out.AddSubsetMembers(out_id, mapped));
    s->subset_members += static_cast<int64_t>(mapped.size());
  }

  // Exports.
  for (const auto& [in_clip, out_clip] : clip_map) {
    REEL_ASSIGN_OR_RETURN(std::vector<ClipExportRecord> exports, in.ListClipExports(in_clip));
    for (ClipExportRecord e : exports) {
      REEL_ASSIGN_OR_RETURN(auto have, out.FindClipExport(out_clip, e.out_dir));
      if (have.has_value()) continue;
      e.clip_id = out_clip;
      REEL_RETURN_IF_ERROR(out.PutClipExport(e));
      ++s->exports;
    }
  }

  // Generated videos go with their run, by path; clip and caption links follow when those
  // were merged too.
  for (const auto& [in_run, out_run] : gen_runs) {
    REEL_ASSIGN_OR_RETURN(std::vector<GenerationRecord> gens, in.ListGenerations(in_run));
    if (gens.empty()) continue;
    REEL_ASSIGN_OR_RETURN(std::vector<GenerationRecord> have, out.ListGenerations(out_run));
    std::set<std::string> have_paths;
    for (const GenerationRecord& h : have) have_paths.insert(h.path);
    for (GenerationRecord g : gens) {
      if (have_paths.count(g.path)) continue;
      g.run_id = out_run;
      std::optional<int64_t> out_clip, out_caption;
      if (g.clip_id.has_value() && clip_map.count(*g.clip_id)) {
        out_clip = clip_map[*g.clip_id];
        if (g.caption_id.has_value()) {
          REEL_ASSIGN_OR_RETURN(std::vector<CaptionRecord> caps, in.ListCaptions(*g.clip_id));
          for (const CaptionRecord& k : caps) {
            if (k.id != *g.caption_id) continue;
            REEL_ASSIGN_OR_RETURN(auto have, out.FindCaption(*out_clip, k.source, k.model));
            if (have.has_value()) out_caption = have->id;
          }
        }
      }
      g.clip_id = out_clip;
      g.caption_id = out_caption;
      REEL_RETURN_IF_ERROR(out.AddGeneration(g).status());
      ++s->generations;
    }
  }

  // Cached features are content-addressed: copy the ones the catalog lacks.
  REEL_ASSIGN_OR_RETURN(std::vector<std::string> keys, in.ListFeatureSetKeys());
  for (const std::string& key : keys) {
    REEL_ASSIGN_OR_RETURN(auto have, out.FindFeatureSet(key));
    if (have.has_value()) continue;
    REEL_ASSIGN_OR_RETURN(auto set, in.FindFeatureSet(key));
    if (set.has_value()) REEL_RETURN_IF_ERROR(out.PutFeatureSet(*set));
  }
  return Status::OK();
}

}  // namespace

Result<MergeSummary> MergeCatalogs(Catalog& out, const std::vector<std::string>& inputs) {
  MergeSummary summary;
  for (const std::string& path : inputs) {
    Catalog::Options ro;
    ro.read_only = true;
    REEL_ASSIGN_OR_RETURN(auto in, Catalog::Open(path, ro));
    if (in->schema_version() != Catalog::kSchemaVersion) {
      return Status::FailedPrecondition(path + ": schema version " +
                                        std::to_string(in->schema_version()) +
                                        "; run `reel db upgrade` on it first");
    }
    REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, out.Begin());
    REEL_RETURN_IF_ERROR(MergeOne(*in, out, &summary).WithContext("merging " + path));
    REEL_RETURN_IF_ERROR(txn.Commit());
    ++summary.inputs;
  }
  return summary;
}

}  // namespace reel
