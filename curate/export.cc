#include "curate/export.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "db/export.h"
#include "db/video_file.h"
#include "util/parallel.h"
#include "util/strings.h"
#include "video/decoder.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/remux.h"
#include "video/sampler.h"

namespace reel {

namespace {

namespace fs = std::filesystem;

struct ExportJob {
  ClipRecord clip;
  VideoRecord video;
  int64_t origin_pts = 0;  // pts of the video's first frame
  int64_t start_pts = 0;
  int64_t end_pts = 0;
  std::string out_path;
};

struct ExportOutcome {
  ExportJob job;
  Status status;
  ClipExportRecord record;
};

int Even(int v) {
  return std::max(2, v - (v % 2));
}

// The output size: `height` (or the source's) with the display aspect ratio, both even,
// or an error when a side would pass kMaxExportSide (a 2000x16 video at --height 1080
// would be 135000 wide, and reel would try to allocate its frames).
Status OutputSize(const VideoRecord& v, int height, int* w, int* h) {
  int dw = 0, dh = 0;
  DisplaySize(v.width, v.height, v.sample_aspect_ratio, v.rotation, &dw, &dh);
  double width = dw;
  if (height <= 0) {
    *h = Even(dh);
  } else {
    *h = Even(height);
    width = std::round(static_cast<double>(*h) * dw / dh / 2.0) * 2.0;
  }
  if (width > kMaxExportSide || *h > kMaxExportSide) {
    char size[64];
    std::snprintf(size, sizeof(size), "%.0fx%d", width, *h);
    return Status::InvalidArgument(v.path + ": the clip would be " + size + " (" +
                                   std::to_string(dw) + "x" + std::to_string(dh) +
                                   " shown at height " + std::to_string(*h) + "); libx264 " +
                                   "takes at most " + std::to_string(kMaxExportSide) +
                                   " pixels a side: choose a smaller --height");
  }
  *w = Even(static_cast<int>(width));
  return Status::OK();
}

// Why an export recorded earlier is not what `o` would write now ("" when it is): the
// mode, size or frame rate differ, as when --height changed between runs into one folder.
std::string HowExportDiffers(const ClipExportRecord& done, const VideoRecord& v,
                             const ExportOptions& o) {
  std::string mode = o.copy ? "copy" : "reencode";
  int w = v.width, h = v.height;
  Rational fps = v.frame_rate;
  if (!o.copy) {
    if (!OutputSize(v, o.height, &w, &h).ok()) return "";  // the export itself says why
    const bool resample = o.fps.valid() && o.fps > Rational();
    fps = resample ? o.fps
                   : (v.frame_rate.valid() && v.frame_rate > Rational() ? v.frame_rate
                                                                        : Rational(25, 1));
  }
  auto describe = [](const std::string& m, int width, int height, const Rational& rate) {
    return m + " " + std::to_string(width) + "x" + std::to_string(height) + " at " +
           rate.ToString() + " fps";
  };
  if (done.mode == mode && done.width == w && done.height == h && done.frame_rate == fps) {
    return "";
  }
  return "exported before as " + describe(done.mode, done.width, done.height, done.frame_rate) +
         ", this run asks for " + describe(mode, w, h, fps) +
         "; not overwritten (export into another --out, or delete the folder's clips first)";
}

// A re-encoded clip is shown as its source is: its frames go back into Y'CbCr with the
// source's matrix (one the decoder read them with) and carry its primaries and transfer,
// as a clip cut with ffmpeg would. HDR the decoder tone-mapped is BT.709 SDR by then.
void SetClipColour(const VideoInfo& source, const DecodeOptions& dec, EncodeOptions* enc) {
  if (dec.tone_map_hdr && IsHdrTransfer(source.color_transfer)) {
    enc->color_space = enc->color_primaries = enc->color_transfer = "bt709";
    return;
  }
  // A matrix swscale does not know was read as BT.601 (unstated), so is written as it.
  enc->color_space = CanEncodeColorSpace(source.color_space) ? source.color_space : "";
  enc->color_primaries = source.color_primaries;
  enc->color_transfer = source.color_transfer;
}

Status ReencodeClip(const ExportJob& job, const ExportOptions& o, ClipExportRecord* rec) {
  const VideoRecord& v = job.video;
  int w = 0, h = 0;
  REEL_RETURN_IF_ERROR(OutputSize(v, o.height, &w, &h));
  DecodeOptions dec;
  dec.width = w;
  dec.height = h;
  dec.filter = ResizeFilter::kArea;
  dec.threads = o.threads_per_clip;
  // Position the decoder at or before the clip's first frame.
  Frame frame;
  REEL_ASSIGN_OR_RETURN(auto decoder, OpenVideoAt(v.path, dec, job.start_pts, &frame));

  EncodeOptions enc;
  enc.width = w;
  enc.height = h;
  enc.codec = o.codec;
  enc.crf = o.crf;
  enc.preset = o.preset;
  enc.threads = o.threads_per_clip;
  SetClipColour(decoder->info(), dec, &enc);
  const bool resample = o.fps.valid() && o.fps > Rational();
  if (resample) {
    enc.frame_rate = o.fps;
  } else {
    enc.frame_rate =
        v.frame_rate.valid() && v.frame_rate > Rational() ? v.frame_rate : Rational(25, 1);
    enc.time_base = v.time_base;
  }
  REEL_ASSIGN_OR_RETURN(auto encoder, VideoEncoder::Open(job.out_path, enc));

  int64_t in_range = 0;
  if (resample) {
    const Rational duration = TicksToSeconds(job.end_pts - job.start_pts, v.time_base);
    FrameRateConverter rate(o.fps, ConvertedFrameCount(duration, o.fps));
    REEL_ASSIGN_OR_RETURN(
        in_range, ReadAtRate(*decoder, &frame, job.start_pts, job.end_pts, v.time_base, rate,
                             [&](const Frame& f, int64_t first, int64_t n) -> Status {
                               for (int64_t k = first; k < first + n; ++k)
                                 REEL_RETURN_IF_ERROR(encoder->Write(f, k));
                               return Status::OK();
                             }));
  } else {
    while (frame.pts < job.end_pts) {
      if (frame.pts >= job.start_pts) {
        ++in_range;
        REEL_RETURN_IF_ERROR(encoder->Write(frame, frame.pts - job.start_pts));
      }
      REEL_ASSIGN_OR_RETURN(bool more, decoder->Next(&frame));
      if (!more) break;
    }
  }
  if (in_range == 0) return Status::Corruption(v.path + ": the clip's frames could not be decoded");
  REEL_RETURN_IF_ERROR(encoder->Finish());

  rec->mode = "reencode";
  rec->width = w;
  rec->height = h;
  rec->frame_rate = enc.frame_rate;
  rec->start_time = job.clip.start_time;
  rec->end_time = job.clip.end_time;
  return Status::OK();
}

Status CopyClip(const ExportJob& job, ClipExportRecord* rec) {
  const VideoRecord& v = job.video;
  REEL_ASSIGN_OR_RETURN(RemuxResult r,
                        CopySegment(v.path, job.out_path, job.start_pts, job.end_pts));
  rec->mode = "copy";
  rec->frame_rate = v.frame_rate;
  rec->start_time = TicksToSeconds(r.first_pts - job.origin_pts, r.time_base);
  rec->end_time = TicksToSeconds(r.end_pts - job.origin_pts, r.time_base);
  return Status::OK();
}

ExportOutcome ExportOne(const ExportJob& job, const ExportOptions& o) {
  ExportOutcome out;
  out.job = job;
  ClipExportRecord& rec = out.record;
  rec.clip_id = job.clip.id;
  rec.out_dir = o.out_dir;
  rec.path = job.out_path;
  out.status = o.copy ? CopyClip(job, &rec) : ReencodeClip(job, o, &rec);
  if (!out.status.ok()) {
    out.status = out.status.WithContext("clip " + std::to_string(job.clip.id));
    return out;
  }
  Result<VideoInfo> probe = ProbeVideo(job.out_path);
  if (!probe.ok()) {
    out.status = probe.status().WithContext("checking the exported clip");
    return out;
  }
  rec.frames = probe->frame_count;
  if (o.copy) {  // the copy's own size: a stream may change size (HLS segments joined)
    rec.width = probe->width;
    rec.height = probe->height;
  } else {
    const int64_t expected =
        (o.fps.valid() && o.fps > Rational())
            ? ConvertedFrameCount(TicksToSeconds(job.end_pts - job.start_pts, job.video.time_base),
                                  o.fps)
            : job.clip.end_frame - job.clip.start_frame;
    if (rec.frames != expected) {
      out.status = Status::Internal(job.out_path + ": wrote " + std::to_string(rec.frames) +
                                    " frames, expected " + std::to_string(expected));
    }
  }
  return out;
}

std::string SafeStem(const std::string& path) {
  std::string stem = fs::path(path).stem().string();
  for (char& c : stem) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  }
  if (stem.size() > 80) stem.resize(80);
  return stem.empty() ? "clip" : stem;
}

Status WriteManifests(Catalog& catalog, const ExportOptions& o, const std::string& subset,
                      ExportSummary* summary) {
  const std::string sql =
      "SELECT e.path, coalesce(" + SelectedCaptionSql(o.prefer, "c.id") + ", '')" +
      ", e.frames, e.height, e.width, CAST(e.fps_num AS REAL) / e.fps_den, c.duration_seconds, "
      "c.motion, c.static_ratio, c.camera_motion, c.sharpness, c.brightness, c.contrast, "
      "c.black_ratio, c.text_area, c.colorfulness, c.id, v.path, c.start_frame, c.end_frame, "
      "e.start_num, e.start_den, e.end_num, e.end_den, e.mode FROM clip_exports e "
      "JOIN clips c ON c.id = e.clip_id JOIN videos v ON v.id = c.video_id "
      "WHERE e.out_dir = ? AND c.id IN (SELECT sc.clip_id FROM subset_clips sc "
      "JOIN subsets s ON s.id = sc.subset_id WHERE s.name = ? AND sc.passed = 1) ORDER BY c.id";
  const std::vector<std::string> columns = {
      "path",         "text",          "num_frames",   "height",     "width",
      "aspect_ratio", "fps",           "resolution",   "duration",   "motion",
      "static_ratio", "camera_motion", "sharpness",    "brightness", "contrast",
      "black_ratio",  "text_area",     "colorfulness", "clip_id",    "video",
      "start_frame",  "end_frame",     "start_time",   "end_time",   "mode"};
  std::ostringstream csv, jsonl;
  auto csv_writer = MakeRowWriter(TableFormat::kCsv, csv);
  auto json_writer = MakeRowWriter(TableFormat::kJsonl, jsonl);
  REEL_RETURN_IF_ERROR(csv_writer->Columns(columns));
  REEL_RETURN_IF_ERROR(json_writer->Columns(columns));
  REEL_RETURN_IF_ERROR(catalog.QueryReadOnly(
      sql, {SqlValue(o.out_dir), SqlValue(subset)},
      [](const std::vector<std::string>&) { return Status::OK(); },
      [&](const std::vector<SqlValue>& r) -> Status {
        const std::string& video_path = std::get<std::string>(r[17]);
        if (!o.shard.Contains(video_path)) return Status::OK();
        const std::string& clip_path = std::get<std::string>(r[0]);
        std::error_code ec;
        if (!fs::exists(clip_path, ec)) {  // a manifest row must lead to a file
          summary->failures.emplace_back(clip_path,
                                         "recorded as exported, but the file is gone; left out "
                                         "of the manifest (export again to write it)");
          ++summary->failed;
          return Status::OK();
        }
        const int64_t height = std::get<int64_t>(r[3]), width = std::get<int64_t>(r[4]);
        auto rational = [&](size_t i) {
          return Rational(std::get<int64_t>(r[i]), std::get<int64_t>(r[i + 1])).ToString();
        };
        std::vector<SqlValue> row = {
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            SqlValue(width > 0 ? static_cast<double>(height) / width : 0.0),
            r[5],
            SqlValue(height * width),
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            r[13],
            r[14],
            r[15],
            r[16],
            r[17],
            r[18],
            r[19],
            SqlValue(rational(20)),
            SqlValue(rational(22)),
            r[24]};
        ++summary->manifest_rows;
        REEL_RETURN_IF_ERROR(json_writer->Row(row));
        bool replaced = false;
        for (SqlValue& v : row) {
          if (auto* s = std::get_if<std::string>(&v); s != nullptr && !IsValidUtf8(*s)) {
            *s = ReplaceInvalidUtf8(*s);
            replaced = true;
          }
        }
        summary->manifest_rows_not_utf8 += replaced;
        return csv_writer->Row(row);
      }));
  REEL_RETURN_IF_ERROR(csv_writer->Finish());
  REEL_RETURN_IF_ERROR(json_writer->Finish());
  const std::string base = o.shard.all() ? "manifest"
                                         : "manifest-" + std::to_string(o.shard.index) + "-of-" +
                                               std::to_string(o.shard.count);
  summary->manifest_csv = (fs::path(o.out_dir) / (base + ".csv")).string();
  summary->manifest_jsonl = (fs::path(o.out_dir) / (base + ".jsonl")).string();
  REEL_RETURN_IF_ERROR(WriteFileAtomic(summary->manifest_csv, csv.str()));
  return WriteFileAtomic(summary->manifest_jsonl, jsonl.str());
}

}  // namespace

std::string ExportFileName(const VideoRecord& video, const ClipRecord& clip,
                           const std::string& extension) {
  char range[48];
  std::snprintf(range, sizeof(range), "%06lld-%06lld", static_cast<long long>(clip.start_frame),
                static_cast<long long>(clip.end_frame));
  return SafeStem(video.path) + "_" + std::to_string(video.id) + "_" + range + "." + extension;
}

Result<ExportSummary> Export(Catalog& catalog, const ExportOptions& in) {
  ExportOptions o = in;
  if (o.out_dir.empty()) return Status::InvalidArgument("export needs an output folder");
  if (o.subset.empty()) return Status::InvalidArgument("export needs a subset");
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Status::IOError(o.out_dir + ": " + ec.message());
  o.out_dir = fs::absolute(o.out_dir).lexically_normal().string();
  REEL_ASSIGN_OR_RETURN(auto subset, catalog.FindSubset(o.subset));
  if (!subset.has_value()) {
    return Status::NotFound("no subset '" + o.subset + "' (make one with `reel curate filter`)");
  }
  ExportSummary summary;

  // Select the clips; load each video's timestamps once.
  std::vector<ExportJob> jobs;
  if (!o.manifest_only) {
    REEL_ASSIGN_OR_RETURN(std::vector<SubsetMember> members, catalog.ListSubsetMembers(subset->id));
    std::map<int64_t, VideoRecord> videos;
    std::map<int64_t, std::vector<int64_t>> pts_of;
    // Sources changed since they were ingested (their clips' frames and times are another
    // file's), each said once with the clips it holds back.
    std::map<int64_t, std::pair<Status, int64_t>> changed;
    for (const SubsetMember& m : members) {
      if (!m.passed) continue;
      REEL_ASSIGN_OR_RETURN(auto clip, catalog.FindClip(m.clip_id));
      if (!clip.has_value()) continue;
      if (!videos.count(clip->video_id)) {
        REEL_ASSIGN_OR_RETURN(auto v, catalog.FindVideoById(clip->video_id));
        if (!v.has_value()) continue;
        videos[clip->video_id] = *v;
      }
      const VideoRecord& v = videos[clip->video_id];
      if (!o.shard.Contains(v.path)) continue;
      ++summary.clips;
      if (!pts_of.count(v.id)) {
        REEL_ASSIGN_OR_RETURN(pts_of[v.id], catalog.GetFrameDataI64(v.id, "pts"));
      }
      const std::vector<int64_t>& pts = pts_of[v.id];
      std::string extension = "mp4";
      if (o.copy) {
        extension = StreamCopyContainer(v.codec);
        if (extension.empty()) {
          summary.failures.emplace_back(
              v.path, "clip " + std::to_string(clip->id) + ": none of mp4, mkv, mov and avi " +
                          "holds its codec '" + v.codec + "' for a stream copy; export it " +
                          "without --copy (re-encoded)");
          ++summary.failed;
          continue;
        }
      }
      ExportJob job;
      job.clip = *clip;
      job.video = v;
      job.out_path = (fs::path(o.out_dir) / ExportFileName(v, *clip, extension)).string();
      if (!ClipPtsRange(v, *clip, pts, &job.start_pts, &job.end_pts)) {
        summary.failures.emplace_back(
            v.path, "clip " + std::to_string(clip->id) + " lies past the scanned frames");
        ++summary.failed;
        continue;
      }
      job.origin_pts = pts.front();
      // Resume: a recorded clip whose file is there is done, if it was written as this
      // run would write it; a finished file is never overwritten. A record whose file was
      // deleted describes nothing any more: it goes, and the clip is exported again.
      REEL_ASSIGN_OR_RETURN(auto done, catalog.FindClipExport(clip->id, o.out_dir));
      if (done.has_value() && !fs::exists(done->path, ec)) {
        REEL_RETURN_IF_ERROR(catalog.DeleteClipExport(clip->id, o.out_dir));
        done.reset();
      }
      // The recorded file may have another name than this run's (a copy into .mkv after a
      // re-encode into .mp4): the record decides.
      if (done.has_value()) {
        if (std::string differs = HowExportDiffers(*done, v, o); !differs.empty()) {
          summary.failures.emplace_back(done->path, differs);
          ++summary.failed;
        } else {
          ++summary.skipped;
        }
        continue;
      }
      if (fs::exists(job.out_path, ec)) {
        summary.failures.emplace_back(job.out_path,
                                      "exists but is not recorded as exported; not overwritten");
        ++summary.failed;
        continue;
      }
      auto check = changed.find(v.id);
      if (check == changed.end())
        check = changed.emplace(v.id, std::make_pair(CheckUnchangedSinceIngest(v), 0)).first;
      if (!check->second.first.ok()) {
        ++check->second.second;
        ++summary.failed;
        continue;
      }
      jobs.push_back(std::move(job));
    }
    for (const auto& [id, c] : changed) {
      if (c.first.ok()) continue;
      const std::string& path = videos[id].path;
      std::string why = c.first.message();
      if (StartsWith(why, path + ": ")) why.erase(0, path.size() + 2);  // listed by path
      summary.failures.emplace_back(path, why + " (" + std::to_string(c.second) + " clip" +
                                              (c.second == 1 ? "" : "s") + " not exported)");
    }
  }
  if (o.on_start) o.on_start(static_cast<int64_t>(jobs.size()));

  Json config = Json::MakeObject();
  config["subset"] = o.subset;
  config["out_dir"] = o.out_dir;
  config["mode"] = o.copy ? "copy" : "reencode";
  config["height"] = o.height;
  config["fps"] = o.fps.ToString();
  config["shard"] = o.shard.ToString();
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("export", config));

  ParallelOptions parallel;
  parallel.jobs = o.jobs;
  parallel.cancel = o.cancel;
  int64_t taken = 0;
  Status status = ProcessInParallel<ExportOutcome>(
      jobs.size(), parallel, [&](size_t i) { return ExportOne(jobs[i], o); },
      [&](ExportOutcome&& r) -> Status {
        ++taken;
        if (r.status.ok()) {
          REEL_RETURN_IF_ERROR(catalog.PutClipExport(r.record));
          ++summary.exported;
        } else {
          std::remove(r.job.out_path.c_str());
          ++summary.failed;
          summary.failures.emplace_back(r.job.video.path, r.status.message());
        }
        if (o.on_clip) o.on_clip(r.job.out_path, r.status);
        return Status::OK();
      });
  summary.cancelled =
      o.cancel != nullptr && o.cancel->load() && taken < static_cast<int64_t>(jobs.size());
  if (status.ok()) status = WriteManifests(catalog, o, o.subset, &summary);
  if (!status.ok()) {
    catalog.FinishRun(summary.run_id, RunStatus::kFailed, status.message()).IgnoreError();
    return status;
  }
  REEL_RETURN_IF_ERROR(
      catalog.AddMetric(summary.run_id, "export.clips", static_cast<double>(summary.exported))
          .status());
  REEL_RETURN_IF_ERROR(catalog.FinishRun(
      summary.run_id, summary.cancelled ? RunStatus::kInterrupted : RunStatus::kOk,
      summary.cancelled ? "cancelled" : ""));
  return summary;
}

}  // namespace reel
