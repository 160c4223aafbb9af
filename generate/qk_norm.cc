#include "generate/qk_norm.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include <ATen/OpMathType.h>

#include "generate/dit.h"
#include "generate/fused_ops.h"
#include "generate/qk_norm_math.h"

#if defined(REEL_CUDA_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace reel::gen {
namespace {

std::atomic<bool> fused_qk_norm{true};
std::atomic<bool> qk_vector_kernels{false};

// Rows per block of the CPU backward's weight-gradient partial sums: fixed, so that the
// sum's order does not depend on the thread count.
constexpr int64_t kCpuRowsPerBlock = 256;

qk_norm::Layout MakeLayout(const torch::Tensor& x, bool rope, double eps) {
  qk_norm::Layout l;
  l.positions = x.size(1);
  l.heads = x.size(2);
  l.dim = x.size(3);
  l.rows = x.size(0) * l.positions * l.heads;
  l.stride_b = x.stride(0);
  l.stride_n = x.stride(1);
  l.stride_h = x.stride(2);
  l.rope = rope;
  l.eps = static_cast<float>(eps);
  l.vector_kernels = qk_vector_kernels.load(std::memory_order_relaxed);
  return l;
}

// A rotary table's data, or null without rotary positions (the table is then undefined).
template <typename Acc>
const Acc* DataOrNull(const torch::Tensor& table) {
  return table.defined() ? table.data_ptr<Acc>() : nullptr;
}

template <typename T, typename Acc>
Acc Rsqrt(const T* xr, int64_t dim, Acc eps, Acc* x_out) {
  Acc squares = 0;
  for (int64_t i = 0; i < dim; ++i) {
    x_out[i] = static_cast<Acc>(xr[i]);
    squares += x_out[i] * x_out[i];
  }
  return Acc(1) / std::sqrt(squares / static_cast<Acc>(dim) + eps);
}

template <typename T>
void CpuForward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& cos,
                const torch::Tensor& sin, torch::Tensor& out, const qk_norm::Layout& l) {
  using Acc = at::opmath_type<T>;
  const T* xp = x.data_ptr<T>();
  const Acc* wp = w.data_ptr<Acc>();
  const Acc* cp = DataOrNull<Acc>(cos);
  const Acc* sp = DataOrNull<Acc>(sin);
  T* op = out.data_ptr<T>();
  const int64_t pairs = l.dim / 2;
  at::parallel_for(0, l.rows, fused::RowGrain(l.dim), [&](int64_t begin, int64_t end) {
    std::vector<Acc> xs(static_cast<size_t>(l.dim));
    for (int64_t row = begin; row < end; ++row) {
      const Acc r = Rsqrt(xp + l.InputOffset(row), l.dim, static_cast<Acc>(l.eps), xs.data());
      const int64_t table = l.Position(row) * pairs;
      T* o = op + row * l.dim;
      for (int64_t p = 0; p < pairs; ++p) {
        Acc c, s, o1, o2;
        qk_norm::Rotation(cp, sp, table + p, &c, &s);
        qk_norm::ForwardPair<Acc>(xs[2 * p], xs[2 * p + 1], r, wp[2 * p], wp[2 * p + 1], c, s, &o1,
                                  &o2);
        o[2 * p] = static_cast<T>(o1);
        o[2 * p + 1] = static_cast<T>(o2);
      }
    }
  });
}

// grad_out contiguous [rows, dim]; fills grad_x (contiguous) and returns the weight's
// gradient in Acc.
template <typename T>
torch::Tensor CpuBackward(const torch::Tensor& grad_out, const torch::Tensor& x,
                          const torch::Tensor& w, const torch::Tensor& cos,
                          const torch::Tensor& sin, torch::Tensor& grad_x,
                          const qk_norm::Layout& l) {
  using Acc = at::opmath_type<T>;
  const T* gp = grad_out.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  const Acc* wp = w.data_ptr<Acc>();
  const Acc* cp = DataOrNull<Acc>(cos);
  const Acc* sp = DataOrNull<Acc>(sin);
  T* dxp = grad_x.data_ptr<T>();
  const int64_t pairs = l.dim / 2;
  const int64_t blocks = (l.rows + kCpuRowsPerBlock - 1) / kCpuRowsPerBlock;
  std::vector<Acc> partials(static_cast<size_t>(blocks * l.dim), Acc(0));
  const int64_t grain = std::max<int64_t>(1, fused::RowGrain(l.dim) / kCpuRowsPerBlock);
  at::parallel_for(0, blocks, grain, [&](int64_t first_block, int64_t end_block) {
    std::vector<Acc> xs(static_cast<size_t>(l.dim)), n(xs.size()), gn(xs.size());
    for (int64_t block = first_block; block < end_block; ++block) {
      Acc* gw = partials.data() + block * l.dim;
      const int64_t last = std::min(l.rows, (block + 1) * kCpuRowsPerBlock);
      for (int64_t row = block * kCpuRowsPerBlock; row < last; ++row) {
        const Acc r = Rsqrt(xp + l.InputOffset(row), l.dim, static_cast<Acc>(l.eps), xs.data());
        const int64_t table = l.Position(row) * pairs;
        const T* g = gp + row * l.dim;
        Acc gn_n = 0;
        for (int64_t p = 0; p < pairs; ++p) {
          const int64_t i = 2 * p, j = 2 * p + 1;
          Acc c, s;
          qk_norm::Rotation(cp, sp, table + p, &c, &s);
          qk_norm::BackwardPair<Acc>(static_cast<Acc>(g[i]), static_cast<Acc>(g[j]), xs[i], xs[j],
                                     r, wp[i], wp[j], c, s, &n[i], &n[j], &gn[i], &gn[j], &gw[i],
                                     &gw[j]);
          gn_n += gn[i] * n[i] + gn[j] * n[j];
        }
        const Acc mean_gn_n = gn_n / static_cast<Acc>(l.dim);
        T* dx = dxp + row * l.dim;
        for (int64_t i = 0; i < l.dim; ++i)
          dx[i] = static_cast<T>(qk_norm::InputGrad<Acc>(gn[i], n[i], r, mean_gn_n));
      }
    }
  });
  torch::Tensor gw = torch::zeros({l.dim}, c10::CppTypeToScalarType<Acc>::value);
  Acc* out = gw.data_ptr<Acc>();
  for (int64_t block = 0; block < blocks; ++block)
    for (int64_t i = 0; i < l.dim; ++i) out[i] += partials[static_cast<size_t>(block * l.dim + i)];
  return gw;
}

// The accumulation dtype of an input dtype (float64 stays, everything else is float32).
torch::ScalarType AccType(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// What the fused implementation reads besides x: the layout of x's rows, and the weight
// and rotary tables (empty without rotary positions) in the accumulation dtype.
struct Operands {
  Operands(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& cos_in,
           const torch::Tensor& sin_in, double eps)
      : layout(MakeLayout(x, cos_in.numel() > 0, eps)) {
    const torch::ScalarType acc = x.is_cuda() ? torch::kFloat : AccType(x);
    w = weight.to(acc).contiguous();
    if (layout.rope) {
      cos = cos_in.to(acc).contiguous();
      sin = sin_in.to(acc).contiguous();
    }
  }
  qk_norm::Layout layout;
  torch::Tensor w, cos, sin;
};

#if defined(REEL_CUDA_KERNELS)
bool CudaFits(const torch::Tensor& x) {
  return fused::KernelTakes(x.scalar_type()) && x.size(3) <= qk_norm::kMaxDim;
}
#endif

// Whether the fused implementation runs for x (on the CPU: always; on CUDA: with reel's
// kernels, for the dtypes and sizes they take).
bool Fusable(const torch::Tensor& x) {
  if (!fused_qk_norm.load(std::memory_order_relaxed)) return false;
  if (x.device().is_cpu()) return true;
#if defined(REEL_CUDA_KERNELS)
  return x.device().is_cuda() && CudaFits(x);
#else
  return false;
#endif
}

// cos and sin are empty without rotary positions.
torch::Tensor FusedForward(const torch::Tensor& x, const torch::Tensor& weight,
                           const torch::Tensor& cos, const torch::Tensor& sin, double eps) {
  fused::OpRecord record("reel::qk_norm_rope", {x, weight, cos, sin});
  const Operands o(x, weight, cos, sin, eps);
  const qk_norm::Layout& l = o.layout;
  const torch::Tensor &w = o.w, &c = o.cos, &s = o.sin;
  torch::Tensor out =
      torch::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (l.rows == 0) return out;
#if defined(REEL_CUDA_KERNELS)
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    fused::CheckLaunch(
        qk_norm::LaunchForward(x.data_ptr(), fused::KernelDtype(x.scalar_type()),
                               w.data_ptr<float>(), DataOrNull<float>(c), DataOrNull<float>(s),
                               out.data_ptr(), l, at::cuda::getCurrentCUDAStream()),
        "QkNormRope", "forward");
    record.SetOutputs({out});
    return out;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "QkNormRope",
                                  [&] { CpuForward<scalar_t>(x, w, c, s, out, l); });
  record.SetOutputs({out});
  return out;
}

std::pair<torch::Tensor, torch::Tensor> FusedBackward(const torch::Tensor& grad,
                                                      const torch::Tensor& x,
                                                      const torch::Tensor& weight,
                                                      const torch::Tensor& cos,
                                                      const torch::Tensor& sin, double eps) {
  fused::OpRecord record("reel::qk_norm_rope_backward", {grad, x, weight, cos, sin});
  const Operands o(x, weight, cos, sin, eps);
  const qk_norm::Layout& l = o.layout;
  const torch::Tensor &w = o.w, &c = o.cos, &s = o.sin;
  const torch::Tensor g = grad.to(x.scalar_type()).contiguous();
  torch::Tensor grad_x =
      torch::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (l.rows == 0) return {grad_x, torch::zeros_like(weight)};
  torch::Tensor grad_w;
#if defined(REEL_CUDA_KERNELS)
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    torch::Tensor partials =
        torch::empty({qk_norm::BackwardBlocks(l), l.dim}, x.options().dtype(torch::kFloat));
    fused::CheckLaunch(
        qk_norm::LaunchBackward(g.data_ptr(), x.data_ptr(), fused::KernelDtype(x.scalar_type()),
                                w.data_ptr<float>(), DataOrNull<float>(c), DataOrNull<float>(s),
                                grad_x.data_ptr(), partials.data_ptr<float>(), l,
                                at::cuda::getCurrentCUDAStream()),
        "QkNormRope", "backward");
    grad_w = partials.sum(0);
  }
#endif
  if (!grad_w.defined()) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kBFloat16, at::kHalf, x.scalar_type(), "QkNormRopeBackward",
        [&] { grad_w = CpuBackward<scalar_t>(g, x, w, c, s, grad_x, l); });
  }
  grad_w = grad_w.to(weight.scalar_type());
  record.SetOutputs({grad_x, grad_w});
  return {grad_x, grad_w};
}

class QkNormRopeFunction : public torch::autograd::Function<QkNormRopeFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& cos,
                               const torch::Tensor& sin, double eps) {
    ctx->save_for_backward({x, weight, cos, sin});
    ctx->saved_data["eps"] = eps;
    return FusedForward(x, weight, cos, sin, eps);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_w] = FusedBackward(grads[0], saved[0], saved[1], saved[2], saved[3],
                                          ctx->saved_data["eps"].toDouble());
    return {grad_x, grad_w, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void CheckShapes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& cos,
                 const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4, "QkNormRope: x must be [B, N, H, D], not ", x.sizes());
  const int64_t d = x.size(3);
  TORCH_CHECK(d % 2 == 0, "QkNormRope: the head dimension must be even, not ", d);
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == d, "QkNormRope: weight must be [", d,
              "], not ", weight.sizes());
  TORCH_CHECK(cos.defined() == sin.defined(), "QkNormRope: cos and sin go together");
  for (const torch::Tensor* t : {&weight, &cos, &sin}) {
    TORCH_CHECK(!t->defined() || t->device() == x.device(), "QkNormRope: x is on ", x.device(),
                ", an operand on ", t->device());
  }
  if (cos.defined()) {
    TORCH_CHECK(cos.dim() == 2 && cos.size(0) == x.size(1) && cos.size(1) == d / 2 &&
                    sin.sizes() == cos.sizes(),
                "QkNormRope: cos and sin must be [", x.size(1), ", ", d / 2, "], not ", cos.sizes(),
                " and ", sin.sizes());
  }
}

}  // namespace

torch::Tensor QkNormRope(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& cos, const torch::Tensor& sin, double eps) {
  CheckShapes(x, weight, cos, sin);
  if (!Fusable(x)) return QkNormRopeComposite(x, weight, cos, sin, eps);
  // The kernels read rows along a contiguous last dimension. (An autograd function takes
  // no undefined tensors: without rotary positions, the tables are empty.)
  const torch::Tensor rows = x.stride(3) == 1 ? x : x.contiguous();
  const torch::Tensor none = torch::empty({0}, x.options().dtype(torch::kFloat));
  return QkNormRopeFunction::apply(rows, weight, cos.defined() ? cos : none,
                                   sin.defined() ? sin : none, eps);
}

torch::Tensor QkNormRopeComposite(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& cos, const torch::Tensor& sin, double eps) {
  CheckShapes(x, weight, cos, sin);
  const torch::Tensor xf = x.to(AccType(x));
  torch::Tensor y = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps) * weight;
  if (cos.defined()) y = ApplyRope(y, cos.unsqueeze(1), sin.unsqueeze(1));  // [N, 1, D/2]
  return y.to(x.scalar_type());
}

void SetFusedQkNorm(bool fused) {
  fused_qk_norm.store(fused, std::memory_order_relaxed);
}

bool FusedQkNorm() {
  return fused_qk_norm.load(std::memory_order_relaxed);
}

void SetQkNormVectorKernels(bool on) {
  qk_vector_kernels.store(on, std::memory_order_relaxed);
}

bool HaveCudaKernels() {
#if defined(REEL_CUDA_KERNELS)
  return true;
#else
  return false;
#endif
}

}  // namespace reel::gen
