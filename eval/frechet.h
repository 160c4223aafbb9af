// Distances between two sets of features: Fréchet distance (FID/FVD), kernel distance
// (KID/KVD) and bootstrap intervals. libtorch only; everything in float64.
//
// FeatureMoments accumulates the raw first and second moments of features as they
// stream in (StyleGAN-V's FeatureStats: features as float32, sums in float64), so the
// mean and covariance of 10k clips never need the clips themselves:
//   mean = sum / N;  cov = outer_sum / N - mean mean^T        (normaliser N)
//   cov_unbiased = cov * N / (N - 1)                           (numpy.cov, N - 1)
//
// FrechetDistance: ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2). The last trace is
// the sum of the square roots of the eigenvalues of S1 S2, computed in the symmetric
// form A S2 A with A = S1^1/2 (both through symmetric eigen-decompositions), which has the
// same eigenvalues; eigenvalues below zero (rounding, singular covariances) count as 0,
// which is the real part scipy.linalg.sqrtm would give them.
//
// KernelDistance: the unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3
// averaged over `subsets` random subsets of size m = min(n1, n2, max_subset_size), as
// StyleGAN2-ADA's KID (and KVD on I3D features). With m equal to both set sizes the
// subsets are the whole sets and the value does not depend on the seed.
//
// Thread-safety: pure functions; a FeatureMoments is used by one thread at a time.

#ifndef REEL_EVAL_FRECHET_H_
#define REEL_EVAL_FRECHET_H_

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "util/status.h"

namespace reel {

class FeatureMoments {
 public:
  // features: [N, D]; converted to float32 then summed in float64.
  Status Add(const torch::Tensor& features);
  int64_t count() const { return count_; }
  int64_t dim() const { return dim_; }
  torch::Tensor Mean() const;                     // [D] float64
  torch::Tensor Covariance(bool unbiased) const;  // [D, D] float64

 private:
  int64_t count_ = 0;
  int64_t dim_ = 0;
  torch::Tensor sum_;    // [D] float64
  torch::Tensor outer_;  // [D, D] float64
};

// Means [D] and covariances [D, D], any floating type (computed in float64).
Result<double> FrechetDistance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                               const torch::Tensor& mu2, const torch::Tensor& sigma2);
// From feature matrices [N, D]. unbiased = false: StyleGAN-V's statistics (raw moments,
// normaliser N, via FeatureMoments); true: numpy.cov's (centred, normaliser N - 1), as
// common_metrics_on_video_quality computes them. With a single feature on either side
// only the mean term is used (as common_metrics does).
Result<double> FrechetDistance(const torch::Tensor& features1, const torch::Tensor& features2,
                               bool unbiased);

struct KernelDistanceOptions {
  int subsets = 100;
  int64_t max_subset_size = 1000;
  uint64_t seed = 0;
};
Result<double> KernelDistance(const torch::Tensor& features1, const torch::Tensor& features2,
                              const KernelDistanceOptions& options = {});

// A percentile interval of a statistic over `resamples` bootstrap resamples (both sets
// drawn with replacement, seeded).
struct Interval {
  double low = 0;
  double high = 0;
  int resamples = 0;
  double level = 0.95;
};
Result<Interval> BootstrapFrechet(const torch::Tensor& features1, const torch::Tensor& features2,
                                  bool unbiased, int resamples, uint64_t seed, double level = 0.95);
// Interval of FD(candidate, real) - FD(baseline, real): each resample draws the three sets
// with replacement independently (the real set once, shared by both distances).
Result<Interval> BootstrapFrechetDifference(const torch::Tensor& candidate,
                                            const torch::Tensor& baseline,
                                            const torch::Tensor& real, bool unbiased,
                                            int resamples, uint64_t seed, double level = 0.95);
// The central `level` interval of `values` by linear interpolation between order
// statistics (numpy.percentile's default). `values` must not be empty.
Interval PercentileInterval(std::vector<double> values, double level = 0.95);

}  // namespace reel

#endif  // REEL_EVAL_FRECHET_H_
