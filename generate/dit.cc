#include "generate/dit.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "generate/gated_residual.h"
#include "generate/norm_modulate.h"
#include "generate/qk_norm.h"
#include "nets/torch_compat.h"

namespace reel::gen {
namespace {

class RmsNormImpl : public torch::nn::Module {
 public:
  explicit RmsNormImpl(int dim) { weight_ = register_parameter("weight", torch::ones({dim})); }
  // x [B, N, H, D] -> normalised in float32 with the weight, rotated by the rotary
  // positions when cos and sin are given, in x's dtype (one fused operator: qk_norm.h).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos = {},
                        const torch::Tensor& sin = {}) {
    return QkNormRope(x, weight_, cos, sin, 1e-6);
  }

 private:
  torch::Tensor weight_;
};
TORCH_MODULE(RmsNorm);

// LayerNorm(x) (1 + scale) + shift in the dtype of the matmul it feeds (one fused
// operator: norm_modulate.h), and residual + gate y (one fused operator with a one-pass
// backward: gated_residual.h). The cross-attention's
// LayerNorm (with its weight and bias) runs through the same fused operator.
torch::Tensor NormModulated(const torch::Tensor& x, const torch::Tensor& shift,
                            const torch::Tensor& scale) {
  return NormModulate(x, shift, scale, compat::AutocastDtypeFor(x), 1e-6);
}

torch::Tensor AddGated(const torch::Tensor& residual, const torch::Tensor& gate,
                       const torch::Tensor& y) {
  return GatedResidual(residual, gate, y);
}

struct Grid {
  int64_t t, h, w;
};

}  // namespace

class DitBlockImpl : public torch::nn::Module {
 public:
  DitBlockImpl(int width, int heads, double mlp_ratio, int text_width) : heads_(heads) {
    const int hidden = static_cast<int>(width * mlp_ratio);
    qkv_ = register_module("qkv", torch::nn::Linear(width, 3 * width));
    q_norm_ = register_module("q_norm", RmsNorm(width / heads));
    k_norm_ = register_module("k_norm", RmsNorm(width / heads));
    proj_ = register_module("proj", torch::nn::Linear(width, width));
    norm_cross_ = register_module(
        "norm_cross", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
    cross_q_ = register_module("cross_q", torch::nn::Linear(width, width));
    cross_kv_ = register_module("cross_kv", torch::nn::Linear(text_width, 2 * width));
    cross_q_norm_ = register_module("cross_q_norm", RmsNorm(width / heads));
    cross_k_norm_ = register_module("cross_k_norm", RmsNorm(width / heads));
    cross_proj_ = register_module("cross_proj", torch::nn::Linear(width, width));
    fc1_ = register_module("fc1", torch::nn::Linear(width, hidden));
    fc2_ = register_module("fc2", torch::nn::Linear(hidden, width));
    ada_ = register_module("ada", torch::nn::Linear(width, 6 * width));
    torch::NoGradGuard g;
    ada_->weight.zero_();
    ada_->bias.zero_();
  }

  // x [B, N, D]; c [B, D]; mode: 0 full, 1 spatial (within frames), 2 temporal.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& c, const torch::Tensor& text,
                        const torch::Tensor& text_mask, const torch::Tensor& cos,
                        const torch::Tensor& sin, int mode, int64_t frames) {
    const auto mod = ada_(torch::silu(c)).chunk(6, 1);
    x = AddGated(x, mod[2],
                 SelfAttention(NormModulated(x, mod[0], mod[1]), cos, sin, mode, frames));
    x = x + CrossAttention(AffineLayerNorm(x, norm_cross_->weight, norm_cross_->bias,
                                           compat::AutocastDtypeFor(x), 1e-6),
                           text, text_mask);
    return AddGated(x, mod[5], fc2_(torch::gelu(fc1_(NormModulated(x, mod[3], mod[4])), "tanh")));
  }

 private:
  torch::Tensor SelfAttention(const torch::Tensor& x, const torch::Tensor& cos,
                              const torch::Tensor& sin, int mode, int64_t frames) {
    const int64_t b = x.size(0), n = x.size(1), d = x.size(2), hd = d / heads_;
    // [B, N, H, hd] slices of the projection; the attention takes them as [B, H, N, hd].
    const auto qkv = qkv_(x).view({b, n, 3, heads_, hd}).unbind(2);
    const torch::Tensor q = q_norm_(qkv[0], cos, sin).transpose(1, 2);
    const torch::Tensor k = k_norm_(qkv[1], cos, sin).transpose(1, 2);
    const torch::Tensor v = qkv[2].transpose(1, 2);
    torch::Tensor out;
    if (mode == 0) {
      out = compat::Attention(q, k, v);
    } else {
      const int64_t s = n / frames;
      auto split = [&](const torch::Tensor& y) {  // [B, H, T*S, hd]
        torch::Tensor z = y.view({b, heads_, frames, s, hd});
        if (mode == 1) return z.permute({0, 2, 1, 3, 4}).reshape({b * frames, heads_, s, hd});
        return z.permute({0, 3, 1, 2, 4}).reshape({b * s, heads_, frames, hd});
      };
      torch::Tensor o = compat::Attention(split(q), split(k), split(v));
      if (mode == 1) {
        out =
            o.view({b, frames, heads_, s, hd}).permute({0, 2, 1, 3, 4}).reshape({b, heads_, n, hd});
      } else {
        out =
            o.view({b, s, heads_, frames, hd}).permute({0, 2, 3, 1, 4}).reshape({b, heads_, n, hd});
      }
    }
    return proj_(out.transpose(1, 2).reshape({b, n, d}));
  }

  torch::Tensor CrossAttention(const torch::Tensor& x, const torch::Tensor& text,
                               const torch::Tensor& mask) {
    const int64_t b = x.size(0), n = x.size(1), d = x.size(2), hd = d / heads_, l = text.size(1);
    const torch::Tensor q = cross_q_norm_(cross_q_(x).view({b, n, heads_, hd})).transpose(1, 2);
    const auto kv = cross_kv_(text).view({b, l, 2, heads_, hd}).unbind(2);
    const torch::Tensor k = cross_k_norm_(kv[0]).transpose(1, 2);
    const torch::Tensor o = compat::Attention(q, k, kv[1].transpose(1, 2), mask.view({b, 1, 1, l}));
    return cross_proj_(o.transpose(1, 2).reshape({b, n, d}));
  }

  int heads_;
  torch::nn::LayerNorm norm_cross_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, cross_q_{nullptr}, cross_kv_{nullptr},
      cross_proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr}, ada_{nullptr};
  RmsNorm q_norm_{nullptr}, k_norm_{nullptr}, cross_q_norm_{nullptr}, cross_k_norm_{nullptr};
};
TORCH_MODULE(DitBlock);

namespace {

// A block run without keeping its activations ("activation checkpointing"): the forward
// runs with autograd off and saves only the block's inputs; the backward runs the block
// again with autograd on (under the forward's autocast, which is thread-local and so not
// on the backward's thread by itself) and back-propagates through that. The parameters'
// gradients accumulate into their .grad there, as in torch.utils.checkpoint's reentrant
// form; so, like it, this suits backward() and not autograd::grad(). The block holds no
// randomness, so the recomputation is the same arithmetic as the forward.
class CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
 public:
  // `block` is not owned and must outlive the graph (the model outlives its steps).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& c, const torch::Tensor& text,
                               const torch::Tensor& text_mask, const torch::Tensor& cos,
                               const torch::Tensor& sin, DitBlockImpl* block, int64_t mode,
                               int64_t frames) {
    const bool amp = compat::CudaBf16AutocastOn();
    TORCH_CHECK(amp || compat::AutocastDtypeFor(x) == x.scalar_type(),
                "activation checkpointing recomputes under bf16 autocast only");
    ctx->save_for_backward({x, c, text, text_mask, cos, sin});
    ctx->saved_data["block"] = static_cast<int64_t>(reinterpret_cast<std::uintptr_t>(block));
    ctx->saved_data["mode"] = mode;
    ctx->saved_data["frames"] = frames;
    ctx->saved_data["amp"] = amp;
    return block->forward(x, c, text, text_mask, cos, sin, static_cast<int>(mode), frames);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<DitBlockImpl*>(
        static_cast<std::uintptr_t>(ctx->saved_data["block"].toInt()));
    // The inputs as leaves of the recomputation (saved inputs keep their requires_grad).
    std::vector<torch::Tensor> in(3);
    for (size_t i = 0; i < in.size(); ++i)
      in[i] = saved[i].detach().requires_grad_(saved[i].requires_grad());
    {
      torch::AutoGradMode grad_on(true);
      torch::Tensor out;
      {
        compat::CudaBf16Autocast amp(ctx->saved_data["amp"].toBool());
        out = block->forward(in[0], in[1], in[2], saved[3], saved[4], saved[5],
                             static_cast<int>(ctx->saved_data["mode"].toInt()),
                             ctx->saved_data["frames"].toInt());
      }
      torch::autograd::backward({out}, {grad[0]});
    }
    // One gradient per argument of forward: x, c, text, then none for the rest.
    torch::autograd::variable_list result(9);
    for (size_t i = 0; i < in.size(); ++i) result[i] = in[i].grad();
    return result;
  }
};

}  // namespace

torch::Tensor TimestepFeatures(const torch::Tensor& t, int dim) {
  const int half = dim / 2;
  const torch::Tensor freqs =
      torch::exp(-std::log(10000.0) * torch::arange(half, t.options().dtype(torch::kFloat)) / half);
  const torch::Tensor args = (t.to(torch::kFloat) * 1000.0).unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

std::pair<torch::Tensor, torch::Tensor> Rope3d(int64_t t, int64_t h, int64_t w, int head_dim,
                                               torch::Device device) {
  const int dt = head_dim / 4, dh = (head_dim - dt) / 2, dw = head_dim - dt - dh;
  auto axis = [&](int64_t n, int d) {  // [n, d/2]
    const torch::Tensor inv = 1.0 / torch::pow(10000.0, torch::arange(0, d, 2, torch::kDouble) / d);
    return torch::outer(torch::arange(n, torch::kDouble), inv);
  };
  const torch::Tensor at = axis(t, dt), ah = axis(h, dh), aw = axis(w, dw);
  // Token order: t-major, then h, then w.
  torch::Tensor angles = torch::cat({at.view({t, 1, 1, -1}).expand({t, h, w, dt / 2}),
                                     ah.view({1, h, 1, -1}).expand({t, h, w, dh / 2}),
                                     aw.view({1, 1, w, -1}).expand({t, h, w, dw / 2})},
                                    3)
                             .reshape({t * h * w, head_dim / 2});
  return {torch::cos(angles).to(torch::kFloat).to(device),
          torch::sin(angles).to(torch::kFloat).to(device)};
}

torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin) {
  // Each pair (x1, x2) is a complex number rotated by e^(i angle): one complex product in
  // float32 instead of a kernel per term.
  auto sizes = x.sizes().vec();
  sizes.back() /= 2;
  sizes.push_back(2);
  const auto acc = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor pairs = x.to(acc).contiguous().view(sizes);
  const torch::Tensor rotation = torch::complex(cos.to(acc), sin.to(acc));
  return torch::view_as_real(torch::view_as_complex(pairs) * rotation).flatten(-2);
}

DiffusionTransformerImpl::DiffusionTransformerImpl(const DitConfig& config, int latent_channels,
                                                   int text_width)
    : config_(config), latent_channels_(latent_channels) {
  const int d = config.width, p = config.patch_size;
  patch_embed_ = register_module("patch_embed", torch::nn::Linear(latent_channels * p * p, d));
  time_mlp_ = register_module(
      "time_mlp",
      torch::nn::Sequential(torch::nn::Linear(256, d), torch::nn::SiLU(), torch::nn::Linear(d, d)));
  text_proj_ = register_module("text_proj", torch::nn::Linear(text_width, text_width));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config.depth; ++i)
    blocks_->push_back(DitBlock(d, config.heads, config.mlp_ratio, text_width));
  final_mod_ = register_module("final_mod", torch::nn::Linear(d, 2 * d));
  final_out_ = register_module("final_out", torch::nn::Linear(d, latent_channels * p * p));
  torch::NoGradGuard g;
  for (auto& m : {final_mod_, final_out_}) {
    m->weight.zero_();
    m->bias.zero_();
  }
}

bool DiffusionTransformerImpl::Factorized(int64_t tokens) const {
  switch (config_.attention) {
    case AttentionMode::kFull:
      return false;
    case AttentionMode::kFactorized:
      return true;
    case AttentionMode::kAuto:
      return tokens > config_.full_attention_max_tokens;
  }
  return false;
}

torch::Tensor DiffusionTransformerImpl::forward(const torch::Tensor& latent, const torch::Tensor& t,
                                                const torch::Tensor& text,
                                                const torch::Tensor& text_mask) {
  const int64_t b = latent.size(0), c = latent.size(1), ft = latent.size(2), h = latent.size(3),
                w = latent.size(4);
  const int64_t p = config_.patch_size;
  TORCH_CHECK(c == latent_channels_, "latent has ", c, " channels, the model expects ",
              latent_channels_);
  TORCH_CHECK(h % p == 0 && w % p == 0,
              "latent height and width must be multiples of the patch size ", p);
  const int64_t gh = h / p, gw = w / p, n = ft * gh * gw;
  // [B, C, T, gh, p, gw, p] -> [B, T, gh, gw, C, p, p] -> tokens
  torch::Tensor x = latent.reshape({b, c, ft, gh, p, gw, p})
                        .permute({0, 2, 3, 5, 1, 4, 6})
                        .reshape({b, n, c * p * p});
  // The residual stream keeps the latent's dtype (float32) under CUDA autocast: the blocks'
  // products run in bf16 and add back into it, as in DiT, whose float32 position embedding
  // promotes the stream (rotary positions add nothing here). It is also what reel's fused
  // LayerNorm + modulation kernel reads.
  x = patch_embed_(x).to(latent.scalar_type());
  const torch::Tensor cond = time_mlp_->forward(TimestepFeatures(t, 256).to(x.scalar_type()));
  const torch::Tensor txt = text_proj_(text);
  if (rope_.t != ft || rope_.h != gh || rope_.w != gw || rope_.device != x.device()) {
    // Ordinary tensors even in an inference-mode forward: a training forward saves them.
    const c10::InferenceMode normal(false);
    auto [c, s] = Rope3d(ft, gh, gw, config_.width / config_.heads, x.device());
    rope_ = {ft, gh, gw, x.device(), c, s};
  }
  const torch::Tensor& cos = rope_.cos;
  const torch::Tensor& sin = rope_.sin;
  const bool factorized = Factorized(n);
  int index = 0;
  // Checkpointing needs a block input that carries the graph back (always so in
  // training: x comes from patch_embed).
  const bool checkpoint = activation_checkpointing_ && is_training() &&
                          torch::GradMode::is_enabled() &&
                          (x.requires_grad() || cond.requires_grad() || txt.requires_grad());
  for (const auto& block : *blocks_) {
    const int mode = factorized ? (index % 2 == 0 ? 1 : 2) : 0;
    DitBlockImpl* b = block->as<DitBlockImpl>();
    x = checkpoint ? CheckpointedBlock::apply(x, cond, txt, text_mask, cos, sin, b,
                                              static_cast<int64_t>(mode), ft)
                   : b->forward(x, cond, txt, text_mask, cos, sin, mode, ft);
    ++index;
  }
  const auto fm = final_mod_(torch::silu(cond)).chunk(2, 1);
  x = final_out_(NormModulated(x, fm[0], fm[1]));
  // tokens -> [B, C, T, H, W]
  return x.reshape({b, ft, gh, gw, c, p, p})
      .permute({0, 4, 1, 2, 5, 3, 6})
      .reshape({b, c, ft, h, w});
}

}  // namespace reel::gen
