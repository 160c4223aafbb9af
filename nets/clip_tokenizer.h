// ClipTokenizer: OpenAI CLIP's SimpleTokenizer in C++.
//
// Same steps as clip/simple_tokenizer.py: clean the text (ftfy.fix_text's character
// fixes, html.unescape twice, strip), collapse whitespace, lower-case (Python's
// str.lower), split with CLIP's pattern
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// map each piece's UTF-8 bytes through the byte-to-unicode table and apply the BPE merges
// of bpe_simple_vocab_16e6.txt.gz (49,408 tokens; start 49406, end 49407).
// Tokenize() adds start and end and pads with 0 to the context length (77); text that
// does not fit is an error unless `truncate`, which keeps the first 76 tokens and ends
// with the end token, as clip.tokenize(truncate=True) does.
//
// Differences from ftfy: reel applies ftfy's ligature, width, quote and control-character
// fixes but not its mojibake repair or NFC normalisation.
//
// Thread-safety: const methods may be called concurrently (the BPE cache is locked).

#ifndef REEL_NETS_CLIP_TOKENIZER_H_
#define REEL_NETS_CLIP_TOKENIZER_H_

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace reel {

class ClipTokenizer {
 public:
  static constexpr int kStartToken = 49406;
  static constexpr int kEndToken = 49407;
  static constexpr int kContextLength = 77;
  static constexpr int kVocabSize = 49408;

  // Loads the merges file (gzip-compressed or plain text).
  static Result<std::unique_ptr<ClipTokenizer>> Load(const std::string& vocab_path);

  // BPE token ids of `text` (no start or end token).
  std::vector<int> Encode(std::string_view text) const;
  // start + Encode(text) + end, zero-padded to `context_length`.
  Result<std::vector<int>> Tokenize(std::string_view text, int context_length = kContextLength,
                                    bool truncate = false) const;
  // Text of token ids up to the end token (start dropped), as SimpleTokenizer.decode.
  std::string Decode(const std::vector<int>& tokens) const;

  // The cleaning and lower-casing applied before splitting (exposed for tests).
  static std::string CleanText(std::string_view text);
  // html.unescape (exposed for tests).
  static std::string HtmlUnescape(std::string_view text);

 private:
  ClipTokenizer() = default;
  std::vector<std::string> Bpe(const std::string& token) const;

  std::unordered_map<std::string, int> encoder_;
  std::vector<std::string> decoder_;
  std::unordered_map<std::string, int> ranks_;  // "first second" -> rank
  std::string byte_encoder_[256];
  std::unordered_map<uint32_t, uint8_t> byte_decoder_;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace reel

#endif  // REEL_NETS_CLIP_TOKENIZER_H_
