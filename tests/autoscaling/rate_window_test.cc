#include "tipperary/autoscaling/rate_window.h"

#include <gtest/gtest.h>

namespace tipperary::autoscaling {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class RateWindowTest : public testing::Test {
 protected:
  RateWindow::Clock::time_point At(double s) {
    return t0_ + std::chrono::duration_cast<RateWindow::Clock::duration>(
                     std::chrono::duration<double>(s));
  }
  RateWindow::Clock::time_point t0_{};
};

TEST_F(RateWindowTest, NoRateBeforeTwoSamples) {
  RateWindow w(seconds(60));
  EXPECT_EQ(w.Rate(seconds(10)), 0);
  w.Add(At(0), 100);
  EXPECT_EQ(w.Rate(seconds(10)), 0);
}

TEST_F(RateWindowTest, SteadyRateOverEachWindow) {
  RateWindow w(seconds(60));
  // 5/s for 30 s, then 20/s for 10 s.
  double total = 0;
  for (int t = 0; t <= 30; ++t) {
    w.Add(At(t), total);
    total += 5;
  }
  total -= 5;
  for (int t = 31; t <= 40; ++t) {
    total += 20;
    w.Add(At(t), total);
  }
  EXPECT_DOUBLE_EQ(w.Rate(seconds(10)), 20);
  // 60 s window: only 40 s exist: (30*5 + 10*20) / 40.
  EXPECT_DOUBLE_EQ(w.Rate(seconds(60)), 350.0 / 40);
  EXPECT_DOUBLE_EQ(w.Rate(seconds(20)), (10 * 5 + 10 * 20) / 20.0);
}

TEST_F(RateWindowTest, OldSamplesAreDropped) {
  RateWindow w(seconds(10));
  for (int t = 0; t <= 100; ++t) w.Add(At(t), t * 2.0);
  EXPECT_DOUBLE_EQ(w.Rate(seconds(10)), 2);
  for (int t = 101; t <= 120; ++t) w.Add(At(t), 200);  // Idle for 20 s.
  EXPECT_EQ(w.Rate(seconds(10)), 0);
}

TEST_F(RateWindowTest, LateTickStillSpansTheWindow) {
  RateWindow w(seconds(60));
  for (int t = 0; t <= 20; ++t) w.Add(At(t), t * 3.0);
  w.Add(At(21.3), 21 * 3.0 + 0.9);  // The timer fired 300 ms late.
  // Spans 21.3 - 11 = 10.3 s (within 5% of 10 s), not 9.3 s.
  EXPECT_NEAR(w.Rate(seconds(10)), (63.9 - 33.0) / 10.3, 1e-9);
}

TEST_F(RateWindowTest, CounterResetIsNotNegative) {
  RateWindow w(seconds(60));
  w.Add(At(0), 0);
  w.Add(At(1), 50);
  w.Add(At(2), 100);
  w.Add(At(3), 10);  // Restarted: 10 new since.
  w.Add(At(4), 20);
  EXPECT_DOUBLE_EQ(w.Rate(seconds(10)), 120.0 / 4);
  EXPECT_DOUBLE_EQ(w.Rate(seconds(1)), 10);
}

TEST_F(RateWindowTest, SubSecondSamples) {
  RateWindow w(seconds(10));
  for (int i = 0; i <= 100; ++i) w.Add(At(i * 0.25), i * 1.0);  // 4/s.
  EXPECT_NEAR(w.Rate(seconds(10)), 4, 1e-9);
  EXPECT_NEAR(w.Rate(milliseconds(500)), 4, 1e-9);
}

}  // namespace
}  // namespace tipperary::autoscaling
