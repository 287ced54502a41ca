#include "tipperary/batcher/dynamic_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tipperary/common/thread_name.h"

namespace tipperary::batcher {

DynamicBatcher::DynamicBatcher(BatcherOptions options, std::function<void(Batch)> execute,
                               std::function<void(Item, absl::Status)> reject, TimeSource* time,
                               int instances)
    : execute_(std::move(execute)),
      reject_(std::move(reject)),
      time_(time != nullptr ? time : RealTime()),
      instances_(static_cast<size_t>(std::max(1, instances))),
      queue_(options) {
  {
    absl::MutexLock lock(&mu_);
    options_ = options;
  }
  absl::MutexLock lock(&join_mu_);
  executors_.reserve(instances_);
  for (size_t i = 0; i < instances_; ++i) {
    executors_.emplace_back([this] {
      common::SetThreadName("batch-exec");
      ExecutorLoop();
    });
  }
  scheduler_ = std::thread([this] {
    common::SetThreadName("batch-sched");
    SchedulerLoop();
  });
}

DynamicBatcher::~DynamicBatcher() { Stop(); }

absl::Status DynamicBatcher::Enqueue(std::vector<Item> items) {
  if (items.empty()) return absl::OkStatus();
  const size_t n = items.size();
  if (!accepting_.load(std::memory_order_acquire)) {
    refused_unavailable_items_.fetch_add(n, std::memory_order_relaxed);
    return absl::UnavailableError("batcher is draining or stopped");
  }
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_locked_) {
      refused_unavailable_items_.fetch_add(n, std::memory_order_relaxed);
      return absl::UnavailableError("batcher is draining or stopped");
    }
    if (queue_.size() + n > options_.max_queue) {
      stats_.refused_full_items += n;
      return absl::ResourceExhaustedError(absl::StrCat("batch queue full: ", queue_.size(),
                                                       " queued + ", n, " > max_queue ",
                                                       options_.max_queue));
    }
    // Stamped under the lock so that arrival order and enqueue_time agree.
    const TimePoint now = time_->Now();
    for (Item& item : items) {
      item.enqueue_time = now;
      queue_.Push(std::move(item));  // ownership: caller -> queue
    }
    stats_.enqueued_items += n;
    ++events_;
  }
  scheduler_cv_.Signal();  // outside the lock: the scheduler does not wake into a held mutex
  return absl::OkStatus();
}

void DynamicBatcher::Drain(TimePoint deadline) {
  accepting_.store(false, std::memory_order_release);
  {
    absl::MutexLock lock(&mu_);
    accepting_locked_ = false;
    draining_ = true;
    drain_deadline_ = std::min(drain_deadline_, deadline);
    ++events_;
  }
  scheduler_cv_.Signal();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &DynamicBatcher::IdleLocked));
}

void DynamicBatcher::Stop() {
  // Rejects everything still queued at once; batches already executing finish.
  Drain(TimePoint::min());
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
  }
  scheduler_cv_.SignalAll();
  executor_cv_.SignalAll();
  absl::MutexLock lock(&join_mu_);
  if (scheduler_.joinable()) scheduler_.join();
  for (std::thread& t : executors_) {
    if (t.joinable()) t.join();
  }
}

void DynamicBatcher::SetOptions(const BatcherOptions& options) {
  {
    absl::MutexLock lock(&mu_);
    options_ = options;
    queue_.SetOptions(options);
    ++events_;
  }
  // A shorter max_queue_delay or a smaller batch may release a batch now.
  scheduler_cv_.Signal();
}

BatcherOptions DynamicBatcher::options() const {
  absl::MutexLock lock(&mu_);
  return options_;
}

size_t DynamicBatcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

BatcherStats DynamicBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  BatcherStats s = stats_;
  s.queued_items = queue_.size();
  s.queued_tokens = queue_.tokens();
  s.queued_bulk_items = queue_.bulk_size();
  s.executing_batches = in_flight_;
  s.refused_unavailable_items = refused_unavailable_items_.load(std::memory_order_relaxed);
  return s;
}

void DynamicBatcher::AwaitQuiescent() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &DynamicBatcher::QuiescentLocked));
}

size_t DynamicBatcher::ReservedLocked() const {
  // Never all of them; none while draining (everything queued must go).
  return draining_ ? 0 : std::min(options_.interactive_instances, instances_ - 1);
}

bool DynamicBatcher::IdleLocked() const {
  return queue_.empty() && in_flight_ == 0 && rejecting_ == 0;
}

bool DynamicBatcher::QuiescentLocked() const {
  return parked_ && parked_events_ == events_ && time_->Now() < parked_until_ && in_flight_ == 0 &&
         rejecting_ == 0;
}

TimePoint DynamicBatcher::NextWakeLocked() const {
  TimePoint wake = queue_.next_deadline();
  if (!queue_.empty()) {
    if (draining_) {
      wake = std::min(wake, drain_deadline_);
    } else if (in_flight_ < instances_) {
      // A bulk item that ages may take an instance kept for interactive batches.
      wake = std::min(wake, queue_.next_promotion());
      // Only bulk items queued and every free instance kept: nothing to release before then.
      if (!(queue_.bulk_size() == queue_.size() && instances_ - in_flight_ <= ReservedLocked())) {
        wake = std::min(wake, queue_.release_time());
      }
    }
    // With every instance busy, only a completion (a signal) can release the next batch.
  }
  return wake;
}

void DynamicBatcher::SchedulerLoop() {
  std::vector<Item> expired, cancelled, unavailable;
  mu_.Lock();
  while (true) {
    const TimePoint now = time_->Now();
    // Expired and cancelled items are removed before any batch is formed, so they never run.
    queue_.TakeExpired(now, &expired);
    if (draining_ && now >= drain_deadline_) queue_.TakeAll(&unavailable);
    queue_.PromoteAged(now);
    const size_t reserved = ReservedLocked();
    size_t formed = 0;
    while (in_flight_ < instances_ && !queue_.empty()) {
      BatchQueue::Plan plan = queue_.PlanBatch();
      if (plan.lane == Priority::kBulk && instances_ - in_flight_ <= reserved) break;
      // Idle (dispatch_when_idle): nothing executing competes with this batch. A bulk batch never
      // takes the instance an interactive one may (it leaves the reserved ones free), so bulk work
      // does not make an interactive batch wait max_queue_delay (docs/benchmarks.md).
      const bool idle =
          plan.lane == Priority::kInteractive ? in_flight_interactive_ == 0 : in_flight_ == 0;
      if (!queue_.ShouldRelease(plan, now, draining_, idle)) break;
      // Looking for cancelled items costs O(queue), so it is done once per batch, here.
      if (queue_.TakeCancelled(&cancelled) > 0) continue;  // plan again without them
      Batch batch = queue_.Take(plan, now);                // ownership: queue -> batch
      batch.sequence = ++batch_sequence_;
      ++stats_.batches;
      if (batch.priority == Priority::kBulk) {
        ++stats_.bulk_batches;
      } else {
        stats_.aged_items +=
            std::count_if(batch.items.begin(), batch.items.end(),
                          [](const Item& i) { return i.priority == Priority::kBulk; });
      }
      stats_.executed_items += batch.items.size();
      stats_.real_tokens += batch.real_tokens;
      stats_.padded_tokens += batch.padded_tokens;
      if (batch.priority == Priority::kInteractive) ++in_flight_interactive_;
      ready_.push_back(std::move(batch));  // ownership: batch -> ready_ (an executor takes it)
      ++in_flight_;
      ++formed;
    }
    const size_t rejections = expired.size() + cancelled.size() + unavailable.size();
    if (formed > 0 || rejections > 0) {
      stats_.expired_items += expired.size();
      stats_.cancelled_items += cancelled.size();
      stats_.unavailable_items += unavailable.size();
      // Counted so that Drain() does not report idle before the owners have heard.
      rejecting_ += rejections;
      mu_.Unlock();
      for (size_t i = 0; i < formed; ++i) executor_cv_.Signal();
      // Ownership: batcher -> reject callback, one item at a time.
      for (Item& item : expired) {
        reject_(std::move(item),
                absl::DeadlineExceededError("deadline passed while queued for a batch"));
      }
      for (Item& item : cancelled) {
        reject_(std::move(item), absl::CancelledError("cancelled while queued for a batch"));
      }
      for (Item& item : unavailable) {
        reject_(std::move(item),
                absl::UnavailableError("batcher shut down before the item could run"));
      }
      expired.clear();
      cancelled.clear();
      unavailable.clear();
      mu_.Lock();
      rejecting_ -= rejections;
      continue;  // time has moved and the state may have changed: look again
    }
    if (shutdown_) break;
    parked_ = true;
    parked_events_ = events_;
    parked_until_ = NextWakeLocked();
    time_->WaitUntil(scheduler_cv_, mu_, parked_until_);
    parked_ = false;
  }
  mu_.Unlock();
}

void DynamicBatcher::ExecutorLoop() {
  mu_.Lock();
  while (true) {
    while (ready_.empty() && !shutdown_) executor_cv_.Wait(&mu_);
    if (ready_.empty()) break;                // shutdown_ and nothing left (Stop drains first)
    Batch batch = std::move(ready_.front());  // ownership: ready_ -> this thread
    ready_.pop_front();
    const Priority priority = batch.priority;
    mu_.Unlock();
    execute_(std::move(batch));  // ownership: -> execute; outside the lock
    mu_.Lock();
    --in_flight_;
    if (priority == Priority::kInteractive) --in_flight_interactive_;
    ++events_;
    mu_.Unlock();
    scheduler_cv_.Signal();  // an instance is free: the scheduler may form the next batch
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace tipperary::batcher
