// A TorchScript detector with the architecture and cost of StyleGAN-V's i3d_torchscript.pt
// (Carreira & Zisserman's Inception-I3D as in piergiaj/pytorch-i3d: Conv3d 7x7x7 stem,
// nine Inception modules 3b..5c, 2x7x7 average pool, 1x1x1 logits to 400 classes) and the
// same forward(x, rescale, resize, return_features), with random weights. For benchmarks
// where the real weights cannot be downloaded: the compute per clip is the real one, the
// features are not. Padding is static ("same" for odd kernels) instead of TF-style
// dynamic padding, which gives the same tensor sizes for 16-frame 224x224 input.

#ifndef REEL_BENCHMARKS_I3D_SHAPED_H_
#define REEL_BENCHMARKS_I3D_SHAPED_H_

#include <string>

namespace reel::bench {

// Writes the module to `path`; throws c10::Error on failure. Returns the parameter count.
int64_t SaveI3dShapedDetector(const std::string& path, unsigned seed = 1);

}  // namespace reel::bench

#endif  // REEL_BENCHMARKS_I3D_SHAPED_H_
