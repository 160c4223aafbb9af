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
};
struct VaeTrainResult {
  double final_l1 = 0;
  // Mean PSNR of the reconstructions of `measured_clips` training clips (dB, on [0, 1]
  // pixels): all of them up to VaeTrainOptions::measure_clips, else that many.
  double psnr = 0;
  int64_t measured_clips = 0;
  int64_t steps_done = 0;  // by this call (fewer than options.steps when resumed)
};
// Trains a VAE on `clips` (a fresh one from `config`, or the one saved in `out_dir` with
// options.resume; AdamW, the learning rate decaying along a cosine to a tenth), sets its
// latent statistics from the latents of the measured clips (see VaeTrainResult) and saves
// it to `out_dir`. Stopped by `cancel`, it saves its state and returns Cancelled; an
// unfinished folder is refused by LoadVae until a --resume finishes it.
Result<VaeTrainResult> TrainVae(const ModelConfig& config, const std::vector<TrainingClip>& clips,
                                const VaeTrainOptions& options, const std::string& out_dir,
                                const StepCallback& on_step, const std::atomic<bool>* cancel);

// PSNR (dB) between videos in [-1, 1], measured on [0, 1] pixels.
double VideoPsnr(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace reel::gen

#endif  // REEL_GENERATE_VAE_TRAINING_H_
