#include "tipperary/metrics/histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tipperary::metrics {
namespace {

TEST(HistogramTest, CountsPerBucketSumAndCount) {
  Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 3.0, 4.0, 100.0}) h.Observe(v);
  EXPECT_EQ(h.BucketCounts(), (std::vector<std::uint64_t>{2, 1, 2, 1}));
  EXPECT_EQ(h.Count(), 6u);
  EXPECT_DOUBLE_EQ(h.Sum(), 110.0);
}

TEST(HistogramTest, ManyBucketsSpanSeveralCacheLines) {
  Histogram h(LinearBuckets(0, 1, 20));
  for (int i = 0; i < 25; ++i) h.Observe(i);
  const auto counts = h.BucketCounts();
  ASSERT_EQ(counts.size(), 21u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(counts[static_cast<std::size_t>(i)], 1u) << i;
  EXPECT_EQ(counts[20], 5u);
}

TEST(HistogramTest, TrailingInfIsDroppedAndNaNGoesToInf) {
  Histogram h({1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(h.boundaries(), (Histogram::BucketBoundaries{1}));
  h.Observe(std::nan(""));
  EXPECT_EQ(h.BucketCounts(), (std::vector<std::uint64_t>{0, 1}));
}

TEST(HistogramTest, NoFiniteBuckets) {
  Histogram h({});
  h.Observe(3);
  EXPECT_EQ(h.BucketCounts(), (std::vector<std::uint64_t>{1}));
}

TEST(HistogramTest, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (Histogram::BucketBoundaries{1, 2, 4, 8}));
  EXPECT_EQ(LinearBuckets(0.5, 0.5, 3), (Histogram::BucketBoundaries{0.5, 1, 1.5}));
  const auto latency = DefaultLatencyBuckets();
  EXPECT_EQ(latency.front(), 0.0005);
  EXPECT_EQ(latency.back(), 30);
  EXPECT_TRUE(std::is_sorted(latency.begin(), latency.end()));
  Histogram ok(latency);  // valid
}

}  // namespace
}  // namespace tipperary::metrics
