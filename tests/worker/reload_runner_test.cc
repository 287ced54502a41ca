// ReloadRunner: one reload at a time; a request while busy is refused, signals are coalesced.
#include "reload_runner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace tipperary::worker {
namespace {

constexpr absl::Duration kHangGuard = absl::Seconds(30);

// A reload that blocks until released, recording who asked.
class FakeReload {
 public:
  config::ReloadReport operator()(std::string_view source) {
    absl::MutexLock lock(&mu_);
    sources_.emplace_back(source);
    const size_t mine = sources_.size();
    auto released = [this, mine]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return released_ >= mine; };
    mu_.AwaitWithTimeout(absl::Condition(&released), kHangGuard);
    config::ReloadReport report;
    report.result = config::ReloadReport::Result::kApplied;
    report.config_hash = std::string(source);
    return report;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    ++released_;
  }
  bool AwaitStarted(size_t n) {
    absl::MutexLock lock(&mu_);
    auto started = [this, n]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return sources_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&started), kHangGuard);
  }
  std::vector<std::string> sources() {
    absl::MutexLock lock(&mu_);
    return sources_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> sources_ ABSL_GUARDED_BY(mu_);
  size_t released_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(ReloadRunnerTest, ARequestWhileAReloadRunsIsRefused) {
  FakeReload fake;
  ReloadRunner runner([&](std::string_view source) { return fake(source); });
  absl::Notification answered;
  std::string hash;
  ASSERT_EQ(runner.Request("POST /reload",
                           [&](absl::StatusOr<config::ReloadReport> report) {
                             hash = report->config_hash;
                             answered.Notify();
                           }),
            ReloadRunner::Accepted::kStarted);
  ASSERT_TRUE(fake.AwaitStarted(1));
  EXPECT_EQ(runner.Request("POST /reload", [](auto) { FAIL() << "a refused request ran"; }),
            ReloadRunner::Accepted::kBusy);
  fake.Release();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(kHangGuard));
  EXPECT_EQ(hash, "POST /reload");
  runner.Stop();
  EXPECT_EQ(runner.Request("POST /reload", [](auto) {}), ReloadRunner::Accepted::kStopped);
  EXPECT_EQ(fake.sources().size(), 1u);
}

TEST(ReloadRunnerTest, SignalsDuringAReloadMakeOneMoreReload) {
  FakeReload fake;
  ReloadRunner runner([&](std::string_view source) { return fake(source); });
  runner.RequestFromSignal("SIGHUP 1");
  ASSERT_TRUE(fake.AwaitStarted(1));
  runner.RequestFromSignal("SIGHUP 2");
  runner.RequestFromSignal("SIGHUP 3");
  // A request is refused while a signal's reload waits too.
  EXPECT_EQ(runner.Request("POST /reload", [](auto) {}), ReloadRunner::Accepted::kBusy);
  fake.Release();
  ASSERT_TRUE(fake.AwaitStarted(2));
  fake.Release();
  runner.Stop();
  EXPECT_EQ(fake.sources(), (std::vector<std::string>{"SIGHUP 1", "SIGHUP 3"}));
}

TEST(ReloadRunnerTest, StopWaitsForTheReloadInProgress) {
  FakeReload fake;
  ReloadRunner runner([&](std::string_view source) { return fake(source); });
  absl::Notification answered;
  bool ok = false;
  ASSERT_EQ(runner.Request("POST /reload",
                           [&](absl::StatusOr<config::ReloadReport> report) {
                             ok = report.ok();
                             answered.Notify();
                           }),
            ReloadRunner::Accepted::kStarted);
  ASSERT_TRUE(fake.AwaitStarted(1));
  fake.Release();
  runner.Stop();  // Returns once the reload is done and answered.
  EXPECT_TRUE(answered.HasBeenNotified());
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace tipperary::worker
