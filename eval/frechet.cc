#include "eval/frechet.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "nets/tensor_text.h"
#include "nets/torch_compat.h"

namespace reel {
namespace {

torch::Tensor F64(const torch::Tensor& t) {
  return t.to(torch::kCPU, torch::kDouble);
}

// Eigenvalues and vectors of a symmetric matrix (symmetrised first).
std::tuple<torch::Tensor, torch::Tensor> SymmetricEigen(const torch::Tensor& m) {
  const torch::Tensor sym = (m + m.t()) * 0.5;
  return torch::linalg_eigh(sym, "L");  // (torch::linalg:: is not in 2.x's torch/torch.h)
}

// Tr((S1 S2)^1/2) through A S2 A, A = S1^1/2.
double TraceSqrtProduct(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto [w1, v1] = SymmetricEigen(s1);
  const torch::Tensor root = (v1 * w1.clamp_min(0).sqrt().unsqueeze(0)).matmul(v1.t());
  const torch::Tensor inner = root.matmul(s2).matmul(root);
  auto [w, v] = SymmetricEigen(inner);
  return w.clamp_min(0).sqrt().sum().item<double>();
}

}  // namespace

Status FeatureMoments::Add(const torch::Tensor& features) {
  if (features.dim() != 2) {
    return Status::InvalidArgument("features must be [N, D], got " + ShapeText(features.sizes()));
  }
  if (dim_ != 0 && features.size(1) != dim_) {
    return Status::InvalidArgument("features of width " + std::to_string(features.size(1)) +
                                   " after width " + std::to_string(dim_));
  }
  const torch::Tensor x = features.to(torch::kCPU, torch::kFloat).to(torch::kDouble);
  if (dim_ == 0) {
    dim_ = features.size(1);
    sum_ = torch::zeros({dim_}, torch::kDouble);
    outer_ = torch::zeros({dim_, dim_}, torch::kDouble);
  }
  sum_ += x.sum(0);
  outer_ += x.t().matmul(x);
  count_ += features.size(0);
  return Status::OK();
}

torch::Tensor FeatureMoments::Mean() const {
  return sum_ / static_cast<double>(count_);
}

torch::Tensor FeatureMoments::Covariance(bool unbiased) const {
  const torch::Tensor mean = Mean();
  torch::Tensor cov = outer_ / static_cast<double>(count_) - torch::outer(mean, mean);
  if (unbiased && count_ > 1) cov = cov * (static_cast<double>(count_) / (count_ - 1));
  return cov;
}

Result<double> FrechetDistance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                               const torch::Tensor& mu2, const torch::Tensor& sigma2) {
  if (mu1.dim() != 1 || mu2.sizes() != mu1.sizes() || sigma1.dim() != 2 ||
      sigma1.size(0) != mu1.size(0) || sigma1.size(1) != mu1.size(0) ||
      sigma2.sizes() != sigma1.sizes()) {
    return Status::InvalidArgument("Fréchet distance: shapes " + ShapeText(mu1.sizes()) + ", " +
                                   ShapeText(sigma1.sizes()) + " and " + ShapeText(mu2.sizes()) +
                                   ", " + ShapeText(sigma2.sizes()) + " do not match");
  }
  compat::InferenceGuard guard;
  const torch::Tensor m1 = F64(mu1), m2 = F64(mu2), s1 = F64(sigma1), s2 = F64(sigma2);
  const double mean_term = (m1 - m2).pow(2).sum().item<double>();
  const double traces = s1.trace().item<double>() + s2.trace().item<double>();
  const double cross = TraceSqrtProduct(s1, s2);
  const double d = mean_term + traces - 2.0 * cross;
  if (!std::isfinite(d)) return Status::Internal("Fréchet distance is not finite");
  return d;
}

Result<double> FrechetDistance(const torch::Tensor& features1, const torch::Tensor& features2,
                               bool unbiased) {
  if (features1.dim() != 2 || features2.dim() != 2 || features1.size(1) != features2.size(1)) {
    return Status::InvalidArgument("feature sets " + ShapeText(features1.sizes()) + " and " +
                                   ShapeText(features2.sizes()) + " do not match");
  }
  if (features1.size(0) == 0 || features2.size(0) == 0) {
    return Status::InvalidArgument("a feature set is empty");
  }
  if (!unbiased) {
    // StyleGAN-V: raw moments of float32 features summed in float64.
    FeatureMoments a, b;
    REEL_RETURN_IF_ERROR(a.Add(features1));
    REEL_RETURN_IF_ERROR(b.Add(features2));
    if (a.count() == 1 || b.count() == 1) return (a.Mean() - b.Mean()).pow(2).sum().item<double>();
    return FrechetDistance(a.Mean(), a.Covariance(false), b.Mean(), b.Covariance(false));
  }
  // numpy.cov: centred, normaliser N - 1, on the features as given (float64).
  const torch::Tensor x = F64(features1), y = F64(features2);
  const torch::Tensor mx = x.mean(0), my = y.mean(0);
  if (x.size(0) == 1 || y.size(0) == 1) return (mx - my).pow(2).sum().item<double>();
  const torch::Tensor xc = x - mx, yc = y - my;
  return FrechetDistance(mx, xc.t().matmul(xc) / static_cast<double>(x.size(0) - 1), my,
                         yc.t().matmul(yc) / static_cast<double>(y.size(0) - 1));
}

Result<double> KernelDistance(const torch::Tensor& features1, const torch::Tensor& features2,
                              const KernelDistanceOptions& options) {
  if (features1.dim() != 2 || features2.dim() != 2 || features1.size(1) != features2.size(1)) {
    return Status::InvalidArgument("feature sets " + ShapeText(features1.sizes()) + " and " +
                                   ShapeText(features2.sizes()) + " do not match");
  }
  const int64_t m = std::min({features1.size(0), features2.size(0), options.max_subset_size});
  if (m < 2) return Status::InvalidArgument("kernel distance needs at least 2 features per side");
  if (options.subsets < 1) return Status::InvalidArgument("kernel distance needs a subset or more");
  compat::InferenceGuard guard;
  const torch::Tensor x_all = F64(features1), y_all = F64(features2);
  const double d = static_cast<double>(features1.size(1));
  std::mt19937_64 rng(options.seed);
  auto choose = [&](int64_t n) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
    if (m < n) {
      // Partial Fisher-Yates: m distinct indices.
      for (int64_t i = 0; i < m; ++i) {
        std::uniform_int_distribution<int64_t> pick(i, n - 1);
        std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(pick(rng))]);
      }
      idx.resize(static_cast<size_t>(m));
    }
    return torch::tensor(idx, torch::kLong);
  };
  double total = 0;
  for (int s = 0; s < options.subsets; ++s) {
    const torch::Tensor x = x_all.index_select(0, choose(x_all.size(0)));
    const torch::Tensor y = y_all.index_select(0, choose(y_all.size(0)));
    const torch::Tensor a = (x.matmul(x.t()) / d + 1).pow(3) + (y.matmul(y.t()) / d + 1).pow(3);
    const torch::Tensor b = (x.matmul(y.t()) / d + 1).pow(3);
    total += (a.sum().item<double>() - a.diagonal().sum().item<double>()) / (m - 1) -
             b.sum().item<double>() * 2 / m;
  }
  return total / options.subsets / m;
}

namespace {

torch::Tensor Resample(const torch::Tensor& f, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> pick(0, f.size(0) - 1);
  std::vector<int64_t> idx(static_cast<size_t>(f.size(0)));
  for (int64_t& i : idx) i = pick(rng);
  return f.index_select(0, torch::tensor(idx, torch::kLong));
}

}  // namespace

Interval PercentileInterval(std::vector<double> values, double level) {
  std::sort(values.begin(), values.end());
  auto percentile = [&](double q) {
    const double pos = q * static_cast<double>(values.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
  };
  Interval out;
  out.low = percentile((1 - level) / 2);
  out.high = percentile(1 - (1 - level) / 2);
  out.resamples = static_cast<int>(values.size());
  out.level = level;
  return out;
}

Result<Interval> BootstrapFrechet(const torch::Tensor& features1, const torch::Tensor& features2,
                                  bool unbiased, int resamples, uint64_t seed, double level) {
  if (resamples < 2) return Status::InvalidArgument("bootstrap needs at least 2 resamples");
  std::mt19937_64 rng(seed);
  std::vector<double> values;
  for (int k = 0; k < resamples; ++k) {
    torch::Tensor a = Resample(features1, rng);
    torch::Tensor b = Resample(features2, rng);
    REEL_ASSIGN_OR_RETURN(double v, FrechetDistance(a, b, unbiased));
    values.push_back(v);
  }
  return PercentileInterval(std::move(values), level);
}

Result<Interval> BootstrapFrechetDifference(const torch::Tensor& candidate,
                                            const torch::Tensor& baseline,
                                            const torch::Tensor& real, bool unbiased, int resamples,
                                            uint64_t seed, double level) {
  if (resamples < 2) return Status::InvalidArgument("bootstrap needs at least 2 resamples");
  std::mt19937_64 rng(seed);
  std::vector<double> values;
  for (int k = 0; k < resamples; ++k) {
    torch::Tensor r = Resample(real, rng);
    torch::Tensor c = Resample(candidate, rng);
    torch::Tensor b = Resample(baseline, rng);
    REEL_ASSIGN_OR_RETURN(double fc, FrechetDistance(c, r, unbiased));
    REEL_ASSIGN_OR_RETURN(double fb, FrechetDistance(b, r, unbiased));
    values.push_back(fc - fb);
  }
  return PercentileInterval(std::move(values), level);
}

}  // namespace reel
