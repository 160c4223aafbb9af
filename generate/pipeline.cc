#include "generate/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "db/video_file.h"
#include "generate/checkpoint_files.h"
#include "generate/vae.h"
#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "nets/models.h"
#include "nets/tensor_text.h"
#include "util/parallel.h"
#include "util/strings.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/sampler.h"

namespace reel::gen {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Due once every `seconds`, counted from construction and from each time it was due.
class Every {
 public:
  explicit Every(double seconds) : seconds_(seconds), last_(Clock::now()) {}
  bool Due() {
    if (std::chrono::duration<double>(Clock::now() - last_).count() < seconds_) return false;
    last_ = Clock::now();
    return true;
  }

 private:
  double seconds_;
  Clock::time_point last_;
};

struct ClipRef {
  ClipRecord clip;
  VideoRecord video;
  // The clip's first frame's pts and the pts it ends at, from the scan's frame times (as
  // export takes them), or from the clip's times where the scan stored none.
  int64_t start_pts = 0;
  int64_t end_pts = 0;
  std::optional<int64_t> caption_id;
  std::string caption;
};

struct Loaded {
  size_t index = 0;
  torch::Tensor pixels;  // uint8 [3, T, H, W]
  std::string skip;      // reason, when skipped
  std::string error;     // cause, when unreadable
};

// The clip's frames converted to the shape's rate as `curate export --fps` converts them
// (ffmpeg's fps filter), resized to cover the shape and centre-cropped.
Loaded LoadOne(const ClipRef& ref, const ClipShape& shape) {
  Loaded out;
  const ClipRecord& c = ref.clip;
  const VideoRecord& v = ref.video;
  const Rational fps(shape.fps, 1);
  if (!v.time_base.valid() || v.time_base <= Rational()) {
    out.skip = "unreadable";
    out.error = v.path + ": no time base recorded; rescan the video";
    return out;
  }
  const Rational length = TicksToSeconds(ref.end_pts - ref.start_pts, v.time_base);
  if (c.end_frame - c.start_frame < 1 || ConvertedFrameCount(length, fps) < shape.frames) {
    out.skip = "shorter than " + std::to_string(shape.frames) + " frames at " +
               std::to_string(shape.fps) + " fps";
    return out;
  }
  int dw = 0, dh = 0;
  DisplaySize(v.width, v.height, v.sample_aspect_ratio, v.rotation, &dw, &dh);
  DecodeOptions options;
  options.format = PixelFormat::kRgb24;
  options.filter = ResizeFilter::kArea;
  options.threads = 1;
  if (static_cast<int64_t>(dw) * shape.height >= static_cast<int64_t>(dh) * shape.width) {
    options.height = shape.height;  // wider than the target: fit the height, crop the sides
  } else {
    options.width = shape.width;
  }
  auto unreadable = [&](const std::string& cause, const char* skip = "unreadable") {
    out.skip = skip;
    out.error = "clip " + std::to_string(c.id) + ": " + cause;
    return out;
  };
  if (Status s = CheckUnchangedSinceIngest(v); !s.ok()) {
    return unreadable(s.message(), s.code() == StatusCode::kFailedPrecondition
                                       ? "changed since ingest"
                                       : "unreadable");
  }
  Frame frame;
  Result<std::unique_ptr<VideoDecoder>> decoder =
      OpenVideoAt(v.path, options, ref.start_pts, &frame);
  if (!decoder.ok()) return unreadable(decoder.status().message());
  torch::Tensor pixels = torch::empty({3, shape.frames, shape.height, shape.width}, torch::kByte);
  FrameRateConverter rate(fps, shape.frames);
  const char* kSmaller = "decoded frame smaller than the target";
  Result<int64_t> read =
      ReadAtRate(**decoder, &frame, ref.start_pts, ref.end_pts, v.time_base, rate,
                 [&](const Frame& f, int64_t first, int64_t n) -> Status {
                   if (f.width < shape.width || f.height < shape.height)
                     return Status::Corruption(kSmaller);
                   const int x0 = (f.width - shape.width) / 2, y0 = (f.height - shape.height) / 2;
                   const torch::Tensor chw = torch::from_blob(const_cast<uint8_t*>(f.data.data()),
                                                              {f.height, f.width, 3}, torch::kByte)
                                                 .narrow(0, y0, shape.height)
                                                 .narrow(1, x0, shape.width)
                                                 .permute({2, 0, 1});
                   for (int64_t k = first; k < first + n; ++k) pixels.select(1, k).copy_(chw);
                   return Status::OK();
                 });
  if (!read.ok()) return unreadable(read.status().message());
  if (!rate.done()) return unreadable("the clip's frames could not be decoded");
  out.pixels = std::move(pixels);
  return out;
}

torch::Tensor ToFrames(
    const torch::Tensor& video) {  // [3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3]
  return ((video.clamp(-1, 1) + 1) * 127.5)
      .round()
      .to(torch::kByte)
      .permute({1, 2, 3, 0})
      .contiguous();
}

// The passing clips of `subset` with their videos, frame times and selected captions
// (none when `prefer` is empty), in subset order; an unknown or empty subset is an error.
Result<std::vector<ClipRef>> ListClips(Catalog& catalog, const std::string& subset,
                                       const std::vector<std::string>& prefer) {
  REEL_ASSIGN_OR_RETURN(std::optional<SubsetRecord> sub, catalog.FindSubset(subset));
  if (!sub.has_value()) {
    return Status::NotFound("no subset named '" + subset +
                            "' (make one with reel curate filter --subset)");
  }
  REEL_ASSIGN_OR_RETURN(std::vector<SubsetMember> members, catalog.ListSubsetMembers(sub->id));
  std::vector<ClipRef> refs;
  std::map<int64_t, VideoRecord> videos;
  std::map<int64_t, std::vector<int64_t>> pts;
  for (const SubsetMember& m : members) {
    if (!m.passed) continue;
    REEL_ASSIGN_OR_RETURN(std::optional<ClipRecord> clip, catalog.FindClip(m.clip_id));
    if (!clip.has_value()) continue;
    if (!videos.count(clip->video_id)) {
      REEL_ASSIGN_OR_RETURN(std::optional<VideoRecord> v, catalog.FindVideoById(clip->video_id));
      if (!v.has_value()) continue;
      videos[clip->video_id] = *v;
      Result<std::vector<int64_t>> p = catalog.GetFrameDataI64(clip->video_id, "pts");
      pts[clip->video_id] = p.ok() ? *p : std::vector<int64_t>();
    }
    ClipRef ref;
    ref.clip = *clip;
    ref.video = videos[clip->video_id];
    const VideoRecord& v = ref.video;
    if (!ClipPtsRange(v, *clip, pts[clip->video_id], &ref.start_pts, &ref.end_pts) &&
        v.time_base.valid() && v.time_base > Rational()) {
      ref.start_pts = ((v.start_time + clip->start_time) / v.time_base).Round();
      ref.end_pts = ((v.start_time + clip->end_time) / v.time_base).Round();
    }
    if (!prefer.empty()) {
      REEL_ASSIGN_OR_RETURN(std::optional<CaptionRecord> caption,
                            catalog.SelectCaption(clip->id, prefer));
      if (caption.has_value()) {
        ref.caption = caption->text;
        ref.caption_id = caption->id;
      }
    }
    refs.push_back(std::move(ref));
  }
  if (refs.empty()) {
    return Status::FailedPrecondition("subset '" + subset + "' has no passing clips to train on");
  }
  return refs;
}

// Decodes refs[i] for every i of `which` on `jobs` threads and hands each usable clip to
// `use` (as 8-bit pixels [3, T, H, W]) on this thread, in order, at most 2 x jobs decoded
// clips in memory at a time; skipped clips are counted in `st`. `on_clip` is told
// (0, which.size()) first, then the clips done, usable or skipped, after each. Once
// `cancel` is set no clip is handed over (those decoding then are dropped) and it stops.
Status ForEachClip(const std::vector<ClipRef>& refs, const std::vector<size_t>& which,
                   const ClipShape& shape, int jobs, ClipSetStats& st,
                   const std::atomic<bool>* cancel, const ProgressCallback& on_clip,
                   const std::function<Status(const ClipRef&, torch::Tensor pixels)>& use) {
  const int64_t total = static_cast<int64_t>(which.size());
  int64_t done = 0;
  if (on_clip) on_clip(0, total);
  ParallelOptions parallel;
  parallel.jobs = std::max(1, jobs);
  parallel.ordered = true;
  parallel.max_pending = static_cast<size_t>(2 * parallel.jobs);
  parallel.cancel = cancel;
  return ProcessInParallel<Loaded>(
      which.size(), parallel,
      [&](size_t i) {
        Loaded l = LoadOne(refs[which[i]], shape);
        l.index = which[i];
        return l;
      },
      [&](Loaded&& l) -> Status {
        if (cancel != nullptr && cancel->load()) return Status::OK();  // in flight: dropped
        Status status;
        if (!l.skip.empty()) {
          ++st.skipped[l.skip];
          if (!l.error.empty() && st.errors.size() < 5) st.errors.push_back(l.error);
        } else {
          ++st.loaded;
          status = use(refs[l.index], std::move(l.pixels));
        }
        if (on_clip && status.ok()) on_clip(++done, total);
        return status;
      });
}

Status NoUsableClip(const std::string& subset, const ClipSetStats& st) {
  std::string why;
  for (const auto& [reason, n] : st.skipped)
    why += (why.empty() ? "" : ", ") + std::to_string(n) + " " + reason;
  return Status::FailedPrecondition("no clip of subset '" + subset + "' could be used (" + why +
                                    ")");
}

// A normalised latent [C, T', H', W'] of one clip [3, T, H, W] (chunked past 33 frames).
torch::Tensor EncodeOne(VideoVae& vae, const torch::Tensor& video) {
  const torch::Tensor x = video.unsqueeze(0);
  const torch::Tensor z = x.size(2) > 33 ? vae->EncodeMeanChunked(x, 17) : vae->Encode(x).first;
  return vae->Normalize(z)[0].contiguous();
}

// Whether `todo` more clips fit in `file`'s folder (with `max_bytes` as DecodeClipsOptions
// says); FailedPrecondition with the --max-clips that fits when they do not.
Status CheckRoom(const ClipFile& file, const std::string& subset, size_t todo, int64_t reused,
                 uint64_t max_bytes) {
  const uint64_t per_clip = ClipPixelBytes(file.shape());
  const uint64_t need = todo * per_clip;
  uint64_t allowed = max_bytes;
  if (allowed == 0) {
    std::error_code ec;
    const fs::space_info space = fs::space(file.folder(), ec);
    constexpr uint64_t kKeepFree = 1ull << 30;
    if (ec) return Status::OK();  // unknown: the writes will say
    allowed = space.available > kKeepFree ? space.available - kKeepFree : 1;
  }
  if (need <= allowed) return Status::OK();
  auto gb = [](uint64_t b) { return FormatFixed(static_cast<double>(b) / 1e9, 1) + " GB"; };
  const uint64_t fits = allowed / per_clip + static_cast<uint64_t>(reused);
  return Status::FailedPrecondition(
      "subset '" + subset + "': " + std::to_string(todo) + " clips to decode take " + gb(need) +
      " in " + file.folder() + ", more than the " + gb(allowed) + " there; use --max-clips " +
      std::to_string(std::max<uint64_t>(1, fits)) +
      " (clips spread evenly over the subset), a smaller subset or a --clip-cache elsewhere");
}

// Which of `n` clips to take: max_clips of them (0: all) spread evenly.
std::vector<size_t> Spread(size_t n, int64_t max_clips) {
  const size_t take = max_clips > 0 ? std::min(n, static_cast<size_t>(max_clips)) : n;
  std::vector<size_t> which(take);
  for (size_t i = 0; i < take; ++i) which[i] = i * n / take;
  return which;
}

}  // namespace

Result<std::vector<TrainingClip>> LoadTrainingClips(Catalog& catalog, const std::string& subset,
                                                    const std::vector<std::string>& prefer,
                                                    const ClipShape& shape, ClipSetStats* stats,
                                                    const LoadClipsOptions& options) {
  ClipSetStats local;
  ClipSetStats& st = stats != nullptr ? *stats : local;
  REEL_ASSIGN_OR_RETURN(const std::vector<ClipRef> refs, ListClips(catalog, subset, prefer));
  st.listed = static_cast<int64_t>(refs.size());
  std::vector<TrainingClip> out;
  REEL_RETURN_IF_ERROR(ForEachClip(refs, Spread(refs.size(), options.max_clips), shape,
                                   options.jobs, st, nullptr, nullptr,
                                   [&](const ClipRef& ref, torch::Tensor pixels) {
                                     TrainingClip c;
                                     c.clip_id = ref.clip.id;
                                     c.caption_id = ref.caption_id;
                                     c.caption = ref.caption;
                                     c.video = VideoFromPixels(pixels);
                                     out.push_back(std::move(c));
                                     return Status::OK();
                                   }));
  if (out.empty()) return NoUsableClip(subset, st);
  return out;
}

Result<DecodedClips> DecodeTrainingClips(Catalog& catalog, const std::string& subset,
                                         ClipFile& file, const DecodeClipsOptions& options,
                                         ClipSetStats* stats, const ProgressCallback& on_clip,
                                         const std::atomic<bool>* cancel) {
  ClipSetStats local;
  ClipSetStats& st = stats != nullptr ? *stats : local;
  REEL_ASSIGN_OR_RETURN(const std::vector<ClipRef> refs, ListClips(catalog, subset, {}));
  st.listed = static_cast<int64_t>(refs.size());
  const std::vector<size_t> which = Spread(refs.size(), options.max_clips);
  auto key_of = [](const ClipRef& r) {
    return ClipFile::Key{r.clip.id, r.clip.video_id, r.clip.start_frame, r.clip.end_frame};
  };
  std::map<int64_t, int64_t> stored;  // clip id -> its latest record
  for (int64_t i = 0; i < file.size(); ++i) stored[file.keys()[static_cast<size_t>(i)].clip_id] = i;
  std::map<int64_t, int64_t> record;  // clip id -> record
  std::vector<size_t> todo;
  DecodedClips result;
  for (size_t i : which) {
    auto it = stored.find(refs[i].clip.id);
    if (it != stored.end() && file.keys()[static_cast<size_t>(it->second)] == key_of(refs[i])) {
      record[refs[i].clip.id] = it->second;
      ++result.reused;
    } else {
      todo.push_back(i);
    }
  }
  if (options.compact) {
    std::vector<int64_t> keep;
    for (const auto& [clip, r] : record) keep.push_back(r);
    const int64_t before = file.size();
    REEL_ASSIGN_OR_RETURN(const std::vector<int64_t> placed, file.Compact(keep));
    size_t k = 0;
    for (auto& [clip, r] : record) r = placed[k++];
    result.dropped = before - file.size();
  }
  REEL_RETURN_IF_ERROR(CheckRoom(file, subset, todo.size(), result.reused, options.max_bytes));

  Every commit(options.save_every_seconds);
  const int64_t total = static_cast<int64_t>(todo.size());
  REEL_RETURN_IF_ERROR(ForEachClip(refs, todo, file.shape(), options.jobs, st, cancel, on_clip,
                                   [&](const ClipRef& ref, torch::Tensor pixels) -> Status {
                                     REEL_RETURN_IF_ERROR(file.Append(key_of(ref), pixels));
                                     record[ref.clip.id] = file.size() - 1;
                                     ++result.decoded;
                                     return commit.Due() ? file.Commit() : Status::OK();
                                   }));
  REEL_RETURN_IF_ERROR(file.Commit());
  st.loaded += result.reused;
  if (cancel != nullptr && cancel->load() && result.decoded < total) {
    return Status::Cancelled("decoding interrupted after " + std::to_string(result.decoded) +
                             " of " + std::to_string(total) + " clips" +
                             (file.path().empty()
                                  ? std::string()
                                  : "; they are kept in " + file.path() +
                                        ", which a run with the same --clip-cache continues"));
  }
  std::vector<int64_t> records;
  for (size_t i : which) {
    auto it = record.find(refs[i].clip.id);
    if (it != record.end()) records.push_back(it->second);
  }
  if (records.empty()) return NoUsableClip(subset, st);
  result.unused = file.size() - static_cast<int64_t>(records.size());
  result.clips = std::make_unique<ClipRecords>(file, std::move(records));
  return result;
}

std::vector<LatentExample> EncodeLatents(VideoVae& vae, const std::vector<TrainingClip>& clips) {
  torch::NoGradGuard g;
  vae->eval();
  std::vector<LatentExample> out;
  for (const TrainingClip& c : clips) out.push_back({EncodeOne(vae, c.video), c.caption});
  return out;
}

std::vector<double> VaeFingerprint(const VideoVae& vae) {
  torch::NoGradGuard g;
  double sum = 0, abs_sum = 0;
  for (const auto& p : vae->parameters()) {
    const torch::Tensor d = p.detach().to(torch::kCPU, torch::kDouble);
    sum += d.sum().item<double>();
    abs_sum += d.abs().sum().item<double>();
  }
  return {sum, abs_sum};
}

namespace {

// The cache at `path` that a prepare writing `fresh` (no examples yet) continues: none
// when there is no file or when a finished one is to be replaced (not `resume`); an
// unfinished one without `resume`, or one from another VAE, is an error.
Result<std::optional<LatentCache>> CacheToContinue(const std::string& path, bool resume,
                                                   const LatentCache& fresh) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<LatentCache>();
  REEL_ASSIGN_OR_RETURN(LatentCache old, LoadLatentCache(path, /*allow_unfinished=*/true));
  if (!resume) {
    if (!old.complete) {
      return Status::FailedPrecondition(
          path + ": holds an unfinished latent cache; --resume continues it (or remove it)");
    }
    return std::optional<LatentCache>();
  }
  if (old.vae_fingerprint.empty()) {
    return Status::FailedPrecondition(path +
                                      ": made before reel recorded which VAE encoded a cache; "
                                      "prepare it again without --resume");
  }
  bool same = old.model.Dump() == fresh.model.Dump() &&
              old.vae_fingerprint.size() == fresh.vae_fingerprint.size();
  for (size_t i = 0; same && i < old.vae_fingerprint.size(); ++i) {
    const double a = old.vae_fingerprint[i], b = fresh.vae_fingerprint[i];
    same = std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(b));
  }
  if (!same) {
    return Status::InvalidArgument(path + ": was prepared with another VAE (" + old.vae_dir +
                                   "); prepare it again without --resume to replace it");
  }
  return std::optional<LatentCache>(std::move(old));
}

}  // namespace

Result<PrepareResult> PrepareLatents(Catalog& catalog, const std::string& subset,
                                     const std::string& vae_dir, const PrepareOptions& options,
                                     const std::string& out_path, ClipSetStats* stats,
                                     const ProgressCallback& on_clip,
                                     const std::atomic<bool>* cancel) {
  ClipSetStats local;
  ClipSetStats& st = stats != nullptr ? *stats : local;
  REEL_ASSIGN_OR_RETURN(LoadedVae vae, LoadVae(vae_dir, options.device));
  LatentCache cache;
  cache.vae_dir = fs::absolute(vae_dir).string();
  cache.model = vae.config.ToJson();
  cache.vae_fingerprint = VaeFingerprint(vae.vae);
  REEL_ASSIGN_OR_RETURN(std::optional<LatentCache> before,
                        CacheToContinue(out_path, options.resume, cache));
  REEL_ASSIGN_OR_RETURN(const std::vector<ClipRef> refs,
                        ListClips(catalog, subset, options.prefer));
  st.listed = static_cast<int64_t>(refs.size());

  // Continued: the latents of clips still in the subset are kept (with their current
  // captions), the others dropped; the clips without one are to do.
  PrepareResult result;
  std::map<int64_t, size_t> listed;  // clip id -> index in refs
  for (size_t i = 0; i < refs.size(); ++i) listed[refs[i].clip.id] = i;
  std::set<int64_t> cached;
  if (before && before->old_frame_picks) {  // encoded again, from the frames export gives
    result.stale = static_cast<int64_t>(before->examples.size());
    before.reset();
  }
  for (size_t i = 0; before && i < before->examples.size(); ++i) {
    const int64_t id = before->clip_ids[i];
    auto it = listed.find(id);
    if (it == listed.end() || !cached.insert(id).second) {
      ++result.dropped;
      continue;
    }
    cache.examples.push_back({before->examples[i].latent, refs[it->second].caption});
    cache.clip_ids.push_back(id);
  }
  result.kept = static_cast<int64_t>(cache.examples.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < refs.size(); ++i)
    if (!cached.count(refs[i].clip.id)) todo.push_back(i);

  // Written now and then while encoding (unfinished), so that a killed run loses little.
  Every periodic_save(options.save_every_seconds);
  auto save = [&](bool complete) -> Status {
    cache.complete = complete;
    return SaveLatentCache(cache, out_path);
  };
  torch::NoGradGuard g;
  vae.vae->eval();
  const int64_t total = static_cast<int64_t>(todo.size());
  REEL_RETURN_IF_ERROR(ForEachClip(
      refs, todo, vae.config.clip, options.jobs, st, cancel, on_clip,
      [&](const ClipRef& ref, torch::Tensor pixels) -> Status {
        cache.examples.push_back(
            {EncodeOne(vae.vae, VideoFromPixels(pixels).to(options.device)).to(torch::kCPU),
             ref.caption});
        cache.clip_ids.push_back(ref.clip.id);
        ++result.encoded;
        if (!periodic_save.Due()) return Status::OK();
        return save(false).WithContext("saving the unfinished cache");
      }));
  result.total = static_cast<int64_t>(cache.examples.size());
  result.cancelled = cancel != nullptr && cancel->load() && result.encoded < total;
  if (cache.examples.empty()) {
    if (result.cancelled) return result;  // stopped before the first clip: nothing to write
    return NoUsableClip(subset, st);
  }
  REEL_RETURN_IF_ERROR(save(!result.cancelled));
  return result;
}

namespace {
// Format 2: clips read at the configured rate as `reel export --fps` (and ffmpeg's fps
// filter) reads them. Format 1 took the first frame at or after each output time.
constexpr const char* kLatentFormat = "reel-latents 2";
constexpr const char* kLatentFormatOldPicks = "reel-latents 1";
}  // namespace

Status SaveLatentCache(const LatentCache& cache, const std::string& path) {
  if (cache.examples.empty()) return Status::InvalidArgument("no latents to save");
  Json meta = Json::MakeObject();
  meta["format"] = kLatentFormat;
  meta["vae"] = cache.vae_dir;
  meta["model"] = cache.model;
  meta["complete"] = cache.complete;
  Json fingerprint = Json::MakeArray();
  for (double v : cache.vae_fingerprint) fingerprint.push_back(v);
  meta["vae_fingerprint"] = fingerprint;
  Json caps = Json::MakeArray(), ids = Json::MakeArray();
  std::vector<torch::Tensor> zs;
  for (size_t i = 0; i < cache.examples.size(); ++i) {
    caps.push_back(cache.examples[i].caption);
    ids.push_back(i < cache.clip_ids.size() ? cache.clip_ids[i] : int64_t{0});
    zs.push_back(cache.examples[i].latent);
  }
  meta["captions"] = caps;
  meta["clip_ids"] = ids;
  const std::string tmp = path + ".partial";
  try {
    torch::serialize::OutputArchive a;
    a.write("latents", torch::stack(zs).contiguous());
    a.write("meta", c10::IValue(meta.Dump()));
    a.save_to(tmp);
  } catch (const c10::Error& e) {
    return Status::IOError(path + ": " + FirstLine(e.what_without_backtrace()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IOError(path + ": " + ec.message());
  return Status::OK();
}

Result<LatentCache> LoadLatentCache(const std::string& path, bool allow_unfinished) {
  if (!fs::exists(path))
    return Status::NotFound(path + ": no latent cache (make one with reel generate prepare)");
  LatentCache cache;
  torch::Tensor z;
  std::string meta_text;
  try {
    torch::serialize::InputArchive a;
    a.load_from(path);
    a.read("latents", z);
    c10::IValue v;
    a.read("meta", v);
    meta_text = v.toStringRef();
  } catch (const c10::Error& e) {
    return Status::Corruption(path + ": unreadable latent cache (" +
                              FirstLine(e.what_without_backtrace()) + ")");
  }
  auto meta = Json::Parse(meta_text);
  const Json* format = meta.ok() ? meta->Find("format") : nullptr;
  if (format == nullptr ||
      (format->as_string() != kLatentFormat && format->as_string() != kLatentFormatOldPicks)) {
    return Status::Corruption(path + ": not a reel latent cache");
  }
  cache.old_frame_picks = format->as_string() == kLatentFormatOldPicks;
  if (z.dim() != 5) {
    return Status::Corruption(path + ": latents of " + std::to_string(z.dim()) +
                              " dimensions, not [N, C, T, H, W]");
  }
  const Json* caps = meta->Find("captions");
  const Json* ids = meta->Find("clip_ids");
  if (caps == nullptr || static_cast<int64_t>(caps->size()) != z.size(0)) {
    return Status::Corruption(path + ": captions and latents disagree");
  }
  for (int64_t i = 0; i < z.size(0); ++i) {
    cache.examples.push_back({z[i].clone(), caps->at(static_cast<size_t>(i)).as_string()});
    cache.clip_ids.push_back(ids != nullptr ? ids->at(static_cast<size_t>(i)).as_int() : 0);
  }
  cache.vae_dir = meta->Find("vae") != nullptr ? meta->Find("vae")->as_string() : "";
  cache.model = meta->Find("model") != nullptr ? *meta->Find("model") : Json::MakeObject();
  if (const Json* fp = meta->Find("vae_fingerprint"); fp != nullptr) {
    for (size_t i = 0; i < fp->size(); ++i) cache.vae_fingerprint.push_back(fp->at(i).as_double());
  }
  // Caches from before the field are complete.
  const Json* complete = meta->Find("complete");
  cache.complete = complete == nullptr || complete->as_bool();
  if (!cache.complete && !allow_unfinished) {
    return Status::FailedPrecondition(path +
                                      ": unfinished latent cache (reel generate prepare was "
                                      "stopped; run it again with --resume to finish it)");
  }
  return cache;
}

Result<std::shared_ptr<const FrozenClipText>> LoadFrozenTextEncoder(const std::string& name_or_path,
                                                                    torch::Device device) {
  auto where = [&](const Status& s) { return s.WithContext("text encoder " + name_or_path); };
  Result<std::string> path = ResolveModel(name_or_path);
  if (!path.ok()) return where(path.status());
  Result<std::string> vocab = InstalledModelPath("clip-vocab");
  if (!vocab.ok()) return where(vocab.status());
  Result<std::unique_ptr<ClipModel>> model =
      ClipModel::Load(*path, ClipLoadOptions::ForDevice(device));
  if (!model.ok()) return where(model.status());
  Result<std::unique_ptr<ClipTokenizer>> tokenizer = ClipTokenizer::Load(*vocab);
  if (!tokenizer.ok()) return where(tokenizer.status());
  if ((*model)->config().vocab_size < ClipTokenizer::kVocabSize) {
    return Status::InvalidArgument(*path + ": its text tower has " +
                                   std::to_string((*model)->config().vocab_size) +
                                   " token embeddings, fewer than CLIP's vocabulary (" +
                                   std::to_string(ClipTokenizer::kVocabSize) + ")");
  }
  return std::shared_ptr<const FrozenClipText>(std::make_shared<FrozenClipText>(
      name_or_path, std::shared_ptr<const ClipModel>(std::move(*model)),
      std::shared_ptr<const ClipTokenizer>(std::move(*tokenizer))));
}

ModelConfig WithFrozenText(ModelConfig config, const FrozenClipText& frozen) {
  config.text.encoder = frozen.name();
  config.text.width = frozen.width();
  config.text.vocab_size = frozen.vocab_size();
  config.text.max_tokens = std::min(config.text.max_tokens, frozen.context_length());
  return config;
}

namespace {

// InvalidArgument naming the first latent that is not of the shape `config`'s denoiser
// trains on ([C, T, H, W] of its VAE and clip), instead of a shape error inside a step.
Status CheckLatentShapes(const ModelConfig& config, const std::vector<LatentExample>& data) {
  const std::vector<int64_t> want = {config.vae.latent_channels, config.latent_frames(),
                                     config.latent_height(), config.latent_width()};
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i].latent.sizes() != c10::IntArrayRef(want)) {
      return Status::InvalidArgument(
          "training latent " + std::to_string(i) + " is " + ShapeText(data[i].latent.sizes()) +
          ", but the " + config.name + " denoiser trains on " + ShapeText(want) + " (" +
          DescribeClipShape(config.clip) + ", " + std::to_string(config.vae.latent_channels) +
          " latent channels)");
    }
  }
  return Status::OK();
}

}  // namespace

Result<DenoiserTrainResult> TrainDenoiser(Catalog* catalog, const ModelConfig& config,
                                          const std::vector<LatentExample>& data,
                                          const std::vector<std::string>& captions_for_tokenizer,
                                          const DenoiserTrainOptions& options,
                                          const std::string& ckpt_dir, const StepCallback& on_step,
                                          const std::atomic<bool>* cancel) {
  if (data.empty()) return Status::InvalidArgument("no training latents");
  if (options.steps < 1)
    return OutOfRange("steps", static_cast<double>(options.steps), "at least 1");
  if (options.save_every < 0)
    return OutOfRange("save interval", static_cast<double>(options.save_every), "0 or more steps");
  const DataParallel& dp = options.parallel;
  const bool lead = dp.rank == 0;
  if (lead && catalog == nullptr) return Status::InvalidArgument("no catalog to record the run in");
  std::unique_ptr<Trainer> trainer;
  std::vector<std::pair<int64_t, double>> curve;
  const std::string curve_path = ckpt_dir + "/losses.json";
  if (options.resume && fs::exists(ckpt_dir + "/config.json")) {
    REEL_ASSIGN_OR_RETURN(trainer,
                          Trainer::Load(ckpt_dir, options.device, true, LoadFrozenTextEncoder));
    std::ifstream f(curve_path);
    std::stringstream s;
    s << f.rdbuf();
    if (auto j = Json::Parse(s.str()); j.ok()) {
      for (const Json& p : j->as_array()) curve.emplace_back(p.at(0).as_int(), p.at(1).as_double());
    }
  } else {
    if (fs::exists(ckpt_dir + "/config.json")) {
      return Status::AlreadyExists(ckpt_dir +
                                   " already holds a checkpoint; pass --resume to continue it");
    }
    if (config.frozen_text()) {
      REEL_ASSIGN_OR_RETURN(std::shared_ptr<const FrozenClipText> frozen,
                            LoadFrozenTextEncoder(config.text.encoder, options.device));
      REEL_ASSIGN_OR_RETURN(
          trainer, Trainer::Create(WithFrozenText(config, *frozen), BpeTokenizer(), options.train,
                                   options.device, frozen));
    } else {
      REEL_ASSIGN_OR_RETURN(BpeTokenizer tok,
                            BpeTokenizer::Train(captions_for_tokenizer, config.text.vocab_size));
      REEL_ASSIGN_OR_RETURN(trainer,
                            Trainer::Create(config, std::move(tok), options.train, options.device));
    }
  }
  REEL_RETURN_IF_ERROR(CheckLatentShapes(trainer->config(), data));
  if (trainer->step() >= options.steps) return AlreadyTrained(ckpt_dir, trainer->step());
  trainer->dit()->SetActivationCheckpointing(options.activation_checkpointing);
  if (dp.world > 1) {
    if (dp.comm == nullptr) return Status::InvalidArgument("data parallel without a process group");
    REEL_RETURN_IF_ERROR(trainer->BroadcastWeights(*dp.comm));
  }
  DenoiserTrainResult result;
  result.max_tokens = trainer->config().text.max_tokens;
  for (const LatentExample& e : data) {
    const int64_t n = trainer->tokenizer().Length(e.caption);
    result.longest_caption_tokens = std::max(result.longest_caption_tokens, n);
    result.captions_cut += n > result.max_tokens;
  }
  Json run_config = Json::MakeObject();
  run_config["model"] = trainer->config().ToJson();
  run_config["train"] = trainer->options().ToJson();
  run_config["steps"] = options.steps;
  run_config["examples"] = static_cast<int64_t>(data.size());
  run_config["checkpoint"] = fs::absolute(ckpt_dir).string();
  run_config["resumed_from_step"] = trainer->step();
  run_config["processes"] = dp.world;
  if (dp.world > 1) run_config["gradient_bucket_bytes"] = dp.bucket_bytes;
  run_config["activation_checkpointing"] = options.activation_checkpointing;
  run_config["captions_cut"] = result.captions_cut;
  run_config["longest_caption_tokens"] = result.longest_caption_tokens;
  int64_t run_id = 0;
  if (lead) {
    REEL_ASSIGN_OR_RETURN(run_id, catalog->BeginRun("train", run_config, options.name));
  }
  result.run_id = run_id;
  auto save = [&]() -> Status {
    if (!lead) return Status::OK();
    REEL_RETURN_IF_ERROR(trainer->Save(ckpt_dir));
    Json arr = Json::MakeArray();
    for (const auto& [s, l] : curve) {
      Json p = Json::MakeArray();
      p.push_back(s);
      p.push_back(l);
      arr.push_back(p);
    }
    std::ofstream f(curve_path, std::ios::trunc);
    f << arr.Dump() << '\n';
    return f.good() ? Status::OK() : Status::IOError(curve_path + ": cannot write");
  };
  auto finish = [&](RunStatus status, const std::string& error) -> Status {
    if (!lead) return Status::OK();
    Json details = Json::MakeObject();
    Json steps = Json::MakeArray(), losses = Json::MakeArray();
    const size_t stride = std::max<size_t>(1, curve.size() / 2000);
    for (size_t i = 0; i < curve.size(); i += stride) {
      steps.push_back(curve[i].first);
      losses.push_back(curve[i].second);
    }
    details["step"] = steps;
    details["loss"] = losses;
    details["steps_per_second"] = result.steps_per_second;
    REEL_RETURN_IF_ERROR(
        catalog->AddMetric(run_id, "loss_curve", result.final_loss, details).status());
    return catalog->FinishRun(run_id, status, error);
  };
  const auto t0 = Clock::now();
  int64_t done = 0;
  trainer->set_steps_planned(options.steps);
  // A step's loss is read once the next step is queued, so that on CUDA the host never
  // waits for the device between steps; it is read before anything that records it.
  torch::Tensor pending;
  int64_t pending_step = 0;  // the step count the pending loss brought the run to
  auto settle = [&]() -> Status {
    if (!pending.defined()) return Status::OK();
    const Result<double> loss = Trainer::LossValue(pending, pending_step - 1);
    pending = torch::Tensor();
    if (!loss.ok()) return loss.status();
    result.final_loss = *loss;
    curve.emplace_back(pending_step, *loss);
    if (on_step) on_step(pending_step, options.steps, *loss);
    return Status::OK();
  };
  auto fail = [&](const Status& s) {
    finish(RunStatus::kFailed, s.message()).IgnoreError();
    return s;
  };
  while (trainer->step() < options.steps) {
    bool stop = cancel != nullptr && cancel->load();
    if (stop && dp.world == 1) {
      result.cancelled = true;
      break;
    }
    // Data parallel: the interrupt is voted on in the step, and every process stops after it.
    Result<torch::Tensor> loss = trainer->LaunchStep(data, dp, &stop);
    if (!loss.ok()) {
      settle().IgnoreError();
      return fail(loss.status());
    }
    ++done;
    if (Status s = settle(); !s.ok()) return fail(s);
    pending = *loss;
    pending_step = trainer->step();
    if (options.save_every > 0 && trainer->step() % options.save_every == 0) {
      if (Status s = settle(); !s.ok()) return fail(s);
      if (Status s = save(); !s.ok()) return fail(s);
    }
    if (stop) {
      result.cancelled = true;
      break;
    }
  }
  if (Status s = settle(); !s.ok()) return fail(s);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  result.steps_done = done;
  result.steps_per_second = secs > 0 ? static_cast<double>(done) / secs : 0;
  result.gradients = trainer->gradient_stats();
  if (Status s = save(); !s.ok()) return fail(s);
  REEL_RETURN_IF_ERROR(finish(result.cancelled ? RunStatus::kInterrupted : RunStatus::kOk, ""));
  return result;
}

namespace {

// Writes `video` [3, T, H, W] in [-1, 1] to `path` as an MP4 at `fps`, with the prompt in
// its comment.
Status WriteSample(const std::string& path, const torch::Tensor& video, int fps,
                   const std::string& prompt) {
  const torch::Tensor frames = ToFrames(video);
  EncodeOptions eo;
  eo.width = static_cast<int>(frames.size(2));
  eo.height = static_cast<int>(frames.size(1));
  eo.frame_rate = Rational(fps, 1);
  eo.crf = 12;
  // The model learnt the RGB the decoder gave (tone-mapped to BT.709 where it was HDR);
  // stated, so that players do not guess.
  eo.color_space = eo.color_primaries = eo.color_transfer = "bt709";
  eo.metadata["comment"] = "reel generate: " + prompt;
  REEL_ASSIGN_OR_RETURN(std::unique_ptr<VideoEncoder> enc, VideoEncoder::Open(path, eo));
  for (int64_t t = 0; t < frames.size(0); ++t) {
    Frame f;
    f.width = eo.width;
    f.height = eo.height;
    f.format = PixelFormat::kRgb24;
    const torch::Tensor ft = frames[t].contiguous();
    f.data.assign(ft.data_ptr<uint8_t>(), ft.data_ptr<uint8_t>() + ft.numel());
    REEL_RETURN_IF_ERROR(enc->Write(f));
  }
  return enc->Finish();
}

// A generation run's configuration: what determines its files.
Json SampleRunConfig(const std::string& ckpt_dir, int64_t ckpt_step, const std::string& vae_dir,
                     const SampleJob& job, int batch, const std::string& out_dir) {
  Json cfg = Json::MakeObject();
  cfg["checkpoint"] = fs::absolute(ckpt_dir).string();
  cfg["checkpoint_step"] = ckpt_step;
  cfg["vae"] = fs::absolute(vae_dir).string();
  cfg["steps"] = job.sample.steps;
  cfg["cfg"] = job.sample.cfg;
  cfg["seed"] = static_cast<int64_t>(job.sample.seed);
  cfg["batch"] = static_cast<int64_t>(batch);
  cfg["prompts"] = static_cast<int64_t>(job.prompts.size());
  cfg["out"] = fs::absolute(out_dir).string();
  return cfg;
}

// The newest run named job.name, which a resumed job continues, and the generations of it
// that the job keeps, by prompt index: those whose prompt is still the job's and whose
// file is there. The run must have had the settings in `config` (but for the number of
// prompts: some may have been added).
struct Resumed {
  int64_t run_id = 0;
  std::map<size_t, GenerationRecord> kept;
};
Result<Resumed> SamplesToKeep(Catalog& catalog, const SampleJob& job, const Json& config) {
  if (job.name.empty())
    return Status::InvalidArgument("--resume needs the --name of the generation run to continue");
  REEL_ASSIGN_OR_RETURN(RunRecord run, catalog.FindRunByName("generate", job.name));
  for (const auto& [key, value] : config.as_object()) {
    if (key == "prompts") continue;  // compared one by one below
    const Json* before = run.config.Find(key);
    if (before == nullptr || *before != value) {
      return Status::FailedPrecondition(
          "generation run " + std::to_string(run.id) + " ('" + job.name + "') had " + key + " " +
          (before != nullptr ? before->Dump() : std::string("unset")) + ", not " + value.Dump() +
          "; sample without --resume, or under another --name");
    }
  }
  REEL_ASSIGN_OR_RETURN(std::vector<GenerationRecord> gens, catalog.ListGenerations(run.id));
  Resumed resumed;
  resumed.run_id = run.id;
  for (GenerationRecord& g : gens) {
    const Json* index = g.params.Find("index");
    if (index == nullptr || index->as_int(-1) < 0) continue;
    const size_t i = static_cast<size_t>(index->as_int());
    std::error_code ec;
    if (i >= job.prompts.size() || g.prompt != job.prompts[i] || fs::file_size(g.path, ec) == 0 ||
        ec) {
      continue;
    }
    resumed.kept[i] = std::move(g);
  }
  return resumed;
}

// Where sampling writes prompt `index`.
std::string SamplePath(const std::string& out_dir, size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "%06zu.mp4", index);
  return fs::absolute(out_dir + "/" + name).string();
}

// Refuses to overwrite a file that the catalog lists as another generation run's output
// (its records would then describe a different video): sampling writes prompt i to
// OUT/00000i.mp4, so a second run into the same folder would. A resumed job may rewrite
// the files of the runs of its own name (a prompt that changed). Files the catalog does
// not know are overwritten.
Status CheckNothingRecordedIsOverwritten(Catalog& catalog, const SampleJob& job,
                                         const std::map<size_t, GenerationRecord>& kept,
                                         const std::string& out_dir) {
  for (size_t i = 0; i < job.prompts.size(); ++i) {
    if (kept.count(i) != 0) continue;
    const std::string path = SamplePath(out_dir, i);
    std::error_code ec;
    if (!fs::exists(path, ec)) continue;
    REEL_ASSIGN_OR_RETURN(std::vector<GenerationRecord> gens, catalog.ListGenerationsAt(path));
    for (const GenerationRecord& g : gens) {
      REEL_ASSIGN_OR_RETURN(std::optional<RunRecord> run, catalog.FindRun(g.run_id));
      const std::string name = run.has_value() ? run->name : std::string();
      if (job.resume && name == job.name) continue;
      const std::string label = "generation run " + std::to_string(g.run_id) +
                                (name.empty() ? std::string() : " ('" + name + "')");
      return Status::AlreadyExists(
          path + " belongs to " + label +
          " in the catalog, whose record of it would no longer be true; sample into another "
          "--out" +
          (name.empty() ? std::string() : ", or continue that run with --resume --name " + name));
    }
  }
  return Status::OK();
}

}  // namespace

Result<SampleResult> SampleToFiles(Catalog* catalog, const std::string& ckpt_dir,
                                   const std::string& vae_dir, const SampleJob& job,
                                   const std::string& out_dir, torch::Device device,
                                   const ProgressCallback& on_clip,
                                   const std::atomic<bool>* cancel) {
  if (job.prompts.empty()) return Status::InvalidArgument("no prompts to sample");
  if (job.resume && catalog == nullptr)
    return Status::InvalidArgument("--resume needs the catalog (--db) that recorded the run");
  REEL_ASSIGN_OR_RETURN(
      std::unique_ptr<Trainer> trainer,
      Trainer::Load(ckpt_dir, device, /*optimizer=*/false, LoadFrozenTextEncoder));
  REEL_ASSIGN_OR_RETURN(LoadedVae vae, LoadVae(vae_dir, device));
  const ModelConfig& config = trainer->config();
  if (vae.config.vae.latent_channels != config.vae.latent_channels) {
    return Status::InvalidArgument(vae_dir + ": the VAE has " +
                                   std::to_string(vae.config.vae.latent_channels) +
                                   " latent channels, the denoiser in " + ckpt_dir + " expects " +
                                   std::to_string(config.vae.latent_channels));
  }
  const int batch = std::max(1, job.batch);
  Json cfg = SampleRunConfig(ckpt_dir, trainer->step(), vae_dir, job, batch, out_dir);
  Resumed resumed;
  if (job.resume) {
    REEL_ASSIGN_OR_RETURN(resumed, SamplesToKeep(*catalog, job, cfg));
  }
  const std::map<size_t, GenerationRecord>& kept = resumed.kept;
  if (catalog != nullptr) {
    REEL_RETURN_IF_ERROR(CheckNothingRecordedIsOverwritten(*catalog, job, kept, out_dir));
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::IOError(out_dir + ": " + ec.message());

  SampleResult result;
  result.files.resize(job.prompts.size());
  result.max_tokens = config.text.max_tokens;
  std::map<size_t, int64_t> cut_from;
  for (size_t i = 0; i < job.prompts.size(); ++i) {
    const int64_t n = trainer->tokenizer().Length(job.prompts[i]);
    if (n > config.text.max_tokens) {
      result.cut.push_back({i, n});
      cut_from[i] = n;
    }
  }
  const std::string ckpt_label =
      fs::absolute(ckpt_dir).string() + "@" + std::to_string(trainer->step());
  auto record = [&](size_t index, const std::string& path) -> Status {
    result.files[index] = path;
    if (catalog == nullptr) return Status::OK();
    GenerationRecord rec;
    rec.run_id = result.run_id;
    rec.path = path;
    rec.prompt = job.prompts[index];
    if (index < job.clip_ids.size()) rec.clip_id = job.clip_ids[index];
    if (index < job.caption_ids.size()) rec.caption_id = job.caption_ids[index];
    rec.seed = static_cast<int64_t>(job.sample.seed);
    rec.checkpoint = ckpt_label;
    rec.params["steps"] = job.sample.steps;
    rec.params["cfg"] = job.sample.cfg;
    rec.params["index"] = static_cast<int64_t>(index);
    if (auto c = cut_from.find(index); c != cut_from.end()) rec.params["prompt_tokens"] = c->second;
    return catalog->AddGeneration(rec).status();
  };
  auto fail = [&](const Status& s) -> Status {
    if (catalog != nullptr)
      catalog->FinishRun(result.run_id, RunStatus::kFailed, s.message()).IgnoreError();
    return s;
  };
  if (catalog != nullptr) {
    if (job.resume) cfg["resumed_from"] = resumed.run_id;
    REEL_ASSIGN_OR_RETURN(result.run_id, catalog->BeginRun("generate", cfg, job.name));
  }
  for (const auto& [index, g] : kept) {
    if (Status s = record(index, g.path); !s.ok()) return fail(s);
  }
  result.kept = static_cast<int64_t>(kept.size());

  // The batches of a run made in one go (the same prompts side by side, so the same
  // numbers); a batch whose files were all kept is not sampled again.
  const int64_t total = static_cast<int64_t>(job.prompts.size()) - result.kept;
  int64_t done = 0;
  if (on_clip) on_clip(0, total);
  for (size_t start = 0; start < job.prompts.size(); start += static_cast<size_t>(batch)) {
    const size_t end = std::min(job.prompts.size(), start + static_cast<size_t>(batch));
    size_t missing = 0;
    for (size_t i = start; i < end; ++i) missing += kept.count(i) == 0;
    if (missing == 0) continue;
    if (cancel != nullptr && cancel->load()) {
      const std::string how =
          job.name.empty() ? ""
                           : "; reel generate sample --resume --name " + job.name + " continues";
      const std::string after =
          "after " + std::to_string(done) + " of " + std::to_string(total) + " clips";
      if (catalog != nullptr) {
        REEL_RETURN_IF_ERROR(
            catalog->FinishRun(result.run_id, RunStatus::kInterrupted, "cancelled " + after));
      }
      return Status::Cancelled("sampling stopped " + after + how);
    }
    const std::vector<std::string> prompts(job.prompts.begin() + static_cast<long>(start),
                                           job.prompts.begin() + static_cast<long>(end));
    SampleOptions so = job.sample;
    so.first_index = static_cast<int64_t>(start);
    torch::Tensor videos;
    try {
      torch::NoGradGuard g;
      const torch::Tensor z = SampleLatents(trainer->ema_dit(), trainer->ema_text(),
                                            trainer->tokenizer(), config, prompts, so, device);
      videos = vae.vae->Decode(vae.vae->Denormalize(z)).to(torch::kCPU);
    } catch (const c10::Error& e) {
      return fail(Status::Internal("sampling: " + FirstLine(e.what_without_backtrace())));
    }
    for (size_t index = start; index < end; ++index) {
      if (kept.count(index)) continue;
      const std::string path = SamplePath(out_dir, index);
      Status s = WriteSample(path, videos[static_cast<int64_t>(index - start)], config.clip.fps,
                             job.prompts[index]);
      if (s.ok()) s = record(index, path);
      if (!s.ok()) return fail(s);
    }
    done += static_cast<int64_t>(missing);
    if (on_clip) on_clip(done, total);
  }
  if (catalog != nullptr) REEL_RETURN_IF_ERROR(catalog->FinishRun(result.run_id, RunStatus::kOk));
  return result;
}

}  // namespace reel::gen
