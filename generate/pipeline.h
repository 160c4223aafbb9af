// The generator's jobs over the catalog: training clips from a subset, the VAE, latent
// caches, denoiser training with a run in the catalog, and sampling to MP4 files recorded
// as a generation run (which `reel eval run --fake run:CATALOG#RUN` reads).
//
// Training clips: the passing clips of a subset, each read as `frames` frames at the
// configuration's frame rate from the clip's first frame (the frame at or after each
// time), scaled so the shorter side fits and centre-cropped to height x width, as float
// [3, T, H, W] in [-1, 1], with the caption `prefer` selects. A clip too short for that
// is skipped and counted ("shorter than 17 frames at 8 fps"); one without a caption
// trains unconditionally (its caption is ""); an unreadable one is skipped with its cause.
//
// Thread-safety: each function uses the catalog on the calling thread only.

#ifndef REEL_GENERATE_PIPELINE_H_
#define REEL_GENERATE_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "db/catalog.h"
#include "generate/clip_file.h"
#include "generate/config.h"
#include "generate/trainer.h"
#include "generate/vae.h"
#include "generate/vae_training.h"
#include "util/status.h"

namespace reel::gen {

struct ClipSetStats {
  int64_t listed = 0;
  int64_t loaded = 0;
  std::map<std::string, int64_t> skipped;  // reason -> count
  std::vector<std::string> errors;         // first few unreadable clips, with causes
};

struct LoadClipsOptions {
  int jobs = 2;           // decoding threads
  int64_t max_clips = 0;  // at most this many, spread evenly over the subset (0: all)
};
// The usable clips of `subset` at `shape` with their selected captions (`prefer`), in
// subset order, held in memory as float32 (3·frames·height·width·4 bytes each: for a few
// clips; DecodeTrainingClips for a subset); too-short and unreadable ones are counted in
// `stats` and left out. An unknown subset is NotFound; one without usable clips
// FailedPrecondition.
Result<std::vector<TrainingClip>> LoadTrainingClips(Catalog& catalog, const std::string& subset,
                                                    const std::vector<std::string>& prefer,
                                                    const ClipShape& shape, ClipSetStats* stats,
                                                    const LoadClipsOptions& options = {});

// Clips done (usable or skipped) and to do in this call: (0, total) first, then after
// each clip.
using ProgressCallback = std::function<void(int64_t done, int64_t total)>;

struct DecodeClipsOptions {
  int jobs = 2;           // decoding threads
  int64_t max_clips = 0;  // at most this many, spread evenly over the subset (0: all)
  // The clips to decode may add at most this many bytes to the file (0: the free space of
  // its filesystem less 1 GB); more is refused before decoding, with the max_clips that
  // fits.
  uint64_t max_bytes = 0;
  double save_every_seconds = 300;  // a kept file is committed this often while decoding
  // Before decoding, drop from the file the records this call does not use
  // (ClipFile::Compact), so that it holds only the clips of this run.
  bool compact = false;
};
struct DecodedClips {
  std::unique_ptr<ClipSet> clips;  // the usable clips, in subset order; reads `file`
  int64_t decoded = 0;             // clips decoded by this call
  int64_t reused = 0;              // clips the file already held
  // Records of the file this call does not use (clips outside the subset or max_clips,
  // clips decoded again because their frames changed): dead weight in a kept file unless
  // options.compact drops them.
  int64_t unused = 0;
  int64_t dropped = 0;  // records removed from the file first (options.compact)
};
// `reel generate train-vae`'s clips: decodes the usable clips of `subset` at the file's
// shape into `file` (ClipFile: 8-bit, on disk) on options.jobs threads, with a bounded
// number in memory, and returns them as a ClipSet over the file, which must outlive it.
// Clips the file already holds (the same clip over the same frames) are not decoded again.
// Too-short and unreadable clips are counted in `stats` and left out. Stopped by
// `cancel`, it commits what it decoded and returns Cancelled.
Result<DecodedClips> DecodeTrainingClips(Catalog& catalog, const std::string& subset,
                                         ClipFile& file, const DecodeClipsOptions& options,
                                         ClipSetStats* stats, const ProgressCallback& on_clip,
                                         const std::atomic<bool>* cancel);

// Normalised latents of `clips` with the VAE (chunked encoding), ready for training.
std::vector<LatentExample> EncodeLatents(VideoVae& vae, const std::vector<TrainingClip>& clips);

// A latent cache (`reel generate prepare`): the normalised latents, captions and clip ids
// of a subset under one VAE, so training never decodes video.
struct LatentCache {
  std::vector<LatentExample> examples;
  std::vector<int64_t> clip_ids;
  std::string vae_dir;
  Json model;                           // the VAE's model configuration
  std::vector<double> vae_fingerprint;  // VaeFingerprint of the VAE that encoded them
  bool complete = true;                 // false: written by a prepare still running or stopped
  // Encoded by an older reel, which picked other frames of each clip than `reel export
  // --fps` (format 1): usable, but not the clips export gives; --resume encodes them again.
  bool old_frame_picks = false;
};
// Written to a temporary file and renamed into place.
Status SaveLatentCache(const LatentCache& cache, const std::string& path);
// An unfinished cache is FailedPrecondition (saying how to finish it) unless
// `allow_unfinished`.
Result<LatentCache> LoadLatentCache(const std::string& path, bool allow_unfinished = false);

// Sums of a VAE's weights (plain and absolute, in float64): tells one VAE from another.
std::vector<double> VaeFingerprint(const VideoVae& vae);

struct PrepareOptions {
  std::vector<std::string> prefer;     // caption policy (ParseCaptionPreference)
  int jobs = 2;                        // decoding threads
  torch::Device device = torch::kCPU;  // where the VAE encodes (float32 everywhere)
  // Continue the cache at the output path: its latents of clips still in the subset are
  // kept (with their current captions), those of clips no longer in it dropped, and only
  // the other clips encoded. It must come from the same VAE. Without it, an unfinished
  // cache there is refused and a finished one replaced.
  bool resume = false;
  double save_every_seconds = 300;  // the unfinished cache is written this often
};
struct PrepareResult {
  int64_t encoded = 0;  // clips encoded by this call
  int64_t kept = 0;     // latents kept from the cache resumed
  int64_t dropped = 0;  // latents of the resumed cache whose clips left the subset
  int64_t stale = 0;    // latents of the resumed cache dropped for their old frame picks
  int64_t total = 0;    // latents in the cache written
  // Stopped by `cancel`: the cache written is unfinished (none is written when no latent
  // was ready: total == 0).
  bool cancelled = false;
};
// `reel generate prepare`: encodes the usable clips of `subset` with the VAE in `vae_dir`
// into a latent cache at `out_path`, decoding on options.jobs threads while this thread
// encodes, with a bounded number of clips in memory (a subset of any size). Unreadable
// and too-short clips are counted in `stats` and left out. Stopped by `cancel`, it writes
// what it has as an unfinished cache (resumable) and says so in the result.
Result<PrepareResult> PrepareLatents(Catalog& catalog, const std::string& subset,
                                     const std::string& vae_dir, const PrepareOptions& options,
                                     const std::string& out_path, ClipSetStats* stats,
                                     const ProgressCallback& on_clip,
                                     const std::atomic<bool>* cancel);

// The frozen CLIP text tower `name_or_path` names (a registry name such as clip-vit-b-32,
// installed in the models folder, or a CLIP .pt file) with the installed CLIP vocabulary,
// on `device` (bf16 there when CUDA). A missing model or vocabulary is NotFound saying
// which and how to fetch it. Fits Trainer::Load's FrozenTextLoader.
Result<std::shared_ptr<const FrozenClipText>> LoadFrozenTextEncoder(const std::string& name_or_path,
                                                                    torch::Device device);

// `config` made to fit a frozen text tower: text.width and text.vocab_size become the
// tower's, text.max_tokens at most its context length.
ModelConfig WithFrozenText(ModelConfig config, const FrozenClipText& frozen);

struct DenoiserTrainOptions {
  std::string name;  // the run's name in the catalog
  int64_t steps = 1000;
  int64_t save_every = 200;
  // Continue the checkpoint in ckpt_dir (when there is one) with its own configuration
  // and training options: `config` and `train` are then not used (ReadTrainerCheckpoint
  // tells what will be, for a caller to compare). A checkpoint that already reached
  // `steps` is refused (AlreadyTrained).
  bool resume = false;
  TrainOptions train;
  // Data-parallel processes (see generate/distributed.h): every process runs this with the
  // same data and options; rank 0 alone records the run and writes checkpoints.
  DataParallel parallel;
  // Where the networks train (CUDA: bf16 autocast; CPU: float32).
  torch::Device device = torch::kCPU;
  // Recompute each denoiser block's activations in the backward instead of keeping them
  // (DiffusionTransformerImpl::SetActivationCheckpointing): the same training in less
  // memory, for about one more forward pass per step. Not part of the checkpoint: a
  // resumed run may turn it on or off.
  bool activation_checkpointing = false;
};
struct DenoiserTrainResult {
  int64_t run_id = 0;
  int64_t steps_done = 0;
  double final_loss = 0;
  double steps_per_second = 0;
  bool cancelled = false;
  GradientReducer::Stats gradients;  // data parallel: how the last step's were averaged
  // Training captions longer than the text encoder's max_tokens, which it reads cut.
  int64_t captions_cut = 0;
  int64_t longest_caption_tokens = 0;
  int max_tokens = 0;
};
// Trains (or, with resume, continues) the denoiser in `ckpt_dir` on latents, recording a
// run of kind "train" (config, then the loss curve as a "loss_curve" metric with its
// steps and losses, refreshed at every checkpoint). `catalog` is not used (and may be
// null) on data-parallel ranks other than 0. When config.text.encoder names a CLIP
// model, its text tower is loaded (LoadFrozenTextEncoder) and used frozen.
Result<DenoiserTrainResult> TrainDenoiser(Catalog* catalog, const ModelConfig& config,
                                          const std::vector<LatentExample>& data,
                                          const std::vector<std::string>& captions_for_tokenizer,
                                          const DenoiserTrainOptions& options,
                                          const std::string& ckpt_dir, const StepCallback& on_step,
                                          const std::atomic<bool>* cancel);

struct SampleJob {
  std::string name;  // the generation run's name
  std::vector<std::string> prompts;
  std::vector<std::optional<int64_t>> clip_ids;     // per prompt, when it came from a clip
  std::vector<std::optional<int64_t>> caption_ids;  // per prompt
  SampleOptions sample;
  int batch = 4;
  // Continue the newest generation run named `name` (needs the catalog and a name): it
  // must have sampled into the same folder with the same checkpoint, VAE, steps, cfg,
  // seed and batch. Its files whose prompt (at the same index) is still the job's are
  // kept, the others sampled, and a new run of the same name lists them all (the one
  // `run:CATALOG#NAME` reads). The files equal those of a run made in one go.
  bool resume = false;
};
struct SampleResult {
  int64_t run_id = 0;
  std::vector<std::string> files;  // every prompt's, in prompt order
  int64_t kept = 0;                // files of the resumed run kept
  // Prompts longer than the text encoder reads, cut to its first max_tokens positions
  // (as CLIP cuts at 77): their index and uncut length, special tokens included.
  struct CutPrompt {
    size_t index = 0;
    int64_t tokens = 0;
  };
  std::vector<CutPrompt> cut;
  int max_tokens = 0;
};
// Samples every prompt with the checkpoint's EMA networks, decodes with the VAE, writes
// out_dir/NNNNNN.mp4 and records a run of kind "generate" with one generation row per
// file (prompt, clip, caption, seed, checkpoint), `batch` prompts per forward. A prompt
// longer than the text encoder's max_tokens is cut (listed in `cut`, its generation's
// params.prompt_tokens holds the uncut length).
// `on_clip` is told (0, total) first, then the prompts done after each batch. Stopped
// by `cancel` between batches, the run is recorded as interrupted with the files written
// so far, and Cancelled says how to continue it. A file there that the catalog lists as
// another generation run's (not one of the runs a resumed job continues) is not
// overwritten: AlreadyExists, before anything is sampled or recorded.
Result<SampleResult> SampleToFiles(Catalog* catalog, const std::string& ckpt_dir,
                                   const std::string& vae_dir, const SampleJob& job,
                                   const std::string& out_dir, torch::Device device,
                                   const ProgressCallback& on_clip = nullptr,
                                   const std::atomic<bool>* cancel = nullptr);

}  // namespace reel::gen

#endif  // REEL_GENERATE_PIPELINE_H_
