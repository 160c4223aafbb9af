#include "generate/distributed.h"

#include <cstdlib>
#include <optional>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

// Each backend where its headers are there: Gloo's (Debian: libgloo-dev) and, on a CUDA
// libtorch built with NCCL (whose torch_cuda target defines USE_C10D_NCCL), NCCL's.
#if __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define REEL_HAVE_GLOO 1
#else
#define REEL_HAVE_GLOO 0
#endif
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define REEL_HAVE_NCCL 1
#else
#define REEL_HAVE_NCCL 0
#endif

#include "util/strings.h"

namespace reel::gen {
namespace {

// An integer environment variable: nullopt when unset, an error naming it when malformed.
Result<std::optional<int64_t>> EnvInt(const char* name, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::optional<int64_t>();
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi) {
    return Status::InvalidArgument(std::string(name) + "='" + v + "' must be an integer in [" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return std::optional<int64_t>(x);
}

}  // namespace

Result<LaunchEnv> LaunchEnvFromEnvironment() {
  LaunchEnv env;
  REEL_ASSIGN_OR_RETURN(const auto world, EnvInt("WORLD_SIZE", 1, 1 << 20));
  REEL_ASSIGN_OR_RETURN(const auto rank, EnvInt("RANK", 0, 1 << 20));
  REEL_ASSIGN_OR_RETURN(const auto local, EnvInt("LOCAL_RANK", 0, 1 << 20));
  REEL_ASSIGN_OR_RETURN(const auto port, EnvInt("MASTER_PORT", 1, 65535));
  env.world = static_cast<int>(world.value_or(1));
  env.rank = static_cast<int>(rank.value_or(0));
  env.local_rank = static_cast<int>(local.value_or(env.rank));
  if (port) env.master_port = static_cast<int>(*port);
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') env.master_addr = a;
  if (env.world > 1 && !rank) {
    return Status::InvalidArgument("WORLD_SIZE=" + std::to_string(env.world) +
                                   " but RANK is not set (start each process with its RANK, as "
                                   "torchrun does)");
  }
  if (env.rank >= env.world) {
    return Status::InvalidArgument("RANK=" + std::to_string(env.rank) +
                                   " is not below WORLD_SIZE=" + std::to_string(env.world));
  }
  return env;
}

bool CollectiveBackendBuilt(CollectiveBackend backend) {
  return backend == CollectiveBackend::kGloo ? REEL_HAVE_GLOO : REEL_HAVE_NCCL;
}

const char* CollectiveBackendName(CollectiveBackend backend) {
  return backend == CollectiveBackend::kGloo ? "gloo" : "nccl";
}

Result<CollectiveBackend> ParseCollectiveBackend(const std::string& name, bool cuda) {
  if (name == "gloo") return CollectiveBackend::kGloo;
  if (name == "nccl") return CollectiveBackend::kNccl;
  if (name == "auto") {
    return cuda && CollectiveBackendBuilt(CollectiveBackend::kNccl) ? CollectiveBackend::kNccl
                                                                    : CollectiveBackend::kGloo;
  }
  return Status::InvalidArgument("backend '" + name + "': expected auto, gloo or nccl");
}

// One process group of either backend. Gloo's and NCCL's groups share a base class whose
// name differs between libtorch 1.13 (ProcessGroup) and 2.x (Backend); holding each by its
// own type keeps that difference out of this file.
struct Collective::Impl {
  c10::intrusive_ptr<c10d::Store> store;
#if REEL_HAVE_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#if REEL_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  // Runs `op(group)` on whichever group this is, and waits for the work it returns.
  template <typename Op>
  void Run(Op op) {
#if REEL_HAVE_GLOO
    if (gloo) return static_cast<void>(op(*gloo)->wait());
#endif
#if REEL_HAVE_NCCL
    if (nccl) return static_cast<void>(op(*nccl)->wait());
#endif
    throw std::logic_error("no process group");
  }
};

Result<std::unique_ptr<Collective>> Collective::Connect(const LaunchEnv& env,
                                                        std::chrono::milliseconds timeout,
                                                        CollectiveBackend backend) {
  if (env.world < 1 || env.rank < 0 || env.rank >= env.world)
    return Status::InvalidArgument("rank " + std::to_string(env.rank) + " of " +
                                   std::to_string(env.world));
  if (!CollectiveBackendBuilt(backend)) {
    return Status::NotSupported(
        backend == CollectiveBackend::kGloo
            ? "data-parallel training over Gloo needs Gloo's headers at build time (Debian: "
              "libgloo-dev); this reel was built without them"
            : "data-parallel training over NCCL needs a CUDA libtorch built with NCCL and "
              "NCCL's nccl.h at build time; this reel was built without them (use "
              "--dist-backend gloo)");
  }
  auto impl = std::make_unique<Impl>();
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
#if REEL_HAVE_GLOO
    if (backend == CollectiveBackend::kGloo) {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      options->devices.push_back(ifname != nullptr && *ifname != '\0'
                                     ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
      impl->gloo =
          c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, options);
    }
#endif
#if REEL_HAVE_NCCL
    if (backend == CollectiveBackend::kNccl) {
      // NCCL's communicator is made at the first collective, on the device of its tensors
      // (cuda:LOCAL_RANK, chosen by the caller).
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      impl->nccl =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world, options);
    }
#endif
  } catch (const std::exception& e) {
    return Status::IOError("joining the " + std::string(CollectiveBackendName(backend)) +
                           " process group at " + where + " as rank " + std::to_string(env.rank) +
                           " of " + std::to_string(env.world) + ": " + FirstLine(e.what()));
  }
  return std::unique_ptr<Collective>(new Collective(std::move(impl), env.rank, env.world));
}

Status Collective::AllReduceSum(torch::Tensor& tensor) {
  try {
    std::vector<torch::Tensor> t = {tensor};
    impl_->Run([&](auto& group) { return group.allreduce(t); });
  } catch (const std::exception& e) {
    return Status::IOError("all-reduce: " + FirstLine(e.what()));
  }
  return Status::OK();
}

Status Collective::Broadcast(std::vector<torch::Tensor>& tensors, int root) {
  try {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    for (torch::Tensor& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      impl_->Run([&](auto& group) { return group.broadcast(one, o); });
    }
  } catch (const std::exception& e) {
    return Status::IOError("broadcast: " + FirstLine(e.what()));
  }
  return Status::OK();
}

Collective::Collective(std::unique_ptr<Impl> impl, int rank, int world)
    : impl_(std::move(impl)), rank_(rank), world_(world) {}

Collective::~Collective() = default;

}  // namespace reel::gen
