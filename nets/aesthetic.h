// LAION's improved aesthetic predictor (christophschuhmann/improved-aesthetic-predictor,
// sac+logos+ava1-l14-linearMSE.pth), as Open-Sora's aesthetic scoring uses it.
//
// An MLP on L2-normalised CLIP image embeddings (ViT-L/14: 768 values):
//   Linear(D,1024) Dropout Linear(1024,128) Dropout Linear(128,64) Dropout Linear(64,16)
//   Linear(16,1)
// with no activations (as released) and dropouts inactive at inference. The weights file
// is a PyTorch state dict saved with torch.save (keys layers.{0,2,4,6,7}.{weight,bias});
// the input width is read from layers.0.weight. A missing or mis-shaped tensor fails the
// load with its name. Scores are roughly 1-10 (higher is more aesthetic).
//
// Thread-safety: Predict() may run from several threads.

#ifndef REEL_NETS_AESTHETIC_H_
#define REEL_NETS_AESTHETIC_H_

#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "util/status.h"

namespace reel {

class AestheticPredictor {
 public:
  static Result<std::unique_ptr<AestheticPredictor>> Load(const std::string& path,
                                                          torch::Device device = torch::kCPU);
  static Result<std::unique_ptr<AestheticPredictor>> FromStateDict(
      const std::map<std::string, torch::Tensor>& state, torch::Device device,
      const std::string& source);

  int input_dim() const { return input_dim_; }
  // features: [N, input_dim] L2-normalised image embeddings. Returns [N] float scores.
  torch::Tensor Predict(const torch::Tensor& features) const;

 private:
  AestheticPredictor() = default;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> layers_;  // weight, bias
  int input_dim_ = 0;
};

// Saves `state` as torch.save does (a zip archive with data.pkl), readable by Load() and
// by Python's torch.load. For tests and for exporting.
Status SaveStateDict(const std::map<std::string, torch::Tensor>& state, const std::string& path);

}  // namespace reel

#endif  // REEL_NETS_AESTHETIC_H_
