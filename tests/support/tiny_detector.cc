#include "tests/support/tiny_detector.h"

#include <torch/script.h>
#include <torch/torch.h>

namespace reel::testing {

void SaveTinyI3d(const std::string& path, int features, unsigned seed) {
  torch::manual_seed(seed);
  torch::jit::Module m("__torch__.TinyI3D");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3, 3}) * 0.2, false);
  m.register_parameter("b1", torch::randn({8}) * 0.1, false);
  m.register_parameter("w2", torch::randn({8, features}) * 0.5, false);
  m.register_parameter("b2", torch::randn({features}) * 0.1, false);
  m.define(R"(
def forward(self, x, rescale: bool, resize: bool, return_features: bool):
    x = x.float()
    if rescale:
        x = x / 127.5 - 1.0
    if resize:
        x = torch.upsample_trilinear3d(x, [x.size(2), 32, 32], False, None, None, None)
    h = torch.conv3d(x, self.w1, self.b1, [1, 2, 2])
    h = torch.relu(h)
    h = torch.mean(h, [2, 3, 4])
    logits = torch.matmul(h, self.w2) + self.b2
    if return_features:
        return logits
    return torch.softmax(logits, 1)
)");
  m.save(path);
}

void SaveProbeDetector(const std::string& path) {
  torch::jit::Module m("__torch__.Probe");
  m.define(R"(
def forward(self, x, rescale: bool, resize: bool, return_features: bool):
    return torch.flatten(x.float(), 1)
)");
  m.save(path);
}

}  // namespace reel::testing
