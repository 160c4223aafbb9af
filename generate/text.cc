#include "generate/text.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "nets/torch_compat.h"

namespace reel::gen {
namespace {

// Words with the whitespace before them.
std::vector<std::string> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool has_word = false;
  for (char ch : text) {
    const bool space = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
    if (space && has_word) {
      words.push_back(cur);
      cur.clear();
      has_word = false;
    }
    cur += ch;
    if (!space) has_word = true;
  }
  if (!cur.empty()) words.push_back(cur);
  return words;
}

std::vector<int> ByteIds(const std::string& word) {
  std::vector<int> ids;
  for (unsigned char ch : word) ids.push_back(BpeTokenizer::kFirstByte + ch);
  return ids;
}

// Applies `merges` (ranked) to a word's ids.
std::vector<int> ApplyMerges(std::vector<int> ids, const std::map<std::pair<int, int>, int>& rank) {
  while (ids.size() > 1) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = rank.find({ids[i], ids[i + 1]});
      if (it != rank.end() && (best < 0 || it->second < best)) {
        best = it->second;
        at = i;
      }
    }
    if (best < 0) break;
    const int merged = BpeTokenizer::kFirstMerge + best;
    const std::pair<int, int> pair{ids[at], ids[at + 1]};
    std::vector<int> out;
    for (size_t i = 0; i < ids.size();) {
      if (i + 1 < ids.size() && ids[i] == pair.first && ids[i + 1] == pair.second) {
        out.push_back(merged);
        i += 2;
      } else {
        out.push_back(ids[i]);
        ++i;
      }
    }
    ids = std::move(out);
  }
  return ids;
}

}  // namespace

void BpeTokenizer::Index() {
  rank_.clear();
  bytes_of_.assign(static_cast<size_t>(kFirstMerge), "");
  for (int b = 0; b < 256; ++b)
    bytes_of_[static_cast<size_t>(kFirstByte + b)] = std::string(1, static_cast<char>(b));
  for (size_t i = 0; i < merges_.size(); ++i) {
    rank_[merges_[i]] = static_cast<int>(i);
    bytes_of_.push_back(bytes_of_[static_cast<size_t>(merges_[i].first)] +
                        bytes_of_[static_cast<size_t>(merges_[i].second)]);
  }
}

Result<BpeTokenizer> BpeTokenizer::Train(const std::vector<std::string>& texts, int vocab_size) {
  if (vocab_size < kFirstMerge) {
    return Status::InvalidArgument("BPE vocabulary size must be at least " +
                                   std::to_string(kFirstMerge));
  }
  std::map<std::string, int64_t> counts;
  for (const std::string& t : texts) {
    for (const std::string& w : SplitWords(t)) ++counts[w];
  }
  std::vector<std::vector<int>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, n] : counts) {
    words.push_back(ByteIds(w));
    freq.push_back(n);
  }
  BpeTokenizer tok;
  while (kFirstMerge + static_cast<int>(tok.merges_.size()) < vocab_size) {
    std::map<std::pair<int, int>, int64_t> pairs;
    for (size_t i = 0; i < words.size(); ++i) {
      for (size_t k = 0; k + 1 < words[i].size(); ++k)
        pairs[{words[i][k], words[i][k + 1]}] += freq[i];
    }
    std::pair<int, int> best{-1, -1};
    int64_t best_n = 1;  // a merge needs a pair that occurs at least twice
    for (const auto& [p, n] : pairs) {
      if (n > best_n) {  // map order: ties keep the smaller pair
        best = p;
        best_n = n;
      }
    }
    if (best.first < 0) break;
    const int id = kFirstMerge + static_cast<int>(tok.merges_.size());
    tok.merges_.push_back(best);
    for (std::vector<int>& w : words) {
      std::vector<int> out;
      for (size_t k = 0; k < w.size();) {
        if (k + 1 < w.size() && w[k] == best.first && w[k + 1] == best.second) {
          out.push_back(id);
          k += 2;
        } else {
          out.push_back(w[k]);
          ++k;
        }
      }
      w = std::move(out);
    }
  }
  tok.Index();
  return tok;
}

Result<BpeTokenizer> BpeTokenizer::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot open the tokenizer");
  std::string header;
  std::getline(in, header);
  if (header != "reel-bpe 1")
    return Status::Corruption(path + ": not a reel BPE tokenizer (bad header)");
  BpeTokenizer tok;
  std::string line;
  int n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    std::istringstream ls(line);
    int a = -1, b = -1;
    const int next = kFirstMerge + static_cast<int>(tok.merges_.size());
    if (!(ls >> a >> b) || a < kFirstByte || b < kFirstByte || a >= next || b >= next) {
      return Status::Corruption(path + ":" + std::to_string(n) + ": bad merge '" + line + "'");
    }
    tok.merges_.emplace_back(a, b);
  }
  tok.Index();
  return tok;
}

Status BpeTokenizer::Save(const std::string& path) const {
  std::ofstream out(path, std::ios::trunc);
  out << "reel-bpe 1\n";
  for (const auto& [a, b] : merges_) out << a << ' ' << b << '\n';
  out.close();
  if (!out) return Status::IOError(path + ": cannot write the tokenizer");
  return Status::OK();
}

std::vector<int> BpeTokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  for (const std::string& w : SplitWords(text)) {
    std::vector<int> part = ApplyMerges(ByteIds(w), rank_);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

int64_t BpeTokenizer::Length(std::string_view text) const {
  return static_cast<int64_t>(Encode(text).size()) + 1;
}

std::string BpeTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) {
    if (id == kEnd) break;
    if (id >= kFirstByte && id < static_cast<int>(bytes_of_.size()))
      out += bytes_of_[static_cast<size_t>(id)];
  }
  return out;
}

torch::Tensor BpeTokenizer::Batch(const std::vector<std::string>& texts, int max_tokens) const {
  torch::Tensor out = torch::zeros({static_cast<int64_t>(texts.size()), max_tokens}, torch::kLong);
  auto a = out.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int> ids = Encode(texts[i]);
    if (static_cast<int>(ids.size()) > max_tokens - 1)
      ids.resize(static_cast<size_t>(max_tokens - 1));
    for (size_t k = 0; k < ids.size(); ++k)
      a[static_cast<int64_t>(i)][static_cast<int64_t>(k)] = ids[k];
    a[static_cast<int64_t>(i)][static_cast<int64_t>(ids.size())] = kEnd;
  }
  return out;
}

// ------------------------------------------------------------------ FrozenClipText

FrozenClipText::FrozenClipText(std::string name, std::shared_ptr<const ClipModel> model,
                               std::shared_ptr<const ClipTokenizer> tokenizer, int64_t cache_bytes)
    : name_(std::move(name)),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      cache_bytes_(cache_bytes) {}

int FrozenClipText::width() const {
  return model_->config().transformer_width;
}
int FrozenClipText::context_length() const {
  return model_->config().context_length;
}
int FrozenClipText::vocab_size() const {
  return model_->config().vocab_size;
}
int64_t FrozenClipText::computed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return computed_;
}

torch::Tensor FrozenClipText::Batch(const std::vector<std::string>& texts, int max_tokens) const {
  torch::Tensor out = torch::zeros({static_cast<int64_t>(texts.size()), max_tokens}, torch::kLong);
  for (size_t i = 0; i < texts.size(); ++i) {
    Result<std::vector<int>> ids = tokenizer_->Tokenize(texts[i], max_tokens, /*truncate=*/true);
    TORCH_CHECK(ids.ok(), ids.status().message());  // only for max_tokens < 2 (Validate refuses)
    out[static_cast<int64_t>(i)].copy_(torch::tensor(*ids, torch::kLong));
  }
  return out;
}

int64_t FrozenClipText::Length(std::string_view text) const {
  return static_cast<int64_t>(tokenizer_->Encode(text).size()) + 2;
}

std::vector<double> FrozenClipText::Fingerprint() const {
  const torch::Tensor f =
      model_->EncodeTextTokens(Batch({""}, 2)).select(1, 1).reshape({-1}).narrow(0, 0, 8);
  const torch::Tensor d = f.to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

bool FrozenClipText::SameTower(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  double scale = 1e-3, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(a[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff <= 0.05 * scale;  // bf16 on CUDA against float32 on CPU stays well inside
}

torch::Tensor FrozenClipText::Mask(const torch::Tensor& tokens) {
  // The end token has the largest id (as CLIP finds it: argmax over the row).
  const torch::Tensor end = tokens.argmax(1, /*keepdim=*/true);
  return torch::arange(tokens.size(1), tokens.options()).unsqueeze(0).le(end);
}

torch::Tensor FrozenClipText::Features(const torch::Tensor& tokens) const {
  return Features(tokens, tokens.device());
}

torch::Tensor FrozenClipText::Features(const torch::Tensor& tokens, torch::Device device) const {
  const torch::Tensor cpu = tokens.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = cpu.size(0), l = cpu.size(1);
  std::vector<std::string> keys(static_cast<size_t>(n));
  std::vector<torch::Tensor> rows(static_cast<size_t>(n));
  std::vector<int64_t> missing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t i = 0; i < n; ++i) {
      const char* p = reinterpret_cast<const char*>(cpu[i].data_ptr<int64_t>());
      keys[static_cast<size_t>(i)].assign(p, static_cast<size_t>(l) * sizeof(int64_t));
      auto it = cache_.find(keys[static_cast<size_t>(i)]);
      if (it != cache_.end())
        rows[static_cast<size_t>(i)] = it->second;
      else
        missing.push_back(i);
    }
  }
  if (!missing.empty()) {
    const torch::Tensor index = torch::tensor(missing, torch::kLong);
    // Computed under inference mode; cloned out of it so autograd may read the features.
    const torch::Tensor f = model_->EncodeTextTokens(cpu.index_select(0, index)).clone();
    std::lock_guard<std::mutex> lock(mu_);
    computed_ += static_cast<int64_t>(missing.size());
    for (size_t k = 0; k < missing.size(); ++k) {
      const size_t i = static_cast<size_t>(missing[k]);
      rows[i] = f[static_cast<int64_t>(k)];
      const int64_t bytes = rows[i].numel() * static_cast<int64_t>(rows[i].element_size());
      if (cached_bytes_ + bytes <= cache_bytes_ && cache_.emplace(keys[i], rows[i]).second)
        cached_bytes_ += bytes;
    }
  }
  return torch::stack(rows).to(device);
}

// ------------------------------------------------------------------ TextEncoder

namespace {

class TextLayerImpl : public torch::nn::Module {
 public:
  TextLayerImpl(int width, int heads) : heads_(heads) {
    norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    qkv_ = register_module("qkv", torch::nn::Linear(width, 3 * width));
    proj_ = register_module("proj", torch::nn::Linear(width, width));
    norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    fc1_ = register_module("fc1", torch::nn::Linear(width, 4 * width));
    fc2_ = register_module("fc2", torch::nn::Linear(4 * width, width));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads_;
    auto qkv = qkv_(norm1_(x)).view({b, l, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
    torch::Tensor a = compat::Attention(qkv[0], qkv[1], qkv[2], mask.view({b, 1, 1, l}));
    torch::Tensor h = x + proj_(a.transpose(1, 2).reshape({b, l, d}));
    return h + fc2_(torch::gelu(fc1_(norm2_(h)), "tanh"));
  }

 private:
  int heads_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(TextLayer);

}  // namespace

TextEncoderImpl::TextEncoderImpl(const TextConfig& c, std::shared_ptr<const FrozenClipText> frozen)
    : config_(c), frozen_(std::move(frozen)) {
  if (frozen_ != nullptr) {
    TORCH_CHECK(frozen_->width() == c.width, "text.width (", c.width, ") is not the width of ",
                frozen_->name(), " (", frozen_->width(), ")");
    null_ = register_parameter("null", torch::randn({1, c.width}) * 0.02);
    return;
  }
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.width));
  position_ = register_parameter("position", torch::randn({c.max_tokens, c.width}) * 0.02);
  null_ = register_parameter("null", torch::randn({1, c.width}) * 0.02);
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.depth; ++i) layers_->push_back(TextLayer(c.width, c.heads));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.width})));
}

std::pair<torch::Tensor, torch::Tensor> TextEncoderImpl::forward(const torch::Tensor& tokens,
                                                                 const torch::Tensor& host_tokens) {
  const int64_t l = tokens.size(1);
  TORCH_CHECK(l <= config_.max_tokens, "text longer than max_tokens");
  if (frozen_ != nullptr) {
    TORCH_CHECK(
        !host_tokens.defined() || (host_tokens.is_cpu() && host_tokens.sizes() == tokens.sizes()),
        "host_tokens must be the tokens' ", tokens.sizes(), " on the host");
    return {frozen_->Features(host_tokens.defined() ? host_tokens : tokens, null_.device()),
            FrozenClipText::Mask(tokens)};
  }
  // Real tokens and the end token attend; padding does not.
  torch::Tensor mask = tokens.ne(BpeTokenizer::kPad);
  mask.select(1, 0).fill_(true);  // an empty caption still has its end token first
  torch::Tensor x = embed_(tokens) + position_.narrow(0, 0, l).unsqueeze(0);
  for (const auto& layer : *layers_) x = layer->as<TextLayerImpl>()->forward(x, mask);
  return {norm_(x), mask};
}

std::pair<torch::Tensor, torch::Tensor> TextEncoderImpl::NullCaption(int64_t batch,
                                                                     int64_t length) {
  torch::Tensor f = torch::zeros({batch, length, config_.width}, null_.options());
  f = torch::cat({null_.unsqueeze(0).expand({batch, 1, config_.width}), f.narrow(1, 1, length - 1)},
                 1);
  torch::Tensor mask = torch::zeros(
      {batch, length}, torch::TensorOptions().dtype(torch::kBool).device(null_.device()));
  mask.select(1, 0).fill_(true);
  return {f, mask};
}

}  // namespace reel::gen
