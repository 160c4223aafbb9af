// Text side of the generator: a byte-level BPE tokenizer learned from the catalog's
// captions (saved with the checkpoint), and a small transformer text encoder trained with
// the denoiser, with a learned null caption for classifier-free guidance. Or, with
// TextConfig::encoder naming a CLIP model (--text-encoder clip-vit-b-32), OpenAI CLIP's
// tokenizer and frozen text tower (FrozenClipText), with the learned null caption the
// only trainable part of the text side.
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
// FrozenClipText: CLIP's per-token features after ln_final ([N, L, width], L =
// TextConfig::max_tokens <= 77; the tower is causal, so cutting the context at L changes
// no feature of the first L tokens), computed without gradients and kept per caption
// (up to a byte budget), since a frozen tower gives a caption the same features every
// epoch. The mask covers the start token through the end token.
//
// Thread-safety: a trained BpeTokenizer is immutable (Encode is const and thread-safe);
// FrozenClipText is thread-safe (its cache is locked); modules are used by one thread at
// a time.

#ifndef REEL_GENERATE_TEXT_H_
#define REEL_GENERATE_TEXT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "generate/config.h"
#include "util/status.h"

namespace reel {
class ClipModel;
class ClipTokenizer;
}  // namespace reel

namespace reel::gen {

// Captions to the token ids a text encoder reads.
class CaptionTokenizer {
 public:
  virtual ~CaptionTokenizer() = default;
  // [N, max_tokens] int64, each row ending with its end token (cut to fit) then padding.
  virtual torch::Tensor Batch(const std::vector<std::string>& texts, int max_tokens) const = 0;
  // The positions `text` fills uncut, its special tokens included: Batch cuts it when
  // this exceeds max_tokens.
  virtual int64_t Length(std::string_view text) const = 0;
};

class BpeTokenizer : public CaptionTokenizer {
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
  torch::Tensor Batch(const std::vector<std::string>& texts, int max_tokens) const override;
  int64_t Length(std::string_view text) const override;  // ids + end

  int vocab_size() const { return kFirstMerge + static_cast<int>(merges_.size()); }
  const std::vector<std::pair<int, int>>& merges() const { return merges_; }

 private:
  void Index();
  std::vector<std::pair<int, int>> merges_;
  std::map<std::pair<int, int>, int> rank_;  // pair -> merge index
  std::vector<std::string> bytes_of_;        // id -> bytes
};

class FrozenClipText : public CaptionTokenizer {
 public:
  // `name` is what the configuration calls it ("clip-vit-b-32"); the model and tokenizer
  // are shared (not copied) and never modified.
  FrozenClipText(std::string name, std::shared_ptr<const ClipModel> model,
                 std::shared_ptr<const ClipTokenizer> tokenizer,
                 int64_t cache_bytes = int64_t{256} << 20);

  // CLIP tokens: start, the caption's tokens, end, zero padding; a caption too long keeps
  // its first max_tokens - 2 tokens and the end token.
  torch::Tensor Batch(const std::vector<std::string>& texts, int max_tokens) const override;
  int64_t Length(std::string_view text) const override;  // start + ids + end
  // tokens [N, L] -> features [N, L, width] float on the tokens' device; no gradient.
  torch::Tensor Features(const torch::Tensor& tokens) const;
  // The same on `device`. Tokens on the host are looked up in the cache as they are (on a
  // device they are first read back, which waits for the device's queued work).
  torch::Tensor Features(const torch::Tensor& tokens, torch::Device device) const;
  // tokens [N, L] -> [N, L] bool, true from the start token through the end token.
  static torch::Tensor Mask(const torch::Tensor& tokens);

  const std::string& name() const { return name_; }
  int width() const;
  int context_length() const;
  int vocab_size() const;
  // Features computed by the tower (not served from the cache), for tests and benchmarks.
  int64_t computed() const;
  // Eight features of the empty caption's end token: a checkpoint stores them, so loading
  // it with a different tower under the same name is caught (SameTower: within bf16 noise).
  std::vector<double> Fingerprint() const;
  static bool SameTower(const std::vector<double>& a, const std::vector<double>& b);

 private:
  std::string name_;
  std::shared_ptr<const ClipModel> model_;
  std::shared_ptr<const ClipTokenizer> tokenizer_;
  int64_t cache_bytes_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, torch::Tensor> cache_;  // token row -> [L, width]
  mutable int64_t cached_bytes_ = 0;
  mutable int64_t computed_ = 0;
};

class TextEncoderImpl : public torch::nn::Module {
 public:
  // The learned encoder of `config`; or, with `frozen`, that tower (not a registered
  // module: its weights are neither trained nor saved) and a learned null caption.
  explicit TextEncoderImpl(const TextConfig& config,
                           std::shared_ptr<const FrozenClipText> frozen = nullptr);
  // tokens [B, L] int64 -> (features [B, L, width], mask [B, L] bool). `host_tokens`
  // (optional): the same tokens in host memory, which a frozen tower's cache is looked up
  // with instead of reading `tokens` back from the device.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& tokens,
                                                  const torch::Tensor& host_tokens = {});
  std::pair<torch::Tensor, torch::Tensor> NullCaption(int64_t batch, int64_t length);
  const TextConfig& config() const { return config_; }

 private:
  TextConfig config_;
  std::shared_ptr<const FrozenClipText> frozen_;
  torch::nn::Embedding embed_{nullptr};
  torch::Tensor position_, null_;
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(TextEncoder);

}  // namespace reel::gen

#endif  // REEL_GENERATE_TEXT_H_
