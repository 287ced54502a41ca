// Injectable time for the dynamic batcher: the scheduler asks a TimeSource for "now" and for a
// timed wait on its condition variable, so tests can drive time by hand instead of sleeping.
//
//   FakeTime time;                                     // starts at an arbitrary fixed point
//   DynamicBatcher batcher(options, execute, reject, &time);
//   batcher.Enqueue(items);                            // a partial batch waits...
//   time.Advance(options.max_queue_delay);             // ...until the test moves time on.
//
// Production code uses RealTime() (std::chrono::steady_clock).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tipperary::batcher {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

class TimeSource {
 public:
  virtual ~TimeSource();
  virtual TimePoint Now() = 0;
  // Called with `mu` held; returns with `mu` held. Blocks on `cv` until it is signalled or
  // Now() >= `until` (TimePoint::max() = no time limit). Spurious returns are allowed, and
  // an implementation may release `mu` briefly before blocking, so the caller re-checks its
  // state after every return, exactly as with a plain condition variable.
  virtual void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint until) = 0;
};

// The process-wide steady clock. Never destroyed; safe to use from any thread.
TimeSource* RealTime();

// Time that moves only when a test calls Advance(). Thread-safe. WaitUntil blocks until it is
// signalled or until Advance() moves time to or past `until` (Advance wakes every waiter).
// A FakeTime must outlive everything that waits on it, and Advance() must not race with the
// destruction of a waiter's mutex/condition variable (destroy the batcher on the thread that
// advances time, or after it has stopped advancing).
class FakeTime : public TimeSource {
 public:
  // The default start is far from the clock's epoch so that TimePoint{} never looks "recent".
  explicit FakeTime(TimePoint start = TimePoint() + std::chrono::hours(24));

  TimePoint Now() override;
  void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint until) override;

  // Moves time forward by `d` (negative values are ignored) and wakes every waiter.
  void Advance(Duration d);
  // How many threads are blocked in WaitUntil right now (for tests that want to observe it).
  size_t waiters();

 private:
  struct Waiter {
    absl::CondVar* cv;
    absl::Mutex* mu;
    uint64_t id;
  };

  std::atomic<Clock::rep> now_;
  absl::Mutex waiters_mu_;
  // Lock order: a waiter's own mutex, then waiters_mu_. Advance() never holds waiters_mu_
  // while taking a waiter's mutex (it copies the list first), so the two never deadlock.
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(waiters_mu_);
  uint64_t next_waiter_id_ ABSL_GUARDED_BY(waiters_mu_) = 0;
};

}  // namespace tipperary::batcher
