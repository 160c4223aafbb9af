// reel's fused operators against the ATen operators they replace, forward and backward
// together, at a DiT block's shapes: on the CPU at cpu-small's (batch 8, 80 tokens, width
// 192), with REEL_BENCH_DEVICE=cuda at h100-b's (batch 32, 1,280 tokens, width 768) with
// the matmul side in bf16 as under autocast (the device synchronised at each iteration's
// end). Items per second are elements of one [B, N, D] activation.
//
//   gated_residual/fused|composite   residual + gate y (generate/gated_residual.h) against
//                                    addcmul
//   norm_modulate/fused|composite    LayerNorm (1 + scale) + shift (norm_modulate.h) against
//                                    layer_norm, addcmul and a cast
//   affine_layer_norm/as_norm_modulate|layer_norm
//                                    LayerNorm with weight and bias through the fused
//                                    operator (what AffineLayerNorm runs on CUDA) against
//                                    layer_norm with them and a cast
//
// Torch uses its default intra-op threads; set OMP_NUM_THREADS to change.

#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "generate/gated_residual.h"
#include "generate/norm_modulate.h"

namespace reel {
namespace {

bool OnCuda() {
  const char* d = std::getenv("REEL_BENCH_DEVICE");
  return d != nullptr && std::string(d) == "cuda";
}

struct Shapes {
  torch::Device device = torch::kCPU;
  int64_t b = 8, n = 80, d = 192;
  torch::ScalarType low = torch::kFloat;  // the matmuls' dtype
};

Shapes BenchShapes() {
  if (!OnCuda()) return {};
  return {torch::Device(torch::kCUDA), 32, 1280, 768, torch::kBFloat16};
}

void Sync(const Shapes& s) {
  if (s.device.is_cuda()) torch::cuda::synchronize();
}

// Runs `step` (forward and backward) as the benchmark's iterations.
template <typename Step>
void Run(benchmark::State& state, const Shapes& s, Step step) {
  for (int i = 0; i < 3; ++i) step();  // warm-up: allocator, kernels' first launch
  Sync(s);
  for (auto _ : state) {
    step();
    Sync(s);
  }
  state.SetItemsProcessed(state.iterations() * s.b * s.n * s.d);
}

// Run() with an operator's process-wide switch set to the benchmark's argument (1: fused,
// 0: composite), turned back on after.
template <typename Step>
void RunSwitched(benchmark::State& state, const Shapes& s, void (*set_fused)(bool), Step step) {
  set_fused(state.range(0) == 1);
  Run(state, s, step);
  set_fused(true);
}

void BM_GatedResidual(benchmark::State& state) {
  const Shapes s = BenchShapes();
  const auto f32 = torch::TensorOptions().device(s.device);
  const torch::Tensor residual = torch::randn({s.b, s.n, s.d}, f32).requires_grad_();
  const torch::Tensor ada = torch::randn({s.b, 6 * s.d}, f32.dtype(s.low)).requires_grad_();
  const torch::Tensor y = torch::randn({s.b, s.n, s.d}, f32.dtype(s.low)).requires_grad_();
  const torch::Tensor grad = torch::randn({s.b, s.n, s.d}, f32);
  RunSwitched(state, s, gen::SetFusedGatedResidual,
              [&] { gen::GatedResidual(residual, ada.narrow(1, 2 * s.d, s.d), y).backward(grad); });
}
BENCHMARK(BM_GatedResidual)->Arg(1)->Arg(0)->ArgName("fused")->Unit(benchmark::kMillisecond);

void BM_NormModulate(benchmark::State& state) {
  const Shapes s = BenchShapes();
  const auto f32 = torch::TensorOptions().device(s.device);
  const torch::Tensor x = torch::randn({s.b, s.n, s.d}, f32).requires_grad_();
  const torch::Tensor ada = torch::randn({s.b, 6 * s.d}, f32).requires_grad_();
  const torch::Tensor grad = torch::randn({s.b, s.n, s.d}, f32.dtype(s.low));
  RunSwitched(state, s, gen::SetFusedNormModulate, [&] {
    gen::NormModulate(x, ada.narrow(1, 0, s.d), ada.narrow(1, s.d, s.d), s.low).backward(grad);
  });
}
BENCHMARK(BM_NormModulate)->Arg(1)->Arg(0)->ArgName("fused")->Unit(benchmark::kMillisecond);

void BM_AffineLayerNorm(benchmark::State& state) {
  const bool as_norm_modulate = state.range(0) == 1;
  const Shapes s = BenchShapes();
  const auto f32 = torch::TensorOptions().device(s.device);
  const torch::Tensor x = torch::randn({s.b, s.n, s.d}, f32).requires_grad_();
  const torch::Tensor w = (1 + 0.1 * torch::randn({s.d}, f32)).requires_grad_();
  const torch::Tensor bias = (0.1 * torch::randn({s.d}, f32)).requires_grad_();
  const torch::Tensor grad = torch::randn({s.b, s.n, s.d}, f32.dtype(s.low));
  Run(state, s, [&] {
    torch::Tensor out;
    if (as_norm_modulate) {
      out = gen::AffineLayerNormAsNormModulate(x, w, bias, s.low);
    } else {
      out = torch::layer_norm(x, {s.d}, w, bias, 1e-6).to(s.low);
    }
    out.backward(grad);
  });
}
BENCHMARK(BM_AffineLayerNorm)
    ->Arg(1)
    ->Arg(0)
    ->ArgName("as_norm_modulate")
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace reel

BENCHMARK_MAIN();
