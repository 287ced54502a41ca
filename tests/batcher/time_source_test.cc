#include "tipperary/batcher/time_source.h"

#include <chrono>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace tipperary::batcher {
namespace {

using std::chrono::milliseconds;

TEST(FakeTimeTest, MovesOnlyWhenAdvanced) {
  FakeTime time;
  const TimePoint t0 = time.Now();
  EXPECT_EQ(time.Now(), t0);
  time.Advance(milliseconds(5));
  EXPECT_EQ(time.Now(), t0 + milliseconds(5));
  time.Advance(-milliseconds(5));  // ignored
  EXPECT_EQ(time.Now(), t0 + milliseconds(5));
}

TEST(FakeTimeTest, WaitUntilPastReturnsAtOnce) {
  FakeTime time;
  absl::Mutex mu;
  absl::CondVar cv;
  absl::MutexLock lock(&mu);
  time.WaitUntil(cv, mu, time.Now());
  EXPECT_EQ(time.waiters(), 0u);
}

TEST(FakeTimeTest, AdvanceWakesWaiter) {
  FakeTime time;
  const TimePoint until = time.Now() + milliseconds(10);
  absl::Mutex mu;
  absl::CondVar cv;
  bool done = false;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    while (time.Now() < until) time.WaitUntil(cv, mu, until);
    done = true;
  });
  // Wait (hang guard only) until the waiter is blocked, then let time pass in two steps.
  for (int i = 0; i < 100000 && time.waiters() == 0; ++i) std::this_thread::yield();
  time.Advance(milliseconds(4));
  time.Advance(milliseconds(6));
  waiter.join();
  EXPECT_TRUE(done);
}

TEST(RealTimeTest, IsSteadyClock) {
  TimeSource* time = RealTime();
  EXPECT_EQ(time, RealTime());
  const TimePoint a = time->Now();
  absl::Mutex mu;
  absl::CondVar cv;
  absl::MutexLock lock(&mu);
  time->WaitUntil(cv, mu, a + std::chrono::microseconds(100));  // returns (timeout or spurious)
  EXPECT_GE(time->Now(), a);
}

}  // namespace
}  // namespace tipperary::batcher
