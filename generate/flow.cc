#include "generate/flow.h"

#include <algorithm>
#include <cmath>

namespace reel::gen {

double TimestepShiftFor(int64_t tokens) {
  return std::clamp(std::sqrt(static_cast<double>(tokens) / 256.0), 1.0, 8.0);
}

torch::Tensor ShiftTimesteps(const torch::Tensor& t, double shift) {
  return shift * t / (1 + (shift - 1) * t);
}

torch::Tensor SampleTrainingTimesteps(int64_t batch, double shift, torch::Generator& gen,
                                      double mean, double std) {
  const torch::Tensor u = at::normal(mean, std, {batch}, gen);
  return ShiftTimesteps(torch::sigmoid(u), shift);
}

FlowPair MakeFlowPair(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) {
  std::vector<int64_t> shape(static_cast<size_t>(x0.dim()), 1);
  shape[0] = x0.size(0);
  const torch::Tensor tt = t.view(shape).to(x0.scalar_type());
  return {(1 - tt) * x0 + tt * noise, noise - x0};
}

torch::Tensor SampleEuler(const VelocityFn& velocity, const torch::Tensor& noise, int steps,
                          double cfg, double shift) {
  const int64_t b = noise.size(0);
  torch::Tensor x = noise;
  const torch::Tensor grid = ShiftTimesteps(
      torch::linspace(1.0, 0.0, steps + 1, torch::TensorOptions().dtype(torch::kDouble)), shift);
  for (int i = 0; i < steps; ++i) {
    const double t = grid[i].item<double>(), t_next = grid[i + 1].item<double>();
    const torch::Tensor tt = torch::full({2 * b}, t, noise.options().dtype(torch::kFloat));
    const torch::Tensor v2 = velocity(torch::cat({x, x}, 0), tt);
    const torch::Tensor vc = v2.narrow(0, 0, b), vu = v2.narrow(0, b, b);
    const torch::Tensor v = vu + cfg * (vc - vu);
    x = x + (t_next - t) * v;
  }
  return x;
}

}  // namespace reel::gen
