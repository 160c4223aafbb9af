// Small TorchScript detectors with StyleGAN-V I3D's forward signature, compiled from
// TorchScript source in C++ (no Python needed):
//   forward(x, rescale: bool, resize: bool, return_features: bool) -> Tensor
// as the released i3d_torchscript.pt: rescale maps uint8 to [-1, 1], resize interpolates
// the frames to the network's size, return_features gives the pre-softmax features.

#ifndef REEL_TESTS_SUPPORT_TINY_DETECTOR_H_
#define REEL_TESTS_SUPPORT_TINY_DETECTOR_H_

#include <string>

namespace reel::testing {

// A conv3d + pooling + linear network with `features` outputs (random, seeded weights),
// resizing to 32x32.
void SaveTinyI3d(const std::string& path, int features = 16, unsigned seed = 3);

// A detector whose features are its input as received (flattened, float): shows exactly
// what a protocol hands to the detector.
void SaveProbeDetector(const std::string& path);

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_TINY_DETECTOR_H_
