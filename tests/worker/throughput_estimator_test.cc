// ThroughputEstimator: sustained real tokens per busy second over a window of recent batches, the
// warm-up seed, and the backlog it implies. Time is passed in, so every number here is exact.
#include "throughput_estimator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace tipperary::worker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ThroughputEstimatorTest, NoRateBeforeAnyBatch) {
  ThroughputEstimator t(seconds(10), 1);
  EXPECT_FALSE(t.TokensPerSecond().has_value());
  EXPECT_FALSE(t.BacklogSeconds(100).has_value());
  // Nothing queued is no backlog, rate or not.
  EXPECT_EQ(t.BacklogSeconds(0), 0.0);
}

TEST(ThroughputEstimatorTest, RealTokensPerBusySecond) {
  ThroughputEstimator t(seconds(10), 1);
  t.Record(1000, milliseconds(100));
  t.Record(3000, milliseconds(300));
  // 4000 tokens in 0.4 s of busy time, whatever the idle time between the batches was.
  ASSERT_TRUE(t.TokensPerSecond().has_value());
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 10000.0);
  EXPECT_DOUBLE_EQ(*t.BacklogSeconds(25000), 2.5);
}

TEST(ThroughputEstimatorTest, InstancesMultiplyTheRate) {
  ThroughputEstimator t(seconds(10), 4);
  t.Record(1000, milliseconds(100));
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 40000.0);
  EXPECT_DOUBLE_EQ(*t.BacklogSeconds(20000), 0.5);
}

TEST(ThroughputEstimatorTest, WindowKeepsTheMostRecentBusyTime) {
  ThroughputEstimator t(seconds(1), 1);
  // A slow period: 100 tokens/s for 2 s of busy time...
  for (int i = 0; i < 4; ++i) t.Record(50, milliseconds(500));
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 100.0);
  // ...then a fast one: once it covers the window, the slow batches are gone.
  t.Record(5000, milliseconds(500));
  // Still one slow batch inside the window (0.5 s of fast alone does not cover 1 s).
  EXPECT_EQ(t.window_batches(), 2u);
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 5050.0);
  t.Record(5000, milliseconds(500));
  EXPECT_EQ(t.window_batches(), 2u);
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 10000.0);
}

TEST(ThroughputEstimatorTest, OneBatchLongerThanTheWindowStays) {
  ThroughputEstimator t(milliseconds(100), 1);
  t.Record(100, seconds(1));
  t.Record(900, seconds(3));
  EXPECT_EQ(t.window_batches(), 1u);
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 300.0);
}

TEST(ThroughputEstimatorTest, SeedDefinesTheRateUntilTheFirstBatch) {
  ThroughputEstimator t(seconds(10), 1);
  t.Seed(4, milliseconds(2));
  t.Seed(4, milliseconds(2));
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 2000.0);
  EXPECT_DOUBLE_EQ(*t.BacklogSeconds(1000), 0.5);
  // The first real batch replaces the warm-up entirely (not averaged with it).
  t.Record(10000, milliseconds(100));
  EXPECT_EQ(t.window_batches(), 1u);
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 100000.0);
  // A late seed (a reload's warm-up) does not disturb a measured rate.
  t.Seed(4, milliseconds(2));
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 100000.0);
}

TEST(ThroughputEstimatorTest, ZeroBusyTimeIsNoRate) {
  ThroughputEstimator t(seconds(10), 1);
  t.Record(100, milliseconds(0));
  EXPECT_FALSE(t.TokensPerSecond().has_value());
  t.Record(100, milliseconds(10));
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 20000.0);
}

TEST(ThroughputEstimatorTest, SetWindowAppliesAtTheNextBatch) {
  ThroughputEstimator t(seconds(10), 1);
  for (int i = 0; i < 5; ++i) t.Record(100, milliseconds(100));
  EXPECT_EQ(t.window_batches(), 5u);
  t.SetWindow(milliseconds(200));
  t.Record(100, milliseconds(100));
  EXPECT_EQ(t.window_batches(), 2u);
}

TEST(ThroughputEstimatorTest, ConcurrentRecordsAreAllCounted) {
  ThroughputEstimator t(seconds(1000), 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&t] {
      for (int k = 0; k < 1000; ++k) t.Record(10, milliseconds(1));
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(t.window_batches(), 4000u);
  EXPECT_DOUBLE_EQ(*t.TokensPerSecond(), 10000.0);
}

}  // namespace
}  // namespace tipperary::worker
