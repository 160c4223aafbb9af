// Training the denoiser (with its text encoder) by rectified flow on encoded latents, and
// sampling from it (libtorch only).
//
// Randomness is stateless: everything random about global example j of step s (the
// caption dropout, t, the noise) comes from a generator seeded by (seed, s, j), and the
// data order is a permutation of the dataset per epoch seeded by (seed, epoch). So a run
// resumed from a checkpoint continues exactly (the checkpoint holds the weights, the EMA,
// the optimiser state and the step), and W data-parallel processes each taking B / W of
// the global batch make the same update as one process taking all B (gradients are
// averaged across processes before clipping).
//
// Initial weights are a function of the seed: Create() seeds libtorch's default generator
// with options.seed before building the networks (libtorch seeds it at random per process).
//
// Optimiser: AdamW with the weight decay given explicitly (0 by default), linear warm-up
// of the learning rate, gradient clipping by global norm, EMA of the weights (the EMA is
// what sampling uses). Caption dropout replaces the caption by the learned null caption.
//
// Checkpoint folder: config.json (model and training configuration, step, dataset size),
// tokenizer.txt (not with a frozen CLIP text tower: the checkpoint names it, and loading
// asks a FrozenTextLoader for it), model.pt (denoiser + text encoder), ema.pt, optimizer.pt.
// Written to a temporary folder and renamed into place, so a crash never leaves a half checkpoint;
// loading names the file that is missing or unreadable.
//
// Thread-safety: a Trainer is used by one thread at a time.

#ifndef REEL_GENERATE_TRAINER_H_
#define REEL_GENERATE_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "generate/config.h"
#include "generate/distributed.h"
#include "generate/dit.h"
#include "generate/text.h"
#include "util/json.h"
#include "util/status.h"

namespace reel::gen {

struct TrainOptions {
  int batch = 8;  // global batch (all processes together)
  double lr = 3e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  int warmup_steps = 100;
  double grad_clip = 1.0;
  double ema_decay = 0.999;
  double caption_dropout = 0.1;
  uint64_t seed = 0;
  // InvalidArgument naming the first value out of range (batch below 1, a learning rate
  // not above 0, a negative weight decay, warm-up or clipping norm (0: no clipping), betas
  // or EMA decay outside [0, 1), caption dropout outside [0, 1], or any of them not finite).
  Status Validate() const;
  Json ToJson() const;
  static TrainOptions FromJson(const Json& j);
};

// One training example: a normalised latent [C, T, H, W] and its caption.
struct LatentExample {
  torch::Tensor latent;
  std::string caption;
};

// Finds the frozen text tower a checkpoint names (TextConfig::encoder) on `device`.
using FrozenTextLoader = std::function<Result<std::shared_ptr<const FrozenClipText>>(
    const std::string& name, torch::Device device)>;

struct DataParallel {
  int rank = 0;
  int world = 1;
  Collective* comm = nullptr;  // not owned; nullptr when world == 1
  // Gradients are averaged in buckets of about this size, each sent while backward goes
  // on (GradientReducer); 0: in one all-reduce after backward.
  int64_t bucket_bytes = GradientReducer::kDefaultBucketBytes;
};

// Which example of `dataset_size` is global example `k` (k = step * batch + i): element
// k % dataset_size of epoch k / dataset_size's permutation, computed afresh (O(dataset_size)).
int64_t ExampleIndex(uint64_t seed, int64_t dataset_size, int64_t k);

// ExampleIndex with the last epoch's permutation kept, so a step costs O(batch), not
// O(batch x dataset_size) (about 3 million swaps per step at batch 32 on 100k clips).
// Not thread-safe.
class ExampleOrder {
 public:
  int64_t Index(uint64_t seed, int64_t dataset_size, int64_t k);

 private:
  uint64_t seed_ = 0;
  int64_t size_ = -1, epoch_ = -1;
  std::vector<int64_t> perm_;
};

// The configuration, training options (TrainOptions::ToJson) and step of the checkpoint
// in `dir` (written by Trainer::Save), from its config.json alone: what --resume continues
// with. NotFound without the folder, Corruption for a config.json that is not one.
Result<SavedTraining> ReadTrainerCheckpoint(const std::string& dir);

class Trainer {
 public:
  // With config.frozen_text(), `frozen` is that tower (its width must be text.width) and
  // `tokenizer` is unused; otherwise `frozen` is null.
  static Result<std::unique_ptr<Trainer>> Create(
      const ModelConfig& config, BpeTokenizer tokenizer, const TrainOptions& options,
      torch::Device device, std::shared_ptr<const FrozenClipText> frozen = nullptr);
  // Loads a checkpoint folder written by Save(). Without `optimizer` (for sampling) the
  // optimiser state is not read, and Step() refuses to run. A checkpoint trained on a
  // frozen text tower needs `frozen_text` to find it (an error names the tower otherwise).
  static Result<std::unique_ptr<Trainer>> Load(const std::string& dir, torch::Device device,
                                               bool optimizer = true,
                                               const FrozenTextLoader& frozen_text = nullptr);

  // One optimiser step on the next global batch of `data` (the same vector, in the same
  // order, on every process and across resumes, unchanged between calls: each step draws
  // the next one's examples, on CUDA while its backward runs on the device).
  // Returns the global batch's mean loss.
  // `stop` (optional), data parallel: in, whether this process wants to stop after this
  // step; out, whether any process does (voted in the step's gradient all-reduce, so every
  // process stops after the same step without a collective of its own).
  Result<double> Step(const std::vector<LatentExample>& data, const DataParallel& dp = {},
                      bool* stop = nullptr);
  // Step() without waiting for the device: the step's work is queued and its loss comes
  // back as a scalar tensor that LossValue() reads (waiting then). On one process the step
  // asks the device for nothing (no scalar read, no copy from pageable memory), so on CUDA
  // the host queues the next step while the device runs this one; the same numbers as
  // Step(). Data parallel, the stop vote is read in the step, and the loss is on the host.
  Result<torch::Tensor> LaunchStep(const std::vector<LatentExample>& data,
                                   const DataParallel& dp = {}, bool* stop = nullptr);
  // The value of a loss LaunchStep() returned for step `step` (0-based, for the message of
  // an error: a fault in the step's device work shows here, as Internal).
  static Result<double> LossValue(const torch::Tensor& loss, int64_t step);
  // The step count the run ends at (-1, the default: not known). The step that reaches it
  // does not draw the examples of a step after it.
  void set_steps_planned(int64_t steps) { steps_planned_ = steps; }
  Status Save(const std::string& dir) const;
  // Makes every process's weights and EMA (parameters and buffers) those of `root`, as
  // DistributedDataParallel does at start. The optimiser state is not sent: it is empty
  // before the first step, and a resumed run reads the same checkpoint on every process.
  Status BroadcastWeights(Collective& comm, int root = 0);

  int64_t step() const { return step_; }
  // Data parallel: how the last step's gradients were averaged (empty before one).
  GradientReducer::Stats gradient_stats() const {
    return reducer_ != nullptr ? reducer_->stats() : GradientReducer::Stats();
  }
  const ModelConfig& config() const { return config_; }
  const TrainOptions& options() const { return options_; }
  // The BPE tokenizer, or the frozen tower's CLIP tokenizer.
  const CaptionTokenizer& tokenizer() const {
    return frozen_ != nullptr ? static_cast<const CaptionTokenizer&>(*frozen_) : tokenizer_;
  }
  DiffusionTransformer& dit() { return dit_; }
  TextEncoder& text() { return text_; }
  DiffusionTransformer& ema_dit() { return ema_dit_; }
  TextEncoder& ema_text() { return ema_text_; }
  // All trainable parameters, denoiser first, in a fixed order.
  std::vector<torch::Tensor> Parameters() const;

 private:
  Trainer(const ModelConfig& config, BpeTokenizer tokenizer, const TrainOptions& options,
          torch::Device device, std::shared_ptr<const FrozenClipText> frozen);

  // One step's draws from the data: its examples, caption dropout, timesteps and noise, a
  // function of the seed, the step and this process's slice of the batch alone.
  struct DrawnBatch {
    int64_t step = -1;
    const LatentExample* data = nullptr;  // the vector it was drawn from, by address and size
    size_t data_size = 0;
    int rank = 0, world = 0;
    torch::Tensor x0, noise, t;  // on device_, float32
    torch::Tensor tokens;        // on device_: the captions' (empty where dropped)
    torch::Tensor host_tokens;   // the same on the host, for a frozen tower's cache
    torch::Tensor dropped;       // on device_, [local] bool: the caption was dropped
  };
  DrawnBatch DrawBatch(const std::vector<LatentExample>& data, int64_t step,
                       const DataParallel& dp);

  ModelConfig config_;
  BpeTokenizer tokenizer_;
  std::shared_ptr<const FrozenClipText> frozen_;
  TrainOptions options_;
  torch::Device device_;
  DiffusionTransformer dit_{nullptr}, ema_dit_{nullptr};
  TextEncoder text_{nullptr}, ema_text_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> params_;         // Parameters(), as the optimiser holds them
  std::unique_ptr<GradientReducer> reducer_;  // hooks params_; made at the first data-parallel step
  std::vector<torch::Tensor> ema_params_, ema_sources_;  // pairwise: EMA tensor, followed one
  int64_t step_ = 0;
  int64_t dataset_size_ = -1;
  ExampleOrder order_;
  std::optional<DrawnBatch> next_;  // the next step's, drawn ahead (see Step)
  int64_t steps_planned_ = -1;
  bool optimizer_loaded_ = true;  // checked on every step: the order depends on it
};

struct SampleOptions {
  int steps = 30;
  double cfg = 7.0;
  uint64_t seed = 0;
  int64_t first_index = 0;  // prompt i of this call is prompt first_index + i of the job
};

// Latents [N, C, T, H, W] (normalised) for `prompts` with the given networks (use the EMA
// ones); prompt i's noise comes from (seed, first_index + i), so a prompt's sample does
// not depend on the others in the batch or on how the job was split into batches.
torch::Tensor SampleLatents(DiffusionTransformer& dit, TextEncoder& text,
                            const CaptionTokenizer& tokenizer, const ModelConfig& config,
                            const std::vector<std::string>& prompts, const SampleOptions& options,
                            torch::Device device);

}  // namespace reel::gen

#endif  // REEL_GENERATE_TRAINER_H_
