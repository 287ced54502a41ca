// OutlierDetector and RetryPolicy: pure logic, on a fake clock.
#include "outlier_detector.h"

#include <gtest/gtest.h>

#include "tipperary/upstream/retry_policy.h"

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;
using Clock = OutlierDetector::Clock;

OutlierDetectionOptions Options() {
  OutlierDetectionOptions options;
  options.consecutive_failures = 3;
  options.base_ejection_time = 10s;
  options.max_ejection_time = 35s;
  options.max_ejection_percent = 50;
  return options;
}

TEST(OutlierDetectorTest, EjectsAfterConsecutiveFailuresOnly) {
  OutlierDetector detector(Options(), 4);
  const Clock::time_point t0 = Clock::now();
  EXPECT_FALSE(detector.RecordFailure(0, t0));
  EXPECT_FALSE(detector.RecordFailure(0, t0));
  detector.RecordSuccess(0);  // Breaks the run.
  EXPECT_FALSE(detector.RecordFailure(0, t0));
  EXPECT_FALSE(detector.RecordFailure(0, t0));
  EXPECT_TRUE(detector.RecordFailure(0, t0));
  EXPECT_TRUE(detector.IsEjected(0, t0 + 9s));
  EXPECT_FALSE(detector.IsEjected(0, t0 + 10s));
  EXPECT_FALSE(detector.IsEjected(1, t0));
}

TEST(OutlierDetectorTest, EjectionTimeDoublesUpToTheMaximumAndDecays) {
  OutlierDetector detector(Options(), 2);
  Clock::time_point now = Clock::now();
  auto eject = [&] {
    for (int i = 0; i < 3; ++i) detector.RecordFailure(0, now);
  };
  eject();
  EXPECT_EQ(detector.EjectionTime(0), 10s);
  now += 10s;  // Expired; failing at once again doubles it.
  eject();
  EXPECT_EQ(detector.EjectionTime(0), 20s);
  now += 20s;
  eject();
  EXPECT_EQ(detector.EjectionTime(0), 35s);  // 40 s, capped.
  EXPECT_EQ(detector.times_ejected(0), 3u);
  // Two base_ejection_times without an ejection take the multiplier down by two.
  now += 35s + 20s;
  eject();
  EXPECT_EQ(detector.times_ejected(0), 2u);
  EXPECT_EQ(detector.EjectionTime(0), 20s);
}

TEST(OutlierDetectorTest, MaxEjectionPercentButAlwaysOne) {
  OutlierDetectionOptions options = Options();
  options.max_ejection_percent = 10;  // 10% of 4 rounds to 0, yet one may be ejected.
  OutlierDetector detector(options, 4);
  const Clock::time_point now = Clock::now();
  for (int i = 0; i < 3; ++i) detector.RecordFailure(0, now);
  EXPECT_TRUE(detector.IsEjected(0, now));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(detector.RecordFailure(1, now));
  EXPECT_EQ(detector.EjectedCount(now), 1u);
  // Once the first is back, the second (still failing) goes.
  EXPECT_TRUE(detector.RecordFailure(1, now + 10s));
}

TEST(OutlierDetectorTest, OffWithZeroFailures) {
  OutlierDetectionOptions options = Options();
  options.consecutive_failures = 0;
  OutlierDetector detector(options, 1);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(detector.RecordFailure(0, Clock::now()));
}

TEST(RetryPolicyTest, IdempotentMethodPatterns) {
  RetryPolicy policy;
  EXPECT_FALSE(policy.IsIdempotent("/pkg.Svc/Get"));
  policy.idempotent_methods = {"pkg.Svc/Get", "pkg.Reader/*"};
  EXPECT_TRUE(policy.IsIdempotent("/pkg.Svc/Get"));
  EXPECT_FALSE(policy.IsIdempotent("/pkg.Svc/GetMore"));
  EXPECT_FALSE(policy.IsIdempotent("/pkg.Svc/Put"));
  EXPECT_TRUE(policy.IsIdempotent("/pkg.Reader/Anything"));
  EXPECT_FALSE(policy.IsIdempotent("/pkg.ReaderX/Anything"));
  EXPECT_FALSE(policy.IsIdempotent("/pkg.Reader"));
  policy.idempotent_methods = {"*"};
  EXPECT_TRUE(policy.IsIdempotent("/any.Thing/At"));
}

TEST(RetryPolicyTest, CodeNames) {
  absl::StatusCode code;
  ASSERT_TRUE(ParseRetryOnCode("deadline_exceeded", &code));
  EXPECT_EQ(code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(RetryOnCodeName(code), "deadline_exceeded");
  EXPECT_FALSE(ParseRetryOnCode("ok", &code));
  EXPECT_FALSE(ParseRetryOnCode("UNAVAILABLE", &code));
  RetryPolicy policy;
  EXPECT_TRUE(policy.RetriesOn(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(policy.RetriesOn(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace tipperary::upstream
