#include "curate/ingest.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "curate/sidecar.h"
#include "util/files.h"
#include "util/parallel.h"
#include "util/sha256.h"
#include "util/strings.h"
#include "video/probe.h"

namespace reel {
namespace {

namespace fs = std::filesystem;

struct WorkItem {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool known = false;  // the catalog has a row for this path
  std::string old_hash;
  VideoStatus old_status = VideoStatus::kOk;
  int64_t old_id = 0;
  std::string old_sidecar_stamp;
  bool sidecars_only = false;  // unchanged video whose sidecar files changed
};

struct WorkResult {
  WorkItem item;
  VideoRecord record;
  bool same_content = false;  // hash equals the stored one: only the stamp changes
  SidecarTexts sidecars;
  std::vector<std::string> warnings;  // about the video itself; it is recorded all the same
};

// "path: cause" -> "cause" (the row already names the path).
std::string CauseOnly(const std::string& message, const std::string& path) {
  if (StartsWith(message, path + ": ")) return message.substr(path.size() + 2);
  return message;
}

void FillFromProbe(const VideoInfo& info, VideoRecord* r) {
  r->container = info.container;
  r->codec = info.codec;
  r->pixel_format = info.pixel_format;
  r->width = info.width;
  r->height = info.height;
  r->sample_aspect_ratio = info.sample_aspect_ratio;
  r->rotation = info.rotation;
  r->frame_rate = info.frame_rate;
  r->time_base = info.time_base;
  r->variable_frame_rate = info.variable_frame_rate;
  r->frame_count = info.frame_count;
  r->start_time = info.start_time;
  r->duration = info.duration;
  r->has_audio = info.has_audio;
  r->bit_rate = info.bit_rate;
  r->metadata = info.metadata;
}

WorkResult ProcessFile(const WorkItem& item) {
  WorkResult out;
  out.item = item;
  VideoRecord& r = out.record;
  r.path = item.path;
  r.size_bytes = item.size;
  r.mtime_ns = item.mtime_ns;
  out.sidecars = ReadSidecars(item.path);
  if (item.sidecars_only) return out;
  Result<std::string> hash = Sha256File(item.path);
  if (!hash.ok()) {
    r.status = VideoStatus::kError;
    r.error = CauseOnly(hash.status().message(), item.path);
    return out;
  }
  r.content_hash = *hash;
  if (item.known && item.old_hash == r.content_hash && item.old_status != VideoStatus::kError) {
    out.same_content = true;
    return out;
  }
  Result<VideoInfo> info = ProbeVideo(item.path);
  if (!info.ok()) {
    r.status = VideoStatus::kError;
    r.error = CauseOnly(info.status().message(), item.path);
    return out;
  }
  r.status = VideoStatus::kOk;
  FillFromProbe(*info, &r);
  if (info->damaged_packets > 0) {
    out.warnings.push_back(item.path + ": " + std::to_string(info->damaged_packets) +
                           " video packet(s) flagged damaged by the demuxer (transport-stream "
                           "packets lost, or segments joined with `cat`); read on as ffmpeg "
                           "does (the scan records frames that do not decode cleanly as "
                           "decode_errors)");
  }
  if (IsHdrTransfer(info->color_transfer)) {
    out.warnings.push_back(
        item.path + ": high dynamic range (" +
        (info->color_transfer == "smpte2084" ? std::string("PQ") : std::string("HLG")) +
        " transfer, " + info->pixel_format +
        "): reel tone-maps its frames to SDR BT.709 (as ffmpeg's -vf "
        "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,zscale=t=bt709 "
        "does) for the scan, captions and re-encoded clips; `export --copy` keeps it HDR");
  }
  // DV states no field order in its stream; its frames do.
  const std::string& fields =
      info->field_order.empty() ? info->decoded_field_order : info->field_order;
  if (IsInterlaced(fields)) {
    out.warnings.push_back(
        item.path + ": interlaced (" +
        (fields == "tt" || fields == "tb" ? std::string("top") : std::string("bottom")) +
        " field first): reel deinterlaces its frames as ffmpeg's -vf yadif=deint=interlaced "
        "does for the scan, captions and re-encoded clips; `export --copy` keeps it "
        "interlaced");
  }
  if (info->undecodable_lead > 0) {
    out.warnings.push_back(item.path + ": starts mid-GOP: its first " +
                           std::to_string(info->undecodable_lead) +
                           " video packet(s) predict from pictures before the file's start and "
                           "cannot be decoded; the video starts at the first frame that can (as "
                           "ffmpeg's does)");
  }
  return out;
}

Result<int64_t> StatFile(const std::string& path, int64_t* mtime_ns) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::IOError(path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  *mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return static_cast<int64_t>(st.st_size);
}

}  // namespace

std::string_view IngestOutcomeName(IngestOutcome o) {
  switch (o) {
    case IngestOutcome::kAdded:
      return "added";
    case IngestOutcome::kUpdated:
      return "updated";
    case IngestOutcome::kUnchanged:
      return "unchanged";
    case IngestOutcome::kDuplicate:
      return "duplicate";
    case IngestOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

std::vector<std::string> FindVideoFiles(const std::vector<std::string>& paths,
                                        const IngestOptions& options,
                                        std::vector<std::pair<std::string, std::string>>* missing) {
  std::set<std::string> found;
  for (const std::string& input : paths) {
    std::error_code ec;
    const fs::path p = fs::absolute(input, ec).lexically_normal();
    if (ec) {
      missing->emplace_back(input, ec.message());
      continue;
    }
    const fs::file_status st = fs::status(p, ec);
    if (ec || !fs::exists(st)) {
      missing->emplace_back(input, "no such file or folder");
      continue;
    }
    if (fs::is_regular_file(st)) {
      found.insert(p.string());  // named explicitly: always tried
      continue;
    }
    if (!fs::is_directory(st)) {
      missing->emplace_back(input, "not a regular file or folder");
      continue;
    }
    WalkOptions walk;
    walk.recursive = options.recursive;
    std::vector<std::pair<std::string, std::string>> unreadable;
    const Status listed = WalkTree(
        p.string(), walk,
        [&](const std::string& path, TreeEntry kind) {
          if (kind == TreeEntry::kFile && (options.all_files || HasVideoExtension(path))) {
            found.insert(path);
          }
        },
        &unreadable);
    if (!listed.ok()) missing->emplace_back(input, "cannot list folder: " + listed.message());
    for (const auto& [folder, cause] : unreadable) {
      missing->emplace_back(folder, "cannot list folder: " + cause);
    }
  }
  return std::vector<std::string>(found.begin(), found.end());
}

Result<IngestSummary> Ingest(Catalog& catalog, const std::vector<std::string>& paths,
                             const IngestOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  IngestSummary summary;
  REEL_RETURN_IF_ERROR(catalog.MarkInterruptedRuns().status());

  Json config = Json::MakeObject();
  Json path_list = Json::MakeArray();
  for (const auto& p : paths) path_list.push_back(p);
  config["paths"] = path_list;
  config["jobs"] = options.jobs;
  config["recursive"] = options.recursive;
  config["all_files"] = options.all_files;
  config["retry_errors"] = options.retry_errors;
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("ingest", config));

  const std::vector<std::string> files = FindVideoFiles(paths, options, &summary.missing);
  summary.found = static_cast<int64_t>(files.size());
  REEL_ASSIGN_OR_RETURN(auto stamps, catalog.LoadFileStamps());

  int64_t done = 0;
  auto emit = [&](const std::string& path, IngestOutcome outcome, const std::string& error) {
    ++done;
    if (options.on_file) {
      IngestEvent ev;
      ev.path = path;
      ev.outcome = outcome;
      ev.error = error;
      ev.done = done;
      ev.total = summary.found;
      options.on_file(ev);
    }
  };

  // Decide what needs work; unchanged stamps are skipped without reading the file.
  std::vector<WorkItem> work;
  std::vector<std::string> unchanged;
  for (const std::string& path : files) {
    WorkItem item;
    item.path = path;
    Result<int64_t> size = StatFile(path, &item.mtime_ns);
    if (!size.ok()) {
      summary.missing.emplace_back(path, CauseOnly(size.status().message(), path));
      continue;
    }
    item.size = *size;
    auto it = stamps.find(path);
    if (it != stamps.end()) {
      const FileStamp& stamp = it->second;
      const bool same_stamp = stamp.size_bytes == item.size && stamp.mtime_ns == item.mtime_ns;
      const bool retry = options.retry_errors && stamp.status == VideoStatus::kError;
      if (same_stamp && !retry) {
        if (stamp.status != VideoStatus::kError && SidecarStamp(path) != stamp.sidecar_stamp) {
          item.known = true;
          item.old_id = stamp.video_id;
          item.old_status = stamp.status;
          item.sidecars_only = true;
          work.push_back(std::move(item));
          continue;
        }
        unchanged.push_back(path);
        if (stamp.status == VideoStatus::kError) ++summary.known_errors;
        continue;
      }
      item.old_sidecar_stamp = stamp.sidecar_stamp;
      item.known = true;
      item.old_id = stamp.video_id;
      item.old_status = stamp.status;
    }
    work.push_back(std::move(item));
  }
  // Stored hashes of known paths, to recognise touched-but-identical files.
  for (WorkItem& item : work) {
    if (!item.known || item.sidecars_only) continue;
    REEL_ASSIGN_OR_RETURN(auto row, catalog.FindVideoById(item.old_id));
    if (row.has_value()) item.old_hash = row->content_hash;
  }
  if (options.on_found) options.on_found(summary.found);
  for (const std::string& path : unchanged) {
    ++summary.unchanged;
    emit(path, IngestOutcome::kUnchanged, "");
  }

  // Workers hash and probe; this thread writes, one transaction per batch.
  auto write = [&](std::vector<WorkResult>& batch) -> Status {
    std::vector<std::pair<std::string, std::pair<IngestOutcome, std::string>>> events;
    {
      REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
      for (WorkResult& r : batch) {
        VideoRecord& rec = r.record;
        IngestOutcome outcome = r.item.known ? IngestOutcome::kUpdated : IngestOutcome::kAdded;
        for (const std::string& w : r.sidecars.warnings) summary.warnings.emplace_back(rec.path, w);
        for (const std::string& w : r.warnings) summary.warnings.emplace_back(rec.path, w);
        auto store_texts = [&](int64_t video_id) -> Status {
          if (r.item.known && r.sidecars.stamp == r.item.old_sidecar_stamp &&
              !r.item.sidecars_only) {
            return Status::OK();
          }
          ++summary.sidecar_updates;
          return catalog.ReplaceVideoTexts(video_id, r.sidecars.texts, r.sidecars.stamp);
        };
        if (r.item.sidecars_only) {
          REEL_RETURN_IF_ERROR(store_texts(r.item.old_id));
          events.push_back({rec.path, {IngestOutcome::kUnchanged, ""}});
          continue;
        }
        if (r.same_content) {
          REEL_RETURN_IF_ERROR(
              catalog.UpdateFileStamp(r.item.old_id, r.item.size, r.item.mtime_ns));
          REEL_RETURN_IF_ERROR(store_texts(r.item.old_id));
          events.push_back({rec.path, {IngestOutcome::kUnchanged, ""}});
          continue;
        }
        if (rec.status == VideoStatus::kOk) {
          REEL_ASSIGN_OR_RETURN(auto original, catalog.FindVideoByHash(rec.content_hash));
          if (original.has_value() && original->path != rec.path) {
            rec.status = VideoStatus::kDuplicate;
            rec.duplicate_of = original->id;
            outcome = IngestOutcome::kDuplicate;
          }
        } else {
          outcome = IngestOutcome::kFailed;
        }
        REEL_ASSIGN_OR_RETURN(int64_t video_id, catalog.UpsertVideo(rec));
        if (rec.status != VideoStatus::kError) REEL_RETURN_IF_ERROR(store_texts(video_id));
        events.push_back({rec.path, {outcome, rec.error}});
      }
      REEL_RETURN_IF_ERROR(txn.Commit());
    }
    for (const auto& [path, ev] : events) {
      switch (ev.first) {
        case IngestOutcome::kAdded:
          ++summary.added;
          break;
        case IngestOutcome::kUpdated:
          ++summary.updated;
          break;
        case IngestOutcome::kUnchanged:
          ++summary.unchanged;
          break;
        case IngestOutcome::kDuplicate:
          ++summary.duplicates;
          break;
        case IngestOutcome::kFailed:
          ++summary.failed;
          summary.failures.emplace_back(path, ev.second);
          break;
      }
      emit(path, ev.first, ev.second);
    }
    return Status::OK();
  };

  BatchOptions batching;
  batching.jobs = options.jobs;
  batching.cancel = options.cancel;
  batching.batch_size = options.batch_size;
  batching.batch_seconds = options.batch_seconds;
  // Written in path order, so the same files get the same video ids however the probes
  // finish (clip, subset and training order follow the ids).
  batching.ordered = true;
  size_t taken = 0;
  // A transaction holds at most batch_size files (a crash loses at most one batch), and
  // results are committed at least every batch_seconds.
  Status write_status = ProcessInBatches<WorkResult>(
      work.size(), batching, [&](size_t i) { return ProcessFile(work[i]); }, write, &taken);
  if (!write_status.ok()) {
    catalog.FinishRun(summary.run_id, RunStatus::kFailed, write_status.message()).IgnoreError();
    return write_status;
  }

  summary.cancelled = options.cancel != nullptr && options.cancel->load() && taken < work.size();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto count = [](int64_t v) { return static_cast<double>(v); };
  REEL_RETURN_IF_ERROR(catalog.FinishRunWithMetrics(
      summary.run_id, summary.cancelled,
      {{"ingest.found", count(summary.found)},
       {"ingest.added", count(summary.added)},
       {"ingest.updated", count(summary.updated)},
       {"ingest.unchanged", count(summary.unchanged)},
       {"ingest.duplicates", count(summary.duplicates)},
       {"ingest.failed", count(summary.failed)},
       {"ingest.missing", count(static_cast<int64_t>(summary.missing.size()))},
       {"ingest.known_errors", count(summary.known_errors)},
       {"ingest.sidecar_updates", count(summary.sidecar_updates)},
       {"ingest.warnings", count(static_cast<int64_t>(summary.warnings.size()))},
       {"ingest.seconds", summary.seconds}}));
  return summary;
}

}  // namespace reel
