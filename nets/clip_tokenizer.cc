#include "nets/clip_tokenizer.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#if REEL_HAVE_ZLIB
#include <zlib.h>
#endif

#include "util/strings.h"

namespace reel {
namespace {

struct CodeRange {
  uint32_t first, last;
};
struct LowerMapping {
  uint32_t cp;
  const char* utf8;
};
struct Entity {
  const char* name;
  const char* utf8;
};

#include "nets/unicode_data.inc"

template <size_t N>
bool InRanges(const CodeRange (&ranges)[N], uint32_t cp) {
  size_t lo = 0, hi = N;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (ranges[mid].last < cp) {
      lo = mid + 1;
    } else if (ranges[mid].first > cp) {
      hi = mid;
    } else {
      return true;
    }
  }
  return false;
}

bool IsLetter(uint32_t cp) { return InRanges(kLetterRanges, cp); }
bool IsNumber(uint32_t cp) { return InRanges(kNumberRanges, cp); }
bool IsSpace(uint32_t cp) { return InRanges(kSpaceRanges, cp); }

// Decodes UTF-8; invalid bytes become U+FFFD (as Python's decode with errors="replace").
std::vector<uint32_t> DecodeUtf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t len = DecodeUtf8Sequence(s, i, &cp);
    out.push_back(len == 0 ? 0xFFFD : cp);
    i += len == 0 ? 1 : len;
  }
  return out;
}

std::string EncodeUtf8(const std::vector<uint32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (uint32_t cp : cps) AppendUtf8(&out, cp);
  return out;
}

const LowerMapping* FindMapping(const LowerMapping* table, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (table[mid].cp < cp) {
      lo = mid + 1;
    } else if (table[mid].cp > cp) {
      hi = mid;
    } else {
      return &table[mid];
    }
  }
  return nullptr;
}

const std::unordered_map<uint32_t, std::string>& TextFixes() {
  static const auto* fixes = [] {
    auto* m = new std::unordered_map<uint32_t, std::string>();
    for (const auto& f : kTextFixes) (*m)[f.cp] = f.utf8;
    return m;
  }();
  return *fixes;
}

const std::unordered_map<std::string, std::string>& HtmlEntities() {
  static const auto* entities = [] {
    auto* m = new std::unordered_map<std::string, std::string>();
    for (const auto& e : kHtmlEntities) (*m)[e.name] = e.utf8;
    return m;
  }();
  return *entities;
}

// ftfy's remove_control_chars set (plus terminal escape sequences, handled separately).
bool IsRemovedControl(uint32_t cp) {
  return cp <= 0x08 || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
         (cp >= 0x206A && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFC) ||
         (cp >= 0x1D173 && cp <= 0x1D17A) || (cp >= 0xE0000 && cp <= 0xE007F);
}

// The subset of ftfy.fix_text reel applies.
std::vector<uint32_t> FixText(const std::vector<uint32_t>& in) {
  std::vector<uint32_t> out;
  out.reserve(in.size());
  const auto& fixes = TextFixes();
  for (size_t i = 0; i < in.size(); ++i) {
    const uint32_t cp = in[i];
    // Terminal escapes: ESC [ digits/semicolons letter.
    if (cp == 0x1B && i + 1 < in.size() && in[i + 1] == '[') {
      size_t j = i + 2;
      while (j < in.size() && ((in[j] >= '0' && in[j] <= '9') || in[j] == ';')) ++j;
      if (j < in.size() && ((in[j] >= 'A' && in[j] <= 'Z') || (in[j] >= 'a' && in[j] <= 'z'))) {
        i = j;
        continue;
      }
    }
    if (cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85) {
      if (cp == '\r' && i + 1 < in.size() && in[i + 1] == '\n') continue;
      out.push_back('\n');
      continue;
    }
    if (IsRemovedControl(cp)) continue;
    auto it = fixes.find(cp);
    if (it != fixes.end()) {
      for (uint32_t c : DecodeUtf8(it->second)) out.push_back(c);
      continue;
    }
    out.push_back(cp);
  }
  return out;
}

bool IsHtmlNameChar(char c) {
  return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
           c == ';');
}

std::string StripSpace(const std::vector<uint32_t>& cps) {
  size_t b = 0, e = cps.size();
  while (b < e && IsSpace(cps[b])) ++b;
  while (e > b && IsSpace(cps[e - 1])) --e;
  return EncodeUtf8(std::vector<uint32_t>(cps.begin() + b, cps.begin() + e));
}

Result<std::string> ReadVocab(const std::string& path) {
  if (EndsWith(path, ".gz")) {
#if REEL_HAVE_ZLIB
    gzFile f = gzopen(path.c_str(), "rb");
    if (f == nullptr) return Status::NotFound(path + ": cannot open the CLIP vocabulary");
    std::string out;
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    const bool failed = n < 0;
    gzclose(f);
    if (failed) return Status::Corruption(path + ": not a valid gzip file");
    return out;
#else
    return Status::NotSupported(path + ": this build has no zlib; use the uncompressed vocabulary");
#endif
  }
  return ReadFile(path);
}

}  // namespace

std::string ClipTokenizer::HtmlUnescape(std::string_view text) {
  if (text.find('&') == std::string_view::npos) return std::string(text);
  const auto& entities = HtmlEntities();
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    // &#123; / &#x1F; (the ';' optional) and named references (up to 32 characters).
    if (i + 1 < text.size() && text[i + 1] == '#') {
      size_t j = i + 2;
      const bool hex = j < text.size() && (text[j] == 'x' || text[j] == 'X');
      if (hex) ++j;
      const size_t digits = j;
      while (j < text.size() && (hex ? std::isxdigit(static_cast<unsigned char>(text[j]))
                                     : std::isdigit(static_cast<unsigned char>(text[j])))) {
        ++j;
      }
      if (j == digits) {
        out.push_back(text[i++]);
        continue;
      }
      uint64_t num = 0;
      for (size_t k = digits; k < j; ++k) {
        const char c = text[k];
        const uint64_t d = std::isdigit(static_cast<unsigned char>(c))
                               ? static_cast<uint64_t>(c - '0')
                               : static_cast<uint64_t>(std::tolower(c) - 'a' + 10);
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, 0x7FFFFFFF);
      }
      if (j < text.size() && text[j] == ';') ++j;
      const LowerMapping* inv =
          FindMapping(kHtmlInvalidCharrefs, sizeof(kHtmlInvalidCharrefs) / sizeof(LowerMapping),
                      static_cast<uint32_t>(num));
      if (inv != nullptr) {
        out += inv->utf8;
      } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        AppendUtf8(&out, 0xFFFD);
      } else if (!std::binary_search(std::begin(kHtmlInvalidCodepoints),
                                     std::end(kHtmlInvalidCodepoints),
                                     static_cast<uint32_t>(num))) {
        AppendUtf8(&out, static_cast<uint32_t>(num));
      }
      i = j;
      continue;
    }
    size_t j = i + 1;
    while (j < text.size() && j - (i + 1) < 32 && IsHtmlNameChar(text[j])) ++j;
    if (j == i + 1) {
      out.push_back(text[i++]);
      continue;
    }
    std::string name(text.substr(i + 1, j - (i + 1)));
    if (j < text.size() && text[j] == ';') {
      name.push_back(';');
      ++j;
    }
    auto it = entities.find(name);
    if (it != entities.end()) {
      out += it->second;
      i = j;
      continue;
    }
    // The longest known prefix, as html.unescape does.
    bool found = false;
    for (size_t x = name.size() - 1; x > 1; --x) {
      auto p = entities.find(name.substr(0, x));
      if (p != entities.end()) {
        out += p->second;
        out += name.substr(x);
        found = true;
        break;
      }
    }
    if (!found) out += "&" + name;
    i = j;
  }
  return out;
}

std::string ClipTokenizer::CleanText(std::string_view text) {
  // basic_clean: ftfy.fix_text, html.unescape twice, strip.
  std::string fixed = EncodeUtf8(FixText(DecodeUtf8(text)));
  fixed = HtmlUnescape(HtmlUnescape(fixed));
  std::vector<uint32_t> cps = DecodeUtf8(fixed);
  // whitespace_clean: runs of whitespace to one space, strip; then lower().
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  bool space = false;
  for (uint32_t cp : cps) {
    if (IsSpace(cp)) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    const LowerMapping* low =
        FindMapping(kLowerMap, sizeof(kLowerMap) / sizeof(LowerMapping), cp);
    if (low != nullptr) {
      for (uint32_t c : DecodeUtf8(low->utf8)) out.push_back(c);
    } else {
      out.push_back(cp);
    }
  }
  return StripSpace(out);
}

Result<std::unique_ptr<ClipTokenizer>> ClipTokenizer::Load(const std::string& vocab_path) {
  REEL_ASSIGN_OR_RETURN(std::string text, ReadVocab(vocab_path));
  std::unique_ptr<ClipTokenizer> t(new ClipTokenizer());
  // bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<uint32_t> cs(bs.begin(), bs.end());
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(static_cast<uint32_t>(256 + n++));
    }
  }
  for (size_t k = 0; k < bs.size(); ++k) {
    std::string s;
    AppendUtf8(&s, cs[k]);
    t->byte_encoder_[bs[k]] = s;
    t->byte_decoder_[cs[k]] = static_cast<uint8_t>(bs[k]);
  }
  // Vocabulary: the 256 byte symbols, the same with </w>, the merges, the two specials.
  std::vector<std::string> vocab;
  vocab.reserve(kVocabSize);
  for (size_t k = 0; k < bs.size(); ++k) vocab.push_back(t->byte_encoder_[bs[k]]);
  for (size_t k = 0; k < bs.size(); ++k) vocab.push_back(t->byte_encoder_[bs[k]] + "</w>");
  std::vector<std::string> lines = Split(text, '\n');
  const size_t merge_count = 49152 - 256 - 2;
  if (lines.size() < merge_count + 1) {
    return Status::Corruption(vocab_path + ": has " + std::to_string(lines.size()) +
                              " lines, expected at least " + std::to_string(merge_count + 1));
  }
  for (size_t k = 1; k <= merge_count; ++k) {
    const std::string& line = lines[k];
    const size_t sp = line.find(' ');
    if (sp == std::string::npos) {
      return Status::Corruption(vocab_path + ": line " + std::to_string(k + 1) + " is not a merge");
    }
    t->ranks_[line] = static_cast<int>(k - 1);
    vocab.push_back(line.substr(0, sp) + line.substr(sp + 1));
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  if (vocab.size() != static_cast<size_t>(kVocabSize)) {
    return Status::Internal("vocabulary has " + std::to_string(vocab.size()) + " entries");
  }
  for (size_t k = 0; k < vocab.size(); ++k) t->encoder_[vocab[k]] = static_cast<int>(k);
  t->decoder_ = std::move(vocab);
  return t;
}

std::vector<std::string> ClipTokenizer::Bpe(const std::string& token) const {
  if (token == "<|startoftext|>" || token == "<|endoftext|>") return {token};
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(token);
    if (it != cache_.end()) return it->second;
  }
  // Split into code point symbols; the last one carries </w>.
  std::vector<std::string> word;
  for (uint32_t cp : DecodeUtf8(token)) {
    std::string s;
    AppendUtf8(&s, cp);
    word.push_back(s);
  }
  if (word.empty()) return {};
  word.back() += "</w>";
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t best_i = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(word[i] + " " + word[i + 1]);
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        best_i = i;
      }
    }
    if (best == INT_MAX) break;
    const std::string first = word[best_i], second = word[best_i + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i]);
        ++i;
      }
    }
    word = std::move(merged);
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() > 200000) cache_.clear();
  cache_[token] = word;
  return word;
}

std::vector<int> ClipTokenizer::Encode(std::string_view text) const {
  const std::vector<uint32_t> cps = DecodeUtf8(CleanText(text));
  std::vector<int> ids;
  auto emit = [&](size_t from, size_t to) {
    std::string piece = EncodeUtf8(std::vector<uint32_t>(cps.begin() + from, cps.begin() + to));
    if (piece == "<|startoftext|>" || piece == "<|endoftext|>") {
      ids.push_back(encoder_.at(piece));
      return;
    }
    std::string mapped;
    for (unsigned char b : piece) mapped += byte_encoder_[b];
    for (const std::string& sym : Bpe(mapped)) {
      auto it = encoder_.find(sym);
      if (it != encoder_.end()) ids.push_back(it->second);
    }
  };
  auto starts_with = [&](size_t i, const char* lit) {
    for (size_t k = 0; lit[k] != '\0'; ++k) {
      if (i + k >= cps.size() || cps[i + k] != static_cast<unsigned char>(lit[k])) return false;
    }
    return true;
  };
  static const char* kSpecials[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re",
                                    "'ve", "'m", "'ll", "'d"};
  size_t i = 0;
  while (i < cps.size()) {
    bool matched = false;
    for (const char* lit : kSpecials) {
      if (starts_with(i, lit)) {
        const size_t len = std::strlen(lit);
        emit(i, i + len);
        i += len;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    const uint32_t cp = cps[i];
    if (IsLetter(cp)) {
      size_t j = i + 1;
      while (j < cps.size() && IsLetter(cps[j])) ++j;
      emit(i, j);
      i = j;
    } else if (IsNumber(cp)) {
      emit(i, i + 1);
      ++i;
    } else if (IsSpace(cp)) {
      ++i;
    } else {
      size_t j = i + 1;
      while (j < cps.size() && !IsSpace(cps[j]) && !IsLetter(cps[j]) && !IsNumber(cps[j])) ++j;
      emit(i, j);
      i = j;
    }
  }
  return ids;
}

Result<std::vector<int>> ClipTokenizer::Tokenize(std::string_view text, int context_length,
                                                 bool truncate) const {
  if (context_length < 2) return Status::InvalidArgument("context length must be at least 2");
  std::vector<int> tokens = {kStartToken};
  const std::vector<int> body = Encode(text);
  tokens.insert(tokens.end(), body.begin(), body.end());
  tokens.push_back(kEndToken);
  if (static_cast<int>(tokens.size()) > context_length) {
    if (!truncate) {
      return Status::InvalidArgument("text has " + std::to_string(tokens.size()) +
                                     " tokens, more than the context length " +
                                     std::to_string(context_length));
    }
    tokens.resize(static_cast<size_t>(context_length));
    tokens.back() = kEndToken;
  }
  tokens.resize(static_cast<size_t>(context_length), 0);
  return tokens;
}

std::string ClipTokenizer::Decode(const std::vector<int>& tokens) const {
  std::string joined;
  for (int t : tokens) {
    if (t == kEndToken) break;  // what follows is padding (0 is also the token "!")
    if (t == kStartToken || t < 0 || t >= kVocabSize) continue;
    joined += decoder_[static_cast<size_t>(t)];
  }
  std::string bytes;
  for (uint32_t cp : DecodeUtf8(joined)) {
    auto it = byte_decoder_.find(cp);
    if (it != byte_decoder_.end()) bytes.push_back(static_cast<char>(it->second));
  }
  std::string text = ReplaceInvalidUtf8(bytes);
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t w = text.find("</w>", pos);
    if (w == std::string::npos) {
      out += text.substr(pos);
      break;
    }
    out += text.substr(pos, w - pos) + " ";
    pos = w + 4;
  }
  return out;
}

}  // namespace reel
