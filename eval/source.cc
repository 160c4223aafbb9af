#include "eval/source.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "db/video_file.h"
#include "util/files.h"
#include "util/sha256.h"
#include "util/strings.h"
#include "video/decoder.h"
#include "video/probe.h"
#include "video/sampler.h"

namespace reel {
namespace {

namespace fs = std::filesystem;

bool IsImage(const fs::path& p) {
  const std::string ext = ToLower(p.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".webp" ||
         ext == ".ppm" || ext == ".tif" || ext == ".tiff";
}

std::string Stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// A minimal CSV reader for "file,caption" rows (quotes, doubled quotes, a header row).
Result<std::map<std::string, std::string>> ReadCaptionsCsv(const std::string& path) {
  REEL_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  std::map<std::string, std::string> out;
  std::vector<std::string> row;
  std::string cell;
  bool quoted = false;
  int line = 1, quote_line = 1;
  auto end_row = [&]() -> Status {
    row.push_back(cell);
    cell.clear();
    if (!(row.size() == 1 && row[0].empty())) {
      if (row.size() < 2) {
        return Status::InvalidArgument(path + ", line " + std::to_string(line) +
                                       ": expected file,caption");
      }
      const bool header = out.empty() && ToLower(row[0]) == "file";
      if (!header) out[std::string(Trim(row[0]))] = row[1];
    }
    row.clear();
    return Status::OK();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        if (ch == '\n') ++line;
        cell += ch;
      }
    } else if (ch == '"') {
      quoted = true;
      quote_line = line;
    } else if (ch == ',') {
      row.push_back(cell);
      cell.clear();
    } else if (ch == '\n') {
      REEL_RETURN_IF_ERROR(end_row());
      ++line;
    } else if (ch != '\r') {
      cell += ch;
    }
  }
  if (quoted) {  // else the rest of the file would be one caption
    return Status::InvalidArgument(path + ", line " + std::to_string(quote_line) +
                                   ": a quote that is never closed");
  }
  if (!cell.empty() || !row.empty()) REEL_RETURN_IF_ERROR(end_row());
  return out;
}

Result<EvalSource> OpenFolder(const std::string& spec, const std::string& dir, bool force_frames,
                              const SourceOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::NotFound(dir +
                            ": no such folder (expected a folder of videos or of frame "
                            "folders, db:CATALOG#SUBSET or run:CATALOG#RUN)");
  }
  EvalSource src;
  src.spec = spec;
  std::vector<std::string> videos, frame_dirs;
  std::vector<std::pair<std::string, std::string>> unreadable;
  Status listed = WalkTree(
      dir, WalkOptions{},
      [&](const std::string& path, TreeEntry kind) {
        if (kind == TreeEntry::kFile) {
          if (HasVideoExtension(path)) videos.push_back(path);
          return;
        }
        std::error_code dec;
        for (fs::directory_iterator it(path, dec), end; !dec && it != end; it.increment(dec)) {
          std::error_code fec;
          if (it->is_regular_file(fec) && IsImage(it->path())) {
            frame_dirs.push_back(path);
            break;
          }
        }
      },
      &unreadable);
  if (!listed.ok()) return listed.WithContext("cannot list the source folder");
  if (!unreadable.empty()) {
    return Status::IOError(unreadable[0].first + ": cannot list (" + unreadable[0].second +
                           "), so the source would be incomplete");
  }
  const bool frames = force_frames || (videos.empty() && !frame_dirs.empty());
  src.kind = frames ? SourceKind::kFrameFolders : SourceKind::kVideoFolder;
  std::vector<std::string>& chosen = frames ? frame_dirs : videos;
  std::sort(chosen.begin(), chosen.end(),
            [](const std::string& a, const std::string& b) { return NaturalLess(a, b); });
  if (chosen.empty()) {
    return Status::NotFound(dir + ": no " + std::string(frames ? "frame folders" : "video files"));
  }
  std::map<std::string, std::string> captions;
  if (!options.captions_csv.empty()) {
    REEL_ASSIGN_OR_RETURN(captions, ReadCaptionsCsv(options.captions_csv));
  }
  for (const std::string& path : chosen) {
    SourceItem item;
    item.path = path;
    item.key = fs::path(path).lexically_relative(dir).string();
    item.stamp = frames ? std::to_string(fs::last_write_time(path, ec).time_since_epoch().count())
                        : Stamp(path);
    auto it = captions.find(item.key);
    if (it == captions.end()) it = captions.find(fs::path(path).filename().string());
    if (it != captions.end()) item.caption = it->second;
    src.items.push_back(std::move(item));
  }
  return src;
}

// "db:PATH#NAME" / "run:PATH#NAME" -> PATH, NAME
Result<std::pair<std::string, std::string>> SplitCatalogSpec(const std::string& spec,
                                                             size_t prefix) {
  const size_t hash = spec.rfind('#');
  if (hash == std::string::npos || hash <= prefix || hash + 1 == spec.size()) {
    return Status::InvalidArgument("source '" + spec + "': expected " + spec.substr(0, prefix) +
                                   "CATALOG#NAME");
  }
  return std::make_pair(spec.substr(prefix, hash - prefix), spec.substr(hash + 1));
}

Result<std::unique_ptr<Catalog>> OpenReadOnly(const std::string& path) {
  Catalog::Options ro;
  ro.read_only = true;
  return Catalog::Open(path, ro);
}

Result<EvalSource> OpenSubset(const std::string& spec, const SourceOptions& options) {
  REEL_ASSIGN_OR_RETURN(auto parts, SplitCatalogSpec(spec, 3));
  REEL_ASSIGN_OR_RETURN(auto catalog, OpenReadOnly(parts.first));
  REEL_ASSIGN_OR_RETURN(auto subset, catalog->FindSubset(parts.second));
  if (!subset.has_value()) {
    return Status::NotFound(parts.first + ": no subset named '" + parts.second + "'");
  }
  REEL_ASSIGN_OR_RETURN(std::vector<SubsetMember> members, catalog->ListSubsetMembers(subset->id));
  EvalSource src;
  src.kind = SourceKind::kCatalogSubset;
  src.spec = spec;
  std::map<int64_t, VideoRecord> videos;
  std::map<int64_t, std::vector<int64_t>> pts;
  std::map<int64_t, std::string> changed;
  for (const SubsetMember& m : members) {
    if (!m.passed) continue;
    REEL_ASSIGN_OR_RETURN(auto clip, catalog->FindClip(m.clip_id));
    if (!clip.has_value()) continue;
    if (!videos.count(clip->video_id)) {
      REEL_ASSIGN_OR_RETURN(auto v, catalog->FindVideoById(clip->video_id));
      if (!v.has_value()) continue;
      videos[clip->video_id] = *v;
      Result<std::vector<int64_t>> p = catalog->GetFrameDataI64(clip->video_id, "pts");
      pts[clip->video_id] = p.ok() ? *p : std::vector<int64_t>();
      if (Status s = CheckUnchangedSinceIngest(*v); s.code() == StatusCode::kFailedPrecondition)
        changed[clip->video_id] = s.message();  // gone or unreadable: reading says so
    }
    const VideoRecord& v = videos[clip->video_id];
    SourceItem item;
    item.key = "clip:" + std::to_string(clip->id);
    item.path = v.path;
    item.stamp = v.content_hash + ":" + std::to_string(clip->start_frame) + "-" +
                 std::to_string(clip->end_frame);
    item.start_frame = clip->start_frame;
    item.end_frame = clip->end_frame;
    if (auto c = changed.find(clip->video_id); c != changed.end()) item.changed = c->second;
    const std::vector<int64_t>& all = pts[clip->video_id];
    if (static_cast<int64_t>(all.size()) >= clip->end_frame) {
      item.pts.assign(all.begin() + clip->start_frame, all.begin() + clip->end_frame);
    }
    REEL_ASSIGN_OR_RETURN(auto caption, catalog->SelectCaption(clip->id, options.prefer));
    if (caption.has_value()) item.caption = caption->text;
    src.items.push_back(std::move(item));
  }
  if (src.items.empty()) return Status::NotFound(spec + ": the subset has no passing clips");
  return src;
}

Result<EvalSource> OpenRun(const std::string& spec) {
  REEL_ASSIGN_OR_RETURN(auto parts, SplitCatalogSpec(spec, 4));
  REEL_ASSIGN_OR_RETURN(auto catalog, OpenReadOnly(parts.first));
  int64_t run_id = 0;
  const bool numeric =
      !parts.second.empty() && std::all_of(parts.second.begin(), parts.second.end(), ::isdigit);
  if (numeric) {
    run_id = std::stoll(parts.second);
  } else {
    REEL_ASSIGN_OR_RETURN(RunRecord run, catalog->FindRunByName("generate", parts.second));
    run_id = run.id;
  }
  REEL_ASSIGN_OR_RETURN(std::vector<GenerationRecord> gens, catalog->ListGenerations(run_id));
  if (gens.empty()) return Status::NotFound(spec + ": the run has no generated videos");
  EvalSource src;
  src.kind = SourceKind::kGenerationRun;
  src.spec = spec;
  const fs::path base = fs::path(parts.first).parent_path();
  for (const GenerationRecord& g : gens) {
    SourceItem item;
    item.key = "gen:" + std::to_string(g.id);
    item.path = fs::path(g.path).is_absolute() ? g.path : (base / g.path).string();
    item.stamp = Stamp(item.path);
    item.caption = g.prompt;
    src.items.push_back(std::move(item));
  }
  return src;
}

uint64_t ItemSeed(const std::string& key, uint64_t seed) {
  const std::string digest = Sha256Hex(key + "#" + std::to_string(seed));
  return std::stoull(digest.substr(0, 16), nullptr, 16);
}

}  // namespace

Result<EvalSource> OpenEvalSource(const std::string& spec, const SourceOptions& options) {
  if (StartsWith(spec, "db:")) return OpenSubset(spec, options);
  if (StartsWith(spec, "run:")) return OpenRun(spec);
  if (StartsWith(spec, "frames:")) return OpenFolder(spec, spec.substr(7), true, options);
  return OpenFolder(spec, spec, false, options);
}

Result<ClipFrames> ReadClip(const SourceItem& item, const ClipSpec& spec) {
  ClipFrames out;
  const int64_t needed = spec.needed();
  auto too_short = [&] {
    out.skip_reason = "shorter than " + std::to_string(needed) + " frames";
    return out;
  };
  DecodeOptions decode;
  decode.format = PixelFormat::kRgb24;
  decode.threads = 1;

  // Catalog clips: exact frames by timestamp.
  if (item.end_frame >= 0) {
    const int64_t n = item.end_frame - item.start_frame;
    if (n < needed) return too_short();
    if (spec.random_offset) {
      std::mt19937_64 rng(ItemSeed(item.key, spec.seed));
      out.offset = std::uniform_int_distribution<int64_t>(0, n - needed)(rng);
    }
    if (static_cast<int64_t>(item.pts.size()) == n) {
      std::vector<int64_t> targets;
      for (int i = 0; i < spec.frames; ++i) {
        targets.push_back(item.pts[static_cast<size_t>(out.offset + i * spec.stride)]);
      }
      REEL_ASSIGN_OR_RETURN(out.frames, ReadFramesAtPts(item.path, targets, decode));
      return out;
    }
    // No stored timestamps: count frames from the start of the file.
    REEL_ASSIGN_OR_RETURN(auto source, OpenFrameSource(item.path, decode));
    Frame f;
    int64_t index = 0;
    const int64_t first = item.start_frame + out.offset;
    while (static_cast<int>(out.frames.size()) < spec.frames) {
      REEL_ASSIGN_OR_RETURN(bool more, source->Next(&f));
      if (!more) return too_short();
      if (index >= first && (index - first) % spec.stride == 0) out.frames.push_back(f);
      ++index;
    }
    return out;
  }

  // Files and frame folders.
  int64_t n = -1;
  if (spec.random_offset) {
    std::error_code ec;
    if (fs::is_directory(item.path, ec)) {
      REEL_ASSIGN_OR_RETURN(auto seq, ImageSequence::Open(item.path, decode));
      n = seq->info().frame_count;
    } else {
      REEL_ASSIGN_OR_RETURN(VideoInfo info, ProbeVideo(item.path));
      n = info.frame_count;
    }
    if (n < needed) return too_short();
    std::mt19937_64 rng(ItemSeed(item.key, spec.seed));
    out.offset = std::uniform_int_distribution<int64_t>(0, n - needed)(rng);
  }
  REEL_ASSIGN_OR_RETURN(auto source, OpenFrameSource(item.path, decode));
  Frame f;
  int64_t index = 0;
  while (static_cast<int>(out.frames.size()) < spec.frames) {
    REEL_ASSIGN_OR_RETURN(bool more, source->Next(&f));
    if (!more) {
      out.frames.clear();
      return too_short();
    }
    if (index >= out.offset && (index - out.offset) % spec.stride == 0) out.frames.push_back(f);
    ++index;
  }
  return out;
}

}  // namespace reel
