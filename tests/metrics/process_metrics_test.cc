#include "tipperary/metrics/process_metrics.h"

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <sstream>
#include <string>

namespace tipperary::metrics {
namespace {

// Unlabelled samples "name value" from the text format.
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.find(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

TEST(ProcessMetricsTest, PresentWithPlausibleValues) {
  Registry registry;
  RegisterProcessMetrics(registry);
  RegisterProcessMetrics(registry);  // idempotent
  // Burn a little CPU so the counter has something to count.
  volatile double x = 0;
  for (int i = 0; i < 5'000'000; ++i) x = x + i;

  auto samples = ParseSamples(registry.Serialize());
  ASSERT_EQ(samples.size(), 6u);
  EXPECT_GE(samples["process_cpu_seconds_total"], 0);
  EXPECT_GT(samples["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(samples["process_virtual_memory_bytes"], samples["process_resident_memory_bytes"]);
  EXPECT_GE(samples["process_open_fds"], 3);  // stdin, stdout, stderr
  EXPECT_GE(samples["process_max_fds"], samples["process_open_fds"]);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(samples["process_start_time_seconds"], now + 5);
  EXPECT_GT(samples["process_start_time_seconds"], now - 24 * 3600 * 365.0);

  const double cpu_before = samples["process_cpu_seconds_total"];
  samples = ParseSamples(registry.Serialize());
  EXPECT_GE(samples["process_cpu_seconds_total"], cpu_before);  // counters never go down
}

}  // namespace
}  // namespace tipperary::metrics
