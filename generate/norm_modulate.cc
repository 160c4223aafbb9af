#include "generate/norm_modulate.h"

#include <atomic>
#include <cmath>
#include <vector>

#include <ATen/OpMathType.h>

#include "generate/fused_ops.h"
#include "generate/norm_modulate_math.h"

#if defined(REEL_CUDA_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace reel::gen {
namespace {

std::atomic<bool> fused_norm_modulate{true};

norm_modulate::Layout MakeLayout(const torch::Tensor& x, double eps) {
  norm_modulate::Layout l;
  l.batch = x.size(0);
  l.tokens = x.size(1);
  l.dim = x.size(2);
  l.stride_b = x.stride(0);
  l.stride_n = x.stride(1);
  l.eps = static_cast<float>(eps);
  return l;
}

// x's row at (b, n) normalised into xh; returns r.
template <typename T, typename Acc>
Acc Normalise(const T* xr, int64_t dim, Acc eps, Acc* xh) {
  Acc sum = 0;
  for (int64_t i = 0; i < dim; ++i) {
    xh[i] = static_cast<Acc>(xr[i]);
    sum += xh[i];
  }
  const Acc mean = sum / static_cast<Acc>(dim);
  Acc squares = 0;
  for (int64_t i = 0; i < dim; ++i) {
    xh[i] -= mean;
    squares += xh[i] * xh[i];
  }
  const Acc r = Acc(1) / std::sqrt(squares / static_cast<Acc>(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) xh[i] *= r;
  return r;
}

// Output in x's dtype T; shift and scale contiguous [B, D] in Acc.
template <typename T>
void CpuForward(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale,
                torch::Tensor& out, const norm_modulate::Layout& l) {
  using Acc = at::opmath_type<T>;
  const T* xp = x.data_ptr<T>();
  const Acc* shp = shift.data_ptr<Acc>();
  const Acc* scp = scale.data_ptr<Acc>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, l.batch * l.tokens, fused::RowGrain(l.dim), [&](int64_t begin, int64_t end) {
    std::vector<Acc> xh(static_cast<size_t>(l.dim));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / l.tokens, n = row % l.tokens;
      Normalise(xp + l.InputOffset(b, n), l.dim, static_cast<Acc>(l.eps), xh.data());
      T* o = op + row * l.dim;
      for (int64_t i = 0; i < l.dim; ++i)
        o[i] = static_cast<T>(
            norm_modulate::Forward<Acc>(xh[i], shp[b * l.dim + i], scp[b * l.dim + i]));
    }
  });
}

// grad_out contiguous in T; fills grad_x (contiguous, T) and the shift and scale
// gradients [B, D] in Acc, summed chunk by chunk in a fixed order.
template <typename T>
void CpuBackward(const torch::Tensor& grad_out, const torch::Tensor& x, const torch::Tensor& scale,
                 torch::Tensor& grad_x, torch::Tensor& grad_shift, torch::Tensor& grad_scale,
                 const norm_modulate::Layout& l) {
  using Acc = at::opmath_type<T>;
  const T* gp = grad_out.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  const Acc* scp = scale.data_ptr<Acc>();
  T* dxp = grad_x.data_ptr<T>();
  const int64_t chunks = l.Chunks(), tasks = l.batch * chunks;
  std::vector<Acc> partials(static_cast<size_t>(tasks * 2 * l.dim), Acc(0));
  const int64_t grain = std::max<int64_t>(1, fused::RowGrain(l.dim) / l.chunk_rows);
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    std::vector<Acc> xh(static_cast<size_t>(l.dim)), gx(xh.size());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, first = (task % chunks) * l.chunk_rows;
      const int64_t last = std::min(l.tokens, first + l.chunk_rows);
      Acc* dshift = partials.data() + task * 2 * l.dim;
      Acc* dscale = dshift + l.dim;
      const Acc* sc = scp + b * l.dim;
      for (int64_t n = first; n < last; ++n) {
        const Acc r =
            Normalise(xp + l.InputOffset(b, n), l.dim, static_cast<Acc>(l.eps), xh.data());
        const T* g = gp + (b * l.tokens + n) * l.dim;
        Acc sum_gx = 0, sum_gx_xh = 0;
        for (int64_t i = 0; i < l.dim; ++i) {
          const Acc gi = static_cast<Acc>(g[i]);
          dshift[i] += gi;
          dscale[i] += gi * xh[i];
          gx[i] = gi * (Acc(1) + sc[i]);
          sum_gx += gx[i];
          sum_gx_xh += gx[i] * xh[i];
        }
        const Acc mean_gx = sum_gx / static_cast<Acc>(l.dim);
        const Acc mean_gx_xh = sum_gx_xh / static_cast<Acc>(l.dim);
        T* dx = dxp + (b * l.tokens + n) * l.dim;
        for (int64_t i = 0; i < l.dim; ++i)
          dx[i] =
              static_cast<T>(norm_modulate::InputGrad<Acc>(gx[i], xh[i], r, mean_gx, mean_gx_xh));
      }
    }
  });
  Acc* gs = grad_shift.data_ptr<Acc>();
  Acc* gc = grad_scale.data_ptr<Acc>();
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t b = task / chunks;
    const Acc* p = partials.data() + task * 2 * l.dim;
    for (int64_t i = 0; i < l.dim; ++i) {
      gs[b * l.dim + i] += p[i];
      gc[b * l.dim + i] += p[l.dim + i];
    }
  }
}

torch::ScalarType AccType(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Whether the fused implementation runs (on the CPU: when the output keeps x's dtype; on
// CUDA: with reel's kernels, for float32 x and the dims they take).
bool Fusable(const torch::Tensor& x, torch::ScalarType out_dtype) {
  if (!fused_norm_modulate.load(std::memory_order_relaxed)) return false;
  if (x.device().is_cpu()) return out_dtype == x.scalar_type();
#if defined(REEL_CUDA_KERNELS)
  return x.device().is_cuda() && x.scalar_type() == torch::kFloat &&
         fused::KernelTakes(out_dtype) && x.size(2) <= norm_modulate::kMaxDim;
#else
  return false;
#endif
}

torch::Tensor FusedForward(const torch::Tensor& x, const torch::Tensor& shift,
                           const torch::Tensor& scale, torch::ScalarType out_dtype, double eps) {
  fused::OpRecord record("reel::norm_modulate", {x, shift, scale});
  const norm_modulate::Layout l = MakeLayout(x, eps);
  const torch::ScalarType acc = AccType(x);
  const torch::Tensor sh = shift.to(acc).contiguous(), sc = scale.to(acc).contiguous();
  torch::Tensor out = torch::empty(x.sizes(), x.options().dtype(out_dtype));
  if (out.numel() == 0) return out;
#if defined(REEL_CUDA_KERNELS)
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    fused::CheckLaunch(norm_modulate::LaunchForward(x.data_ptr<float>(), sh.data_ptr<float>(),
                                                    sc.data_ptr<float>(), out.data_ptr(),
                                                    fused::KernelDtype(out_dtype), l,
                                                    at::cuda::getCurrentCUDAStream()),
                       "NormModulate", "forward");
    record.SetOutputs({out});
    return out;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "NormModulate",
                                  [&] { CpuForward<scalar_t>(x, sh, sc, out, l); });
  record.SetOutputs({out});
  return out;
}

struct Grads {
  torch::Tensor x, shift, scale;
};

Grads FusedBackward(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& shift,
                    const torch::Tensor& scale, double eps) {
  fused::OpRecord record("reel::norm_modulate_backward", {grad, x, shift, scale});
  const norm_modulate::Layout l = MakeLayout(x, eps);
  const torch::ScalarType acc = AccType(x);
  const torch::Tensor sc = scale.to(acc).contiguous();
  torch::Tensor grad_x = torch::empty(x.sizes(), x.options());
  torch::Tensor grad_shift = torch::zeros({l.batch, l.dim}, x.options().dtype(acc));
  torch::Tensor grad_scale = torch::zeros_like(grad_shift);
  if (x.numel() > 0) {
#if defined(REEL_CUDA_KERNELS)
    if (x.is_cuda()) {
      const c10::cuda::CUDAGuard guard(x.device());
      const torch::Tensor g = grad.contiguous();
      torch::Tensor partials =
          torch::empty({2, l.batch, l.Chunks(), l.dim}, x.options().dtype(torch::kFloat));
      fused::CheckLaunch(
          norm_modulate::LaunchBackward(
              g.data_ptr(), fused::KernelDtype(g.scalar_type()), x.data_ptr<float>(),
              sc.data_ptr<float>(), grad_x.data_ptr<float>(), partials[0].data_ptr<float>(),
              partials[1].data_ptr<float>(), l, at::cuda::getCurrentCUDAStream()),
          "NormModulate", "backward");
      grad_shift = partials[0].sum(1);
      grad_scale = partials[1].sum(1);
    } else
#endif
    {
      const torch::Tensor g = grad.to(x.scalar_type()).contiguous();
      AT_DISPATCH_FLOATING_TYPES_AND2(
          at::kBFloat16, at::kHalf, x.scalar_type(), "NormModulateBackward",
          [&] { CpuBackward<scalar_t>(g, x, sc, grad_x, grad_shift, grad_scale, l); });
    }
  }
  Grads out{grad_x, grad_shift.to(shift.scalar_type()), grad_scale.to(scale.scalar_type())};
  record.SetOutputs({out.x, out.shift, out.scale});
  return out;
}

class NormModulateFunction : public torch::autograd::Function<NormModulateFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& shift, const torch::Tensor& scale,
                               int64_t out_dtype, double eps) {
    ctx->save_for_backward({x, shift, scale});
    ctx->saved_data["eps"] = eps;
    return FusedForward(x, shift, scale, static_cast<torch::ScalarType>(out_dtype), eps);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Grads g =
        FusedBackward(grads[0], saved[0], saved[1], saved[2], ctx->saved_data["eps"].toDouble());
    return {g.x, g.shift, g.scale, torch::Tensor(), torch::Tensor()};
  }
};

void CheckShapes(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  TORCH_CHECK(x.dim() == 3, "NormModulate: x must be [B, N, D], not ", x.sizes());
  const std::vector<int64_t> want = {x.size(0), x.size(2)};
  TORCH_CHECK(shift.sizes() == want && scale.sizes() == want,
              "NormModulate: shift and scale must be [", x.size(0), ", ", x.size(2), "], not ",
              shift.sizes(), " and ", scale.sizes());
  TORCH_CHECK(shift.device() == x.device() && scale.device() == x.device(),
              "NormModulate: x is on ", x.device(), ", shift on ", shift.device(), ", scale on ",
              scale.device());
}

}  // namespace

torch::Tensor NormModulate(const torch::Tensor& x, const torch::Tensor& shift,
                           const torch::Tensor& scale, torch::ScalarType out_dtype, double eps) {
  CheckShapes(x, shift, scale);
  if (!Fusable(x, out_dtype)) return NormModulateComposite(x, shift, scale, out_dtype, eps);
  // The kernels read rows along a contiguous last dimension.
  const torch::Tensor rows = x.stride(2) == 1 ? x : x.contiguous();
  return NormModulateFunction::apply(rows, shift, scale, static_cast<int64_t>(out_dtype), eps);
}

torch::Tensor NormModulateComposite(const torch::Tensor& x, const torch::Tensor& shift,
                                    const torch::Tensor& scale, torch::ScalarType out_dtype,
                                    double eps) {
  CheckShapes(x, shift, scale);
  const torch::Tensor xh = torch::layer_norm(x, {x.size(2)}, {}, {}, eps);
  return torch::addcmul(shift.unsqueeze(1), xh, 1 + scale.unsqueeze(1)).to(out_dtype);
}

namespace {

void CheckAffine(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() == 3, "AffineLayerNorm: x must be [B, N, D], not ", x.sizes());
  const int64_t d = x.size(2);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == d && bias.dim() == 1 && bias.size(0) == d,
              "AffineLayerNorm: weight and bias must be [", d, "], not ", weight.sizes(), " and ",
              bias.sizes());
}

}  // namespace

torch::Tensor AffineLayerNorm(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, torch::ScalarType out_dtype, double eps) {
  CheckAffine(x, weight, bias);
  // On the CPU, ATen's vectorised layer_norm beats the fused loop (bench_fused_ops,
  // forward and backward at cpu-small's [8, 80, 192]: 0.14-0.16 ms against 0.68 ms); the
  // fused operator is for CUDA, where it saves whole passes over the activations.
  if (x.device().is_cpu() && FusedNormModulate())
    return torch::layer_norm(x, {x.size(2)}, weight, bias, eps).to(out_dtype);
  return AffineLayerNormAsNormModulate(x, weight, bias, out_dtype, eps);
}

torch::Tensor AffineLayerNormAsNormModulate(const torch::Tensor& x, const torch::Tensor& weight,
                                            const torch::Tensor& bias, torch::ScalarType out_dtype,
                                            double eps) {
  CheckAffine(x, weight, bias);
  const int64_t b = x.size(0), d = x.size(2);
  // 1 + (weight - 1) is weight exactly for weights in [0.5, 2] (Sterbenz), and within an
  // ulp of it elsewhere.
  return NormModulate(x, bias.view({1, d}).expand({b, d}), (weight - 1).view({1, d}).expand({b, d}),
                      out_dtype, eps);
}

void SetFusedNormModulate(bool fused) {
  fused_norm_modulate.store(fused, std::memory_order_relaxed);
}

bool FusedNormModulate() {
  return fused_norm_modulate.load(std::memory_order_relaxed);
}

}  // namespace reel::gen
