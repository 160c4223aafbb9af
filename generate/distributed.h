// Data-parallel training across processes through torch.distributed's c10d library
// (Gloo on CPU, NCCL on CUDA where this build has it), started the way torchrun starts
// its workers: every process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT in its environment (libtorch only).
//
//   RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 reel generate train ... &
//   RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 reel generate train ...
//
// or `torchrun --nproc-per-node 2 --no-python reel generate train ...`. Rank 0 serves the
// rendezvous store (c10d's TCPStore) at MASTER_ADDR:MASTER_PORT; the others connect to it.
// Gloo picks its network interface as PyTorch does: GLOO_SOCKET_IFNAME when set, else the
// interface of this host's name (falling back to loopback). NCCL reads its own NCCL_*
// variables; each process's tensors must be on its own GPU (cuda:LOCAL_RANK).
//
// Failure: a malformed variable is an InvalidArgument naming it; a peer that does not turn
// up within the timeout, or a collective that fails, is an IOError with c10d's reason.
// Exceptions from c10d never leave this file.
//
// Thread-safety: a Collective is used by one thread at a time, and every process must call
// the same collectives in the same order (as with torch.distributed).

#ifndef REEL_GENERATE_DISTRIBUTED_H_
#define REEL_GENERATE_DISTRIBUTED_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "util/status.h"

namespace reel::gen {

struct LaunchEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads the torchrun variables. None of them set: one process (rank 0 of 1). WORLD_SIZE
// above 1 needs RANK in [0, WORLD_SIZE); MASTER_ADDR and MASTER_PORT default as torchrun's
// (127.0.0.1, 29500).
Result<LaunchEnv> LaunchEnvFromEnvironment();

enum class CollectiveBackend {
  kGloo,  // CPU and CUDA tensors (CUDA ones through host memory)
  kNccl,  // CUDA tensors only, GPU to GPU
};

// Whether this build can join a group of `backend` (Gloo: built with libgloo-dev's headers;
// NCCL: built against a CUDA libtorch with NCCL).
bool CollectiveBackendBuilt(CollectiveBackend backend);
const char* CollectiveBackendName(CollectiveBackend backend);  // "gloo", "nccl"
// "gloo", "nccl" or "auto" (NCCL when training on CUDA and built with it, else Gloo, as
// PyTorch's usual choice); anything else is an InvalidArgument.
Result<CollectiveBackend> ParseCollectiveBackend(const std::string& name, bool cuda);

class Collective {
 public:
  // Joins the process group of `env` over `backend` (blocks until all WORLD_SIZE processes
  // have joined or `timeout` passes). Collectives then wait at most `timeout` too. A
  // backend this build lacks is NotSupported, saying what it needs.
  static Result<std::unique_ptr<Collective>> Connect(
      const LaunchEnv& env, std::chrono::milliseconds timeout,
      CollectiveBackend backend = CollectiveBackend::kGloo);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // In place: every process ends with the element-wise sum over all processes. With NCCL
  // the tensors are CUDA ones, and the sum is ordered on the current CUDA stream.
  Status AllReduceSum(torch::Tensor& tensor);
  // AllReduceSum started without waiting: `tensor` holds the sum once the returned wait
  // has succeeded (call it once; until then neither read nor write `tensor`). Collectives
  // still start in the same order on every process.
  using Wait = std::function<Status()>;
  Result<Wait> StartAllReduceSum(const torch::Tensor& tensor);
  // In place: every process ends with `root`'s tensors. Tensors smaller than
  // `bucket_bytes` travel together, flattened into buffers of at most that size per dtype
  // and device, so that a model's hundreds of biases and norm weights take a few
  // collectives; larger ones travel alone, as they are: copying them in and out of a
  // buffer costs more than a call (h100-b's weights and EMA, two processes over Gloo on
  // loopback: 0.89-1.01 s one tensor at a time, 1.75 s all in 250 MB buffers as DDP
  // packs them, 0.70-0.84 s with small ones only in 1 MB buffers).
  static constexpr int64_t kBroadcastBucketBytes = int64_t{1} << 20;
  Status Broadcast(std::vector<torch::Tensor>& tensors, int root,
                   int64_t bucket_bytes = kBroadcastBucketBytes);

 private:
  struct Impl;
  Collective(std::unique_ptr<Impl> impl, int rank, int world);
  std::unique_ptr<Impl> impl_;
  int rank_, world_;
};

// How Collective::Broadcast groups `tensors` (by index, in order): consecutive tensors of
// one dtype and device, up to `bucket_bytes` a group; a tensor larger than that alone.
std::vector<std::vector<size_t>> GroupForBroadcast(const std::vector<torch::Tensor>& tensors,
                                                   int64_t bucket_bytes);

// Averages the gradients of parameters over a process group while backward still runs,
// as PyTorch's DistributedDataParallel does. The parameters are packed into buckets of
// about `bucket_bytes`; a bucket's all-reduce starts as soon as backward has produced the
// last gradient in it, so the sending overlaps the rest of backward. Buckets start in
// their fixed order on every process (a ready bucket waits for those before it), as
// collectives must. The first step packs the parameters in reverse order; after it the
// buckets are packed in the order rank 0's backward produced the gradients, so that the
// early buckets fill early.
//
// A parameter whose gradient arrives more than once between Begin() and Finish() (two
// backward passes, or a weight used in two reentrant checkpoints) may have been sent
// early, with only part of its gradient. Finish() then makes every process fall back to
// one all-reduce of the accumulated .grad()s, so the result is the mean either way. A
// parameter that got no gradient counts as zero.
//
// Thread-safety: the hooks run on autograd's threads (one at a time per backward pass);
// Begin() and Finish() are called by the training thread, never during backward.
class GradientReducer {
 public:
  // DistributedDataParallel's bucket_cap_mb default.
  static constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;

  struct Stats {
    int64_t buckets = 0;
    // Buckets whose all-reduce started during backward (one bucket starts there too, at
    // the last gradient, but overlaps nothing).
    int64_t started_in_backward = 0;
    bool fell_back = false;  // the step used the one all-reduce after backward
  };

  // Hooks every parameter in `params` that requires a gradient (the others are left
  // alone); the tensors are shared, not copied. A bucket holds one dtype on one device.
  // `comm` is not owned and must outlive this. `bucket_bytes` <= 0: one bucket, started
  // when the last gradient arrives (no overlap).
  GradientReducer(std::vector<torch::Tensor> params, Collective& comm, int64_t bucket_bytes);
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Arms the hooks for one step's backward.
  void Begin();
  // After backward: starts the buckets still waiting, waits for all of them, and makes
  // every parameter's .grad() the mean over the processes (defining it where this process
  // had none). `extras` (1-D, float32, on the parameters' device) is summed over the
  // processes in the same round trip and returned. A failed collective is an IOError.
  Result<torch::Tensor> Finish(const torch::Tensor& extras);

  const Stats& stats() const { return stats_; }  // of the last Finish()
  Collective& comm() const { return comm_; }
  int64_t bucket_bytes() const { return bucket_bytes_; }

 private:
  using Wait = Collective::Wait;
  struct Bucket {
    torch::TensorOptions options;  // of `data`: the members' dtype and device
    torch::Tensor data;            // the flat gradients of `members` (Data() makes it)
    int64_t numel = 0;             // of `data`
    std::vector<size_t> members;   // parameter indices
    std::vector<int64_t> offsets;  // of each member in `data`
    size_t missing = 0;            // members whose gradient has not arrived this step
    Wait wait;                     // set once started
  };

  void Pack(const std::vector<size_t>& order);
  torch::Tensor& Data(Bucket& bucket);  // its buffer, allocated when it has none
  // The fall-back: one all-reduce of every hooked parameter's accumulated .grad().
  Status AverageAccumulated();
  // Packs the buckets in the order rank 0's gradients arrived this step (broadcast, so
  // that every process packs alike).
  Status PackByArrival(torch::Device device);
  void OnGradient(size_t index, const torch::Tensor& grad);
  void StartReady();  // starts, in order, the buckets that are ready; mutex_ held

  std::vector<torch::Tensor> params_;
  Collective& comm_;
  const int64_t bucket_bytes_;
  std::vector<std::pair<size_t, unsigned>> hooks_;  // parameter, hook
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> where_;  // parameter -> (bucket, member)
  std::mutex mutex_;
  bool armed_ = false;
  bool repeated_ = false;  // a gradient arrived twice this step
  size_t next_ = 0;        // the next bucket to start
  Status error_;           // the first failure to start a bucket this step
  std::vector<uint8_t> arrived_;
  std::vector<size_t> arrival_order_;
  bool packed_by_arrival_ = false;
  Stats stats_;
};

}  // namespace reel::gen

#endif  // REEL_GENERATE_DISTRIBUTED_H_
