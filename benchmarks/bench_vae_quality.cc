// How well the video VAE reconstructs clips it was not trained on: trains a VAE of a named
// configuration on random synthetic shape clips (generate/shape_clips.h) and reports the
// reconstruction PSNR (dB, pixels in [0, 1]) on those clips and on held-out ones drawn
// from the same distribution with another seed, with the training time. With --device
// cuda it trains under bf16 autocast as `reel generate train-vae --device cuda` does.
//
// Usage: bench_vae_quality [--config cpu-tiny] [--train N] [--heldout N] [--steps N]
//                          [--batch N] [--lr X] [--latent-channels N] [--mse-weight X]
//                          [--device cpu|cuda]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "benchmarks/bench_flags.h"
#include "generate/shape_clips.h"
#include "generate/vae.h"
#include "generate/vae_training.h"
#include "nets/torch_compat.h"
#include "util/files.h"

using namespace reel::gen;

namespace {

std::vector<TrainingClip> Clips(int n, uint64_t seed, const ModelConfig& c) {
  std::mt19937_64 rng(seed);
  std::vector<TrainingClip> out;
  for (int i = 0; i < n; ++i) {
    const ShapeClipSpec s = RandomShapeClip(rng, c.clip.width);
    TrainingClip t;
    t.clip_id = i + 1;
    t.caption = DescribeShapeClip(s);
    t.video = RenderShapeClip(s, c.clip.frames, c.clip.width);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "cpu-tiny", device_name = "cpu";
  int train_n = 64, heldout_n = 16, latent_channels = 0;
  double mse_weight = -1;
  VaeTrainOptions o;
  o.steps = 1500;
  o.batch = 4;
  o.lr = 1e-3;
  reel::bench::BenchFlags flags(
      "usage: bench_vae_quality [--config NAME] [--train N] [--heldout N] [--steps N] "
      "[--batch N] [--lr X] [--latent-channels N] [--mse-weight X] [--device cpu|cuda]");
  flags.Add("--config", &name);
  flags.Add("--train", &train_n);
  flags.Add("--heldout", &heldout_n);
  flags.Add("--steps", &o.steps);
  flags.Add("--batch", &o.batch);
  flags.Add("--latent-channels", &latent_channels);
  flags.Add("--mse-weight", &mse_weight);
  flags.Add("--lr", &o.lr);
  flags.Add("--device", &device_name, {"cpu", "cuda"});
  if (!flags.Parse(argc, argv)) return 2;
  o.device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (o.device.is_cuda() && !reel::compat::CudaAvailable()) {
    std::fprintf(stderr,
                 "bench_vae_quality: --device cuda: no CUDA device in this build or machine\n");
    return 1;
  }
  auto config = ModelConfig::Named(name);
  if (!config.ok()) {
    std::fprintf(stderr, "bench_vae_quality: %s\n", config.status().ToString().c_str());
    return 2;
  }
  if (latent_channels > 0) config->vae.latent_channels = latent_channels;
  if (mse_weight >= 0) config->vae.mse_weight = mse_weight;
  const std::vector<TrainingClip> train = Clips(train_n, 1, *config);
  const std::vector<TrainingClip> heldout = Clips(heldout_n, 2, *config);
  char tmpl[] = "/tmp/bench_vae_quality.XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) return 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = TrainVae(
      *config, train, o, std::string(dir) + "/vae",
      [&](int64_t step, int64_t steps, double loss) {
        if (step % 250 == 0 || step == steps)
          std::fprintf(stderr, "step %lld/%lld loss %.4f\n", static_cast<long long>(step),
                       static_cast<long long>(steps), loss);
      },
      nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "bench_vae_quality: %s\n", r.status().ToString().c_str());
    return 1;
  }
  auto vae = LoadVae(std::string(dir) + "/vae", o.device);
  if (!vae.ok()) {
    std::fprintf(stderr, "bench_vae_quality: %s\n", vae.status().ToString().c_str());
    return 1;
  }
  torch::NoGradGuard g;
  double heldout_psnr = 0, worst = 1e9;
  for (const TrainingClip& c : heldout) {
    const torch::Tensor x = c.video.unsqueeze(0).to(o.device);
    const double p = VideoPsnr(vae->vae->Decode(vae->vae->Encode(x).first)[0].cpu(), c.video);
    heldout_psnr += p / heldout.size();
    worst = std::min(worst, p);
  }
  (void)reel::RemoveTree(dir);
  std::printf(
      "%s VAE (%d latent channels, mse weight %g), %d training clips, %lld steps at batch %d, "
      "lr %g: %.0f s (%s, %d torch threads)\n",
      name.c_str(), config->vae.latent_channels, config->vae.mse_weight, train_n,
      static_cast<long long>(o.steps), o.batch, o.lr, secs, device_name.c_str(),
      torch::get_num_threads());
  std::printf(
      "reconstruction PSNR: %lld training clips %.2f dB, %d held-out clips %.2f dB (worst "
      "%.2f)\n",
      static_cast<long long>(r->measured_clips), r->psnr, heldout_n, heldout_psnr, worst);
  return 0;
}
