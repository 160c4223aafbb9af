// Recaptioning clips: the Captioner interface, the backends, and the run that drives
// them over a catalog.
//
//   reel caption --db catalog.db --backend signals|original|clip|vlm|merge [--subset S]
//
// A Captioner turns one clip (its record, video, existing captions and sidecar texts)
// into a caption with provenance (backend = CaptionRecord::source, model, prompt,
// params). RunCaptions() picks the clips that still need work, runs the captioner on
// `jobs` threads, and writes results from the calling thread in batches, one
// transaction each, so a crash loses at most the last uncommitted batch:
//   - resumable: a clip that already has a caption of this backend and model is skipped
//     (deterministic backends - signals, original, merge - also redo a clip whose
//     caption would now come out different, e.g. after a rescan);
//   - a per-clip failure (undecodable video, a server that kept failing) is recorded in
//     caption_errors with the cause and the number of attempts, and the batch goes on;
//     the next run tries those clips again (unless `retry_failed` is false);
//   - never duplicated: the catalog holds one caption per (clip, backend, model).
// Each run is recorded in `runs` (kind "caption") with its counters in `metrics`.
//
// Failure: RunCaptions() returns an error only when the catalog cannot be read or
// written; factories return InvalidArgument / NotFound for bad parameters or a missing
// model, before any clip is touched.
//
// Thread-safety: Captioner::Caption() is called concurrently from the run's worker
// threads; implementations are thread-safe. RunCaptions() uses the catalog on the
// calling thread only.

#ifndef REEL_CAPTION_CAPTIONER_H_
#define REEL_CAPTION_CAPTIONER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "db/catalog.h"
#include "util/json.h"
#include "util/status.h"

namespace reel {

// What a captioner sees of one clip.
struct ClipInput {
  ClipRecord clip;
  VideoRecord video;
  std::vector<CaptionRecord> captions;  // the clip's captions, oldest first
  std::vector<CaptionScore> scores;     // the scores of those captions
  std::vector<VideoText> texts;         // its video's sidecar texts
  // pts of the clip's frames [start_frame, end_frame) from the scan; empty when not stored
  // (or when the captioner does not need frames).
  std::vector<int64_t> frame_pts;
  bool redo = false;  // the run was asked to caption again (--redo)
  // The newest caption of `source` (any model), or nullptr.
  const CaptionRecord* Newest(std::string_view source) const;
};

// A captioner's answer for one clip.
struct CaptionOutput {
  std::string text;  // the caption; "" when the backend only scored this clip
  std::string prompt;
  Json params = Json::MakeObject();
  int attempts = 1;  // requests made (for servers)
  // Scores to store: caption id -> value, for existing captions (0 = the new caption).
  std::string score_name;
  std::string score_model;
  std::vector<std::pair<int64_t, double>> scores;
  std::optional<double> aesthetic;
};

// A per-clip failure carries the attempts made.
struct CaptionFailure {
  Status status;
  int attempts = 1;
};

class Captioner {
 public:
  virtual ~Captioner() = default;
  virtual std::string source() const = 0;  // the backend name stored with captions
  virtual std::string model() const = 0;
  // Settings recorded in the run's config.
  virtual Json config() const { return Json::MakeObject(); }
  // Whether the clip still needs this captioner. By default: it has no caption of
  // source() and model().
  virtual bool NeedsWork(const ClipInput& in) const;
  // Captions one clip. Thread-safe. Returns the output, or the failure and its attempts.
  virtual std::optional<CaptionOutput> Caption(const ClipInput& in, CaptionFailure* failure,
                                               const std::atomic<bool>* cancel) = 0;
  // Whether captions need the per-frame timestamps (frame_pts) loaded.
  virtual bool needs_frames() const { return false; }
};

// ---- backends ----

// "signals": SignalsSentence() of the stored clip signals (see caption/signals_caption.h).
std::unique_ptr<Captioner> MakeSignalsCaptioner();

// "original": the text that came with the video. Preference: a JSON sidecar's caption or
// text field, the .txt sidecar, subtitle cues overlapping the clip (joined), a JSON
// sidecar's description, summary or title, then the container's description, comment,
// synopsis or title tags. Clips with none of these are counted as without text, not as
// failures.
std::unique_ptr<Captioner> MakeOriginalCaptioner();

// An OpenAI-compatible chat completions endpoint (vLLM, llama.cpp server, Ollama, hosted
// APIs) and how to talk to it.
struct ChatEndpointParams {
  std::string url = "http://127.0.0.1:8000/v1";  // base URL, or the full .../chat/completions
  std::string api_key;  // sent as "Authorization: Bearer"; never logged or stored
  double timeout_seconds = 120;
  int retries = 4;                // extra attempts after the first
  double retry_wait_seconds = 1;  // first back-off; doubles each retry (with jitter)
  double max_retry_wait_seconds = 60;
};

struct VlmParams {
  ChatEndpointParams endpoint;
  std::string model;            // required: the model name the server knows
  std::string prompt_template;  // "" = kDefaultVlmPrompt; names: frames, duration,
                                // original, tags, signals
  std::string system_prompt;    // optional
  int frames = 8;               // evenly spaced frames sent as JPEG data URIs
  int max_side = 512;           // frames scaled so the longer side is at most this
  int jpeg_quality = 85;
  int max_tokens = 400;
  double temperature = 0.2;
};
extern const char* const kDefaultVlmPrompt;
Result<std::unique_ptr<Captioner>> MakeVlmCaptioner(const VlmParams& params);

// "merge" ("merged" captions): the clip's newest vlm, clip, signals and original captions
// folded into one by a template, or rewritten by an LLM through `endpoint` (rewrite).
// A clip is merged again when the captions it was made from change.
// Template mode stores model "template-<first 8 hex of the template's SHA-256>", so
// captions of different templates are kept apart; rewrite mode stores the LLM's name.
struct MergeParams {
  // The merge template, or with `rewrite` the message sent to the LLM; "" = the default
  // (kDefaultMergeTemplate / kDefaultRewritePrompt). Names: vlm, clip, signals, original
  // (the clip's newest caption of each backend).
  std::string template_text;
  bool rewrite = false;
  ChatEndpointParams endpoint;
  std::string model;  // the LLM (rewrite only)
  int max_tokens = 400;
  double temperature = 0.2;
};
extern const char* const kDefaultMergeTemplate;
extern const char* const kDefaultRewritePrompt;
Result<std::unique_ptr<Captioner>> MakeMergeCaptioner(const MergeParams& params);

// "clip": zero-shot tags ranked by CLIP over a few frames, folded into a caption by the
// vocabulary's template; stores CLIP's text-clip matching score (Open-Sora's: logit
// scale x cosine of the middle frame and the caption, tokens truncated to 77) for every
// caption of the clip, and the LAION aesthetic score when a predictor is given.
struct ClipTaggerParams {
  std::string model = "clip-vit-b-32";  // registry name or archive path
  std::string vocab;                    // CLIP BPE vocabulary; "" = installed clip-vocab
  std::string vocabulary_file;          // tag vocabulary; "" = the built-in one
  std::string aesthetic;                // predictor name or path; "" = none
  std::string device = "cpu";           // "cpu" or "cuda" (bf16)
  int frames = 3;                       // frames at 10%, 50%, 90% (Open-Sora's points)
  bool tags = true;                     // false: only score
};
// The built-in tag vocabulary (caption/clip_vocabulary.txt).
const std::string& DefaultClipVocabulary();
Result<std::unique_ptr<Captioner>> MakeClipCaptioner(const ClipTaggerParams& params);

// ---- the run ----

struct CaptionRunOptions {
  std::string subset;             // only clips that passed this subset ("" = all)
  std::vector<int64_t> clip_ids;  // only these clips (empty = all)
  bool include_rejected = false;  // also clips in state rejected
  bool redo = false;              // caption again clips that have a caption (replaced)
  bool retry_failed = true;       // try clips that failed before
  int64_t limit = 0;              // at most this many clips (0 = no limit)
  int jobs = 1;                   // clips in flight at once
  int batch_size = 32;            // results per transaction
  double batch_seconds = 2.0;     // commit at least this often
  std::function<void(int64_t total)> on_start;
  // After each clip is committed: its id, and the error when it failed.
  std::function<void(int64_t clip_id, const Status& status)> on_clip;
  const std::atomic<bool>* cancel = nullptr;
};

struct CaptionRunSummary {
  int64_t run_id = 0;
  int64_t clips = 0;           // clips considered
  int64_t done_before = 0;     // already captioned by this backend and model
  int64_t skipped_failed = 0;  // failed before and not retried
  int64_t captioned = 0;
  int64_t scored_only = 0;  // clips that only got scores
  int64_t no_text = 0;      // "original": clips without any text
  int64_t failed = 0;
  bool cancelled = false;
  double seconds = 0;
  std::vector<std::pair<int64_t, std::string>> failures;  // clip id, cause
  bool all_ok() const { return failed == 0 && !cancelled; }
};

Result<CaptionRunSummary> RunCaptions(Catalog& catalog, Captioner& captioner,
                                      const CaptionRunOptions& options);

}  // namespace reel

#endif  // REEL_CAPTION_CAPTIONER_H_
