// Tests for eval's metric math (libtorch only): Fréchet and kernel distances, the FVD
// protocols' preprocessing, CLIP-feature metrics and flicker, against hand-computed values.

#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval/frechet.h"
#include "eval/fvd.h"
#include "eval/video_metrics.h"
#include "tests/support/scratch_path.h"
#include "tests/support/tiny_detector.h"

namespace reel {
namespace {

torch::Tensor M(std::vector<double> v, int64_t r, int64_t c) {
  return torch::tensor(v, torch::kDouble).view({r, c});
}

// ---------------------------------------------------------------- Fréchet distance

TEST(FrechetTest, KnownValues) {
  const torch::Tensor s1 = M({2, 1, 1, 2}, 2, 2);
  const torch::Tensor s2 = M({1, 0, 0, 4}, 2, 2);
  const torch::Tensor zero = torch::zeros({2}, torch::kDouble);
  auto d = FrechetDistance(zero, s1, zero, s2);
  ASSERT_TRUE(d.ok());
  EXPECT_NEAR(*d, 0.7712204476543416, 1e-12);
  auto shifted = FrechetDistance(zero, s1, torch::tensor({1.0, 2.0}, torch::kDouble), s2);
  ASSERT_TRUE(shifted.ok());
  EXPECT_NEAR(*shifted, 5.771220447654342, 1e-12);
  // Symmetric in its two sides.
  EXPECT_NEAR(*FrechetDistance(zero, s2, zero, s1), *d, 1e-12);
}

TEST(FrechetTest, NormaliserNAgainstNMinusOne) {
  const torch::Tensor x1 = torch::tensor({0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0}).view({4, 2});
  const torch::Tensor x2 = x1 * 2 + 1;
  auto biased = FrechetDistance(x1, x2, /*unbiased=*/false);
  auto unbiased = FrechetDistance(x1, x2, /*unbiased=*/true);
  ASSERT_TRUE(biased.ok() && unbiased.ok());
  EXPECT_NEAR(*biased, 10.0, 1e-9);
  EXPECT_NEAR(*unbiased, 32.0 / 3.0, 1e-9);  // 10.6667
  // A set against itself.
  EXPECT_NEAR(*FrechetDistance(x1, x1, false), 0.0, 1e-9);
}

TEST(FrechetTest, HighDimensionalIdentity) {
  const int64_t d = 2048;
  const torch::Tensor eye = torch::eye(d, torch::kDouble);
  auto r = FrechetDistance(torch::zeros({d}, torch::kDouble), eye, torch::ones({d}, torch::kDouble),
                           eye);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(*r, 2048.0, 1e-6);
}

TEST(FrechetTest, SingularCovariancesStayFinite) {
  // Rank-1 covariances, and features with a constant column.
  const torch::Tensor s1 = M({1, 1, 1, 1}, 2, 2);
  const torch::Tensor s2 = M({4, 0, 0, 0}, 2, 2);
  auto d =
      FrechetDistance(torch::zeros({2}, torch::kDouble), s1, torch::zeros({2}, torch::kDouble), s2);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(std::isfinite(*d));
  // Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2): S1 S2 = [[4,0],[4,0]], eigenvalues 4 and 0.
  EXPECT_NEAR(*d, 2 + 4 - 2 * 2, 1e-9);
  torch::manual_seed(1);
  torch::Tensor f = torch::randn({20, 5});
  f.select(1, 3).fill_(7);
  auto self = FrechetDistance(f, f, true);
  ASSERT_TRUE(self.ok());
  EXPECT_NEAR(*self, 0.0, 1e-6);
}

TEST(FrechetTest, StreamedMomentsMatchTheWholeSet) {
  torch::manual_seed(2);
  const torch::Tensor f = torch::randn({100, 6}) * 3 + 1;
  FeatureMoments streamed;
  for (int i = 0; i < 100; i += 7)
    ASSERT_TRUE(streamed.Add(f.slice(0, i, std::min(i + 7, 100))).ok());
  EXPECT_EQ(streamed.count(), 100);
  const torch::Tensor x = f.to(torch::kDouble);
  const torch::Tensor mean = x.mean(0);
  const torch::Tensor cov_n = (x - mean).t().matmul(x - mean) / 100.0;
  EXPECT_LT((streamed.Mean() - mean).abs().max().item<double>(), 1e-12);
  EXPECT_LT((streamed.Covariance(false) - cov_n).abs().max().item<double>(), 1e-10);
  EXPECT_LT((streamed.Covariance(true) - cov_n * 100.0 / 99.0).abs().max().item<double>(), 1e-10);
  EXPECT_FALSE(streamed.Add(torch::zeros({2, 5})).ok()) << "width changes are refused";
}

TEST(KernelDistanceTest, WholeSetsAreDeterministicAndMatchTheFormula) {
  torch::manual_seed(3);
  const torch::Tensor a = torch::randn({6, 4});
  const torch::Tensor b = torch::randn({6, 4}) + 0.5;
  KernelDistanceOptions o;
  o.subsets = 3;
  auto k1 = KernelDistance(a, b, o);
  o.seed = 99;
  auto k2 = KernelDistance(a, b, o);
  ASSERT_TRUE(k1.ok() && k2.ok());
  EXPECT_NEAR(*k1, *k2, 1e-12) << "subsets of the full size do not depend on the seed";
  // Direct: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.
  const torch::Tensor x = a.to(torch::kDouble), y = b.to(torch::kDouble);
  auto k = [](const torch::Tensor& p, const torch::Tensor& q) {
    return (p.matmul(q.t()) / 4.0 + 1).pow(3);
  };
  const double m = 6;
  const double xx = (k(x, x).sum() - k(x, x).diagonal().sum()).item<double>() / (m * (m - 1));
  const double yy = (k(y, y).sum() - k(y, y).diagonal().sum()).item<double>() / (m * (m - 1));
  const double xy = k(x, y).sum().item<double>() / (m * m);
  EXPECT_NEAR(*k1, xx + yy - 2 * xy, 1e-9);
  o.subsets = 0;  // no subset to average: refused, not NaN
  EXPECT_EQ(KernelDistance(a, b, o).status().code(), StatusCode::kInvalidArgument);
}

TEST(BootstrapTest, IntervalBracketsTheEstimate) {
  torch::manual_seed(4);
  const torch::Tensor a = torch::randn({200, 3});
  const torch::Tensor b = torch::randn({200, 3}) + 0.3;
  auto ci = BootstrapFrechet(a, b, false, 50, 7);
  ASSERT_TRUE(ci.ok());
  const double d = *FrechetDistance(a, b, false);
  EXPECT_LT(ci->low, ci->high);
  EXPECT_LT(ci->low, d * 1.5);
  EXPECT_GT(ci->high, d * 0.5);
  auto again = BootstrapFrechet(a, b, false, 50, 7);
  EXPECT_EQ(again->low, ci->low) << "seeded";
}

// ---------------------------------------------------------------- FVD protocols

// An independent bilinear resize (align_corners = false, as torch's upsample_bilinear2d
// for scale factors computed from sizes) of one plane.
std::vector<float> Bilinear(const std::vector<float>& src, int h, int w, int oh, int ow) {
  std::vector<float> out(static_cast<size_t>(oh * ow));
  const double sy = static_cast<double>(h) / oh, sx = static_cast<double>(w) / ow;
  for (int y = 0; y < oh; ++y) {
    double fy = std::max(0.0, (y + 0.5) * sy - 0.5);
    int y0 = std::min(static_cast<int>(fy), h - 1);
    int y1 = std::min(y0 + 1, h - 1);
    double ly = fy - y0;
    for (int x = 0; x < ow; ++x) {
      double fx = std::max(0.0, (x + 0.5) * sx - 0.5);
      int x0 = std::min(static_cast<int>(fx), w - 1);
      int x1 = std::min(x0 + 1, w - 1);
      double lx = fx - x0;
      const double v = (1 - ly) * ((1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1]) +
                       ly * ((1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
      out[static_cast<size_t>(y * ow + x)] = static_cast<float>(v);
    }
  }
  return out;
}

TEST(FvdProtocolTest, CommonMetricsPreprocessingElementWise) {
  torch::manual_seed(5);
  // [B=1, 3, T=2, H=6, W=9]: the shorter side goes to 224, the other to ceil(9 * 224 / 6) = 336.
  const torch::Tensor clips = torch::randint(0, 256, {1, 3, 2, 6, 9}, torch::kByte);
  const torch::Tensor got = PreprocessClips(clips, FvdProtocol::kCommonMetrics);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 3, 2, 224, 224}));
  const int oh = 224, ow = 336, crop = (336 - 224) / 2;
  double worst = 0;
  for (int c = 0; c < 3; ++c) {
    for (int t = 0; t < 2; ++t) {
      std::vector<float> plane(54);
      for (int i = 0; i < 54; ++i) plane[i] = clips[0][c][t].flatten()[i].item<uint8_t>() / 255.0f;
      const std::vector<float> big = Bilinear(plane, 6, 9, oh, ow);
      const torch::Tensor g = got[0][c][t].contiguous();
      const float* gp = g.data_ptr<float>();
      for (int y = 0; y < 224; ++y) {
        for (int x = 0; x < 224; ++x) {
          const double want = (big[static_cast<size_t>(y * ow + x + crop)] - 0.5) * 2;
          worst = std::max(worst, std::abs(gp[y * 224 + x] - want));
        }
      }
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(FvdProtocolTest, WhatReachesTheDetector) {
  const std::string probe = testing::ScratchPath("probe.pt");
  testing::SaveProbeDetector(probe);
  auto det = FvdDetector::Load(probe);
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  EXPECT_EQ(det->get()->sha256().size(), 64u);
  torch::manual_seed(6);
  const torch::Tensor clips = torch::randint(0, 256, {2, 3, 4, 230, 240}, torch::kByte);
  // stylegan-v: the uint8 clip itself (the detector rescales and resizes).
  auto sv = (*det)->Features(clips, FvdProtocol::kStyleganV);
  ASSERT_TRUE(sv.ok()) << sv.status().ToString();
  EXPECT_TRUE(torch::equal(*sv, clips.flatten(1).to(torch::kFloat)));
  // common-metrics: the preprocessed float clip.
  auto cm = (*det)->Features(clips, FvdProtocol::kCommonMetrics);
  ASSERT_TRUE(cm.ok());
  const torch::Tensor want = PreprocessClips(clips, FvdProtocol::kCommonMetrics).flatten(1);
  EXPECT_TRUE(torch::allclose(*cm, want));
  EXPECT_EQ(cm->size(1), 3 * 4 * 224 * 224);
}

TEST(FvdProtocolTest, DetectorErrorsAreNamed) {
  const std::string path = testing::ScratchPath("not-a-model.pt");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("nope", f);
    std::fclose(f);
  }
  auto bad = FvdDetector::Load(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a TorchScript detector"), std::string::npos);
  EXPECT_FALSE(ParseFvdProtocol("tf").ok());
  EXPECT_EQ(*ParseFvdProtocol("common-metrics"), FvdProtocol::kCommonMetrics);
}

// ---------------------------------------------------------------- CLIP metrics, flicker

TEST(VideoMetricsTest, ClipScoreTempAndBackgroundByHand) {
  // Frames along (1,0), (1,1)/sqrt2, (0,1); text along (1,0).
  const torch::Tensor f = torch::tensor({1.0, 0.0, 1.0, 1.0, 0.0, 2.0}).view({3, 2});
  const torch::Tensor text = torch::tensor({3.0, 0.0});
  const ClipScoreSum s = ClipScoreOfVideo(f, text);
  const double r = 1 / std::sqrt(2.0);
  EXPECT_NEAR(s.sum, 100 * (1 + r + 0), 1e-9);
  EXPECT_EQ(s.frames, 3);
  EXPECT_NEAR(s.mean(), 100 * (1 + r) / 3, 1e-9);
  EXPECT_NEAR(ClipTemp(f), (r + r) / 2, 1e-12);
  // s_1 = (cos(f0,f1) + cos(f0,f1)) / 2 = r; s_2 = (cos(f1,f2) + max(0, cos(f0,f2))) / 2 = r / 2.
  const ConsistencySum c = BackgroundConsistency(f);
  EXPECT_EQ(c.pairs, 2);
  EXPECT_NEAR(c.sum, r + r / 2, 1e-12);
  // Negative cosines count as 0.
  const torch::Tensor opposite = torch::tensor({1.0, 0.0, -1.0, 0.0}).view({2, 2});
  EXPECT_NEAR(BackgroundConsistency(opposite).sum, 0.0, 1e-12);
  EXPECT_NEAR(ClipTemp(opposite), -1.0, 1e-12);
}

TEST(VideoMetricsTest, FlickerOfConstantAndAlternatingVideos) {
  const torch::Tensor constant = torch::full({8, 6, 5, 3}, 77, torch::kByte);
  EXPECT_DOUBLE_EQ(Flicker(constant), 1.0);
  torch::Tensor alternating = torch::zeros({8, 6, 5, 3}, torch::kByte);
  for (int t = 1; t < 8; t += 2) alternating[t].fill_(255);
  EXPECT_DOUBLE_EQ(Flicker(alternating), 0.0);
  torch::Tensor half = torch::zeros({3, 2, 2, 1}, torch::kByte);
  half[1].fill_(51);  // |0-51| and |51-0|: mean 51 -> (255 - 51) / 255 = 0.8
  EXPECT_NEAR(Flicker(half), 0.8, 1e-12);
}

TEST(VideoMetricsTest, VbenchPreprocessingShapesAndRounding) {
  // A flat 255 frame stays 255 after bicubic (clamped), so after normalising each channel is
  // (1 - mean) / std.
  const torch::Tensor white = torch::full({2, 3, 100, 300}, 255, torch::kByte);
  const torch::Tensor x = VbenchClipPreprocess(white);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 224, 224}));
  EXPECT_NEAR(x[0][0][10][10].item<float>(), (1 - 0.48145466f) / 0.26862954f, 1e-5);
  // Odd crops round half to even: 300 -> int(224 * 300 / 100) = 672, offset 224; 225-high
  // frames give an offset of round(0.5) = 0.
  const torch::Tensor tall = torch::randint(0, 256, {1, 3, 225, 224}, torch::kByte);
  EXPECT_EQ(VbenchClipPreprocess(tall).size(2), 224);
}

}  // namespace
}  // namespace reel
