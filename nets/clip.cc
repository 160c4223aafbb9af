#include "nets/clip.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include <torch/script.h>

#include "nets/tensor_text.h"
#include "nets/torch_compat.h"

namespace reel {
namespace {

namespace F = torch::nn::functional;

class StateChecker {
 public:
  StateChecker(const std::map<std::string, torch::Tensor>& state, const std::string& source)
      : state_(state), source_(source) {}

  // The tensor `name` with exactly `shape`.
  Result<torch::Tensor> Get(const std::string& name, std::vector<int64_t> shape) const {
    auto it = state_.find(name);
    if (it == state_.end()) {
      return Status::Corruption(source_ + ": missing parameter '" + name + "'");
    }
    if (it->second.sizes() != at::IntArrayRef(shape)) {
      return Status::Corruption(source_ + ": parameter '" + name + "' has shape " +
                                ShapeText(it->second.sizes()) + ", expected " + ShapeText(shape));
    }
    return it->second;
  }

  Result<torch::Tensor> Any(const std::string& name, int64_t dims) const {
    auto it = state_.find(name);
    if (it == state_.end())
      return Status::Corruption(source_ + ": missing parameter '" + name + "'");
    if (it->second.dim() != dims) {
      return Status::Corruption(source_ + ": parameter '" + name + "' has shape " +
                                ShapeText(it->second.sizes()) + ", expected " +
                                std::to_string(dims) + " dimensions");
    }
    return it->second;
  }

  int CountBlocks(const std::string& prefix) const {
    std::set<std::string> ids;
    for (const auto& [name, t] : state_) {
      if (name.rfind(prefix, 0) != 0) continue;
      const std::string rest = name.substr(prefix.size());
      ids.insert(rest.substr(0, rest.find('.')));
    }
    return static_cast<int>(ids.size());
  }

 private:
  const std::map<std::string, torch::Tensor>& state_;
  const std::string& source_;
};

// Pillow's bicubic filter (a = -0.5).
double Bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
  int ksize = 0;
  std::vector<int> bounds;  // xmin, count per output pixel
  std::vector<int32_t> kk;  // fixed point
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for a full-image box.
Coefficients Precompute(int in_size, int out_size) {
  Coefficients c;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = Bicubic((x + xmin - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      double w = k[static_cast<size_t>(x)];
      if (ww != 0.0) w /= ww;
      c.kk[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(
          w < 0 ? w * (1 << kPrecisionBits) - 0.5 : w * (1 << kPrecisionBits) + 0.5);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t Clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(std::clamp(s, 0, 255));
}

}  // namespace

std::string ClipConfig::ToString() const {
  std::ostringstream s;
  s << "ViT: image " << image_resolution << ", patch " << vision_patch_size << ", width "
    << vision_width << ", " << vision_layers << " layers; text: width " << transformer_width << ", "
    << transformer_layers << " layers, " << transformer_heads << " heads, context "
    << context_length << ", vocab " << vocab_size << "; embedding " << embed_dim;
  return s.str();
}

Result<std::unique_ptr<ClipModel>> ClipModel::Load(const std::string& path,
                                                   const ClipLoadOptions& options) {
  std::map<std::string, torch::Tensor> state;
  try {
    torch::jit::Module module = torch::jit::load(path, torch::kCPU);
    for (const auto& p : module.named_parameters(/*recurse=*/true)) state[p.name] = p.value;
    for (const auto& b : module.named_buffers(/*recurse=*/true)) state[b.name] = b.value;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    return Status::Corruption(path + ": not a readable TorchScript CLIP archive (" + what + ")");
  }
  return FromStateDict(state, options, path);
}

Result<std::unique_ptr<ClipModel>> ClipModel::FromStateDict(
    const std::map<std::string, torch::Tensor>& state, const ClipLoadOptions& options,
    const std::string& source) {
  if (state.count("visual.layer1.0.conv1.weight")) {
    return Status::NotSupported(source + ": ResNet CLIP models are not supported (ViT only)");
  }
  StateChecker c(state, source);
  std::unique_ptr<ClipModel> m(new ClipModel());
  m->options_ = options;
  ClipConfig& cfg = m->config_;
  REEL_ASSIGN_OR_RETURN(torch::Tensor conv, c.Any("visual.conv1.weight", 4));
  cfg.vision_width = static_cast<int>(conv.size(0));
  cfg.vision_patch_size = static_cast<int>(conv.size(3));
  cfg.vision_layers = c.CountBlocks("visual.transformer.resblocks.");
  REEL_ASSIGN_OR_RETURN(torch::Tensor vpos, c.Any("visual.positional_embedding", 2));
  const int grid = static_cast<int>(std::lround(std::sqrt(static_cast<double>(vpos.size(0) - 1))));
  cfg.image_resolution = cfg.vision_patch_size * grid;
  REEL_ASSIGN_OR_RETURN(torch::Tensor tproj, c.Any("text_projection", 2));
  cfg.embed_dim = static_cast<int>(tproj.size(1));
  REEL_ASSIGN_OR_RETURN(torch::Tensor pos, c.Any("positional_embedding", 2));
  cfg.context_length = static_cast<int>(pos.size(0));
  REEL_ASSIGN_OR_RETURN(torch::Tensor tok, c.Any("token_embedding.weight", 2));
  cfg.vocab_size = static_cast<int>(tok.size(0));
  REEL_ASSIGN_OR_RETURN(torch::Tensor lnf, c.Any("ln_final.weight", 1));
  cfg.transformer_width = static_cast<int>(lnf.size(0));
  cfg.transformer_heads = cfg.transformer_width / 64;
  cfg.transformer_layers = c.CountBlocks("transformer.resblocks.");
  if (cfg.vision_heads() < 1 || cfg.transformer_heads < 1 || cfg.vision_layers < 1 ||
      cfg.transformer_layers < 1 || grid < 1) {
    return Status::Corruption(source + ": inferred an impossible architecture (" + cfg.ToString() +
                              ")");
  }

  // Check every parameter's shape and keep the weights on the device in the dtype (layer
  // norm parameters in fp32).
  const int64_t vw = cfg.vision_width, tw = cfg.transformer_width, e = cfg.embed_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> wanted = {
      {"visual.conv1.weight", {vw, 3, cfg.vision_patch_size, cfg.vision_patch_size}},
      {"visual.class_embedding", {vw}},
      {"visual.positional_embedding", {static_cast<int64_t>(grid) * grid + 1, vw}},
      {"visual.ln_pre.weight", {vw}},
      {"visual.ln_pre.bias", {vw}},
      {"visual.ln_post.weight", {vw}},
      {"visual.ln_post.bias", {vw}},
      {"visual.proj", {vw, e}},
      {"token_embedding.weight", {cfg.vocab_size, tw}},
      {"positional_embedding", {cfg.context_length, tw}},
      {"ln_final.weight", {tw}},
      {"ln_final.bias", {tw}},
      {"text_projection", {tw, e}},
  };
  auto block = [&](const std::string& p, int64_t w) {
    wanted.push_back({p + "attn.in_proj_weight", {3 * w, w}});
    wanted.push_back({p + "attn.in_proj_bias", {3 * w}});
    wanted.push_back({p + "attn.out_proj.weight", {w, w}});
    wanted.push_back({p + "attn.out_proj.bias", {w}});
    wanted.push_back({p + "ln_1.weight", {w}});
    wanted.push_back({p + "ln_1.bias", {w}});
    wanted.push_back({p + "mlp.c_fc.weight", {4 * w, w}});
    wanted.push_back({p + "mlp.c_fc.bias", {4 * w}});
    wanted.push_back({p + "mlp.c_proj.weight", {w, 4 * w}});
    wanted.push_back({p + "mlp.c_proj.bias", {w}});
    wanted.push_back({p + "ln_2.weight", {w}});
    wanted.push_back({p + "ln_2.bias", {w}});
  };
  for (int i = 0; i < cfg.vision_layers; ++i) {
    block("visual.transformer.resblocks." + std::to_string(i) + ".", vw);
  }
  for (int i = 0; i < cfg.transformer_layers; ++i) {
    block("transformer.resblocks." + std::to_string(i) + ".", tw);
  }
  for (const auto& [name, shape] : wanted) {
    REEL_ASSIGN_OR_RETURN(torch::Tensor t, c.Get(name, shape));
    const bool norm = name.find("ln_") != std::string::npos;
    m->weights_[name] =
        t.detach().to(options.device, norm ? torch::kFloat : options.dtype).contiguous();
  }
  auto scale = state.find("logit_scale");
  if (scale != state.end() && scale->second.numel() == 1) {
    m->logit_scale_ = std::exp(scale->second.to(torch::kDouble).item<double>());
  }
  m->causal_mask_ =
      torch::full({cfg.context_length, cfg.context_length}, -std::numeric_limits<float>::infinity(),
                  torch::TensorOptions().device(options.device))
          .triu(1);
  return m;
}

torch::Tensor ClipModel::LayerNorm(const torch::Tensor& x, const std::string& prefix) const {
  const torch::Tensor& w = W(prefix + ".weight");
  return F::layer_norm(
             x.to(torch::kFloat),
             F::LayerNormFuncOptions({w.size(0)}).weight(w).bias(W(prefix + ".bias")).eps(1e-5))
      .to(x.scalar_type());
}

torch::Tensor ClipModel::Transformer(torch::Tensor x, const std::string& prefix, int layers,
                                     int heads, const torch::Tensor& mask) const {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2);
  const int64_t hd = d / heads;
  const double scaling = 1.0 / std::sqrt(static_cast<double>(hd));
  for (int i = 0; i < layers; ++i) {
    const std::string p = prefix + std::to_string(i) + ".";
    // Attention.
    torch::Tensor h = LayerNorm(x, p + "ln_1");
    torch::Tensor qkv = F::linear(h, W(p + "attn.in_proj_weight"), W(p + "attn.in_proj_bias"));
    auto parts = qkv.chunk(3, -1);
    auto split = [&](const torch::Tensor& t) {
      return t.reshape({n, l, heads, hd}).transpose(1, 2);
    };
    torch::Tensor q = split(parts[0]) * scaling, k = split(parts[1]), v = split(parts[2]);
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat);
    if (mask.defined()) scores = scores + mask.slice(0, 0, l).slice(1, 0, l);
    torch::Tensor attn = torch::softmax(scores, -1).to(v.scalar_type());
    torch::Tensor o = torch::matmul(attn, v).transpose(1, 2).reshape({n, l, d});
    x = x + F::linear(o, W(p + "attn.out_proj.weight"), W(p + "attn.out_proj.bias"));
    // MLP with QuickGELU.
    h = LayerNorm(x, p + "ln_2");
    h = F::linear(h, W(p + "mlp.c_fc.weight"), W(p + "mlp.c_fc.bias"));
    h = h * torch::sigmoid(1.702 * h);
    x = x + F::linear(h, W(p + "mlp.c_proj.weight"), W(p + "mlp.c_proj.bias"));
  }
  return x;
}

torch::Tensor ClipModel::EncodeImage(const torch::Tensor& images) const {
  compat::InferenceGuard guard;
  torch::Tensor x = images.to(options_.device, options_.dtype);
  x = F::conv2d(x, W("visual.conv1.weight"),
                F::Conv2dFuncOptions().stride(config_.vision_patch_size));
  const int64_t n = x.size(0), width = x.size(1);
  x = x.reshape({n, width, -1}).permute({0, 2, 1});
  torch::Tensor cls = W("visual.class_embedding").reshape({1, 1, width}).expand({n, 1, width});
  x = torch::cat({cls, x}, 1) + W("visual.positional_embedding");
  x = LayerNorm(x, "visual.ln_pre");
  x = Transformer(x, "visual.transformer.resblocks.", config_.vision_layers, config_.vision_heads(),
                  torch::Tensor());
  x = LayerNorm(x.select(1, 0), "visual.ln_post");
  return torch::matmul(x, W("visual.proj")).to(torch::kFloat);
}

torch::Tensor ClipModel::EncodeText(const torch::Tensor& tokens) const {
  compat::InferenceGuard guard;
  torch::Tensor t = tokens.to(options_.device, torch::kLong);
  torch::Tensor x = F::embedding(t, W("token_embedding.weight")) + W("positional_embedding");
  x = Transformer(x, "transformer.resblocks.", config_.transformer_layers,
                  config_.transformer_heads, causal_mask_);
  x = LayerNorm(x, "ln_final");
  torch::Tensor eot = t.argmax(-1);
  x = x.index({torch::arange(x.size(0), torch::TensorOptions().device(options_.device)), eot});
  return torch::matmul(x, W("text_projection")).to(torch::kFloat);
}

torch::Tensor ClipModel::EncodeTextTokens(const torch::Tensor& tokens) const {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) <= config_.context_length,
              "text tokens must be [N, L] with L <= ", config_.context_length);
  compat::InferenceGuard guard;
  const int64_t l = tokens.size(1);
  torch::Tensor t = tokens.to(options_.device, torch::kLong);
  torch::Tensor x =
      F::embedding(t, W("token_embedding.weight")) + W("positional_embedding").narrow(0, 0, l);
  x = Transformer(x, "transformer.resblocks.", config_.transformer_layers,
                  config_.transformer_heads, causal_mask_);
  return LayerNorm(x, "ln_final").to(torch::kFloat);
}

void PillowResizeBicubic(const uint8_t* src, int src_w, int src_h, uint8_t* dst, int dst_w,
                         int dst_h) {
  std::vector<uint8_t> tmp;
  const uint8_t* in = src;
  int w = src_w;
  if (dst_w != src_w) {  // horizontal pass first, rounded to 8 bits
    const Coefficients c = Precompute(src_w, dst_w);
    tmp.resize(static_cast<size_t>(dst_w) * src_h * 3);
    for (int y = 0; y < src_h; ++y) {
      const uint8_t* row = src + static_cast<size_t>(y) * src_w * 3;
      uint8_t* out = tmp.data() + static_cast<size_t>(y) * dst_w * 3;
      for (int xx = 0; xx < dst_w; ++xx) {
        const int xmin = c.bounds[2 * xx], count = c.bounds[2 * xx + 1];
        const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < count; ++x) {
          const uint8_t* p = row + (xmin + x) * 3;
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        out[3 * xx] = Clip8(s0);
        out[3 * xx + 1] = Clip8(s1);
        out[3 * xx + 2] = Clip8(s2);
      }
    }
    in = tmp.data();
    w = dst_w;
  }
  if (dst_h == src_h) {
    std::copy(in, in + static_cast<size_t>(w) * src_h * 3, dst);
    return;
  }
  const Coefficients c = Precompute(src_h, dst_h);
  for (int yy = 0; yy < dst_h; ++yy) {
    const int ymin = c.bounds[2 * yy], count = c.bounds[2 * yy + 1];
    const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    uint8_t* out = dst + static_cast<size_t>(yy) * w * 3;
    for (int x = 0; x < w * 3; ++x) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < count; ++y) s += in[static_cast<size_t>(ymin + y) * w * 3 + x] * k[y];
      out[x] = Clip8(s);
    }
  }
}

torch::Tensor PreprocessImage(const uint8_t* rgb, int width, int height, int resolution) {
  // torchvision Resize(resolution): the shorter side becomes `resolution`, the longer
  // side int(resolution * long / short).
  int new_w, new_h;
  if (width <= height) {
    new_w = resolution;
    new_h = static_cast<int>(static_cast<int64_t>(resolution) * height / width);
  } else {
    new_h = resolution;
    new_w = static_cast<int>(static_cast<int64_t>(resolution) * width / height);
  }
  std::vector<uint8_t> resized(static_cast<size_t>(new_w) * new_h * 3);
  PillowResizeBicubic(rgb, width, height, resized.data(), new_w, new_h);
  // CenterCrop: int(round((size - crop) / 2)), Python rounding (halves to even).
  const int top = static_cast<int>(std::nearbyint((new_h - resolution) / 2.0));
  const int left = static_cast<int>(std::nearbyint((new_w - resolution) / 2.0));
  torch::Tensor out = torch::empty({3, resolution, resolution}, torch::kFloat);
  auto a = out.accessor<float, 3>();
  for (int y = 0; y < resolution; ++y) {
    const uint8_t* row = resized.data() + (static_cast<size_t>(top + y) * new_w + left) * 3;
    for (int x = 0; x < resolution; ++x) {
      for (int ch = 0; ch < 3; ++ch) {
        a[ch][y][x] = (row[3 * x + ch] / 255.0f - kClipMean[ch]) / kClipStd[ch];
      }
    }
  }
  return out;
}

}  // namespace reel
