// Data-parallel training steps with the gradients averaged in buckets sent while backward
// runs (GradientReducer) against one all-reduce after backward (--bucket-mb 0). Started
// torchrun-style, one process per rank; rank 0 prints. For two ranks on this machine:
//
//   for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_PORT=29517 \
//     build/benchmarks/bench_data_parallel --config cpu-small --batch 8 & done; wait
//
// For each --bucket-mb value (comma-separated) it makes a fresh trainer, runs --warmup
// steps, then times --steps steps. Without WORLD_SIZE it times one process on the local
// batch, with no collective: the floor the data-parallel steps are compared to. With
// --device cuda each rank trains on its current GPU: give each its own with
// CUDA_VISIBLE_DEVICES=LOCAL_RANK.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "benchmarks/bench_flags.h"
#include "benchmarks/bench_trainer.h"
#include "generate/distributed.h"
#include "generate/trainer.h"

using namespace reel::gen;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string name = "cpu-small", device_name = "cpu", buckets = "0,1,25", backend_name = "auto";
  int batch = 8, steps = 10, warmup = 2;
  reel::bench::BenchFlags flags(
      "usage: bench_data_parallel [--config NAME] [--batch N (global)] [--steps N] "
      "[--warmup N] [--bucket-mb LIST] [--device cpu|cuda] [--backend auto|gloo|nccl]");
  flags.Add("--config", &name);
  flags.Add("--batch", &batch);
  flags.Add("--steps", &steps);
  flags.Add("--warmup", &warmup);
  flags.Add("--bucket-mb", &buckets);
  flags.Add("--device", &device_name, {"cpu", "cuda"});
  flags.Add("--backend", &backend_name, {"auto", "gloo", "nccl"});
  if (!flags.Parse(argc, argv)) return 2;
  auto env = LaunchEnvFromEnvironment();
  if (!env.ok()) {
    std::fprintf(stderr, "bench_data_parallel: %s\n", env.status().ToString().c_str());
    return 2;
  }
  const bool lead = env->rank == 0;
  std::unique_ptr<Collective> comm;
  if (env->world > 1) {
    auto backend = ParseCollectiveBackend(backend_name, device_name == "cuda");
    if (!backend.ok()) {
      std::fprintf(stderr, "bench_data_parallel: %s\n", backend.status().ToString().c_str());
      return 2;
    }
    auto c = Collective::Connect(*env, std::chrono::seconds(120), *backend);
    if (!c.ok()) {
      std::fprintf(stderr, "bench_data_parallel: %s\n", c.status().ToString().c_str());
      return 1;
    }
    comm = std::move(*c);
  }
  std::vector<double> sizes;
  std::stringstream list(buckets);
  for (std::string item; std::getline(list, item, ',');) {
    char* end = nullptr;
    const double mb = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(mb >= 0)) {
      std::fprintf(stderr, "bench_data_parallel: --bucket-mb: '%s' is not a size in MB\n",
                   item.c_str());
      return 2;
    }
    sizes.push_back(mb);
  }
  if (env->world == 1) sizes = {0};  // no collectives: one measurement

  for (double mb : sizes) {
    reel::bench::BenchTrainer bt;
    if (int rc = reel::bench::MakeBenchTrainer("bench_data_parallel", name, device_name,
                                               env->world > 1 ? batch : batch / 2, &bt))
      return rc;
    Trainer& trainer = *bt.trainer;
    DataParallel dp;
    double broadcast_ms = 0;
    if (env->world > 1) {
      dp = {env->rank, env->world, comm.get(), static_cast<int64_t>(mb * (1 << 20))};
      const auto b0 = Clock::now();
      if (auto s = trainer.BroadcastWeights(*comm); !s.ok()) {
        std::fprintf(stderr, "bench_data_parallel: %s\n", s.ToString().c_str());
        return 1;
      }
      broadcast_ms = std::chrono::duration<double, std::milli>(Clock::now() - b0).count();
    }
    auto step = [&] {
      if (auto r = trainer.Step(bt.data, dp); !r.ok()) {
        std::fprintf(stderr, "bench_data_parallel: %s\n", r.status().ToString().c_str());
        std::exit(1);
      }
    };
    for (int i = 0; i < warmup; ++i) step();
    const auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) step();
    if (bt.device.is_cuda()) torch::cuda::synchronize();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / steps;
    if (!lead) continue;
    int64_t params = 0;
    for (const auto& p : trainer.Parameters()) params += p.numel();
    if (env->world == 1) {
      std::printf("%s, %.2fM parameters, one process at batch %d (no collectives): %.1f ms/step\n",
                  name.c_str(), params / 1e6, batch / 2, ms);
      continue;
    }
    const GradientReducer::Stats& g = trainer.gradient_stats();
    std::printf(
        "%s, %.2fM parameters (%.1f MB of float32 gradients), %d processes at batch %d over %s, "
        "%d torch threads each: buckets of %g MB: %lld bucket%s, %lld sent while backward ran: "
        "%.1f ms/step (weights broadcast at the start: %.1f ms)\n",
        name.c_str(), params / 1e6, params * 4 / 1048576.0, env->world, batch, backend_name.c_str(),
        torch::get_num_threads(), mb, static_cast<long long>(g.buckets), g.buckets == 1 ? "" : "s",
        static_cast<long long>(g.started_in_backward), ms, broadcast_ms);
    std::fflush(stdout);
  }
  return 0;
}
