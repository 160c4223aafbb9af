#include "generate/vae_training.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <sstream>

#include "generate/checkpoint_files.h"
#include "generate/optim.h"
#include "generate/vae.h"
#include "nets/torch_compat.h"
#include "util/json.h"
#include "util/strings.h"

namespace reel::gen {

double VideoPsnr(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = ((a.clamp(-1, 1) + 1) / 2).to(torch::kDouble);
  const torch::Tensor y = ((b.clamp(-1, 1) + 1) / 2).to(torch::kDouble);
  const double mse = (x - y).pow(2).mean().item<double>();
  return mse <= 0 ? 100.0 : 10.0 * std::log10(1.0 / mse);
}

namespace {

constexpr const char* kVaeOptimizerFile = "optimizer.pt";

// The resumable part of a VAE training: the options that shape its trajectory, the step
// reached, and the clip-picking and noise generators' states.
Json VaeTrainJson(const VaeTrainOptions& o, int64_t step, const std::mt19937_64& rng) {
  std::ostringstream r;
  r << rng;
  Json t = o.ToJson();
  t["step"] = step;
  t["pick_rng"] = r.str();
  return t;
}

// Reads the resumable state of the training saved in `dir` (config.json's `train`
// object): sets the trajectory-shaping options (batch, lr, weight decay, seed; `steps` may
// grow) and the clip-picking generator; returns the step to continue from.
Result<int64_t> ReadVaeTrainState(const std::string& dir, const Json& t, VaeTrainOptions& options,
                                  std::mt19937_64& rng) {
  const char* kFields[] = {"step", "batch", "lr", "weight_decay", "seed", "pick_rng"};
  for (const char* f : kFields) {
    if (!t.is_object() || t.Find(f) == nullptr)
      return Status::FailedPrecondition(dir + ": holds no training state to resume (no train." + f +
                                        " in config.json)");
  }
  const int64_t step = t.Find("step")->as_int();
  if (step >= options.steps) return AlreadyTrained(dir, step);
  options.batch = static_cast<int>(t.Find("batch")->as_int());
  options.lr = t.Find("lr")->as_double();
  options.weight_decay = t.Find("weight_decay")->as_double();
  options.seed = static_cast<uint64_t>(t.Find("seed")->as_int());
  std::istringstream r(t.Find("pick_rng")->as_string());
  r >> rng;
  if (r.fail()) return Status::Corruption(dir + "/config.json: unreadable train.pick_rng");
  return step;
}

// Restores the optimiser and libtorch's generator for `device` saved beside the weights.
Status LoadVaeOptimizer(const std::string& dir, torch::Device device, torch::optim::AdamW& opt) {
  const std::string path = dir + "/" + kVaeOptimizerFile;
  if (!std::filesystem::exists(path)) return Status::NotFound(path + ": missing, cannot resume");
  try {
    torch::serialize::InputArchive a;
    a.load_from(path, device);
    opt.load(a);
    torch::Tensor gen_state;
    a.read("generator_state", gen_state);
    at::Generator gen = at::globalContext().defaultGenerator(device);  // shared
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(gen_state.cpu());
  } catch (const c10::Error& e) {
    return Status::Corruption(path + ": unreadable (" + FirstLine(e.what_without_backtrace()) +
                              ")");
  }
  return Status::OK();
}

// The batches of a VAE training, each read (from disk, for clips in a ClipFile) on
// another thread while the step before it trains. A batch is drawn with a copy of the
// training's generator one batch ahead of it, and the generator itself draws the same
// clips when the batch is used: the batches are those a plain loop would draw, and the
// generator is always the state to save.
class BatchReader {
 public:
  BatchReader(const ClipSet& clips, int batch, std::mt19937_64& rng)
      : clips_(clips), batch_(batch), rng_(rng), ahead_(rng) {}

  // The next batch [B, 3, T, H, W]; unless it is the `last`, the one after it is read
  // meanwhile.
  Result<torch::Tensor> Next(bool last) {
    if (!next_.valid()) next_ = ReadAsync(Draw(ahead_));
    Result<torch::Tensor> batch = next_.get();
    Draw(rng_);
    if (!last) next_ = ReadAsync(Draw(ahead_));
    return batch;
  }

 private:
  std::vector<int64_t> Draw(std::mt19937_64& g) const {
    std::uniform_int_distribution<int64_t> pick(0, clips_.size() - 1);
    std::vector<int64_t> picks;
    for (int i = 0; i < batch_; ++i) picks.push_back(pick(g));
    return picks;
  }
  std::future<Result<torch::Tensor>> ReadAsync(std::vector<int64_t> picks) const {
    return std::async(std::launch::async, [this, picks]() -> Result<torch::Tensor> {
      std::vector<torch::Tensor> videos;
      for (int64_t i : picks) {
        REEL_ASSIGN_OR_RETURN(torch::Tensor video, clips_.Video(i));
        videos.push_back(std::move(video));
      }
      return torch::stack(videos);
    });
  }

  const ClipSet& clips_;
  const int batch_;
  std::mt19937_64& rng_;
  std::mt19937_64 ahead_;
  std::future<Result<torch::Tensor>> next_;  // waited for when destroyed
};

}  // namespace

Status CheckVaeOutDir(const std::string& out_dir, bool resume) {
  const bool holds = std::filesystem::exists(out_dir + "/config.json");
  if (!resume && holds) {
    return Status::AlreadyExists(out_dir +
                                 " already holds a VAE (--resume continues its training)");
  }
  if (resume && !holds) {
    return Status::NotFound(out_dir + ": no VAE to resume (no config.json)");
  }
  return Status::OK();
}

Result<VaeTrainResult> TrainVae(const ModelConfig& config, const std::vector<TrainingClip>& clips,
                                const VaeTrainOptions& options, const std::string& out_dir,
                                const StepCallback& on_step, const std::atomic<bool>* cancel) {
  return TrainVae(config, ClipVectorSet(clips), options, out_dir, on_step, cancel);
}

Status VaeTrainOptions::Validate() const {
  if (steps < 1) return OutOfRange("VAE steps", static_cast<double>(steps), "at least 1");
  if (batch < 1) return OutOfRange("VAE batch", batch, "at least 1");
  if (!(lr > 0) || !std::isfinite(lr)) return OutOfRange("VAE learning rate", lr, "above 0");
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
    return OutOfRange("VAE weight decay", weight_decay, "0 or more");
  if (measure_clips < 1)
    return OutOfRange("clips measured", static_cast<double>(measure_clips), "at least 1");
  if (save_every < 0)
    return OutOfRange("VAE save interval", static_cast<double>(save_every), "0 or more steps");
  return Status::OK();
}

Json VaeTrainOptions::ToJson() const {
  Json t = Json::MakeObject();
  t["steps"] = steps;
  t["batch"] = static_cast<int64_t>(batch);
  t["lr"] = lr;
  t["weight_decay"] = weight_decay;
  t["seed"] = static_cast<int64_t>(seed);
  return t;
}

Result<VaeTrainResult> TrainVae(const ModelConfig& config, const ClipSet& clips,
                                const VaeTrainOptions& train_options, const std::string& out_dir,
                                const StepCallback& on_step, const std::atomic<bool>* cancel) {
  REEL_RETURN_IF_ERROR(config.Validate());
  VaeTrainOptions options = train_options;
  if (clips.size() == 0) return Status::InvalidArgument("no clips to train the VAE on");
  REEL_RETURN_IF_ERROR(options.Validate());
  REEL_RETURN_IF_ERROR(CheckVaeOutDir(out_dir, options.resume));
  const torch::Device device = options.device;
  if (device.is_cuda() && !compat::CudaAvailable())
    return Status::FailedPrecondition(
        "VAE training on cuda: no CUDA device in this build or machine");
  torch::AutoGradMode grad(true);  // whatever mode the caller is in
  torch::manual_seed(options.seed);
  std::mt19937_64 rng(options.seed);
  VideoVae vae{nullptr};
  int64_t start = 0;
  if (options.resume) {
    REEL_ASSIGN_OR_RETURN(LoadedVae saved, LoadVaeForTraining(out_dir, device));
    if (saved.config.ToJson().Find("vae")->Dump() != config.ToJson().Find("vae")->Dump()) {
      return Status::FailedPrecondition(out_dir + ": its VAE is not the configuration's (" +
                                        saved.config.name + " there, " + config.name + " here)");
    }
    REEL_ASSIGN_OR_RETURN(start, ReadVaeTrainState(out_dir, saved.train, options, rng));
    vae = saved.vae;
  } else {
    vae = VideoVae(config.vae);
  }
  vae->to(device);
  torch::optim::AdamW opt(
      vae->parameters(), torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
  if (options.resume) REEL_RETURN_IF_ERROR(LoadVaeOptimizer(out_dir, device, opt));
  // Weights, optimiser and generators at `step` (atomically, as every VAE folder).
  auto save = [&](int64_t step) {
    return SaveVae(vae, config, out_dir, [&](const std::string& tmp, Json& j) -> Status {
      j["train"] = VaeTrainJson(options, step, rng);
      try {
        torch::serialize::OutputArchive a;
        opt.save(a);
        a.write("generator_state", at::globalContext().defaultGenerator(device).get_state());
        a.save_to(tmp + "/" + kVaeOptimizerFile);
      } catch (const c10::Error& e) {
        return Status::IOError(tmp + "/" + kVaeOptimizerFile + ": " +
                               FirstLine(e.what_without_backtrace()));
      }
      return Status::OK();
    });
  };
  BatchReader batches(clips, options.batch, rng);
  VaeTrainResult result;
  try {
    vae->train();
    const std::vector<torch::Tensor> params = vae->parameters();
    for (int64_t step = start; step < options.steps; ++step) {
      if (cancel != nullptr && cancel->load()) {
        REEL_RETURN_IF_ERROR(save(step));
        return Status::Cancelled("VAE training interrupted at step " + std::to_string(step) +
                                 " of " + std::to_string(options.steps) + "; saved to " + out_dir +
                                 " (--resume continues)");
      }
      Result<torch::Tensor> batch = batches.Next(/*last=*/step + 1 == options.steps);
      if (!batch.ok())
        return batch.status().WithContext("VAE training step " + std::to_string(step));
      // Cosine decay of the learning rate to a tenth over the run.
      const double progress = static_cast<double>(step) / static_cast<double>(options.steps);
      const double lr = options.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * progress)));
      for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      ZeroGrads(params);
      VaeLoss loss;
      {
        compat::CudaBf16Autocast amp(device.is_cuda());
        loss = vae->Loss(batch->to(device));
      }
      loss.total.backward();
      ClipGradNorm(params, 1.0);
      AdamWStep(opt);
      result.final_l1 = loss.l1.item<double>();
      if (on_step) on_step(step + 1, options.steps, loss.total.item<double>());
      if (options.save_every > 0 && (step + 1) % options.save_every == 0 &&
          step + 1 < options.steps) {
        REEL_RETURN_IF_ERROR(save(step + 1));
      }
    }
    vae->eval();
    torch::NoGradGuard g;
    const int64_t n = std::min(clips.size(), options.measure_clips);
    std::vector<torch::Tensor> latents;
    double psnr = 0;
    for (int64_t i = 0; i < n; ++i) {
      REEL_ASSIGN_OR_RETURN(const torch::Tensor video, clips.Video(i * clips.size() / n));
      const torch::Tensor z = vae->Encode(video.unsqueeze(0).to(device)).first;
      latents.push_back(z);
      psnr += VideoPsnr(vae->Decode(z)[0].to(torch::kCPU, torch::kFloat), video);
    }
    result.psnr = psnr / static_cast<double>(n);
    result.measured_clips = static_cast<int64_t>(n);
    vae->SetLatentStats(torch::cat(latents, 0).to(torch::kFloat));
  } catch (const c10::Error& e) {
    return Status::Internal("VAE training: " + FirstLine(e.what_without_backtrace()));
  }
  REEL_RETURN_IF_ERROR(save(options.steps));
  result.steps_done = options.steps - start;
  return result;
}

}  // namespace reel::gen
