// Catalog: reel's SQLite file of videos, clips, captions, runs and metrics.
//
// One catalog is one SQLite database in WAL mode with foreign keys on. Its schema is
// versioned with `PRAGMA user_version`; opening an older catalog read-write upgrades it
// in place, one migration per transaction, so an interrupted upgrade leaves the last
// complete version. A catalog newer than this build is refused rather than misread.
//
// Writes: every method that writes runs in the caller's open Transaction if there is
// one, else in its own. Batch writers (ingest) open one Transaction per batch so a crash
// loses at most the uncommitted batch and never leaves half of one.
//
// Failure: methods return Status/Result; messages name the catalog path or the row.
//
// Thread-safety: a Catalog is a single SQLite connection and must be used by one thread
// at a time. Several Catalog objects (in one process or many) may open the same file;
// SQLite serialises writers, and readers see the last committed state.

#ifndef REEL_DB_CATALOG_H_
#define REEL_DB_CATALOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "util/json.h"
#include "util/rational.h"
#include "util/status.h"

struct sqlite3;

namespace reel {

enum class VideoStatus {
  kOk,         // probed and decodable
  kError,      // not a video, truncated or corrupt: `error` says why
  kDuplicate,  // same content as another row (`duplicate_of`)
};
std::string_view VideoStatusName(VideoStatus s);
Result<VideoStatus> ParseVideoStatus(std::string_view s);

struct VideoRecord {
  int64_t id = 0;    // 0 until stored
  std::string path;  // absolute, normalised
  int64_t size_bytes = 0;
  int64_t mtime_ns = 0;
  std::string content_hash;  // SHA-256 hex of the whole file; empty if unreadable
  VideoStatus status = VideoStatus::kOk;
  std::string error;  // cause, when status is kError
  std::optional<int64_t> duplicate_of;

  // Probed properties (meaningful when status is kOk).
  std::string container;
  std::string codec;
  std::string pixel_format;
  int width = 0;
  int height = 0;
  Rational sample_aspect_ratio{1, 1};
  int rotation = 0;
  Rational frame_rate;
  Rational time_base;
  bool variable_frame_rate = false;
  int64_t frame_count = 0;
  Rational start_time;
  Rational duration;
  bool has_audio = false;
  int64_t bit_rate = 0;
  std::map<std::string, std::string> metadata;  // container tags

  std::string ingested_at;  // set by the catalog (UTC, ISO 8601)
  std::string updated_at;
};

enum class ClipState { kCandidate, kAccepted, kRejected, kExported };
std::string_view ClipStateName(ClipState s);
Result<ClipState> ParseClipState(std::string_view s);

// Signals measured on a clip (see curate/signals.h for their definitions). Unset
// optionals are NULL in the catalog.
struct ClipSignals {
  std::optional<double> motion;              // mean optical-flow magnitude, % of frame diagonal
  std::optional<double> static_ratio;        // fraction of frames without motion
  std::string camera_motion;                 // static, pan_left, pan_right, tilt_up, ... or ""
  std::optional<double> sharpness;           // variance of the Laplacian
  std::optional<double> brightness;          // mean luma, 0..1
  std::optional<double> contrast;            // luma standard deviation, 0..1
  std::optional<double> black_ratio;         // fraction of black or blank frames
  std::optional<double> text_area;           // fraction of the frame covered by overlaid text
  std::optional<double> colorfulness;        // Hasler-Suesstrunk
  Json dominant_colors = Json::MakeArray();  // [{"name":"green","fraction":0.4}, ...]
  std::string phash;                         // 64-bit perceptual hash of the middle frame (hex)
  Json extra = Json::MakeObject();           // anything else (camera motion details, ...)
};

// A clip is frames [start_frame, end_frame) of a video, with the exact times of those
// frame boundaries.
struct ClipRecord {
  int64_t id = 0;
  int64_t video_id = 0;
  int64_t start_frame = 0;
  int64_t end_frame = 0;  // exclusive
  Rational start_time;
  Rational end_time;
  ClipState state = ClipState::kCandidate;
  std::string detector;  // how the clip was cut, e.g. "content threshold=27 min_scene_len=15"
  ClipSignals signals;
  std::optional<int64_t> duplicate_of;
  // LAION aesthetic score (caption --backend clip with a predictor); not written by
  // AddClip/ReplaceClips, see SetClipAesthetic.
  std::optional<double> aesthetic;
  std::string created_at;
};

enum class ScanStatus { kOk, kError };

// The outcome of scanning one video: how it was decoded and analysed.
struct ScanRecord {
  int64_t video_id = 0;
  std::optional<int64_t> run_id;
  ScanStatus status = ScanStatus::kOk;
  std::string error;
  int64_t frames = 0;
  int64_t decode_errors = 0;
  int analysis_width = 0;
  int analysis_height = 0;
  Rational time_base;
  int64_t start_pts = 0;
  Json params = Json::MakeObject();
  std::string scanned_at;
};

// Membership of a clip in a named subset, with the reason when it did not pass.
struct SubsetMember {
  int64_t clip_id = 0;
  bool passed = false;
  std::string reason;
};

struct SubsetRecord {
  int64_t id = 0;
  std::string name;
  std::string expression;
  std::string sql;
  std::optional<int64_t> run_id;
  std::string created_at;
};

// A clip written out by `reel curate export`.
struct ClipExportRecord {
  int64_t clip_id = 0;
  std::string out_dir;
  std::string path;
  std::string mode;  // "reencode" or "copy"
  int width = 0;
  int height = 0;
  Rational frame_rate;
  int64_t frames = 0;
  Rational start_time;  // the span actually written (copy mode snaps to keyframes)
  Rational end_time;
  std::string exported_at;
};

// A caption of a clip with its provenance. A clip has at most one caption per
// (source, model): captioning again with the same backend and model replaces or keeps
// it, never adds a second.
struct CaptionRecord {
  int64_t id = 0;
  int64_t clip_id = 0;
  std::string text;
  std::string source;             // backend: "original", "signals", "clip", "vlm", "merged", ...
  std::string model;              // model name or file, "" when none
  std::string prompt;             // prompt given to the model, "" when none
  Json params;                    // generation parameters, where the text came from, timings
  std::optional<int64_t> run_id;  // the run that wrote it
  std::string created_at;
};

// What AddCaption does when the clip already has a caption of that source and model.
enum class CaptionConflict {
  kFail,     // AlreadyExists
  kKeep,     // leave it; return its id
  kReplace,  // overwrite text, prompt, params, run and time (its scores are dropped)
};

// A score of one caption, e.g. CLIP's text-clip matching score ("clip_match").
struct CaptionScore {
  int64_t caption_id = 0;
  std::string name;
  std::string model;
  double value = 0.0;
  std::string created_at;
};

// The last failure to caption a clip with a backend and model (cleared on success).
struct CaptionError {
  int64_t clip_id = 0;
  std::string source;
  std::string model;
  std::optional<int64_t> run_id;
  std::string error;
  int attempts = 1;
  std::string failed_at;
};

// Text that came with a video in a sidecar file (name.txt, name.json, name.srt): the
// material of "original" captions. Subtitle cues carry their time span.
struct VideoText {
  int64_t video_id = 0;
  std::string origin;                  // "txt", "json", "srt"
  std::string field;                   // JSON key ("caption", "title", ...); "" otherwise
  int64_t seq = 0;                     // cue number (srt); 0 otherwise
  std::optional<Rational> start_time;  // cue span in seconds (srt only)
  std::optional<Rational> end_time;
  std::string text;
  std::string file;  // the sidecar's path
};

// The caption selection policy: which of a clip's captions generation, evaluation and
// export use. `prefer` lists sources in order ("vlm", "merged", ...), each optionally
// narrowed to one model as "source:model"; the clip's caption from the first entry it
// has wins, the newest among equals. Sources not listed are never selected.
const std::vector<std::string>& DefaultCaptionPreference();  // vlm,merged,clip,signals,original
// Parses "vlm,merged,clip" (entries: a source name of letters, digits, '_' or '-',
// optionally ":model").
Result<std::vector<std::string>> ParseCaptionPreference(std::string_view list);
// An SQL expression giving the selected caption's `column` (text, id, source, ...) for the
// clip whose id is `clip_id_sql` (e.g. "c.id"); NULL when it has none. `prefer` must come
// from ParseCaptionPreference (its entries are quoted as SQL literals).
std::string SelectedCaptionSql(const std::vector<std::string>& prefer, std::string_view clip_id_sql,
                               std::string_view column = "text");

enum class RunStatus { kRunning, kOk, kFailed, kInterrupted };
std::string_view RunStatusName(RunStatus s);
std::string_view ScanStatusName(ScanStatus s);
Result<RunStatus> ParseRunStatus(std::string_view s);

struct RunRecord {
  int64_t id = 0;
  std::string kind;  // "ingest", "scan", "eval", "train", ...
  std::string name;  // a user's name for the run ("baseline-ckpt-20k"); "" when none
  Json config;
  std::string tool_version;
  std::string started_at;
  std::string finished_at;
  RunStatus status = RunStatus::kRunning;
  std::string error;
  int64_t pid = 0;
  std::string host;
};

// A video written by a generation run, with what made it.
struct GenerationRecord {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string path;
  std::string prompt;
  std::optional<int64_t> clip_id;  // the clip whose caption was the prompt
  std::optional<int64_t> caption_id;
  int64_t seed = 0;
  std::string checkpoint;
  Json params = Json::MakeObject();
  std::string created_at;
};

// Features of a set of clips cached for reuse (e.g. the real side of FVD), keyed by a
// digest of everything that determines them.
struct FeatureSet {
  std::string key;
  std::string extractor;  // e.g. "i3d:<sha256>:stylegan-v"
  std::string source;     // the source spec, for people
  Json params = Json::MakeObject();
  int64_t count = 0;
  int64_t dim = 0;
  std::vector<float> features;  // count x dim, row-major
  Json skipped = Json::MakeObject();
  std::string created_at;
};

struct MetricRecord {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string name;
  double value = 0.0;
  Json details;
};

// A cell from an ad-hoc query.
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

struct CatalogStats {
  int schema_version = 0;
  int64_t file_bytes = 0;  // main file plus WAL
  int64_t videos = 0;
  int64_t videos_ok = 0;
  int64_t videos_error = 0;
  int64_t videos_duplicate = 0;
  int64_t video_bytes = 0;
  Rational video_seconds;  // total duration of ok videos
  int64_t clips = 0;
  int64_t captions = 0;
  int64_t runs = 0;
  int64_t metrics = 0;
};

// The identity of a file as last ingested: enough to skip an unchanged file without
// reading it again.
struct FileStamp {
  int64_t video_id = 0;
  int64_t size_bytes = 0;
  int64_t mtime_ns = 0;
  VideoStatus status = VideoStatus::kOk;
  std::string sidecar_stamp;  // see ReplaceVideoTexts
};

class Catalog {
 public:
  static constexpr int kSchemaVersion = 7;

  struct Options {
    bool read_only = false;         // open without write access (no upgrade either)
    bool create_if_missing = true;  // ignored when read_only
    int busy_timeout_ms = 30000;    // wait this long for another writer
  };

  static Result<std::unique_ptr<Catalog>> Open(const std::string& path, const Options& options);
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path) {
    return Open(path, Options());
  }
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  const std::string& path() const { return path_; }
  int schema_version() const { return schema_version_; }
  bool read_only() const { return read_only_; }

  // A write transaction (BEGIN IMMEDIATE). Commit() makes it durable; destroying an
  // uncommitted one rolls it back. At most one per Catalog at a time.
  class Transaction {
   public:
    Transaction(Transaction&& o) noexcept : catalog_(o.catalog_) { o.catalog_ = nullptr; }
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();
    Status Commit();

   private:
    friend class Catalog;
    explicit Transaction(Catalog* c) : catalog_(c) {}
    Catalog* catalog_;
  };
  Result<Transaction> Begin();

  // --- videos ---
  // Inserts or, for an existing path, replaces the row; returns its id (stable across
  // updates).
  Result<int64_t> UpsertVideo(const VideoRecord& video);
  Result<std::optional<VideoRecord>> FindVideoByPath(const std::string& path);
  Result<std::optional<VideoRecord>> FindVideoById(int64_t id);
  // The first row with this hash and status kOk, if any.
  Result<std::optional<VideoRecord>> FindVideoByHash(const std::string& content_hash);
  Result<std::vector<VideoRecord>> ListVideos(std::optional<VideoStatus> status = std::nullopt);
  // Records a new size and mtime for a row whose content is unchanged.
  Status UpdateFileStamp(int64_t video_id, int64_t size_bytes, int64_t mtime_ns);
  // path -> stamp for every video row.
  Result<std::unordered_map<std::string, FileStamp>> LoadFileStamps();

  // --- clips, captions ---
  Result<int64_t> AddClip(const ClipRecord& clip);
  Result<std::vector<ClipRecord>> ListClips(std::optional<int64_t> video_id = std::nullopt);
  Result<std::optional<ClipRecord>> FindClip(int64_t clip_id);
  // Makes `clips` the clips of `video_id`: a clip whose frame range already exists keeps
  // its row (and so its id, captions and subset memberships) and gets the new detector
  // and signals; clips of other ranges are deleted; new ranges are inserted. Returns the
  // ids in the order of `clips`.
  Result<std::vector<int64_t>> ReplaceClips(int64_t video_id, const std::vector<ClipRecord>& clips);
  Status SetClipDuplicate(int64_t clip_id, std::optional<int64_t> duplicate_of);
  Status SetClipAesthetic(int64_t clip_id, std::optional<double> score);
  Result<std::optional<double>> GetClipAesthetic(int64_t clip_id);

  // --- captions ---
  // Adds a caption (created_at set by the catalog); see CaptionConflict for a clip that
  // already has one of that source and model. Returns the caption's id.
  Result<int64_t> AddCaption(const CaptionRecord& caption,
                             CaptionConflict on_conflict = CaptionConflict::kFail);
  Result<std::vector<CaptionRecord>> ListCaptions(int64_t clip_id);
  Result<std::optional<CaptionRecord>> FindCaption(int64_t clip_id, std::string_view source,
                                                   std::string_view model);
  // The caption `prefer` selects for a clip (see SelectedCaptionSql).
  Result<std::optional<CaptionRecord>> SelectCaption(int64_t clip_id,
                                                     const std::vector<std::string>& prefer);
  // Inserts or replaces a score of a caption.
  Status PutCaptionScore(const CaptionScore& score);
  Result<std::vector<CaptionScore>> ListCaptionScores(int64_t caption_id);
  // The scores of all captions of a clip.
  Result<std::vector<CaptionScore>> ListClipCaptionScores(int64_t clip_id);
  // Inserts or replaces the failure of (clip, source, model); ClearCaptionError forgets it.
  Status PutCaptionError(const CaptionError& error);
  Status ClearCaptionError(int64_t clip_id, std::string_view source, std::string_view model);
  // Failures of a source (all sources when empty), by clip.
  Result<std::vector<CaptionError>> ListCaptionErrors(std::string_view source = {});

  // --- sidecar texts ---
  // Makes `texts` the sidecar texts of a video and records `stamp` (the sidecar files'
  // identity, so unchanged sidecars are not read again).
  Status ReplaceVideoTexts(int64_t video_id, const std::vector<VideoText>& texts,
                           std::string_view stamp);
  Result<std::vector<VideoText>> ListVideoTexts(int64_t video_id);

  // --- scans and per-frame data ---
  // Inserts or replaces the scan record of a video.
  Status PutScan(const ScanRecord& scan);
  Result<std::optional<ScanRecord>> FindScan(int64_t video_id);
  // video id -> scan status, for every scanned video.
  Result<std::unordered_map<int64_t, ScanStatus>> LoadScanStates();
  // Per-frame arrays of a video, stored as little-endian blobs under `name`. `width` is
  // the number of values per frame (e.g. 12 for a colour histogram).
  Status PutFrameData(int64_t video_id, std::string_view name, const std::vector<float>& values,
                      int width = 1);
  Status PutFrameData(int64_t video_id, std::string_view name, const std::vector<int64_t>& values,
                      int width = 1);
  // NotFound when the video has no array of that name; Corruption on a type mismatch.
  Result<std::vector<float>> GetFrameDataF32(int64_t video_id, std::string_view name);
  Result<std::vector<int64_t>> GetFrameDataI64(int64_t video_id, std::string_view name);
  Result<std::vector<std::string>> ListFrameData(int64_t video_id);
  // Raw arrays with their element type ("f32", "i64") and values per frame, for copying
  // between catalogs.
  struct FrameArray {
    std::string name;
    std::string dtype;
    int width = 1;
    std::string bytes;
  };
  Result<std::vector<FrameArray>> GetFrameArrays(int64_t video_id);
  Status PutFrameArray(int64_t video_id, const FrameArray& array);

  // --- subsets ---
  // Creates subset `name` (replacing one of that name and its members) and returns its id.
  Result<int64_t> PutSubset(const SubsetRecord& subset);
  Result<std::optional<SubsetRecord>> FindSubset(std::string_view name);
  Result<std::vector<SubsetRecord>> ListSubsets();
  Status AddSubsetMembers(int64_t subset_id, const std::vector<SubsetMember>& members);
  Result<std::vector<SubsetMember>> ListSubsetMembers(int64_t subset_id);

  // --- exports ---
  Status PutClipExport(const ClipExportRecord& record);
  Result<std::optional<ClipExportRecord>> FindClipExport(int64_t clip_id, std::string_view out_dir);
  Result<std::vector<ClipExportRecord>> ListClipExports(int64_t clip_id);
  // Forgets the export of `clip_id` to `out_dir` (its file is gone). None is OK.
  Status DeleteClipExport(int64_t clip_id, std::string_view out_dir);

  // --- runs, metrics ---
  // Records a new run with status kRunning, this process's pid and host.
  Result<int64_t> BeginRun(std::string_view kind, const Json& config, std::string_view name = {});
  // The newest run of `kind` with this name, or NotFound.
  Result<RunRecord> FindRunByName(std::string_view kind, std::string_view name);
  Status FinishRun(int64_t run_id, RunStatus status, std::string_view error = {});
  // Records `metrics` and finishes the run in one transaction: kInterrupted ("cancelled")
  // when `cancelled`, else kOk.
  Status FinishRunWithMetrics(int64_t run_id, bool cancelled,
                              const std::vector<std::pair<std::string, double>>& metrics);
  Result<std::optional<RunRecord>> FindRun(int64_t run_id);
  Result<std::vector<RunRecord>> ListRuns(std::string_view kind = {});
  // Marks kRunning runs of this host whose process is gone as kInterrupted; returns how
  // many were marked.
  Result<int> MarkInterruptedRuns();
  Result<int64_t> AddMetric(int64_t run_id, std::string_view name, double value,
                            const Json& details = Json());
  // Copies a run from another catalog with its own times, status, pid and host (used by
  // merging); returns the id of the same run already present (same kind, start time,
  // host, pid, name and configuration) instead of a copy. `*inserted` (if given) says
  // whether it was copied.
  Result<int64_t> ImportRun(const RunRecord& run, bool* inserted = nullptr);
  Result<std::vector<MetricRecord>> ListMetrics(int64_t run_id);

  // --- generations and cached features ---
  Result<int64_t> AddGeneration(const GenerationRecord& g);
  Result<std::vector<GenerationRecord>> ListGenerations(int64_t run_id);
  // The generations, of any run, recorded with exactly this path (oldest first).
  Result<std::vector<GenerationRecord>> ListGenerationsAt(std::string_view path);
  Result<std::optional<FeatureSet>> FindFeatureSet(std::string_view key);
  Result<std::vector<std::string>> ListFeatureSetKeys();
  // Inserts or replaces.
  Status PutFeatureSet(const FeatureSet& set);

  // --- inspection ---
  Result<CatalogStats> Stats();
  // PRAGMA integrity_check + foreign_key_check; "ok" when both are clean, else the
  // problems, one a line. Errors: kCorruption when the damage stops the check itself;
  // kUnavailable when another connection holds the file locked past the busy timeout,
  // kIOError when it cannot be read (neither says anything about the file's state).
  Result<std::string> IntegrityCheck();

  // Runs one read-only SQL statement (SELECT, WITH ... SELECT, EXPLAIN, reading PRAGMAs)
  // and calls `on_row` for each row; `on_columns` first with the column names. Anything
  // that could write (INSERT, UPDATE, DELETE, DDL, ATTACH, setting PRAGMAs, several
  // statements) is refused with kInvalidArgument before it runs.
  Status QueryReadOnly(std::string_view sql,
                       const std::function<Status(const std::vector<std::string>&)>& on_columns,
                       const std::function<Status(const std::vector<SqlValue>&)>& on_row);
  // The same with `?` parameters bound in order.
  Status QueryReadOnly(std::string_view sql, const std::vector<SqlValue>& params,
                       const std::function<Status(const std::vector<std::string>&)>& on_columns,
                       const std::function<Status(const std::vector<SqlValue>&)>& on_row);

  // For tests and migrations: the raw connection. Not for general use.
  sqlite3* raw() { return db_; }

 private:
  Catalog(std::string path, sqlite3* db, bool read_only);
  Status Configure(const Options& options);
  Status Migrate();
  Status ExecInTransaction(const std::function<Status()>& body);

  std::string path_;
  sqlite3* db_;  // owned
  bool read_only_;
  int schema_version_ = 0;
  bool in_transaction_ = false;
};

// The current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string UtcNow();

}  // namespace reel

#endif  // REEL_DB_CATALOG_H_
