#include "benchmarks/i3d_shaped.h"

#include <cmath>
#include <sstream>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

namespace reel::bench {
namespace {

std::string Ints(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

class Builder {
 public:
  explicit Builder(torch::jit::Module* m) : m_(m) {}

  // Unit3D: conv (no bias) + batch norm (eps 1e-3) + ReLU, reading `in`, writing `out`.
  void Unit(const std::string& name, const std::string& in, const std::string& out, int cin,
            int cout, std::vector<int> k, std::vector<int> stride = {1, 1, 1}) {
    const int fan_in = cin * k[0] * k[1] * k[2];
    Param(name + "_w", torch::randn({cout, cin, k[0], k[1], k[2]}) * std::sqrt(2.0 / fan_in));
    Param(name + "_g", torch::ones({cout}));
    Param(name + "_b", torch::zeros({cout}));
    Param(name + "_m", torch::zeros({cout}));
    Param(name + "_v", torch::ones({cout}));
    const std::vector<int> pad = {k[0] / 2, k[1] / 2, k[2] / 2};
    code_ << "    " << out << " = torch.conv3d(" << in << ", self." << name << "_w, None, "
          << Ints(stride) << ", " << Ints(pad) << ")\n";
    code_ << "    " << out << " = torch.batch_norm(" << out << ", self." << name << "_g, self."
          << name << "_b, self." << name << "_m, self." << name
          << "_v, False, 0.01, 0.001, False)\n";
    code_ << "    " << out << " = torch.relu(" << out << ")\n";
  }

  void MaxPool(const std::string& x, std::vector<int> k, std::vector<int> s, std::vector<int> p) {
    code_ << "    " << x << " = torch.max_pool3d(" << x << ", " << Ints(k) << ", " << Ints(s)
          << ", " << Ints(p) << ")\n";
  }

  // An Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | maxpool -> 1x1, concatenated.
  int Mixed(const std::string& name, int cin, std::vector<int> o) {
    Unit(name + "_b0", "x", "b0", cin, o[0], {1, 1, 1});
    Unit(name + "_b1a", "x", "b1", cin, o[1], {1, 1, 1});
    Unit(name + "_b1b", "b1", "b1", o[1], o[2], {3, 3, 3});
    Unit(name + "_b2a", "x", "b2", cin, o[3], {1, 1, 1});
    Unit(name + "_b2b", "b2", "b2", o[3], o[4], {3, 3, 3});
    code_ << "    b3 = torch.max_pool3d(x, [3, 3, 3], [1, 1, 1], [1, 1, 1])\n";
    Unit(name + "_b3b", "b3", "b3", cin, o[5], {1, 1, 1});
    code_ << "    x = torch.cat([b0, b1, b2, b3], 1)\n";
    return o[0] + o[2] + o[4] + o[5];
  }

  void Line(const std::string& s) { code_ << "    " << s << "\n"; }
  std::string code() const { return code_.str(); }
  int64_t params() const { return params_; }
  void Param(const std::string& name, const torch::Tensor& t) {
    m_->register_parameter(name, t, false);
    params_ += t.numel();
  }

 private:
  torch::jit::Module* m_;
  std::ostringstream code_;
  int64_t params_ = 0;
};

}  // namespace

int64_t SaveI3dShapedDetector(const std::string& path, unsigned seed) {
  torch::manual_seed(seed);
  torch::jit::Module m("__torch__.InceptionI3dShaped");
  Builder b(&m);
  b.Line("x = x.float()");
  b.Line("if rescale:");
  b.Line("    x = x / 127.5 - 1.0");
  b.Line("if resize:");
  b.Line("    x = torch.upsample_trilinear3d(x, [x.size(2), 224, 224], False, None, None, None)");
  b.Unit("conv1a", "x", "x", 3, 64, {7, 7, 7}, {2, 2, 2});
  b.MaxPool("x", {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  b.Unit("conv2b", "x", "x", 64, 64, {1, 1, 1});
  b.Unit("conv2c", "x", "x", 64, 192, {3, 3, 3});
  b.MaxPool("x", {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  int c = b.Mixed("mixed3b", 192, {64, 96, 128, 16, 32, 32});
  c = b.Mixed("mixed3c", c, {128, 128, 192, 32, 96, 64});
  b.MaxPool("x", {3, 3, 3}, {2, 2, 2}, {1, 1, 1});
  c = b.Mixed("mixed4b", c, {192, 96, 208, 16, 48, 64});
  c = b.Mixed("mixed4c", c, {160, 112, 224, 24, 64, 64});
  c = b.Mixed("mixed4d", c, {128, 128, 256, 24, 64, 64});
  c = b.Mixed("mixed4e", c, {112, 144, 288, 32, 64, 64});
  c = b.Mixed("mixed4f", c, {256, 160, 320, 32, 128, 128});
  b.MaxPool("x", {2, 2, 2}, {2, 2, 2}, {0, 0, 0});
  c = b.Mixed("mixed5b", c, {256, 160, 320, 32, 128, 128});
  c = b.Mixed("mixed5c", c, {384, 192, 384, 48, 128, 128});
  // Average over the remaining 2x7x7 (for 16 frames), then logits and the mean over time.
  b.Line("x = torch.avg_pool3d(x, [2, 7, 7], [1, 1, 1])");
  b.Param("logits_w", torch::randn({400, c, 1, 1, 1}) * std::sqrt(1.0 / c));
  b.Param("logits_b", torch::zeros({400}));
  b.Line("x = torch.conv3d(x, self.logits_w, self.logits_b)");
  b.Line("logits = torch.mean(x, [2, 3, 4])");
  b.Line("if return_features:");
  b.Line("    return logits");
  b.Line("return torch.softmax(logits, 1)");
  m.define("def forward(self, x, rescale: bool, resize: bool, return_features: bool):\n" +
           b.code());
  m.save(path);
  return b.params();
}

}  // namespace reel::bench
