// Tiny CLIP models for tests: OpenAI's parameter names and layout at small widths and
// depths, saved as TorchScript archives the way OpenAI's released .pt files are.

#ifndef REEL_TESTS_SUPPORT_TINY_CLIP_H_
#define REEL_TESTS_SUPPORT_TINY_CLIP_H_

#include <cstdint>
#include <map>
#include <string>

#include <torch/torch.h>

namespace reel::testing {

struct TinyClip {
  int64_t vw = 128, vlayers = 2, patch = 8, grid = 4;  // 32x32 images
  int64_t tw = 128, tlayers = 2, context = 77, vocab = 1000, embed = 64;
};

// Random parameters (seeded) of an OpenAI-style ViT CLIP, with OpenAI's names.
std::map<std::string, torch::Tensor> TinyState(const TinyClip& c, uint64_t seed = 7);

// Writes `state` as a TorchScript archive whose modules and parameters carry the dotted
// names, as OpenAI's released .pt files do.
void SaveArchive(const std::map<std::string, torch::Tensor>& state, const std::string& path);

// Random parameters (seeded) of LAION's aesthetic predictor MLP for `input`-value
// embeddings, with the released state dict's names (layers.{0,2,4,6,7}.{weight,bias}).
std::map<std::string, torch::Tensor> TinyAestheticState(int64_t input, uint64_t seed = 5);

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_TINY_CLIP_H_
