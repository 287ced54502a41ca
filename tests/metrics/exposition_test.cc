// Golden tests of the text exposition of each metric type.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::metrics {
namespace {

TEST(ExpositionTest, EmptyRegistryIsEmpty) {
  Registry registry;
  EXPECT_EQ(registry.Serialize(), "");
}

TEST(ExpositionTest, Counter) {
  Registry registry;
  auto& family = BuildCounter().Name("test_requests_total").Help("Requests.").Register(registry);
  family.Add({{"code", "200"}, {"method", "GET"}}).Increment(3);
  family.Add({{"code", "500"}, {"method", "GET"}}).Increment();
  family.Add({{"code", "200"}, {"method", "GET"}}).Increment(0.5);
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_requests_total Requests.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{code=\"200\",method=\"GET\"} 3.5\n"
            "test_requests_total{code=\"500\",method=\"GET\"} 1\n");
}

TEST(ExpositionTest, CounterIgnoresNegativeAndNaN) {
  Registry registry;
  Counter& c = BuildCounter().Name("c_total").Help("C.").Register(registry).Add({});
  c.Increment(2);
  c.Increment(-1);
  c.Increment(std::nan(""));
  EXPECT_EQ(c.Value(), 2);
}

TEST(ExpositionTest, Gauge) {
  Registry registry;
  Gauge& g = BuildGauge().Name("test_temperature_celsius").Help("T.").Register(registry).Add({});
  g.Set(10);
  g.Increment(2.5);
  g.Decrement();
  g.Decrement(20);
  EXPECT_EQ(g.Value(), -8.5);
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_temperature_celsius T.\n"
            "# TYPE test_temperature_celsius gauge\n"
            "test_temperature_celsius -8.5\n");
  g.Set(std::numeric_limits<double>::infinity());
  EXPECT_NE(registry.Serialize().find("test_temperature_celsius +Inf\n"), std::string::npos);
}

TEST(ExpositionTest, Histogram) {
  Registry registry;
  auto& family = BuildHistogram()
                     .Name("test_duration_seconds")
                     .Help("D.")
                     .Buckets({0.005, 0.1, 1})
                     .Register(registry);
  Histogram& h = family.Add({{"route", "a"}});
  h.Observe(0.005);  // le is inclusive
  h.Observe(0.05);
  h.Observe(0.05);
  h.Observe(2);
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_duration_seconds D.\n"
            "# TYPE test_duration_seconds histogram\n"
            "test_duration_seconds_bucket{route=\"a\",le=\"0.005\"} 1\n"
            "test_duration_seconds_bucket{route=\"a\",le=\"0.1\"} 3\n"
            "test_duration_seconds_bucket{route=\"a\",le=\"1\"} 3\n"
            "test_duration_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"
            "test_duration_seconds_sum{route=\"a\"} 2.105\n"
            "test_duration_seconds_count{route=\"a\"} 4\n");
}

TEST(ExpositionTest, HistogramWithoutLabelsAndPerChildBuckets) {
  Registry registry;
  auto& family = BuildHistogram().Name("test_size_bytes").Help("S.").Register(registry);
  family.Add({}, {1e-05, 100}).Observe(1);
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_size_bytes S.\n"
            "# TYPE test_size_bytes histogram\n"
            "test_size_bytes_bucket{le=\"1e-05\"} 0\n"
            "test_size_bytes_bucket{le=\"100\"} 1\n"
            "test_size_bytes_bucket{le=\"+Inf\"} 1\n"
            "test_size_bytes_sum 1\n"
            "test_size_bytes_count 1\n");
}

TEST(ExpositionTest, FamiliesWithoutChildrenPrintHeaderAndSortByName) {
  Registry registry;
  BuildGauge().Name("zeta_items").Help("Z.").Register(registry);
  BuildCounter().Name("alpha_total").Help("A.").Register(registry);
  BuildHistogram().Name("mid_seconds").Register(registry);  // no help: no HELP line
  EXPECT_EQ(registry.Serialize(),
            "# HELP alpha_total A.\n"
            "# TYPE alpha_total counter\n"
            "# TYPE mid_seconds histogram\n"
            "# HELP zeta_items Z.\n"
            "# TYPE zeta_items gauge\n");
}

TEST(ExpositionTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  auto& family = BuildCounter()
                     .Name("test_escapes_total")
                     .Help("Line one\nback\\slash \"quoted\"")
                     .Register(registry);
  family.Add({{"path", "C:\\dir \"x\"\nnext"}}).Increment();
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_escapes_total Line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE test_escapes_total counter\n"
            "test_escapes_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST(ExpositionTest, ConstantLabelsMergeSorted) {
  Registry registry;
  auto& family = BuildCounter()
                     .Name("test_merged_total")
                     .Help("M.")
                     .Labels({{"b_const", "1"}, {"z_const", "2"}})
                     .Register(registry);
  family.Add({{"a", "x"}, {"c", "y"}}).Increment();
  family.Add({}).Increment(2);
  EXPECT_EQ(registry.Serialize(),
            "# HELP test_merged_total M.\n"
            "# TYPE test_merged_total counter\n"
            "test_merged_total{b_const=\"1\",z_const=\"2\"} 2\n"
            "test_merged_total{a=\"x\",b_const=\"1\",c=\"y\",z_const=\"2\"} 1\n");
}

TEST(ExpositionTest, SameLabelsReturnSameObject) {
  Registry registry;
  auto& family = BuildCounter().Name("test_same_total").Help("S.").Register(registry);
  Counter& a = family.Add({{"k", "v"}});
  Counter& b = family.Add({{"k", "v"}});
  Counter& c = family.Add({{"k", "w"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_EQ(family.size(), 2u);
}

TEST(ExpositionTest, ReRegisteringReturnsSameFamily) {
  Registry registry;
  auto& a = BuildCounter().Name("test_again_total").Help("A.").Register(registry);
  auto& b = BuildCounter().Name("test_again_total").Help("A.").Register(registry);
  EXPECT_EQ(&a, &b);
  EXPECT_TRUE(registry.HasFamily("test_again_total"));
  EXPECT_FALSE(registry.HasFamily("test_other_total"));
}

TEST(ExpositionTest, CollectHooksRunBeforeEachSerialize) {
  Registry registry;
  Gauge& g = BuildGauge().Name("test_scrapes").Help("S.").Register(registry).Add({});
  registry.AddCollectHook([&g] { g.Increment(); });
  registry.Serialize();
  EXPECT_NE(registry.Serialize().find("test_scrapes 2\n"), std::string::npos);
}

using ExpositionDeathTest = ::testing::Test;

TEST(ExpositionDeathTest, RejectsProgrammingErrors) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  EXPECT_DEATH(BuildCounter().Name("bad-name").Register(registry), "invalid metric name");
  EXPECT_DEATH(BuildCounter().Name("ok_total").Labels({{"__x", "1"}}).Register(registry),
               "invalid label name");
  auto& counters = BuildCounter().Name("c_total").Labels({{"k", "1"}}).Register(registry);
  EXPECT_DEATH(counters.Add({{"k", "2"}}), "also a constant label");
  EXPECT_DEATH(counters.Add({{"bad label", "2"}}), "invalid label name");
  EXPECT_DEATH(BuildGauge().Name("c_total").Register(registry), "different type");
  EXPECT_DEATH(BuildCounter().Name("c_total").Help("other").Register(registry), "different help");
  auto& histograms = BuildHistogram().Name("h_seconds").Register(registry);
  EXPECT_DEATH(histograms.Add({}), "no default buckets");
  EXPECT_DEATH(histograms.Add({{"le", "1"}}, {1}), "reserved");
  EXPECT_DEATH(BuildHistogram().Name("h2_seconds").Labels({{"le", "1"}}).Register(registry),
               "reserved");
  EXPECT_DEATH(histograms.Add({}, {2, 1}), "strictly increasing");
  histograms.Add({}, {1, 2});
  EXPECT_DEATH(histograms.Add({}, {1, 3}), "different buckets");
}

}  // namespace
}  // namespace tipperary::metrics
