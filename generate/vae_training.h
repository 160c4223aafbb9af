// Training the video VAE (libtorch only, so it builds and runs on the GPU machine too):
// the clips it trains on, the training loop with its resumable state, and the PSNR it
// reports. `reel generate train-vae` reads the clips from the catalog (pipeline.h);
// bench_vae_quality makes synthetic ones (shape_clips.h).
//
// Thread-safety: TrainVae uses libtorch's default generator of its device (seeded from
// the options), so two trainings must not run at once in one process.

#ifndef REEL_GENERATE_VAE_TRAINING_H_
#define REEL_GENERATE_VAE_TRAINING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "generate/config.h"
#include "util/status.h"

namespace reel::gen {

// A clip to train on, as LoadTrainingClips reads it from the catalog (or made up).
struct TrainingClip {
  int64_t clip_id = 0;
  std::optional<int64_t> caption_id;
  std::string caption;
  torch::Tensor video;  // [3, T, H, W] float in [-1, 1]
};

// The clips a VAE trains on, read by index (TrainVae draws its batches from them).
// Thread-safety: Video may be called from several threads at once.
class ClipSet {
 public:
  virtual ~ClipSet() = default;
  virtual int64_t size() const = 0;
  // Clip i as a float video [3, T, H, W] in [-1, 1]; an I/O failure is an error.
  virtual Result<torch::Tensor> Video(int64_t i) const = 0;
};

// Clips held in memory (for a few clips: tests, benches). Does not own `clips`.
class ClipVectorSet : public ClipSet {
 public:
  explicit ClipVectorSet(const std::vector<TrainingClip>& clips) : clips_(clips) {}
  int64_t size() const override { return static_cast<int64_t>(clips_.size()); }
  Result<torch::Tensor> Video(int64_t i) const override {
    return clips_[static_cast<size_t>(i)].video;
  }

 private:
  const std::vector<TrainingClip>& clips_;
};

// Progress of a training job: step, total steps, loss.
using StepCallback = std::function<void(int64_t step, int64_t steps, double loss)>;

struct VaeTrainOptions {
  int64_t steps = 500;
  int batch = 4;
  double lr = 1e-3;
  double weight_decay = 0.0;
  uint64_t seed = 0;
  // After training, the latent statistics and the PSNR come from this many training clips
  // at most, spread evenly over the set (all of a large subset would cost minutes).
  int64_t measure_clips = 256;
  torch::Device device = torch::kCPU;  // CUDA: bf16 autocast
  // The folder is written (weights, optimiser, generators, step) every save_every steps
  // (0: only at the end) and when `cancel` stops the training.
  int64_t save_every = 500;
  // Continue the training saved in out_dir exactly (with its batch, lr, weight decay and
  // seed; `steps` may be raised). Without it, an out_dir holding a VAE is refused.
  bool resume = false;
  // InvalidArgument naming the first value out of range (steps, batch or measured clips
  // below 1, a learning rate not above 0, a negative weight decay or save interval, or
  // either rate not finite).
  Status Validate() const;
  // The options that shape the training's trajectory (steps, batch, lr, weight_decay,
  // seed), as the VAE folder saves them to resume.
  Json ToJson() const;
};
struct VaeTrainResult {
  double final_l1 = 0;
  // Mean PSNR of the reconstructions of `measured_clips` training clips (dB, on [0, 1]
  // pixels): all of them up to VaeTrainOptions::measure_clips, else that many.
  double psnr = 0;
  int64_t measured_clips = 0;
  int64_t steps_done = 0;  // by this call (fewer than options.steps when resumed)
};
// Trains a VAE on `clips`: a fresh one from `config`, or the one saved in `out_dir` with
// options.resume (AdamW, the learning rate decaying along a cosine to a tenth). Each
// batch's clips are drawn at random with a generator that is part of the saved state, so
// a resumed training draws what a straight one would. Then it sets the VAE's latent
// statistics from the latents of the measured clips (see VaeTrainResult) and saves it to
// `out_dir`. Stopped by `cancel`, it saves its state and returns Cancelled; an unfinished
// folder is refused by LoadVae until a --resume finishes it. A clip that cannot be read
// fails the training with its cause (the state saved at the last save_every stays).
Result<VaeTrainResult> TrainVae(const ModelConfig& config, const ClipSet& clips,
                                const VaeTrainOptions& options, const std::string& out_dir,
                                const StepCallback& on_step, const std::atomic<bool>* cancel);
// The same on clips in memory.
Result<VaeTrainResult> TrainVae(const ModelConfig& config, const std::vector<TrainingClip>& clips,
                                const VaeTrainOptions& options, const std::string& out_dir,
                                const StepCallback& on_step, const std::atomic<bool>* cancel);

// Whether TrainVae may write `out_dir`: one already holding a VAE only with `resume`
// (AlreadyExists), and with `resume` it must hold one (NotFound). TrainVae checks it; a
// command checks it before the minutes of decoding its clips.
Status CheckVaeOutDir(const std::string& out_dir, bool resume);

// PSNR (dB) between videos in [-1, 1], measured on [0, 1] pixels.
double VideoPsnr(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace reel::gen

#endif  // REEL_GENERATE_VAE_TRAINING_H_
