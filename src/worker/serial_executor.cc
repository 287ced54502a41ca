#include "serial_executor.h"

#include <utility>

#include "tipperary/common/thread_name.h"

namespace tipperary::worker {

SerialExecutor::SerialExecutor() {
  absl::MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Loop(); });
}

SerialExecutor::~SerialExecutor() { Stop(); }

bool SerialExecutor::Post(std::function<void()> closure) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(closure));
  return true;
}

void SerialExecutor::Stop() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SerialExecutor::Loop() {
  common::SetThreadName("cache-answers");
  for (;;) {
    std::function<void()> closure;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SerialExecutor* self)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // Stopping, and everything posted has run.
      closure = std::move(queue_.front());
      queue_.pop_front();
    }
    closure();
  }
}

}  // namespace tipperary::worker
