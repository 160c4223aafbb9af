// ProcessInParallel: workers compute, the calling thread consumes.
//
// `work(i)` runs for every i in [0, count) on up to `jobs` worker threads; each result is
// handed to `consume` on the calling thread as soon as it is ready (completion order), or
// in index order when `ordered` is set (for results whose combination must not depend on
// thread timing, e.g. floating-point sums or batch composition).
// This is the shape of every batch job in reel: workers decode, hash or score, and the
// one thread that owns the catalog connection writes. `on_idle` runs on the calling
// thread when no result has arrived for `idle_seconds` (e.g. to commit a partial batch).
//
// Stopping: when `cancel` becomes true, or `consume` / `on_idle` returns an error,
// workers take no new items; results still in flight are dropped after an error and
// consumed after a cancel. Returns the first error, or OK. `work` must not throw.
//
// Thread-safety: `work` runs concurrently on several threads; `consume` and `on_idle`
// only on the calling thread.

#ifndef REEL_UTIL_PARALLEL_H_
#define REEL_UTIL_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "util/status.h"

namespace reel {

struct ParallelOptions {
  int jobs = 1;
  const std::atomic<bool>* cancel = nullptr;
  double idle_seconds = 1.0;
  std::function<Status()> on_idle;
  // Workers wait while this many results are ready but not yet consumed (0 = no limit):
  // bounds memory when results are large and `consume` is the slow side.
  size_t max_pending = 0;
  // Consume results in index order 0, 1, 2, ... (a finished result waits for those before
  // it). The worker holding the next index is never blocked by max_pending.
  bool ordered = false;
};

template <typename R>
Status ProcessInParallel(size_t count, const ParallelOptions& options,
                         const std::function<R(size_t)>& work,
                         const std::function<Status(R&&)>& consume) {
  if (count == 0) return Status::OK();
  const int threads = std::max(1, std::min<int>(options.jobs, static_cast<int>(count)));
  std::mutex mu;
  std::condition_variable cv;
  std::condition_variable room;  // a result was taken (max_pending)
  std::map<size_t, R> ready;     // by index; guarded by mu
  size_t next_consume = 0;       // ordered: the index consume expects next; guarded by mu
  int running = threads;         // guarded by mu
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  auto cancelled = [&] { return options.cancel != nullptr && options.cancel->load(); };

  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (!stop.load() && !cancelled()) {
        const size_t i = next.fetch_add(1);
        if (i >= count) break;
        R result = work(i);
        std::unique_lock<std::mutex> lock(mu);
        if (options.max_pending > 0) {
          room.wait(lock, [&] {
            return ready.size() < options.max_pending || stop.load() ||
                   (options.ordered && i == next_consume);
          });
        }
        ready.emplace(i, std::move(result));
        cv.notify_one();
      }
      std::lock_guard<std::mutex> lock(mu);
      --running;
      cv.notify_one();
    });
  }

  Status status;
  const auto idle = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options.idle_seconds));
  auto last_activity = std::chrono::steady_clock::now();
  while (true) {
    std::unique_lock<std::mutex> lock(mu);
    auto takeable = [&] {
      return !ready.empty() && (!options.ordered || ready.begin()->first == next_consume);
    };
    const bool woke =
        cv.wait_until(lock, last_activity + idle, [&] { return takeable() || running == 0; });
    if (takeable()) {
      R result = std::move(ready.begin()->second);
      ready.erase(ready.begin());
      ++next_consume;
      room.notify_all();
      lock.unlock();
      last_activity = std::chrono::steady_clock::now();
      if (status.ok()) {
        status = consume(std::move(result));
        if (!status.ok()) {
          stop.store(true);
          std::lock_guard<std::mutex> wake(mu);
          room.notify_all();
        }
      }
      continue;
    }
    if (running == 0) break;
    lock.unlock();
    if (!woke) {
      last_activity = std::chrono::steady_clock::now();
      if (status.ok() && options.on_idle) {
        status = options.on_idle();
        if (!status.ok()) {
          stop.store(true);
          std::lock_guard<std::mutex> wake(mu);
          room.notify_all();
        }
      }
    }
  }
  for (auto& w : workers) w.join();
  return status;
}

struct BatchOptions {
  int jobs = 1;
  const std::atomic<bool>* cancel = nullptr;
  int batch_size = 64;         // results per batch
  double batch_seconds = 2.0;  // a partial batch is written at least this often
  bool ordered = false;        // write in index order (ParallelOptions::ordered)
};

// ProcessInParallel with the results grouped for writing: `write` gets batches of at most
// `batch_size` results, at least every `batch_seconds` while results arrive, and the rest
// at the end; the batch is cleared after each successful write. The usual shape is one
// catalog transaction per batch, so a crash loses at most one batch. `keep` (optional)
// drops results that should not be written (they are not counted in *taken). Returns the
// first error of `write`.
template <typename R>
Status ProcessInBatches(size_t count, const BatchOptions& options,
                        const std::function<R(size_t)>& work,
                        const std::function<Status(std::vector<R>&)>& write,
                        size_t* taken = nullptr, const std::function<bool(const R&)>& keep = {}) {
  std::vector<R> batch;
  auto last_write = std::chrono::steady_clock::now();
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::OK();
    REEL_RETURN_IF_ERROR(write(batch));
    batch.clear();
    last_write = std::chrono::steady_clock::now();
    return Status::OK();
  };
  const auto interval = std::chrono::duration<double>(options.batch_seconds);
  ParallelOptions parallel;
  parallel.jobs = std::max(1, options.jobs);
  parallel.cancel = options.cancel;
  parallel.idle_seconds = options.batch_seconds;
  parallel.on_idle = flush;
  parallel.ordered = options.ordered;
  size_t kept = 0;
  Status status = ProcessInParallel<R>(count, parallel, work, [&](R&& r) -> Status {
    if (keep && !keep(r)) return Status::OK();
    ++kept;
    batch.push_back(std::move(r));
    if (static_cast<int>(batch.size()) >= options.batch_size ||
        std::chrono::steady_clock::now() - last_write >= interval) {
      return flush();
    }
    return Status::OK();
  });
  if (status.ok()) status = flush();
  if (taken != nullptr) *taken = kept;
  return status;
}

}  // namespace reel

#endif  // REEL_UTIL_PARALLEL_H_
