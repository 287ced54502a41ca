#include "tipperary/metrics/stats_table.h"

#include <gtest/gtest.h>

#include <type_traits>

namespace tipperary::metrics {
namespace {

#define TEST_COMPONENT_METRICS(COUNTER, GAUGE, HISTOGRAM)                                   \
  COUNTER(requests, "test_component_requests_total", "Requests handled.")                   \
  COUNTER(errors, "test_component_errors_total", "Requests failed.")                        \
  GAUGE(open_connections, "test_component_open_connections", "Open connections.")           \
  HISTOGRAM(latency, "test_component_latency_seconds", "Latency.", DefaultLatencyBuckets()) \
  HISTOGRAM(size, "test_component_size_bytes", "Sizes.", {100, 1000})

TIPPERARY_DECLARE_METRICS_STRUCT(TestComponentMetrics, TEST_COMPONENT_METRICS);

static_assert(std::is_same_v<decltype(TestComponentMetrics::requests), Family<Counter>*>);
static_assert(std::is_same_v<decltype(TestComponentMetrics::open_connections), Family<Gauge>*>);
static_assert(std::is_same_v<decltype(TestComponentMetrics::latency), Family<Histogram>*>);

TEST(StatsTableTest, DeclaresAndRegisters) {
  Registry registry;
  TestComponentMetrics m = TestComponentMetrics::Register(registry);
  ASSERT_NE(m.requests, nullptr);
  ASSERT_NE(m.errors, nullptr);
  ASSERT_NE(m.open_connections, nullptr);
  ASSERT_NE(m.latency, nullptr);
  ASSERT_NE(m.size, nullptr);
  EXPECT_EQ(m.requests->name(), "test_component_requests_total");
  EXPECT_EQ(m.requests->spec().help, "Requests handled.");
  EXPECT_EQ(m.latency->Add({}).boundaries(), DefaultLatencyBuckets());
  EXPECT_EQ(m.size->Add({}).boundaries(), (Histogram::BucketBoundaries{100, 1000}));

  m.requests->Add({{"code", "200"}}).Increment();
  m.open_connections->Add({}).Set(3);
  m.size->Add({}).Observe(500);
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("test_component_requests_total{code=\"200\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE test_component_errors_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("test_component_open_connections 3\n"), std::string::npos);
  EXPECT_NE(text.find("test_component_size_bytes_bucket{le=\"1000\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE test_component_latency_seconds histogram\n"), std::string::npos);

  // Registering again (e.g. a second instance of the component) shares the families.
  TestComponentMetrics again = TestComponentMetrics::Register(registry);
  EXPECT_EQ(again.requests, m.requests);
  EXPECT_EQ(again.latency, m.latency);
}

TEST(StatsTableTest, ConstantLabels) {
  Registry registry;
  TestComponentMetrics m = TestComponentMetrics::Register(registry, {{"listener", "main"}});
  m.errors->Add({}).Increment();
  EXPECT_NE(registry.Serialize().find("test_component_errors_total{listener=\"main\"} 1\n"),
            std::string::npos);
}

}  // namespace
}  // namespace tipperary::metrics
