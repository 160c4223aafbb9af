// A test's view of what the host waits for in a training step (see HostWaitCensus).

#ifndef REEL_TESTS_SUPPORT_HOST_WAIT_CENSUS_H_
#define REEL_TESTS_SUPPORT_HOST_WAIT_CENSUS_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <torch/torch.h>

namespace reel::testing {

// What the host waits for in a training step: operators that read a tensor's value on the
// host (item, nonzero) and, on CUDA, copies between the device and pageable host memory
// (each waits for the work already queued on the device). Recorded process-wide while
// on, with the step's phase (the trainer's reel::step::* scopes) each happened in.
class HostWaitCensus {
 public:
  HostWaitCensus() {
    std::lock_guard<std::mutex> lock(mu_);
    waits_.clear();
    phase_.clear();
    handle_ = at::addGlobalCallback(
        at::RecordFunctionCallback(OnStart, OnEnd)
            .needsInputs(true)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::USER_SCOPE}));
  }
  ~HostWaitCensus() { at::removeCallback(handle_); }
  // "phase: operator (devices)", in order.
  std::vector<std::string> waits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_;
  }

 private:
  static std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fn.scope() == at::RecordScope::USER_SCOPE) {
      phase_ = fn.name();
      return nullptr;
    }
    const std::string name = fn.name();
    std::vector<at::Tensor> t;
    for (const c10::IValue& v : fn.inputs())
      if (v.isTensor()) t.push_back(v.toTensor());
    bool wait = false;
    if (name == "aten::_local_scalar_dense" || name == "aten::nonzero") {
      // A CPU tensor's item() waits for nothing; the step's own draws read CPU generators.
      wait = !t.empty() && (t[0].is_cuda() || phase_ != "reel::step::data");
    } else if (name == "aten::copy_" && t.size() >= 2) {
      const at::Tensor &dst = t[0], &src = t[1];
      wait = (dst.is_cuda() && src.is_cpu() && !src.is_pinned()) || (dst.is_cpu() && src.is_cuda());
    }
    if (wait) {
      std::string devices;
      for (const at::Tensor& x : t) devices += (devices.empty() ? "" : ", ") + x.device().str();
      waits_.push_back(phase_ + ": " + name + " (" + devices + ")");
    }
    return nullptr;
  }
  static void OnEnd(const at::RecordFunction& fn, at::ObserverContext*) {
    if (fn.scope() != at::RecordScope::USER_SCOPE) return;
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = "(between phases)";
  }
  static inline std::mutex mu_;
  static inline std::string phase_;
  static inline std::vector<std::string> waits_;
  at::CallbackHandle handle_;
};

}  // namespace reel::testing

#endif  // REEL_TESTS_SUPPORT_HOST_WAIT_CENSUS_H_
