// What the denoiser benches (bench_generate, bench_step_ops) set up alike: the choice
// between reel's fused operators and ATen's composite ones (--qk-norm, --norm-modulate,
// --gated-residual),
// and a trainer for a named configuration on a device, with random latents and their
// captions to train on.

#ifndef REEL_BENCHMARKS_BENCH_TRAINER_H_
#define REEL_BENCHMARKS_BENCH_TRAINER_H_

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "benchmarks/bench_flags.h"
#include "generate/config.h"
#include "generate/gated_residual.h"
#include "generate/norm_modulate.h"
#include "generate/qk_norm.h"
#include "generate/trainer.h"
#include "nets/torch_compat.h"

namespace reel::bench {

// --qk-norm, --norm-modulate and --gated-residual, each fused|composite (--qk-norm also
// vector: the fused operator with its vectorised CUDA kernels).
struct FusedOpFlags {
  std::string qk_norm = "fused", norm_modulate = "fused", gated_residual = "fused";

  void Add(BenchFlags& flags) {
    flags.Add("--qk-norm", &qk_norm, {"fused", "vector", "composite"});
    flags.Add("--norm-modulate", &norm_modulate, {"fused", "composite"});
    flags.Add("--gated-residual", &gated_residual, {"fused", "composite"});
  }
  // Sets the process-wide switches.
  void Apply() const {
    gen::SetFusedQkNorm(qk_norm != "composite");
    gen::SetQkNormVectorKernels(qk_norm == "vector");
    gen::SetFusedNormModulate(norm_modulate == "fused");
    gen::SetFusedGatedResidual(gated_residual == "fused");
  }
  std::string Describe() const {
    return (qk_norm == "vector" ? std::string("fused (vectorised kernels)") : qk_norm) +
           " query/key norm, " + norm_modulate + " norm + modulation, " + gated_residual +
           " gated residual";
  }
};

struct BenchTrainer {
  gen::ModelConfig config;
  torch::Device device = torch::kCPU;
  std::vector<std::string> captions;
  std::vector<gen::LatentExample> data;  // random latents of the configuration's shape
  std::unique_ptr<gen::Trainer> trainer;
};

// A trainer for configuration `name` on `device_name` ("cpu" or "cuda") at `batch`, with
// max(64, batch) random examples (libtorch's generator seeded with 0 first). Returns 0,
// or the exit code after printing why to stderr as "<program>: ...": 2 for an unknown
// configuration, 1 for no CUDA or a trainer that cannot be made.
inline int MakeBenchTrainer(const char* program, const std::string& name,
                            const std::string& device_name, int batch, BenchTrainer* out) {
  auto config = gen::ModelConfig::Named(name);
  if (!config.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, config.status().ToString().c_str());
    return 2;
  }
  out->config = *config;
  out->device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (out->device.is_cuda() && !compat::CudaAvailable()) {
    std::fprintf(stderr, "%s: --device cuda: no CUDA device in this build or machine\n", program);
    return 1;
  }
  torch::manual_seed(0);
  for (int i = 0; i < std::max(64, batch); ++i) {
    out->captions.push_back("a synthetic clip number " + std::to_string(i) +
                            " moving left over a field");
    out->data.push_back({torch::randn({config->vae.latent_channels, config->latent_frames(),
                                       config->latent_height(), config->latent_width()}),
                         out->captions.back()});
  }
  auto tok = gen::BpeTokenizer::Train(out->captions, config->text.vocab_size);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, tok.status().ToString().c_str());
    return 1;
  }
  gen::TrainOptions to;
  to.batch = batch;
  auto trainer = gen::Trainer::Create(*config, *tok, to, out->device);
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, trainer.status().ToString().c_str());
    return 1;
  }
  out->trainer = std::move(*trainer);
  return 0;
}

}  // namespace reel::bench

#endif  // REEL_BENCHMARKS_BENCH_TRAINER_H_
