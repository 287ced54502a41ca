// A model's queue of texts to embed: the dynamic batcher, with the embedding cache in front of
// it and in-flight deduplication beside it, and the fan-out of each computed row to every text
// that waits for it. It knows no model (the encoder is a callback) and the batcher knows neither
// cache nor dedup: its items are this queue's computations (Pending), each with the texts that
// wait for it.
//
// Per text of a submitted task, in order: a cache hit completes it with the stored bits; else,
// with dedup on, a text with the same ids already queued or executing for this model is joined
// (a joiner); else it becomes a new computation, queued with its task's deadline and cancel
// flag. When a batch has run, each row goes to its computation's own text and to every joiner,
// bit for bit, and into the cache.
//
// A joiner keeps its own deadline and cancellation:
//   * the batch formed after its deadline: it gets DEADLINE_EXCEEDED, as a queued text would;
//   * the computation it joined is dropped because ITS text's deadline passed or its call was
//     cancelled: the joiners whose own deadline has not passed and whose call is live are queued
//     again as a computation of their own (the first of them carries it, the others join it), at
//     the back of the queue; the rest get DEADLINE_EXCEEDED or CANCELLED. A queue that is full or
//     draining at that moment fails them with its RESOURCE_EXHAUSTED or UNAVAILABLE;
//   * the encoder failed, or the model is shutting down: they get the same error.
// A joiner's call cancelled while the computation runs still gets its row (as a text whose call is
// cancelled after its batch formed does).
//
// `done` of a task runs on a batcher thread or, for a task whose texts were all cache hits, on
// this queue's own completion thread; never inside Submit (its callers may hold a lock `done`
// takes).
//
//   EmbedQueue queue({.batching = options, .dim = 384, .cache = cache}, encode);
//   absl::Status s = queue.Submit(task, deadline);  // RESOURCE_EXHAUSTED when the queue is full
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "embed_task.h"
#include "embedding_cache.h"
#include "serial_executor.h"
#include "tipperary/batcher/dynamic_batcher.h"
#include "tipperary/metrics/counter.h"

namespace tipperary::worker {

class EmbedQueue {
 public:
  // Runs the model on `ids` (one row per item of `batch`, in its order) and writes
  // ids.size() x dim floats to `out`, and the time the model took to `compute`. On a batcher
  // executor thread, at most `instances` at once. Must not throw.
  using Encode = std::function<absl::Status(
      const batcher::Batch& batch, const std::vector<std::vector<int32_t>>& ids,
      std::vector<float>* out, std::chrono::nanoseconds* compute)>;

  struct Metrics {  // Any may be null.
    metrics::Counter* cache_hits = nullptr;
    metrics::Counter* cache_misses = nullptr;  // Lookups while the cache is on, less the hits.
    metrics::Counter* dedup_joins = nullptr;
  };

  struct Options {
    batcher::BatcherOptions batching = {};
    int instances = 1;
    int dim = 0;
    bool dedup = true;
    // Shared by every model's queue; null = none (same as one with max_bytes 0).
    std::shared_ptr<EmbeddingCache> cache = {};
    CacheAccount cache_account = {};  // Copied: its pointers must outlive the queue.
    Metrics metrics = {};
    // Null = absl::Hash of the ids. Tests inject a constant one to force collisions.
    EmbeddingCache::HashFunction hash = {};
    batcher::TimeSource* time = batcher::RealTime();
  };

  EmbedQueue(Options options, Encode encode);
  // Stop(), then drops this queue's cache entries. Like Stop(), not on a batcher thread.
  ~EmbedQueue();
  EmbedQueue(const EmbedQueue&) = delete;
  EmbedQueue& operator=(const EmbedQueue&) = delete;

  // Takes every text of the task (all or none): OK, or RESOURCE_EXHAUSTED when its new
  // computations do not fit in the queue, or UNAVAILABLE once Drain/Stop has begun; on error
  // `done` never runs. Sizes the task's vectors (Allocate).
  absl::Status Submit(const std::shared_ptr<EmbedTask>& task, batcher::TimePoint deadline)
      ABSL_LOCKS_EXCLUDED(mu_);

  // This queue's identity in the cache: unique in the process, so a model loaded anew (a
  // reload) never shares entries with the one it replaces.
  uint64_t cache_model_id() const { return model_id_; }
  void SetBatching(const batcher::BatcherOptions& batching) { batcher_->SetOptions(batching); }
  // For texts submitted from then on.
  void SetDedup(bool dedup) { dedup_.store(dedup, std::memory_order_relaxed); }
  size_t queue_depth() const { return batcher_->queue_depth(); }
  batcher::BatcherStats batcher_stats() const { return batcher_->stats(); }
  // Computations waiting for the batcher or running, that texts can join.
  size_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_);

  // Stop accepting; queued work runs until `deadline`, the rest is rejected UNAVAILABLE (with
  // its joiners); tasks already answered from the cache finish.
  void Drain(batcher::TimePoint deadline);
  void Stop();
  // For tests with FakeTime (DynamicBatcher::AwaitQuiescent).
  void AwaitQuiescent() { batcher_->AwaitQuiescent(); }

 private:
  struct Waiter {
    std::shared_ptr<EmbedTask> task;
    uint32_t index = 0;
    batcher::TimePoint deadline = batcher::TimePoint::max();
    batcher::TimePoint joined{};  // When it joined (joiners only): its queue time starts there.
  };
  struct Pending;

  std::span<const int32_t> IdsOf(const Waiter& w) const { return w.task->ids()[w.index]; }
  uint64_t HashOf(std::span<const int32_t> ids) const;
  Pending* FindInFlight(uint64_t hash, std::span<const int32_t> ids,
                        batcher::Priority priority) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddInFlight(Pending* pending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveInFlight(Pending* pending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  batcher::Item MakeItem(const std::shared_ptr<Pending>& pending, uint64_t request_id) const;

  void Execute(batcher::Batch batch) ABSL_LOCKS_EXCLUDED(mu_);
  void Reject(batcher::Item item, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const Encode encode_;
  const uint64_t model_id_;
  std::atomic<bool> dedup_;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> next_request_id_{1};

  mutable absl::Mutex mu_;
  // Computations that texts can join (dedup), by the hash of their ids; collisions chain.
  absl::flat_hash_map<uint64_t, Pending*> in_flight_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_count_ ABSL_GUARDED_BY(mu_) = 0;

  SerialExecutor completions_;                        // Tasks answered from the cache alone.
  std::unique_ptr<batcher::DynamicBatcher> batcher_;  // Last: its threads use everything above.
};

}  // namespace tipperary::worker
