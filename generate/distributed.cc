#include "generate/distributed.h"

#include <cstdlib>
#include <optional>
#include <stdexcept>

#if __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#define REEL_HAVE_GLOO 1
#else
#define REEL_HAVE_GLOO 0
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

#if REEL_HAVE_GLOO

struct Collective::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

Result<std::unique_ptr<Collective>> Collective::Connect(const LaunchEnv& env,
                                                        std::chrono::milliseconds timeout) {
  if (env.world < 1 || env.rank < 0 || env.rank >= env.world)
    return Status::InvalidArgument("rank " + std::to_string(env.rank) + " of " +
                                   std::to_string(env.world));
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
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    options->devices.push_back(ifname != nullptr && *ifname != '\0'
                                   ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    impl->group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, options);
  } catch (const std::exception& e) {
    return Status::IOError("joining the process group at " + where + " as rank " +
                           std::to_string(env.rank) + " of " + std::to_string(env.world) + ": " +
                           FirstLine(e.what()));
  }
  return std::unique_ptr<Collective>(new Collective(std::move(impl), env.rank, env.world));
}

Status Collective::AllReduceSum(torch::Tensor& tensor) {
  try {
    std::vector<torch::Tensor> t = {tensor};
    impl_->group->allreduce(t)->wait();
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
      impl_->group->broadcast(one, o)->wait();
    }
  } catch (const std::exception& e) {
    return Status::IOError("broadcast: " + FirstLine(e.what()));
  }
  return Status::OK();
}

#else  // !REEL_HAVE_GLOO

struct Collective::Impl {};

Result<std::unique_ptr<Collective>> Collective::Connect(const LaunchEnv&,
                                                        std::chrono::milliseconds) {
  return Status::NotSupported(
      "data-parallel training needs Gloo's headers at build time (Debian: libgloo-dev); this "
      "reel was built without them");
}
Status Collective::AllReduceSum(torch::Tensor&) {
  return Status::NotSupported("no Gloo");
}
Status Collective::Broadcast(std::vector<torch::Tensor>&, int) {
  return Status::NotSupported("no Gloo");
}

#endif

Collective::Collective(std::unique_ptr<Impl> impl, int rank, int world)
    : impl_(std::move(impl)), rank_(rank), world_(world) {}

Collective::~Collective() = default;

}  // namespace reel::gen
