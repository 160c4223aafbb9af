// Generator throughput (libtorch only, so it builds on the GPU machine too): denoiser
// training steps per second and VAE training steps per second for a configuration on
// random data, the denoiser's forward and forward + backward alone (so the rest of a step
// shows), the peak resident memory of the process, and the seconds to sample one clip at
// 30 Euler steps with guidance.
//
// With --device cuda the denoiser trains under bf16 autocast and the model FLOPs
// utilisation is reported against --peak-tflops (989.4: an H100 SXM's dense bf16 peak).
//
// --qk-norm composite runs the queries' and keys' norm and rotary positions as separate
// ATen operators instead of the fused operator (generate/qk_norm.h), --norm-modulate
// composite the LayerNorm + modulation (generate/norm_modulate.h), and --gated-residual
// composite the gated residual adds (generate/gated_residual.h), to measure one against
// the other; --denoiser-only stops after the denoiser's figures (no VAE, no sampling).
// --grad-checkpointing yes trains the denoiser with activation checkpointing (each block
// recomputed in the backward), to measure its memory against its time. --loss-read lagged
// (the default, as `reel generate train` does) reads each step's loss after the next step
// is queued, so the host never waits for the device; --loss-read each waits for every
// step's loss before queuing the next (Trainer::Step), to measure what that wait costs.
//
// On CUDA it also prints what libtorch's caching allocator saw during the denoiser's
// training: peak allocated and reserved bytes, and the allocations it had to retry after
// freeing its cache (each retry synchronises the device; a step near the card's memory
// can spend its time there).
//
// Usage: bench_generate [--config cpu-tiny|cpu-small|h100-b] [--batch N] [--steps N]
//                       [--device cpu|cuda] [--peak-tflops X] [--qk-norm fused|vector|composite]
//                       [--norm-modulate fused|composite] [--gated-residual fused|composite]
//                       [--denoiser-only yes|no] [--grad-checkpointing yes|no]
//                       [--loss-read lagged|each]

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "benchmarks/bench_flags.h"
#include "benchmarks/bench_trainer.h"
#include "generate/config.h"
#include "generate/optim.h"
#include "generate/trainer.h"
#include "generate/vae.h"
#include "nets/torch_compat.h"

#if defined(REEL_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace reel::gen;
using Clock = std::chrono::steady_clock;

namespace {

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Model FLOPs of one training step (forward + backward = 3 x forward) of the denoiser, the
// way MFU is usually counted: the matmuls of every token through every block, plus the
// attention score and value products (full attention over N tokens: 4 N^2 d per block;
// factorised: per frame and per position), plus cross-attention to L text tokens. The
// per-example adaLN modulation, norms and the small text encoder are left out.
double ModelFlopsPerStep(const ModelConfig& c, int batch) {
  const double d = c.dit.width, n = static_cast<double>(c.tokens());
  const double l = c.text.max_tokens, dt = c.text.width, r = c.dit.mlp_ratio;
  const double p = c.dit.patch_size;
  const double frames = static_cast<double>(c.latent_frames()), per_frame = n / frames;
  const bool full =
      c.dit.attention == AttentionMode::kFull ||
      (c.dit.attention == AttentionMode::kAuto && c.tokens() <= c.dit.full_attention_max_tokens);
  const double linear_per_token = (6 + 2 * r) * d * d;  // qkv, proj, cross q/proj, MLP
  const double attention =
      full ? 4 * n * n * d : 4 * d * (frames * per_frame * per_frame + per_frame * frames * frames);
  const double block = 2 * n * linear_per_token + 2 * l * 2 * d * dt + attention + 4 * n * l * d;
  const double io = 2 * n * 2 * (c.vae.latent_channels * p * p * d);  // patch embed + output
  return 3.0 * batch * (c.dit.depth * block + io);
}

// Milliseconds per forward of the denoiser alone (no autograd) and per forward plus
// backward (no optimiser), on random inputs shaped like a training batch: what the rest
// of a training step costs (data, text encoder, optimiser, EMA, clipping) is the
// difference from a full step.
std::pair<double, double> TimeDenoiser(DiffusionTransformer& dit, const ModelConfig& c, int batch,
                                       int reps, torch::Device device) {
  const auto on = torch::TensorOptions().device(device);
  const torch::Tensor x = torch::randn(
      {batch, c.vae.latent_channels, c.latent_frames(), c.latent_height(), c.latent_width()}, on);
  const torch::Tensor t = torch::rand({batch}, on);
  const torch::Tensor text = torch::randn({batch, c.text.max_tokens, c.text.width}, on);
  const torch::Tensor mask = torch::ones({batch, c.text.max_tokens}, on.dtype(torch::kBool));
  auto pass = [&](bool backward) {
    reel::compat::CudaBf16Autocast amp(device.is_cuda());
    if (!backward) {
      torch::NoGradGuard g;
      (void)dit->forward(x, t, text, mask);
      return;
    }
    dit->forward(x, t, text, mask).to(torch::kFloat).pow(2).mean().backward();
  };
  auto time = [&](bool backward) {
    pass(backward);  // warm-up
    if (device.is_cuda()) torch::cuda::synchronize();
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) pass(backward);
    if (device.is_cuda()) torch::cuda::synchronize();
    return 1e3 * Since(t0) / reps;
  };
  return {time(false), time(true)};
}

// The attention implementations libtorch picks for the denoiser's operands, laid out as
// the model lays them out (bf16 on CUDA): self-attention over [B, N, H, hd] slices of the
// qkv projection, cross-attention to the text with its mask.
std::string AttentionBackends(const ModelConfig& c, int batch, torch::Device device) {
  const int64_t b = batch, n = c.tokens(), h = c.dit.heads, hd = c.dit.width / c.dit.heads;
  const int64_t l = c.text.max_tokens;
  const auto on = torch::TensorOptions().device(device).dtype(device.is_cuda() ? torch::kBFloat16
                                                                               : torch::kFloat);
  const auto qkv = torch::randn({b, n, 3, h, hd}, on).unbind(2);
  const torch::Tensor q = torch::randn({b, n, h, hd}, on).transpose(1, 2);
  const auto kv = torch::randn({b, l, 2, h, hd}, on).unbind(2);
  const torch::Tensor mask = torch::ones({b, 1, 1, l}, on.dtype(torch::kBool));
  return "self-attention " + reel::compat::AttentionBackend(q, q, qkv[2].transpose(1, 2)) +
         ", cross-attention " +
         reel::compat::AttentionBackend(q, kv[0].transpose(1, 2), kv[1].transpose(1, 2), mask);
}

// The caching allocator's figures since the process started (CUDA only).
std::string CudaAllocatorReport(torch::Device device) {
#if defined(REEL_TORCH_CUDA)
  if (!device.is_cuda()) return "";
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(device.index() < 0 ? 0 : device.index());
  // Index 0 of each StatArray is the aggregate over small and large pools (StatType's
  // AGGREGATE, whose namespace differs between libtorch versions).
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  char line[256];
  std::snprintf(line, sizeof line,
                "CUDA allocator so far (training, then the denoiser timed): peak allocated %.1f "
                "GiB, peak reserved %.1f "
                "GiB, %lld allocations retried after freeing the cache, %lld out of memory",
                static_cast<double>(stats.allocated_bytes[0].peak) / kGiB,
                static_cast<double>(stats.reserved_bytes[0].peak) / kGiB,
                static_cast<long long>(stats.num_alloc_retries),
                static_cast<long long>(stats.num_ooms));
  return line;
#else
  (void)device;
  return "";
#endif
}

double PeakRssMiB() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "cpu-tiny", device_name = "cpu", denoiser_only = "no", checkpointing = "no",
              loss_read = "lagged";
  reel::bench::FusedOpFlags fused;
  int batch = 8, steps = 50;
  double peak_tflops = 989.4;  // H100 SXM, dense bf16
  reel::bench::BenchFlags flags(
      "usage: bench_generate [--config NAME] [--batch N] [--steps N] [--device cpu|cuda] "
      "[--peak-tflops X] [--qk-norm fused|vector|composite] [--norm-modulate fused|composite] "
      "[--gated-residual fused|composite] [--denoiser-only yes|no] [--grad-checkpointing yes|no] "
      "[--loss-read lagged|each]");
  flags.Add("--config", &name);
  flags.Add("--batch", &batch);
  flags.Add("--steps", &steps);
  flags.Add("--device", &device_name, {"cpu", "cuda"});
  flags.Add("--peak-tflops", &peak_tflops);
  fused.Add(flags);
  flags.Add("--denoiser-only", &denoiser_only, {"yes", "no"});
  flags.Add("--grad-checkpointing", &checkpointing, {"yes", "no"});
  flags.Add("--loss-read", &loss_read, {"lagged", "each"});
  if (!flags.Parse(argc, argv)) return 2;
  fused.Apply();
  reel::bench::BenchTrainer bt;
  if (int rc = reel::bench::MakeBenchTrainer("bench_generate", name, device_name, batch, &bt))
    return rc;
  const ModelConfig* config = &bt.config;
  const torch::Device device = bt.device;
  Trainer* trainer = bt.trainer.get();
  const std::vector<LatentExample>& data = bt.data;
  trainer->dit()->SetActivationCheckpointing(checkpointing == "yes");
  int64_t dit_params = 0;
  for (const auto& p : trainer->dit()->parameters()) dit_params += p.numel();
  // Steps as `reel generate train` runs them: each loss read once the next step is queued.
  auto train = [&](int n) {
    torch::Tensor pending;
    for (int i = 0; i < n; ++i) {
      if (loss_read == "each") {
        (void)trainer->Step(data);
        continue;
      }
      reel::Result<torch::Tensor> loss = trainer->LaunchStep(data);
      if (pending.defined()) (void)Trainer::LossValue(pending, trainer->step() - 2);
      pending = loss.ok() ? *loss : torch::Tensor();
    }
    if (pending.defined()) (void)Trainer::LossValue(pending, trainer->step() - 1);
  };
  train(3);  // warm-up
  auto t0 = Clock::now();
  train(steps);
  if (device.is_cuda()) torch::cuda::synchronize();
  const double dit_sps = steps / Since(t0);
  const auto [forward_ms, forward_backward_ms] =
      TimeDenoiser(trainer->dit(), *config, batch, std::max(3, steps / 5), device);

  std::printf(
      "%s: %d frames %dx%d, %lld tokens, DiT %.2fM parameters, %d torch threads, %s, "
      "%s%s\n",
      name.c_str(), config->clip.frames, config->clip.width, config->clip.height,
      static_cast<long long>(config->tokens()), dit_params / 1e6, torch::get_num_threads(),
      device_name.c_str(), fused.Describe().c_str(),
      checkpointing == "yes" ? ", activation checkpointing" : "");
  std::printf("attention kernels: %s\n", AttentionBackends(*config, batch, device).c_str());
  std::printf("denoiser training: %.2f steps/s at batch %d (%.1f clips/s)\n", dit_sps, batch,
              dit_sps * batch);
  if (const std::string a = CudaAllocatorReport(device); !a.empty()) std::printf("%s\n", a.c_str());
  const double flops = ModelFlopsPerStep(*config, batch);
  std::printf("model FLOPs per training step: %.3g; achieved %.3g TFLOP/s", flops,
              flops * dit_sps / 1e12);
  if (device.is_cuda())
    std::printf(", MFU %.1f %% of %.1f TFLOP/s (bf16 autocast)",
                100 * flops * dit_sps / 1e12 / peak_tflops, peak_tflops);
  std::printf("\n");
  std::printf(
      "denoiser alone at batch %d: forward %.1f ms, forward + backward %.1f ms; a whole "
      "training step %.1f ms\n",
      batch, forward_ms, forward_backward_ms, 1e3 / dit_sps);
  std::fflush(stdout);
  if (denoiser_only == "yes") {
    std::printf("peak resident memory: %.1f MiB\n", PeakRssMiB());
    return 0;
  }

  VideoVae vae(config->vae);
  vae->to(device);
  torch::optim::AdamW opt(vae->parameters(), torch::optim::AdamWOptions(1e-4));
  const torch::Tensor clips =
      torch::rand({4, 3, config->clip.frames, config->clip.height, config->clip.width}, device) *
          2 -
      1;
  const int vae_steps = std::max(5, steps / 5);
  const std::vector<torch::Tensor> vae_params = vae->parameters();
  auto vae_step = [&] {  // as TrainVae: bf16 autocast on CUDA, multi-tensor optimiser
    ZeroGrads(vae_params);
    torch::Tensor loss;
    {
      reel::compat::CudaBf16Autocast amp(device.is_cuda());
      loss = vae->Loss(clips).total;
    }
    loss.backward();
    ClipGradNorm(vae_params, 1.0);
    AdamWStep(opt);
  };
  for (int i = 0; i < 2; ++i) vae_step();
  t0 = Clock::now();
  for (int i = 0; i < vae_steps; ++i) vae_step();
  if (device.is_cuda()) torch::cuda::synchronize();
  const double vae_sps = vae_steps / Since(t0);

  SampleOptions so;
  so.steps = 30;
  so.cfg = 7;
  double denoise_s = 0, decode_s = 0;
  {
    torch::NoGradGuard g;
    t0 = Clock::now();
    const torch::Tensor z =
        SampleLatents(trainer->ema_dit(), trainer->ema_text(), trainer->tokenizer(), *config,
                      {bt.captions[0]}, so, device);
    if (device.is_cuda()) torch::cuda::synchronize();
    denoise_s = Since(t0);
    t0 = Clock::now();
    vae->eval();
    (void)vae->Decode(vae->Denormalize(z));
    if (device.is_cuda()) torch::cuda::synchronize();
    decode_s = Since(t0);
  }
  std::printf("VAE training: %.2f steps/s at batch 4\n", vae_sps);
  std::printf(
      "sampling one clip, 30 steps with guidance, VAE decode included: %.2f s (denoising %.2f s, "
      "decode %.2f s)\n",
      denoise_s + decode_s, denoise_s, decode_s);
  std::printf("peak resident memory: %.1f MiB\n", PeakRssMiB());
  return 0;
}
