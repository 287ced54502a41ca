// Many writers, concurrent Add() and Serialize(). Meant to be run under TSan/ASan too.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::metrics {
namespace {

constexpr int kThreads = 8;
constexpr int kIncrements = 100000;

TEST(ConcurrencyTest, CounterIncrementsSumExactly) {
  Registry registry;
  Counter& c = BuildCounter().Name("test_total").Help("T.").Register(registry).Add({});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < kIncrements; ++i) c.Increment();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), static_cast<double>(kThreads) * kIncrements);
  EXPECT_NE(registry.Serialize().find("test_total 800000\n"), std::string::npos);
}

TEST(ConcurrencyTest, HistogramObservationsSumExactly) {
  Registry registry;
  Histogram& h =
      BuildHistogram().Name("test_seconds").Help("T.").Buckets({1, 2}).Register(registry).Add({});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kIncrements; ++i) h.Observe(t % 3);  // 0, 1, 2: exact in binary
    });
  }
  for (auto& t : threads) t.join();
  // Threads t=0..7 observe 0,1,2,0,1,2,0,1: three 0s, three 1s, two 2s.
  EXPECT_EQ(h.BucketCounts(), (std::vector<std::uint64_t>{6 * kIncrements, 2 * kIncrements, 0}));
  EXPECT_EQ(h.Count(), static_cast<std::uint64_t>(kThreads) * kIncrements);
  EXPECT_EQ(h.Sum(), 7.0 * kIncrements);
}

TEST(ConcurrencyTest, AddRacesSerializeAndIncrement) {
  Registry registry;
  auto& counters = BuildCounter().Name("race_total").Help("R.").Register(registry);
  auto& gauges = BuildGauge().Name("race_items").Help("R.").Register(registry);
  auto& histograms =
      BuildHistogram().Name("race_seconds").Help("R.").Buckets({0.1, 1}).Register(registry);
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  constexpr int kWriters = 4;
  constexpr int kLabels = 200;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLabels; ++i) {
        const Labels labels{{"id", std::to_string(i)}};
        counters.Add(labels).Increment();
        gauges.Add(labels).Set(t);
        histograms.Add(labels).Observe(0.5);
        // Families registered while scraping too.
        BuildCounter()
            .Name("race_" + std::to_string(i % 10) + "_total")
            .Help("R.")
            .Register(registry)
            .Add({})
            .Increment();
      }
    });
  }
  std::thread scraper([&] {
    while (!done.load()) {
      const std::string text = registry.Serialize();
      ASSERT_NE(text.find("# TYPE race_total counter"), std::string::npos);
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();

  EXPECT_EQ(counters.size(), static_cast<std::size_t>(kLabels));
  EXPECT_EQ(counters.Add({{"id", "7"}}).Value(), kWriters);
  EXPECT_EQ(histograms.Add({{"id", "7"}}).Count(), static_cast<std::uint64_t>(kWriters));
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("race_3_total " + std::to_string(kWriters * kLabels / 10) + "\n"),
            std::string::npos);
}

}  // namespace
}  // namespace tipperary::metrics
