#include "generate/optim.h"

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "nets/torch_compat.h"

namespace reel::gen {
namespace {

std::vector<torch::Tensor> DefinedGrads(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

// The key of a parameter's state in an optimiser's map: its TensorImpl's address, printed
// to a string in libtorch 1.13 and the pointer itself in 2.x.
template <typename Map>
typename Map::key_type StateKey(const Map&, const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

// Parameters, gradients and moments of the parameters at one step count.
struct Lists {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  std::vector<torch::optim::AdamWParamState*> states;
};

}  // namespace

void ZeroGrads(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard g;
  const std::vector<torch::Tensor> grads = DefinedGrads(params);
  if (!grads.empty()) torch::_foreach_zero_(grads);
}

torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard g;
  const std::vector<torch::Tensor> grads = DefinedGrads(params);
  if (grads.empty()) return torch::zeros({});
  const std::vector<torch::Tensor> norms = torch::_foreach_norm(grads, 2);
  const torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  // clip_grad_norm_'s operations, on the device: a coefficient of 1 (no clipping) leaves
  // each gradient as it was, bit for bit.
  const torch::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  compat::ForeachMulInPlace(grads, coef);
  return total;
}

void AdamWStep(torch::optim::AdamW& opt) {
  torch::NoGradGuard g;
  auto& state = opt.state();
  for (auto& group : opt.param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "AdamWStep does not implement amsgrad");
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    std::vector<torch::Tensor> decayed;
    std::map<int64_t, Lists> by_step;  // one entry unless some parameter missed steps
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdamWStep does not support sparse gradients");
      auto key = StateKey(state, p);
      auto it = state.find(key);
      if (it == state.end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state.emplace(std::move(key), std::move(s)).first;
      }
      auto* s = static_cast<torch::optim::AdamWParamState*>(it->second.get());
      Lists& l = by_step[s->step()];
      l.params.push_back(p);
      l.grads.push_back(p.grad());
      l.exp_avgs.push_back(s->exp_avg());
      l.exp_avg_sqs.push_back(s->exp_avg_sq());
      l.states.push_back(s);
      decayed.push_back(p);
    }
    if (decayed.empty()) continue;
    if (o.weight_decay() != 0) torch::_foreach_mul_(decayed, 1 - o.lr() * o.weight_decay());
    for (auto& [step, l] : by_step) {
      const int64_t now = step + 1;
      for (auto* s : l.states) s->step(now);
      const double bias_correction1 = 1 - std::pow(beta1, now);
      const double bias_correction2 = 1 - std::pow(beta2, now);
      torch::_foreach_mul_(l.exp_avgs, beta1);
      torch::_foreach_add_(l.exp_avgs, l.grads, 1 - beta1);
      torch::_foreach_mul_(l.exp_avg_sqs, beta2);
      torch::_foreach_addcmul_(l.exp_avg_sqs, l.grads, l.grads, 1 - beta2);
      std::vector<torch::Tensor> denom = torch::_foreach_sqrt(l.exp_avg_sqs);
      torch::_foreach_div_(denom, std::sqrt(bias_correction2));
      torch::_foreach_add_(denom, o.eps());
      torch::_foreach_addcdiv_(l.params, l.exp_avgs, denom, -o.lr() / bias_correction1);
    }
  }
}

void EmaUpdate(const std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& model,
               double decay) {
  torch::NoGradGuard g;
  TORCH_CHECK(ema.size() == model.size(), "EmaUpdate: ", ema.size(), " EMA tensors for ",
              model.size(), " model tensors");
  if (ema.empty()) return;
  torch::_foreach_mul_(ema, decay);
  torch::_foreach_add_(ema, model, 1 - decay);
}

}  // namespace reel::gen
