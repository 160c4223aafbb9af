#include "nets/aesthetic.h"

#include <fstream>
#include <iterator>

#include <torch/script.h>

#include "nets/torch_compat.h"

namespace reel {
namespace {

// The layer indices of the released nn.Sequential and their output widths.
constexpr int kLayerIndex[] = {0, 2, 4, 6, 7};
constexpr int64_t kLayerOut[] = {1024, 128, 64, 16, 1};

Result<std::map<std::string, torch::Tensor>> ReadStateDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() >= 4 && !(bytes[0] == 'P' && bytes[1] == 'K')) {
    return Status::NotSupported(path +
                                ": not a zip-format PyTorch file (re-save it with torch.save "
                                "from PyTorch 1.6 or newer)");
  }
  std::map<std::string, torch::Tensor> out;
  try {
    const c10::IValue value = torch::pickle_load(bytes);
    if (!value.isGenericDict()) return Status::Corruption(path + ": not a state dict");
    for (const auto& item : value.toGenericDict()) {
      if (!item.key().isString() || !item.value().isTensor()) continue;
      out[item.key().toStringRef()] = item.value().toTensor();
    }
  } catch (const c10::Error& e) {
    return Status::Corruption(path + ": cannot read the state dict: " + e.what_without_backtrace());
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<AestheticPredictor>> AestheticPredictor::Load(const std::string& path,
                                                                     torch::Device device) {
  REEL_ASSIGN_OR_RETURN(auto state, ReadStateDict(path));
  return FromStateDict(state, device, path);
}

Result<std::unique_ptr<AestheticPredictor>> AestheticPredictor::FromStateDict(
    const std::map<std::string, torch::Tensor>& state, torch::Device device,
    const std::string& source) {
  std::unique_ptr<AestheticPredictor> p(new AestheticPredictor());
  auto get = [&](const std::string& name) -> Result<torch::Tensor> {
    auto it = state.find(name);
    if (it == state.end()) {
      return Status::Corruption(source + ": missing parameter '" + name +
                                "' (not an improved-aesthetic-predictor state dict?)");
    }
    return it->second;
  };
  int64_t in_dim = 0;
  for (int i = 0; i < 5; ++i) {
    const std::string prefix = "layers." + std::to_string(kLayerIndex[i]) + ".";
    REEL_ASSIGN_OR_RETURN(torch::Tensor w, get(prefix + "weight"));
    REEL_ASSIGN_OR_RETURN(torch::Tensor b, get(prefix + "bias"));
    const int64_t want_in = i == 0 ? (w.dim() == 2 ? w.size(1) : -1) : kLayerOut[i - 1];
    if (w.dim() != 2 || w.size(0) != kLayerOut[i] || w.size(1) != want_in || want_in <= 0) {
      std::string shape;
      for (int64_t d : w.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      return Status::Corruption(source + ": parameter '" + prefix + "weight' has shape [" + shape +
                                "], expected [" + std::to_string(kLayerOut[i]) + ", " +
                                (i == 0 ? std::string("D") : std::to_string(want_in)) + "]");
    }
    if (b.dim() != 1 || b.size(0) != kLayerOut[i]) {
      return Status::Corruption(source + ": parameter '" + prefix + "bias' should have " +
                                std::to_string(kLayerOut[i]) + " values");
    }
    if (i == 0) in_dim = w.size(1);
    p->layers_.emplace_back(w.to(device, torch::kFloat).contiguous(),
                            b.to(device, torch::kFloat).contiguous());
  }
  p->input_dim_ = static_cast<int>(in_dim);
  return p;
}

torch::Tensor AestheticPredictor::Predict(const torch::Tensor& features) const {
  compat::InferenceGuard guard;
  torch::Tensor x = features.to(layers_[0].first.device(), torch::kFloat);
  for (const auto& [w, b] : layers_) x = torch::nn::functional::linear(x, w, b);
  return x.squeeze(-1);
}

Status SaveStateDict(const std::map<std::string, torch::Tensor>& state, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : state) dict.insert(name, tensor);
  try {
    const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return Status::IOError(path + ": write failed");
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("saving a state dict: ") + e.what_without_backtrace());
  }
  return Status::OK();
}

}  // namespace reel
