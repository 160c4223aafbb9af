#include "tests/support/tiny_clip.h"

#include <cmath>
#include <vector>

#include <torch/script.h>

#include "util/strings.h"

namespace reel::testing {

namespace {

void AddBlock(std::map<std::string, torch::Tensor>* s, const std::string& p, int64_t w) {
  auto r = [](std::vector<int64_t> shape, double scale) { return torch::randn(shape) * scale; };
  (*s)[p + "attn.in_proj_weight"] = r({3 * w, w}, 0.08);
  (*s)[p + "attn.in_proj_bias"] = r({3 * w}, 0.02);
  (*s)[p + "attn.out_proj.weight"] = r({w, w}, 0.08);
  (*s)[p + "attn.out_proj.bias"] = r({w}, 0.02);
  (*s)[p + "ln_1.weight"] = 1 + r({w}, 0.1);
  (*s)[p + "ln_1.bias"] = r({w}, 0.1);
  (*s)[p + "mlp.c_fc.weight"] = r({4 * w, w}, 0.08);
  (*s)[p + "mlp.c_fc.bias"] = r({4 * w}, 0.02);
  (*s)[p + "mlp.c_proj.weight"] = r({w, 4 * w}, 0.05);
  (*s)[p + "mlp.c_proj.bias"] = r({w}, 0.02);
  (*s)[p + "ln_2.weight"] = 1 + r({w}, 0.1);
  (*s)[p + "ln_2.bias"] = r({w}, 0.1);
}

}  // namespace

// The parameters of an OpenAI-style ViT CLIP, with OpenAI's names.
std::map<std::string, torch::Tensor> TinyState(const TinyClip& c, uint64_t seed) {
  torch::manual_seed(seed);
  std::map<std::string, torch::Tensor> s;
  s["visual.conv1.weight"] = torch::randn({c.vw, 3, c.patch, c.patch}) * 0.05;
  s["visual.class_embedding"] = torch::randn({c.vw}) * 0.1;
  s["visual.positional_embedding"] = torch::randn({c.grid * c.grid + 1, c.vw}) * 0.1;
  s["visual.ln_pre.weight"] = torch::ones({c.vw});
  s["visual.ln_pre.bias"] = torch::zeros({c.vw});
  for (int64_t i = 0; i < c.vlayers; ++i) {
    AddBlock(&s, "visual.transformer.resblocks." + std::to_string(i) + ".", c.vw);
  }
  s["visual.ln_post.weight"] = 1 + torch::randn({c.vw}) * 0.1;
  s["visual.ln_post.bias"] = torch::randn({c.vw}) * 0.1;
  s["visual.proj"] = torch::randn({c.vw, c.embed}) * 0.08;
  s["token_embedding.weight"] = torch::randn({c.vocab, c.tw}) * 0.1;
  s["positional_embedding"] = torch::randn({c.context, c.tw}) * 0.05;
  for (int64_t i = 0; i < c.tlayers; ++i) {
    AddBlock(&s, "transformer.resblocks." + std::to_string(i) + ".", c.tw);
  }
  s["ln_final.weight"] = 1 + torch::randn({c.tw}) * 0.1;
  s["ln_final.bias"] = torch::randn({c.tw}) * 0.1;
  s["text_projection"] = torch::randn({c.tw, c.embed}) * 0.08;
  s["logit_scale"] = torch::tensor(std::log(1 / 0.07));
  return s;
}

// Writes `state` as a TorchScript archive whose modules and parameters carry the dotted
// names, as OpenAI's released .pt files do.
void SaveArchive(const std::map<std::string, torch::Tensor>& state, const std::string& path) {
  int counter = 0;
  torch::jit::Module root("__torch__.CLIP");
  for (const auto& [name, tensor] : state) {
    std::vector<std::string> parts = Split(name, '.');
    torch::jit::Module m = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (m.hasattr(parts[i])) {
        m = m.attr(parts[i]).toModule();
      } else {
        torch::jit::Module sub("__torch__.M" + std::to_string(counter++));
        m.register_module(parts[i], sub);
        m = sub;
      }
    }
    m.register_parameter(parts.back(), tensor, /*is_buffer=*/false);
  }
  root.save(path);
}

std::map<std::string, torch::Tensor> TinyAestheticState(int64_t input, uint64_t seed) {
  torch::manual_seed(seed);
  std::map<std::string, torch::Tensor> s;
  const int64_t widths[] = {input, 1024, 128, 64, 16, 1};
  const int index[] = {0, 2, 4, 6, 7};
  for (int i = 0; i < 5; ++i) {
    const std::string prefix = "layers." + std::to_string(index[i]) + ".";
    s[prefix + "weight"] =
        torch::randn({widths[i + 1], widths[i]}) / std::sqrt(static_cast<double>(widths[i]));
    s[prefix + "bias"] = torch::randn({widths[i + 1]}) * 0.1;
  }
  return s;
}

}  // namespace reel::testing
