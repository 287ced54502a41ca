// DynamicBatcher groups sequences from many concurrent requests into batches for a model, the way
// Triton's dynamic batcher and TEI's token budget do. It knows no model: an Item is an opaque
// payload with a token count. One scheduler thread forms batches (policy: batch_queue.h) and
// `instances` executor threads (one per model instance) run them, so the next batch is formed
// while others execute. Items carry a priority (interactive or bulk, with aging; batch_queue.h);
// BatcherOptions::interactive_instances keeps instances free of bulk batches so that an
// interactive request never waits behind one.
//
//   DynamicBatcher batcher(options,
//       [](Batch batch) { /* run the model on batch.items, complete their requests */ },
//       [](Item item, absl::Status why) { /* fail item's request with `why` */ });
//   absl::Status s = batcher.Enqueue(std::move(items));  // all of a request's items, or none
//   ...
//   batcher.Drain(Clock::now() + std::chrono::seconds(5));  // graceful shutdown
//
// Ownership of an item: the caller's until Enqueue returns OK; the batcher's while queued; then
// exactly one of:
//   * execute(Batch) — on an executor thread; the callee owns the batch and its items;
//   * reject(Item, status) — on the scheduler thread; the callee owns the item:
//       DEADLINE_EXCEEDED  its deadline passed while it was queued (checked before every batch);
//       CANCELLED          its `cancelled` flag was set (found when the next batch is formed;
//                          reported so the owner can release its state — it never runs);
//       UNAVAILABLE        Drain's deadline passed, or Stop(), while it was still queued.
// When Enqueue fails, nothing was queued and neither callback sees those items.
// Callbacks run without any batcher lock held; they may call Enqueue, stats() and queue_depth(),
// but not Drain/Stop/the destructor (those wait for the callbacks). They must not throw.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tipperary/batcher/batch.h"
#include "tipperary/batcher/batch_queue.h"
#include "tipperary/batcher/time_source.h"

namespace tipperary::batcher {

class DynamicBatcher {
 public:
  // `time` must outlive the batcher. `instances` (at least 1) = how many batches may execute
  // concurrently. Starts its threads at once.
  DynamicBatcher(BatcherOptions options, std::function<void(Batch)> execute,
                 std::function<void(Item, absl::Status)> reject, TimeSource* time = RealTime(),
                 int instances = 1);
  ~DynamicBatcher();  // Stop()

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // All-or-nothing for a request's items (they are queued under one lock, so no batch sees a
  // part of them before the rest). RESOURCE_EXHAUSTED when they do not fit in max_queue;
  // UNAVAILABLE once Drain()/Stop() has begun. Sets each item's enqueue_time. Empty = OK.
  absl::Status Enqueue(std::vector<Item> items);

  // Stops accepting, releases queued work without waiting for max_queue_delay, and at
  // `deadline` rejects whatever is still queued with UNAVAILABLE. Returns when idle: every
  // accepted item has been executed (execute returned) or rejected. Several calls: the earliest
  // deadline wins.
  void Drain(TimePoint deadline);
  // Drain(now-ish: queued items are rejected UNAVAILABLE, executing batches finish), then joins
  // the threads. Idempotent; thread-safe.
  void Stop();

  // Replaces the batching policy (batch size and token budget, max_queue_delay, max_queue,
  // grouping, idle dispatch) under the scheduler's lock, as a config reload does: batches formed
  // from now on follow it, queued items stay queued (even beyond a smaller max_queue; only new
  // Enqueues are refused), batches already formed or executing are not touched. The number of
  // instances is fixed at construction.
  void SetOptions(const BatcherOptions& options);
  BatcherOptions options() const;

  size_t queue_depth() const;
  BatcherStats stats() const;

  // For tests with FakeTime: blocks until nothing more can happen without a new Enqueue or a
  // time advance — the scheduler has seen every earlier Enqueue/completion and is parked with a
  // wake-up time still in the future, and no batch or rejection is in progress.
  void AwaitQuiescent();

 private:
  void SchedulerLoop();
  void ExecutorLoop();
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Instances bulk batches must leave free now.
  size_t ReservedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool QuiescentLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Earliest time the scheduler has something to do without being signalled.
  TimePoint NextWakeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<void(Batch)> execute_;
  const std::function<void(Item, absl::Status)> reject_;
  TimeSource* const time_;
  const size_t instances_;

  // Fast-path flag for Enqueue; the authoritative check is repeated under mu_.
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> refused_unavailable_items_{0};

  mutable absl::Mutex mu_;
  BatcherOptions options_ ABSL_GUARDED_BY(mu_);
  absl::CondVar scheduler_cv_;  // signalled (after unlocking) on Enqueue, completion, Drain
  absl::CondVar executor_cv_;   // signalled (after unlocking) when a batch is ready, at shutdown
  BatchQueue queue_ ABSL_GUARDED_BY(mu_);
  std::deque<Batch> ready_ ABSL_GUARDED_BY(mu_);           // formed, waiting for an executor thread
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;              // ready_ + executing
  size_t in_flight_interactive_ ABSL_GUARDED_BY(mu_) = 0;  // of those, interactive batches
  size_t rejecting_ ABSL_GUARDED_BY(mu_) = 0;  // taken out of the queue, reject() not returned
  bool accepting_locked_ ABSL_GUARDED_BY(mu_) = true;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  TimePoint drain_deadline_ ABSL_GUARDED_BY(mu_) = TimePoint::max();
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;  // threads exit
  uint64_t batch_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // For AwaitQuiescent: bumped on every state change the scheduler must look at.
  uint64_t events_ ABSL_GUARDED_BY(mu_) = 0;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t parked_events_ ABSL_GUARDED_BY(mu_) = 0;
  TimePoint parked_until_ ABSL_GUARDED_BY(mu_) = TimePoint::max();
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // serialises Stop()'s joins
  std::thread scheduler_ ABSL_GUARDED_BY(join_mu_);
  std::vector<std::thread> executors_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace tipperary::batcher
