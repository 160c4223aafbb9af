// The optimiser side of a training step with multi-tensor (_foreach_) operations.
//
// torch::optim::AdamW, torch::nn::utils::clip_grad_norm_ and Optimizer::zero_grad work one
// parameter at a time: about eight, two and one operations per parameter, so several
// thousand small kernels per step for a DiT-B with its text encoder, each costing libtorch
// more time to dispatch than the GPU takes to run it (the GPU idles meanwhile). These do
// the same arithmetic, operation for operation, over all parameters at once: on CUDA a few
// multi-tensor kernels; on the CPU libtorch runs the same per-tensor kernels as before,
// so CPU results are unchanged to the last bit except where noted.
//
// AdamWStep keeps its state in the optimiser's own map (exp_avg, exp_avg_sq, step), so
// saving and loading the optimiser are unchanged.
//
// Thread-safety: none; use from the thread that trains.

#ifndef REEL_GENERATE_OPTIM_H_
#define REEL_GENERATE_OPTIM_H_

#include <vector>

#include <torch/torch.h>

namespace reel::gen {

// Zeroes every defined gradient of `params` (as Optimizer::zero_grad in libtorch 1.13:
// gradients stay allocated, so a parameter unused in a step still gets an AdamW update
// from its moments).
void ZeroGrads(const std::vector<torch::Tensor>& params);

// Scales the defined gradients of `params` so that their global 2-norm is at most
// `max_norm` (clip_grad_norm_'s coefficient max_norm / (norm + 1e-6), capped at 1).
// Returns the norm before clipping, a float scalar tensor on the gradients' device (zero
// on the CPU without gradients). Nothing is read on the host: the coefficient stays on
// the device, as in clip_grad_norm_. The per-tensor norms may differ from
// clip_grad_norm_'s in the last bit.
torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm);

// One step of `opt` over its parameters that have gradients, as AdamW::step computes it
// (decoupled weight decay, bias-corrected moments). amsgrad is not supported.
void AdamWStep(torch::optim::AdamW& opt);

// ema = decay * ema + (1 - decay) * model, tensor by tensor (the lists pair up).
void EmaUpdate(const std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& model,
               double decay);

}  // namespace reel::gen

#endif  // REEL_GENERATE_OPTIM_H_
