#include "generate/gated_residual.h"

#include <atomic>
#include <vector>

#include "generate/fused_ops.h"
#include "generate/gated_residual_math.h"

#if defined(REEL_CUDA_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace reel::gen {
namespace {

std::atomic<bool> fused_gated_residual{true};

gated_residual::Layout MakeLayout(const torch::Tensor& y) {
  gated_residual::Layout l;
  l.batch = y.size(0);
  l.tokens = y.size(1);
  l.dim = y.size(2);
  return l;
}

// All contiguous, all of dtype T (float or double).
template <typename T>
void CpuForward(const torch::Tensor& residual, const torch::Tensor& gate, const torch::Tensor& y,
                torch::Tensor& out, const gated_residual::Layout& l) {
  const T* rp = residual.data_ptr<T>();
  const T* gp = gate.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, l.batch * l.tokens, fused::RowGrain(l.dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* g = gp + (row / l.tokens) * l.dim;
      const int64_t e = row * l.dim;
      for (int64_t i = 0; i < l.dim; ++i) op[e + i] = rp[e + i] + g[i] * yp[e + i];
    }
  });
}

// Fills grad_y and adds the gate's gradient into grad_gate (zeros, [B, D]): each chunk of
// tokens sums into its own partial row, and the rows are added in order.
template <typename T>
void CpuBackward(const torch::Tensor& grad_out, const torch::Tensor& gate, const torch::Tensor& y,
                 torch::Tensor& grad_y, torch::Tensor& grad_gate, const gated_residual::Layout& l) {
  const T* gop = grad_out.data_ptr<T>();
  const T* gp = gate.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* dyp = grad_y.data_ptr<T>();
  const int64_t chunks = l.Chunks(), tasks = l.batch * chunks;
  std::vector<T> partials(static_cast<size_t>(tasks * l.dim), T(0));
  const int64_t grain = std::max<int64_t>(1, fused::RowGrain(l.dim) / l.chunk_rows);
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, first = (task % chunks) * l.chunk_rows;
      const int64_t last = std::min(l.tokens, first + l.chunk_rows);
      const T* gt = gp + b * l.dim;
      T* sum = partials.data() + task * l.dim;
      for (int64_t n = first; n < last; ++n) {
        const int64_t e = (b * l.tokens + n) * l.dim;
        for (int64_t i = 0; i < l.dim; ++i) {
          const T g = gop[e + i];
          dyp[e + i] = g * gt[i];
          sum[i] += g * yp[e + i];
        }
      }
    }
  });
  T* gg = grad_gate.data_ptr<T>();
  for (int64_t task = 0; task < tasks; ++task) {
    const T* p = partials.data() + task * l.dim;
    T* row = gg + (task / chunks) * l.dim;
    for (int64_t i = 0; i < l.dim; ++i) row[i] += p[i];
  }
}

// Whether the fused implementation runs: the output keeps the residual's dtype (as
// addcmul's promotion gives it); on the CPU, float32 or float64 with y of the same dtype; on
// CUDA, with reel's kernels, a float32 residual and y of a dtype they take.
bool Fusable(const torch::Tensor& residual, const torch::Tensor& gate, const torch::Tensor& y) {
  if (!fused_gated_residual.load(std::memory_order_relaxed)) return false;
  const torch::ScalarType r = residual.scalar_type();
  if (!gate.is_floating_point() || c10::promoteTypes(r, gate.scalar_type()) != r) return false;
  if (residual.device().is_cpu())
    return (r == torch::kFloat || r == torch::kDouble) && y.scalar_type() == r;
#if defined(REEL_CUDA_KERNELS)
  return residual.is_cuda() && r == torch::kFloat && fused::KernelTakes(y.scalar_type());
#else
  return false;
#endif
}

// residual and y contiguous.
torch::Tensor FusedForward(const torch::Tensor& residual, const torch::Tensor& gate,
                           const torch::Tensor& y) {
  fused::OpRecord record("reel::gated_residual", {residual, gate, y});
  const gated_residual::Layout l = MakeLayout(y);
  torch::Tensor out = torch::empty(residual.sizes(), residual.options());
  if (out.numel() == 0) return out;
  const torch::Tensor gt = gate.to(residual.scalar_type()).contiguous();
#if defined(REEL_CUDA_KERNELS)
  if (residual.is_cuda()) {
    const c10::cuda::CUDAGuard guard(residual.device());
    fused::CheckLaunch(
        gated_residual::LaunchForward(residual.data_ptr<float>(), gt.data_ptr<float>(),
                                      y.data_ptr(), fused::KernelDtype(y.scalar_type()),
                                      out.data_ptr<float>(), l, at::cuda::getCurrentCUDAStream()),
        "GatedResidual", "forward");
    record.SetOutputs({out});
    return out;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES(residual.scalar_type(), "GatedResidual",
                             [&] { CpuForward<scalar_t>(residual, gt, y, out, l); });
  record.SetOutputs({out});
  return out;
}

struct Grads {
  torch::Tensor gate, y;
};

// y contiguous; the gradients in gate's and y's dtypes.
Grads FusedBackward(const torch::Tensor& grad, const torch::Tensor& gate, const torch::Tensor& y) {
  fused::OpRecord record("reel::gated_residual_backward", {grad, gate, y});
  const gated_residual::Layout l = MakeLayout(y);
  // The kernels' arithmetic type: float32 on CUDA, the residual's (and y's) on the CPU.
  const torch::ScalarType acc = y.is_cuda() ? torch::kFloat : y.scalar_type();
  const torch::Tensor g = grad.to(acc).contiguous();
  const torch::Tensor gt = gate.to(acc).contiguous();
  torch::Tensor grad_y = torch::empty(y.sizes(), y.options());
  torch::Tensor grad_gate = torch::zeros({l.batch, l.dim}, y.options().dtype(acc));
  if (y.numel() > 0) {
#if defined(REEL_CUDA_KERNELS)
    if (y.is_cuda()) {
      const c10::cuda::CUDAGuard guard(y.device());
      torch::Tensor partials = torch::empty({l.batch, l.Chunks(), l.dim}, g.options());
      fused::CheckLaunch(gated_residual::LaunchBackward(
                             g.data_ptr<float>(), gt.data_ptr<float>(), y.data_ptr(),
                             fused::KernelDtype(y.scalar_type()), grad_y.data_ptr(),
                             partials.data_ptr<float>(), l, at::cuda::getCurrentCUDAStream()),
                         "GatedResidual", "backward");
      grad_gate = partials.sum(1);
    } else
#endif
    {
      AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "GatedResidualBackward",
                                 [&] { CpuBackward<scalar_t>(g, gt, y, grad_y, grad_gate, l); });
    }
  }
  Grads out{grad_gate.to(gate.scalar_type()), grad_y};
  record.SetOutputs({out.gate, out.y});
  return out;
}

class GatedResidualFunction : public torch::autograd::Function<GatedResidualFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& residual,
                               const torch::Tensor& gate, const torch::Tensor& y) {
    ctx->save_for_backward({gate, y});
    return FusedForward(residual, gate, y);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Grads g = FusedBackward(grads[0], saved[0], saved[1]);
    // The residual's gradient is the output's.
    return {grads[0], g.gate, g.y};
  }
};

void CheckShapes(const torch::Tensor& residual, const torch::Tensor& gate, const torch::Tensor& y) {
  TORCH_CHECK(y.dim() == 3, "GatedResidual: y must be [B, N, D], not ", y.sizes());
  TORCH_CHECK(residual.sizes() == y.sizes(), "GatedResidual: residual is ", residual.sizes(),
              ", y ", y.sizes());
  const std::vector<int64_t> want = {y.size(0), y.size(2)};
  TORCH_CHECK(gate.sizes() == want, "GatedResidual: gate must be [", y.size(0), ", ", y.size(2),
              "], not ", gate.sizes());
  TORCH_CHECK(residual.device() == y.device() && gate.device() == y.device(),
              "GatedResidual: residual is on ", residual.device(), ", gate on ", gate.device(),
              ", y on ", y.device());
}

}  // namespace

torch::Tensor GatedResidual(const torch::Tensor& residual, const torch::Tensor& gate,
                            const torch::Tensor& y) {
  CheckShapes(residual, gate, y);
  if (!Fusable(residual, gate, y)) return GatedResidualComposite(residual, gate, y);
  return GatedResidualFunction::apply(residual.contiguous(), gate, y.contiguous());
}

torch::Tensor GatedResidualComposite(const torch::Tensor& residual, const torch::Tensor& gate,
                                     const torch::Tensor& y) {
  CheckShapes(residual, gate, y);
  return torch::addcmul(residual, gate.unsqueeze(1), y);
}

void SetFusedGatedResidual(bool fused) {
  fused_gated_residual.store(fused, std::memory_order_relaxed);
}

}  // namespace reel::gen
