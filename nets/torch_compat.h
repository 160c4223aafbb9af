// The one place where reel's code differs between libtorch 1.13 (Debian's, CPU) and 2.x
// (the CUDA PyTorch on GPU machines). Everything else is written against the API both
// versions share.

#ifndef REEL_NETS_TORCH_COMPAT_H_
#define REEL_NETS_TORCH_COMPAT_H_

#include <torch/torch.h>
#include <torch/version.h>

#include <string>

namespace reel::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// No autograd bookkeeping for inference code (c10::InferenceMode exists in both).
using InferenceGuard = c10::InferenceMode;

// "1.13.1" etc.
inline std::string TorchVersion() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Whether CUDA can be used by this build on this machine.
inline bool CudaAvailable() { return torch::cuda::is_available(); }

}  // namespace reel::compat

#endif  // REEL_NETS_TORCH_COMPAT_H_
