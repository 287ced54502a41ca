#include "tipperary/common/task_pool.h"

#include <algorithm>
#include <utility>

#include "tipperary/common/log.h"
#include "tipperary/common/thread_name.h"
#include "tipperary/common/thread_priority.h"

namespace tipperary::common {

TaskPool::TaskPool(Options options) {
  absl::MutexLock lock(&join_mu_);
  const int n = std::max(1, options.threads);
  threads_.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back(
        [this, idle = options.idle_priority, name = options.name] { Loop(idle, name); });
  }
}

TaskPool::~TaskPool() { Stop(); }

bool TaskPool::Post(std::function<void()> closure) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(closure));
  return true;
}

void TaskPool::Stop() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void TaskPool::Loop(bool idle_priority, const char* name) {
  SetThreadName(name);
  if (idle_priority && !EnterIdlePriority()) {
    TIPPERARY_LOG(kWarn, "bulk work runs at normal OS priority: SCHED_IDLE was refused", {});
  }
  for (;;) {
    std::function<void()> closure;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TaskPool* self)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // Stopping, and everything posted has run.
      closure = std::move(queue_.front());
      queue_.pop_front();
    }
    closure();
  }
}

}  // namespace tipperary::common
