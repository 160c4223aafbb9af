// An inventory of the ATen operators one denoiser training step dispatches, per phase of
// the step (data, forward, backward, optimiser) and per operator: calls, the calls that
// launch work (views and other aliases do not), the bytes their tensors span, and the
// matmul FLOPs. It answers, without a GPU profiler, how much of a step is bounded by
// memory traffic and how many dispatches the host has to issue per step; on the GPU
// machine (--device cuda) it counts the same step under bf16 autocast, casts included.
//
// Then --timed-steps steps run without the census, timed per phase: the device is
// synchronised at each phase's start and end, so each phase's time is its own (at the
// cost of the overlap between phases), to set beside its bytes and FLOPs.
//
// Bytes are those of the operator's tensor inputs and outputs (a broadcast input counts
// its stored elements once), a lower bound on its memory traffic; a composite operator
// (linear, layer_norm, scaled_dot_product_attention) is counted once, as a fused kernel
// would be, and the operators it calls are not counted again.
//
// Usage: bench_step_ops [--config NAME] [--batch N] [--device cpu|cuda] [--top N]
//                       [--hbm-tbps X] [--peak-tflops X] [--qk-norm fused|vector|composite]
//                       [--norm-modulate fused|composite] [--gated-residual fused|composite]
//                       [--timed-steps N]

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include "benchmarks/bench_flags.h"
#include "benchmarks/bench_trainer.h"
#include "generate/trainer.h"

using namespace reel::gen;

namespace {

constexpr std::array<const char*, 5> kPhases = {"other", "reel::step::data", "reel::step::forward",
                                                "reel::step::backward", "reel::step::optimizer"};

struct OpTotals {
  int64_t calls = 0;
  int64_t launches = 0;  // calls whose outputs are new tensors (not views of an input)
  double bytes = 0;
  double flops = 0;
};

struct Census {
  std::mutex mu;
  bool on = false;
  int phase = 0;
  std::map<std::string, OpTotals> ops;  // "phase|name"
};

Census& TheCensus() {
  static Census c;
  return c;
}

thread_local int op_depth = 0;

// The autograd engine wraps each backward node in a FUNCTION-scope record; the operators
// it runs are what is counted.
bool IsAutogradNode(const at::RecordFunction& fn) {
  return std::strncmp(fn.name(), "autograd::", 10) == 0;
}

// The bytes a tensor's elements span (a stride-0, broadcast dimension counts once).
double SpanBytes(const at::Tensor& t) {
  if (!t.defined()) return 0;
  double n = 1;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.stride(d) != 0) n *= static_cast<double>(t.size(d));
  return n * static_cast<double>(t.element_size());
}

// (RecordFunction's inputs and outputs come as different containers of IValues.)
template <typename Values, typename F>
void ForEachTensor(const Values& values, F f) {
  for (const c10::IValue& v : values) {
    if (v.isTensor()) {
      f(v.toTensor());
    } else if (v.isTensorList()) {
      for (const at::Tensor& t : v.toTensorVector()) f(t);
    }
  }
}

bool IsMatmul(const std::string& name) {
  static const char* kNames[] = {"aten::addmm",  "aten::mm",     "aten::bmm",
                                 "aten::matmul", "aten::linear", "aten::baddbmm"};
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

// K of a product: the last dimension of its first matrix operand (libtorch 2.x gives a
// record's inputs in its start callback only, so this is read there).
template <typename Inputs>
int64_t MatmulK(const std::string& name, const Inputs& in) {
  const size_t a_index = (name == "aten::addmm" || name == "aten::baddbmm") ? 1 : 0;
  if (in.size() <= a_index || !in[a_index].isTensor()) return 0;
  const at::Tensor& a = in[a_index].toTensor();
  return a.dim() > 0 ? a.size(-1) : 0;
}

struct OpContext : at::ObserverContext {
  double in_bytes = 0;
  int64_t matmul_k = 0;  // 2 M N K FLOPs = 2 * (output elements) * K

  std::vector<at::Tensor> inputs;
};

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  Census& c = TheCensus();
  if (fn.scope() == at::RecordScope::USER_SCOPE) {
    for (size_t i = 1; i < kPhases.size(); ++i) {
      if (std::strcmp(fn.name(), kPhases[i]) == 0) {
        std::lock_guard<std::mutex> lock(c.mu);
        c.phase = static_cast<int>(i);
      }
    }
    return nullptr;
  }
  if (fn.scope() != at::RecordScope::FUNCTION || IsAutogradNode(fn) || op_depth++ > 0)
    return nullptr;
  auto ctx = std::make_unique<OpContext>();
  ForEachTensor(fn.inputs(), [&](const at::Tensor& t) {
    ctx->in_bytes += SpanBytes(t);
    if (t.defined()) ctx->inputs.push_back(t);
  });
  if (IsMatmul(fn.name())) ctx->matmul_k = MatmulK(fn.name(), fn.inputs());
  return ctx;
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* raw) {
  Census& c = TheCensus();
  if (fn.scope() == at::RecordScope::USER_SCOPE) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.phase = 0;
    return;
  }
  if (fn.scope() != at::RecordScope::FUNCTION || IsAutogradNode(fn)) return;
  --op_depth;
  auto* ctx = static_cast<OpContext*>(raw);
  if (ctx == nullptr) return;
  double out_bytes = 0;
  bool fresh = false, any_output = false;
  ForEachTensor(fn.outputs(), [&](const at::Tensor& t) {
    if (!t.defined()) return;
    any_output = true;
    bool alias = false;
    for (const at::Tensor& in : ctx->inputs) alias = alias || t.is_alias_of(in);
    if (!alias) {
      fresh = true;
      out_bytes += SpanBytes(t);
    }
  });
  const std::string name = fn.name();
  // An in-place or out= operator returns its input but still writes it.
  const bool writes_in_place = any_output && !fresh && name.back() == '_';
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.on) return;
  OpTotals& o = c.ops[std::string(kPhases[static_cast<size_t>(c.phase)]) + "|" + name];
  ++o.calls;
  if (fresh || writes_in_place || !any_output) ++o.launches;
  if (fresh || writes_in_place || !any_output) o.bytes += ctx->in_bytes + out_bytes;
  const auto& outputs = fn.outputs();
  if (ctx->matmul_k > 0 && !outputs.empty() && outputs[0].isTensor())
    o.flops += 2.0 * static_cast<double>(outputs[0].toTensor().numel()) *
               static_cast<double>(ctx->matmul_k);
}

// Phase timing: wall time between each phase's start and end, the device synchronised at
// both.
struct PhaseClock {
  std::mutex mu;
  bool cuda = false;
  std::array<double, kPhases.size()> seconds{};
  std::chrono::steady_clock::time_point started;
};

PhaseClock& ThePhaseClock() {
  static PhaseClock c;
  return c;
}

int PhaseIndex(const at::RecordFunction& fn) {
  for (size_t i = 1; i < kPhases.size(); ++i)
    if (std::strcmp(fn.name(), kPhases[i]) == 0) return static_cast<int>(i);
  return 0;
}

std::unique_ptr<at::ObserverContext> OnPhaseStart(const at::RecordFunction& fn) {
  PhaseClock& c = ThePhaseClock();
  if (PhaseIndex(fn) == 0) return nullptr;
  if (c.cuda) torch::cuda::synchronize();
  std::lock_guard<std::mutex> lock(c.mu);
  c.started = std::chrono::steady_clock::now();
  return nullptr;
}

void OnPhaseEnd(const at::RecordFunction& fn, at::ObserverContext*) {
  PhaseClock& c = ThePhaseClock();
  const int phase = PhaseIndex(fn);
  if (phase == 0) return;
  if (c.cuda) torch::cuda::synchronize();
  std::lock_guard<std::mutex> lock(c.mu);
  c.seconds[static_cast<size_t>(phase)] +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - c.started).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "h100-b", device_name = "cpu";
  reel::bench::FusedOpFlags fused;
  int batch = 1, top = 25, timed_steps = 3;
  double hbm_tbps = 3.35, peak_tflops = 989.4;  // H100 SXM: HBM3, dense bf16
  reel::bench::BenchFlags flags(
      "usage: bench_step_ops [--config NAME] [--batch N] [--device cpu|cuda] [--top N] "
      "[--hbm-tbps X] [--peak-tflops X] [--qk-norm fused|vector|composite] [--norm-modulate "
      "fused|composite] [--gated-residual fused|composite] [--timed-steps N]");
  flags.Add("--config", &name);
  flags.Add("--batch", &batch);
  flags.Add("--device", &device_name, {"cpu", "cuda"});
  flags.Add("--top", &top);
  flags.Add("--hbm-tbps", &hbm_tbps);
  flags.Add("--peak-tflops", &peak_tflops);
  fused.Add(flags);
  flags.Add("--timed-steps", &timed_steps);
  if (!flags.Parse(argc, argv)) return 2;
  fused.Apply();
  reel::bench::BenchTrainer bt;
  if (int rc = reel::bench::MakeBenchTrainer("bench_step_ops", name, device_name, batch, &bt))
    return rc;
  const torch::Device device = bt.device;
  Trainer* trainer = bt.trainer.get();
  const std::vector<LatentExample>& data = bt.data;
  // One step first, so that lazily made state (the optimiser's moments) is not counted.
  if (auto s = trainer->Step(data); !s.ok()) {
    std::fprintf(stderr, "bench_step_ops: %s\n", s.status().ToString().c_str());
    return 1;
  }
  auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback(OnStart, OnEnd).needsInputs(true).needsOutputs(true));
  TheCensus().on = true;
  const auto step = trainer->Step(data);
  if (device.is_cuda()) torch::cuda::synchronize();
  TheCensus().on = false;
  at::removeCallback(handle);
  if (!step.ok()) {
    std::fprintf(stderr, "bench_step_ops: %s\n", step.status().ToString().c_str());
    return 1;
  }

  PhaseClock& clock = ThePhaseClock();
  clock.cuda = device.is_cuda();
  const auto timer = at::addGlobalCallback(
      at::RecordFunctionCallback(OnPhaseStart, OnPhaseEnd).scopes({at::RecordScope::USER_SCOPE}));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < timed_steps; ++i) {
    if (auto s = trainer->Step(data); !s.ok()) {
      std::fprintf(stderr, "bench_step_ops: %s\n", s.status().ToString().c_str());
      return 1;
    }
  }
  if (device.is_cuda()) torch::cuda::synchronize();
  const double timed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  at::removeCallback(timer);

  const Census& c = TheCensus();
  std::printf("%s, batch %d, %s%s, %s: one training step\n", name.c_str(), batch,
              device_name.c_str(), device.is_cuda() ? " (bf16 autocast)" : " (float32)",
              fused.Describe().c_str());
  std::printf("%-24s %8s %9s %10s %10s %12s %12s %10s\n", "phase", "calls", "launches", "GB",
              "GFLOP", "GB at HBM", "GFLOP at pk", "measured");
  std::printf("%-24s %8s %9s %10s %10s %12s %12s %10s\n", "", "", "", "(non-mm)", "(matmul)",
              "(ms)", "(ms)", "(ms)");
  OpTotals all;
  for (size_t p = 0; p < kPhases.size(); ++p) {
    OpTotals t;
    for (const auto& [key, o] : c.ops) {
      if (key.compare(0, key.find('|'), kPhases[p]) != 0) continue;
      t.calls += o.calls;
      t.launches += o.launches;
      (o.flops > 0 ? t.flops : t.bytes) += (o.flops > 0 ? o.flops : o.bytes);
    }
    if (t.calls == 0) continue;
    all.calls += t.calls;
    all.launches += t.launches;
    all.bytes += t.bytes;
    all.flops += t.flops;
    std::printf("%-24s %8lld %9lld %10.2f %10.1f %12.2f %12.2f %10.2f\n", kPhases[p],
                static_cast<long long>(t.calls), static_cast<long long>(t.launches), t.bytes / 1e9,
                t.flops / 1e9, t.bytes / (hbm_tbps * 1e12) * 1e3,
                t.flops / (peak_tflops * 1e12) * 1e3,
                timed_steps > 0 ? clock.seconds[p] * 1e3 / timed_steps : 0.0);
  }
  std::printf("%-24s %8lld %9lld %10.2f %10.1f %12.2f %12.2f %10.2f\n", "step",
              static_cast<long long>(all.calls), static_cast<long long>(all.launches),
              all.bytes / 1e9, all.flops / 1e9, all.bytes / (hbm_tbps * 1e12) * 1e3,
              all.flops / (peak_tflops * 1e12) * 1e3,
              timed_steps > 0 ? timed_s * 1e3 / timed_steps : 0.0);
  std::printf(
      "(ms: the bytes at %.2f TB/s and the matmul FLOPs at %.1f TFLOP/s, attention in the "
      "non-mm bytes; measured: the mean of %d steps with the device synchronised at each "
      "phase's start and end)\n\n",
      hbm_tbps, peak_tflops, timed_steps);

  std::vector<std::pair<std::string, OpTotals>> rows(c.ops.begin(), c.ops.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.bytes + a.second.flops / 100 > b.second.bytes + b.second.flops / 100;
  });
  std::printf("top operators by bytes (matmuls by FLOPs / 100)\n");
  std::printf("%-56s %7s %9s %9s %9s\n", "phase|operator", "calls", "launches", "GB", "GFLOP");
  for (int i = 0; i < top && i < static_cast<int>(rows.size()); ++i) {
    const auto& [key, o] = rows[static_cast<size_t>(i)];
    std::printf("%-56s %7lld %9lld %9.3f %9.1f\n", key.c_str(), static_cast<long long>(o.calls),
                static_cast<long long>(o.launches), o.bytes / 1e9, o.flops / 1e9);
  }
  return 0;
}
