// `promtool check metrics` (parser + lint) accepts what the registry writes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/process_metrics.h"
#include "tipperary/metrics/registry.h"
#include "tipperary/metrics/stats_table.h"

namespace tipperary::metrics {
namespace {

constexpr const char* kPromtool = "/usr/bin/promtool";

#define PROMTOOL_TEST_METRICS(COUNTER, GAUGE, HISTOGRAM)                              \
  COUNTER(requests, "tipperary_test_requests_total", "Requests handled.")             \
  GAUGE(open_connections, "tipperary_test_open_connections", "Open connections.")     \
  HISTOGRAM(duration, "tipperary_test_request_duration_seconds", "Request duration.", \
            DefaultLatencyBuckets())

TIPPERARY_DECLARE_METRICS_STRUCT(PromtoolTestMetrics, PROMTOOL_TEST_METRICS);

struct PromtoolResult {
  int status = -1;
  std::string output;
};

// Feeds text to promtool's stdin; its output goes to a temporary file we read back.
PromtoolResult RunPromtool(const std::string& text) {
  char path[] = "/tmp/tipperary_promtool_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return {};
  close(fd);
  const std::string command = std::string(kPromtool) + " check metrics > " + path + " 2>&1";
  PromtoolResult result;
  FILE* pipe = popen(command.c_str(), "w");
  if (pipe == nullptr) return {};
  std::fwrite(text.data(), 1, text.size(), pipe);
  result.status = pclose(pipe);
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  result.output = buffer.str();
  unlink(path);
  return result;
}

TEST(PromtoolTest, AcceptsEveryKindOfMetric) {
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  Registry registry;
  RegisterProcessMetrics(registry);
  PromtoolTestMetrics m = PromtoolTestMetrics::Register(registry, {{"instance_name", "a"}});
  m.requests->Add({{"code", "200"}, {"method", "GET"}}).Increment(5);
  m.requests->Add({{"code", "503"}, {"method", "POST"}}).Increment();
  m.open_connections->Add({}).Set(2);
  m.duration->Add({{"route", "/v1/items/{id}"}}).Observe(0.012);
  m.duration->Add({{"route", "with \"quotes\" \\ and\nnewline"}}).Observe(31);
  BuildCounter()
      .Name("tipperary_test_escapes_total")
      .Help("Help with a backslash \\ and a\nnewline.")
      .Register(registry)
      .Add({{"value", "ünïcödé"}})
      .Increment();
  BuildGauge()
      .Name("tipperary_test_temperature_celsius")
      .Help("Odd values.")
      .Register(registry)
      .Add({{"kind", "inf"}})
      .Set(std::numeric_limits<double>::infinity());
  BuildHistogram()
      .Name("tipperary_test_payload_bytes")
      .Help("Without children.")
      .Register(registry);
  BuildHistogram()
      .Name("tipperary_test_tiny_seconds")
      .Help("Exponential buckets.")
      .Register(registry)
      .Add({}, ExponentialBuckets(1e-06, 10, 6))
      .Observe(1e-05);

  const std::string text = registry.Serialize();
  const PromtoolResult result = RunPromtool(text);
  EXPECT_EQ(result.status, 0) << "promtool output:\n" << result.output << "\ninput:\n" << text;
  EXPECT_EQ(result.output, "") << text;
}

TEST(PromtoolTest, RejectsBrokenText) {
  // Guards the harness: a non-zero exit must be seen as failure.
  if (access(kPromtool, X_OK) != 0) GTEST_SKIP() << kPromtool << " not installed";
  const PromtoolResult result = RunPromtool("# TYPE x counter\nx{ 1\n");
  EXPECT_NE(result.status, 0) << result.output;
}

}  // namespace
}  // namespace tipperary::metrics
