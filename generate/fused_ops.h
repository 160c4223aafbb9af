// Internal to generate/: what the fused operators' libtorch side shares (qk_norm.cc,
// norm_modulate.cc): a profiler record with the operator's tensors, the CPU loops' task
// size, and (in builds with reel's CUDA kernels) the kernels' element types and launch
// checks.

#ifndef REEL_GENERATE_FUSED_OPS_H_
#define REEL_GENERATE_FUSED_OPS_H_

#include <algorithm>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "generate/kernel_common.h"

#if defined(REEL_CUDA_KERNELS)
#include <cuda_runtime_api.h>
#endif

namespace reel::gen::fused {

// The fused operator as one record for profilers and bench_step_ops, with its tensors
// (the operators it calls inside are nested under it).
class OpRecord {
 public:
  OpRecord(const char* name, std::vector<c10::IValue> inputs)
      : inputs_(std::move(inputs)), record_(at::RecordScope::FUNCTION) {
    if (record_.isActive())
      record_.before(name, c10::ArrayRef<const c10::IValue>(inputs_.data(), inputs_.size()));
  }
  void SetOutputs(std::vector<c10::IValue> outputs) {
    if (record_.isActive()) record_.setOutputs(std::move(outputs));
  }

 private:
  std::vector<c10::IValue> inputs_;  // outlives the record, whose end callbacks read it
  at::RecordFunction record_;
};

// Rows per CPU task: about ATen's own grain of elements, so that small inputs run on one
// thread (a parallel region costs more than a few thousand elements, and far more when
// the cores are shared with other processes).
inline int64_t RowGrain(int64_t row_size) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, row_size));
}

// Whether a kernel takes tensors of this dtype, and as which element type.
inline bool KernelTakes(torch::ScalarType t) {
  return t == torch::kFloat || t == torch::kBFloat16 || t == torch::kHalf;
}
inline kernels::Dtype KernelDtype(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16:
      return kernels::Dtype::kBFloat16;
    case torch::kHalf:
      return kernels::Dtype::kHalf;
    default:
      return kernels::Dtype::kFloat;
  }
}

#if defined(REEL_CUDA_KERNELS)
inline void CheckLaunch(cudaError_t err, const char* op, const char* what) {
  TORCH_CHECK(err == cudaSuccess, op, " ", what, " kernel: ", cudaGetErrorString(err));
}
#endif

}  // namespace reel::gen::fused

#endif  // REEL_GENERATE_FUSED_OPS_H_
