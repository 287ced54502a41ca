#include "tipperary/batcher/time_source.h"

#include <algorithm>

#include "absl/time/time.h"

namespace tipperary::batcher {
namespace {

class SteadyTime final : public TimeSource {
 public:
  TimePoint Now() override { return Clock::now(); }

  void WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint until) override {
    if (until == TimePoint::max()) {
      cv.Wait(&mu);
      return;
    }
    const TimePoint now = Clock::now();
    if (until <= now) return;
    // A relative timeout on the steady clock: absl::Time deadlines follow the wall clock.
    cv.WaitWithTimeout(&mu, absl::FromChrono(until - now));
  }
};

}  // namespace

TimeSource::~TimeSource() = default;

TimeSource* RealTime() {
  static TimeSource* const kInstance = new SteadyTime();
  return kInstance;
}

FakeTime::FakeTime(TimePoint start) : now_(start.time_since_epoch().count()) {}

TimePoint FakeTime::Now() { return TimePoint(Duration(now_.load(std::memory_order_seq_cst))); }

void FakeTime::WaitUntil(absl::CondVar& cv, absl::Mutex& mu, TimePoint until) {
  // Register before looking at the time: an Advance() that misses this registration stored its
  // new time first, so the check below sees it; one that sees the registration must take `mu`
  // to signal, which it gets only once we are blocked in cv.Wait. No wake-up is lost.
  uint64_t id;
  {
    absl::MutexLock lock(&waiters_mu_);
    id = next_waiter_id_++;
    waiters_.push_back(Waiter{&cv, &mu, id});
  }
  if (Now() < until) cv.Wait(&mu);
  absl::MutexLock lock(&waiters_mu_);
  waiters_.erase(
      std::find_if(waiters_.begin(), waiters_.end(), [id](const Waiter& w) { return w.id == id; }));
}

void FakeTime::Advance(Duration d) {
  if (d <= Duration::zero()) return;
  now_.fetch_add(d.count(), std::memory_order_seq_cst);
  std::vector<Waiter> waiters;
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters = waiters_;
  }
  // The waiters' mutexes and condition variables belong to objects that outlive this call
  // (see the header); never hold waiters_mu_ here (lock order: waiter's mutex first).
  for (const Waiter& w : waiters) {
    w.mu->Lock();
    w.mu->Unlock();
    w.cv->SignalAll();  // after unlocking: the woken thread does not block on the mutex
  }
}

size_t FakeTime::waiters() {
  absl::MutexLock lock(&waiters_mu_);
  return waiters_.size();
}

}  // namespace tipperary::batcher
