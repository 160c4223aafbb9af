// Rectified flow (libtorch only): the training target and the sampler.
//
//   x_t = (1 - t) x_0 + t eps        (t = 0 data, t = 1 noise)
//   target velocity v = eps - x_0;   loss = mean (v_pred - v)^2
//   t for training: logit-normal (sigmoid of N(mean, std)), then shifted
//   shift(t) = s t / (1 + (s - 1) t),  s = sqrt(tokens / 256) clamped to [1, 8]
//     (more tokens -> more time at high noise, as SD3 and Open-Sora 1.2)
//   sampling: Euler from t = 1 to 0 over `steps` uniform steps mapped through shift();
//     x <- x + (t_next - t) v, with classifier-free guidance
//     v = v_uncond + cfg (v_cond - v_uncond), both halves in one batched call
//
// Thread-safety: pure functions (randomness from the generator passed in).

#ifndef REEL_GENERATE_FLOW_H_
#define REEL_GENERATE_FLOW_H_

#include <functional>

#include <torch/torch.h>

namespace reel::gen {

double TimestepShiftFor(int64_t tokens);
torch::Tensor ShiftTimesteps(const torch::Tensor& t, double shift);
// [batch] timesteps in (0, 1): logit-normal, shifted.
torch::Tensor SampleTrainingTimesteps(int64_t batch, double shift, torch::Generator& gen,
                                      double mean = 0.0, double std = 1.0);

struct FlowPair {
  torch::Tensor x_t, target;
};
FlowPair MakeFlowPair(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t);

// velocity(x [2B, ...], t [2B]) for the batched conditional (first B) and unconditional
// (last B) halves; returns x at t = 0 from `noise` [B, ...].
using VelocityFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;
torch::Tensor SampleEuler(const VelocityFn& velocity, const torch::Tensor& noise, int steps,
                          double cfg, double shift);

}  // namespace reel::gen

#endif  // REEL_GENERATE_FLOW_H_
