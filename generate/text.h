// Text side of the generator: a byte-level BPE tokenizer learned from the catalog's
// captions (saved with the checkpoint), and a small transformer text encoder trained with
// the denoiser, with a learned null caption for classifier-free guidance.
//
// BpeTokenizer: ids 0 = padding, 1 = end of text, 2..257 = the 256 byte values, then one
// id per learned merge in the order learned. Text is split into words at whitespace; a
// word carries the space before it (so "a cat" is "a", " cat"), and merges never cross
// words. Training merges the most frequent adjacent pair (ties: the smaller pair of ids)
// until the vocabulary is full or no pair occurs twice. Encode applies merges by rank, so
// it is deterministic and Decode(Encode(s)) == s for any bytes.
//
// TextEncoder: token and learned position embeddings, pre-norm transformer layers with
// padding masks, a final LayerNorm: tokens [B, L] -> features [B, L, width] and a mask
// [B, L] (true for real tokens). NullCaption(B) gives the learned unconditional features
// (one token) padded to L with its mask.
//
// Thread-safety: a trained BpeTokenizer is immutable (Encode is const and thread-safe);
// modules are used by one thread at a time.

#ifndef REEL_GENERATE_TEXT_H_
#define REEL_GENERATE_TEXT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "generate/config.h"
#include "util/status.h"

namespace reel::gen {

class BpeTokenizer {
 public:
  static constexpr int kPad = 0;
  static constexpr int kEnd = 1;
  static constexpr int kFirstByte = 2;
  static constexpr int kFirstMerge = 258;

  // Learns merges from `texts` up to `vocab_size` ids (>= 258).
  static Result<BpeTokenizer> Train(const std::vector<std::string>& texts, int vocab_size);
  // "reel-bpe 1" then one "LEFT RIGHT" id pair per merge, in order.
  static Result<BpeTokenizer> Load(const std::string& path);
  Status Save(const std::string& path) const;

  std::vector<int> Encode(std::string_view text) const;
  std::string Decode(const std::vector<int>& ids) const;
  // [N, max_tokens] int64: ids, then the end token, then padding; cut at max_tokens - 1
  // ids so the end token always fits.
  torch::Tensor Batch(const std::vector<std::string>& texts, int max_tokens) const;

  int vocab_size() const { return kFirstMerge + static_cast<int>(merges_.size()); }
  const std::vector<std::pair<int, int>>& merges() const { return merges_; }

 private:
  void Index();
  std::vector<std::pair<int, int>> merges_;
  std::map<std::pair<int, int>, int> rank_;  // pair -> merge index
  std::vector<std::string> bytes_of_;        // id -> bytes
};

class TextEncoderImpl : public torch::nn::Module {
 public:
  explicit TextEncoderImpl(const TextConfig& config);
  // tokens [B, L] int64 -> (features [B, L, width], mask [B, L] bool).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& tokens);
  std::pair<torch::Tensor, torch::Tensor> NullCaption(int64_t batch, int64_t length);
  const TextConfig& config() const { return config_; }

 private:
  TextConfig config_;
  torch::nn::Embedding embed_{nullptr};
  torch::Tensor position_, null_;
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(TextEncoder);

}  // namespace reel::gen

#endif  // REEL_GENERATE_TEXT_H_
