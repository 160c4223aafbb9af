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
#include <memory>
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
  // In place: every process ends with `root`'s tensors.
  Status Broadcast(std::vector<torch::Tensor>& tensors, int root);

 private:
  struct Impl;
  Collective(std::unique_ptr<Impl> impl, int rank, int world);
  std::unique_ptr<Impl> impl_;
  int rank_, world_;
};

}  // namespace reel::gen

#endif  // REEL_GENERATE_DISTRIBUTED_H_
