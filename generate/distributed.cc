#include "generate/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <numeric>
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

  // Starts `op(group)` on whichever group this is; the returned function waits for the
  // work it started.
  template <typename Op>
  std::function<void()> Start(Op op) {
#if REEL_HAVE_GLOO
    if (gloo) return [work = op(*gloo)] { work->wait(); };
#endif
#if REEL_HAVE_NCCL
    if (nccl) return [work = op(*nccl)] { work->wait(); };
#endif
    throw std::logic_error("no process group");
  }
  template <typename Op>
  void Run(Op op) {
    Start(op)();
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
  REEL_ASSIGN_OR_RETURN(const Wait wait, StartAllReduceSum(tensor));
  return wait();
}

Result<Collective::Wait> Collective::StartAllReduceSum(const torch::Tensor& tensor) {
  std::function<void()> wait;
  try {
    std::vector<torch::Tensor> t = {tensor};  // the work keeps its own copy of the list
    wait = impl_->Start([&](auto& group) { return group.allreduce(t); });
  } catch (const std::exception& e) {
    return Status::IOError("all-reduce: " + FirstLine(e.what()));
  }
  return Wait([wait = std::move(wait)]() -> Status {
    try {
      wait();
    } catch (const std::exception& e) {
      return Status::IOError("all-reduce: " + FirstLine(e.what()));
    }
    return Status::OK();
  });
}

namespace {

// The tensors of `order`, in that order, in groups of one dtype and device and at most
// `cap` bytes (a tensor larger than that alone): the packing of broadcasts and of
// gradient buckets.
std::vector<std::vector<size_t>> GroupBySize(const std::vector<torch::Tensor>& tensors,
                                             const std::vector<size_t>& order, int64_t cap) {
  std::vector<std::vector<size_t>> groups;
  int64_t bytes = 0;
  for (size_t i : order) {
    const torch::Tensor& t = tensors[i];
    const int64_t size = t.numel() * static_cast<int64_t>(t.element_size());
    bool fresh = groups.empty() || (bytes > 0 && bytes + size > cap);
    if (!fresh) {
      const torch::Tensor& last = tensors[groups.back().back()];
      fresh = last.dtype() != t.dtype() || last.device() != t.device();
    }
    if (fresh) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(i);
    bytes += size;
  }
  return groups;
}

}  // namespace

std::vector<std::vector<size_t>> GroupForBroadcast(const std::vector<torch::Tensor>& tensors,
                                                   int64_t bucket_bytes) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  return GroupBySize(tensors, order, bucket_bytes);
}

Status Collective::Broadcast(std::vector<torch::Tensor>& tensors, int root, int64_t bucket_bytes) {
  try {
    torch::NoGradGuard no_grad;
    c10d::BroadcastOptions o;
    o.rootRank = root;
    auto broadcast = [&](const torch::Tensor& t) {
      std::vector<torch::Tensor> one = {t};
      impl_->Run([&](auto& group) { return group.broadcast(one, o); });
    };
    for (const std::vector<size_t>& group : GroupForBroadcast(tensors, bucket_bytes)) {
      if (group.size() == 1 && tensors[group[0]].is_contiguous()) {
        broadcast(tensors[group[0]]);
        continue;
      }
      std::vector<torch::Tensor> flat;
      for (size_t i : group) flat.push_back(tensors[i].reshape({-1}));
      const torch::Tensor buffer = torch::cat(flat);
      broadcast(buffer);
      int64_t offset = 0;
      for (size_t i : group) {
        const int64_t n = tensors[i].numel();
        tensors[i].copy_(buffer.narrow(0, offset, n).view(tensors[i].sizes()));
        offset += n;
      }
    }
  } catch (const std::exception& e) {
    return Status::IOError("broadcast: " + FirstLine(e.what()));
  }
  return Status::OK();
}

Collective::Collective(std::unique_ptr<Impl> impl, int rank, int world)
    : impl_(std::move(impl)), rank_(rank), world_(world) {}

Collective::~Collective() = default;

namespace {

constexpr size_t kUnhooked = static_cast<size_t>(-1);

// Makes `p`'s gradient `flat` (a 1-D slice with p's element count), defining it if need be.
void SetGrad(const torch::Tensor& p, const torch::Tensor& flat) {
  if (p.grad().defined()) {
    p.mutable_grad().copy_(flat.view_as(p));
  } else {
    p.mutable_grad() = flat.view_as(p).clone();
  }
}

}  // namespace

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, Collective& comm,
                                 int64_t bucket_bytes)
    : params_(std::move(params)),
      comm_(comm),
      bucket_bytes_(bucket_bytes),
      arrived_(params_.size(), 0) {
  std::vector<size_t> order(params_.size());
  std::iota(order.rbegin(), order.rend(), size_t{0});
  Pack(order);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (where_[i].first == kUnhooked) continue;
    hooks_.emplace_back(
        i, params_[i].register_hook([this, i](const torch::Tensor& grad) { OnGradient(i, grad); }));
  }
}

GradientReducer::~GradientReducer() {
  for (const auto& [i, hook] : hooks_) params_[i].remove_hook(hook);
}

void GradientReducer::Pack(const std::vector<size_t>& order) {
  buckets_.clear();
  where_.assign(params_.size(), {kUnhooked, 0});
  std::vector<size_t> hooked;
  for (size_t i : order) {
    if (params_[i].requires_grad()) hooked.push_back(i);
  }
  const int64_t cap = bucket_bytes_ > 0 ? bucket_bytes_ : std::numeric_limits<int64_t>::max();
  for (const std::vector<size_t>& group : GroupBySize(params_, hooked, cap)) {
    Bucket& b = buckets_.emplace_back();
    b.options = params_[group[0]].options();
    for (size_t i : group) {
      where_[i] = {buckets_.size() - 1, b.members.size()};
      b.members.push_back(i);
      b.offsets.push_back(b.numel);
      b.numel += params_[i].numel();
    }
  }
}

torch::Tensor& GradientReducer::Data(Bucket& bucket) {
  if (!bucket.data.defined()) bucket.data = torch::empty({bucket.numel}, bucket.options);
  return bucket.data;
}

void GradientReducer::Begin() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  repeated_ = false;
  next_ = 0;
  error_ = Status::OK();
  std::fill(arrived_.begin(), arrived_.end(), 0);
  arrival_order_.clear();
  for (Bucket& b : buckets_) {
    b.missing = b.members.size();
    b.wait = nullptr;
  }
}

void GradientReducer::OnGradient(size_t index, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || !grad.defined()) return;
  if (arrived_[index]) {
    repeated_ = true;  // its bucket may have been sent with the first part only
    return;
  }
  arrived_[index] = 1;
  arrival_order_.push_back(index);
  const auto [b, m] = where_[index];
  Bucket& bucket = buckets_[b];
  torch::NoGradGuard no_grad;
  Data(bucket).narrow(0, bucket.offsets[m], grad.numel()).copy_(grad.reshape({-1}));
  if (--bucket.missing == 0) StartReady();
}

void GradientReducer::StartReady() {
  while (error_.ok() && next_ < buckets_.size() && buckets_[next_].missing == 0) {
    Result<Wait> wait = comm_.StartAllReduceSum(buckets_[next_].data);
    if (!wait.ok()) {
      error_ = wait.status();
      return;
    }
    buckets_[next_++].wait = std::move(wait).value();
  }
}

Result<torch::Tensor> GradientReducer::Finish(const torch::Tensor& extras) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  stats_ = Stats();
  stats_.buckets = static_cast<int64_t>(buckets_.size());
  stats_.started_in_backward = static_cast<int64_t>(next_);
  torch::NoGradGuard no_grad;
  // The buckets backward left incomplete: a parameter without a gradient counts as zero.
  for (Bucket& b : buckets_) {
    if (b.missing == 0) continue;
    for (size_t m = 0; m < b.members.size(); ++m) {
      if (!arrived_[b.members[m]])
        Data(b).narrow(0, b.offsets[m], params_[b.members[m]].numel()).zero_();
    }
    b.missing = 0;
  }
  StartReady();
  // Every started bucket is waited for, even after a failure, so no work outlives its step.
  Status status = error_;
  for (Bucket& b : buckets_) {
    if (!b.wait) continue;
    Status s = b.wait();
    b.wait = nullptr;
    if (status.ok()) status = s;
  }
  REEL_RETURN_IF_ERROR(status);

  // The extras and each process's vote to fall back, in one small all-reduce.
  torch::Tensor tail = torch::cat(
      {extras.reshape({-1}).to(torch::kFloat),
       torch::full({1}, repeated_ ? 1.0f : 0.0f, extras.options().dtype(torch::kFloat))});
  REEL_RETURN_IF_ERROR(comm_.AllReduceSum(tail));
  const double world = comm_.world();
  stats_.fell_back = tail[-1].item<double>() > 0;
  if (stats_.fell_back) {
    REEL_RETURN_IF_ERROR(AverageAccumulated());
  } else {
    for (Bucket& b : buckets_) {
      b.data.div_(world);
      for (size_t m = 0; m < b.members.size(); ++m) {
        const torch::Tensor& p = params_[b.members[m]];
        SetGrad(p, b.data.narrow(0, b.offsets[m], p.numel()));
      }
    }
  }
  // On a GPU the buffers go back to the caching allocator, so that they take memory only
  // from backward's first gradient to here, not in the forward, when activations peak
  // (on the CPU, freeing and faulting in buffers of megabytes every step would cost more).
  for (Bucket& b : buckets_) {
    if (b.options.device().is_cuda()) b.data = torch::Tensor();
  }

  if (!packed_by_arrival_) {
    REEL_RETURN_IF_ERROR(PackByArrival(extras.device()));
    packed_by_arrival_ = true;
  }
  return tail.narrow(0, 0, extras.numel());
}

Status GradientReducer::AverageAccumulated() {
  std::vector<torch::Tensor> flat;
  std::vector<size_t> hooked;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (where_[i].first == kUnhooked) continue;
    const torch::Tensor& p = params_[i];
    flat.push_back(p.grad().defined() ? p.grad().reshape({-1})
                                      : torch::zeros({p.numel()}, p.options()));
    hooked.push_back(i);
  }
  torch::Tensor all = torch::cat(flat);
  REEL_RETURN_IF_ERROR(comm_.AllReduceSum(all));
  all.div_(comm_.world());
  int64_t offset = 0;
  for (size_t i : hooked) {
    SetGrad(params_[i], all.narrow(0, offset, params_[i].numel()));
    offset += params_[i].numel();
  }
  return Status::OK();
}

Status GradientReducer::PackByArrival(torch::Device device) {
  // Rank 0's arrival order, then what did not arrive there, last listed first.
  std::vector<uint8_t> seen(params_.size(), 0);
  std::vector<int64_t> order;
  for (size_t i : arrival_order_) {
    order.push_back(static_cast<int64_t>(i));
    seen[i] = 1;
  }
  for (size_t i = params_.size(); i-- > 0;) {
    if (!seen[i] && where_[i].first != kUnhooked) order.push_back(static_cast<int64_t>(i));
  }
  std::vector<torch::Tensor> shared = {torch::tensor(order, torch::kLong).to(device)};
  REEL_RETURN_IF_ERROR(comm_.Broadcast(shared, 0));
  const torch::Tensor rank0 = shared[0].cpu().contiguous();
  const int64_t* first = rank0.data_ptr<int64_t>();
  Pack(std::vector<size_t>(first, first + rank0.numel()));
  return Status::OK();
}

}  // namespace reel::gen
