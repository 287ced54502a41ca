#include "upstream_metrics.h"

#include <string>

#include "gtest/gtest.h"
#include "tipperary/metrics/registry.h"
#include "upstream_snapshot.h"

namespace tipperary::proxy {
namespace {

upstream::UpstreamCluster::Stats ClusterStats(uint64_t retries_unavailable, bool serving) {
  upstream::UpstreamCluster::Stats s;
  s.ready = 1;
  s.requests_active = 2;
  s.connects_total = 3;
  s.ejections_total = 1;
  s.overflow_pending_total = 4;
  s.keepalive_timeouts_total = 5;
  s.retries_by_reason["unavailable"] = retries_unavailable;
  upstream::EndpointStatus endpoint;
  endpoint.endpoint = "10.0.0.1:50051";
  endpoint.health =
      serving ? upstream::EndpointHealth::kServing : upstream::EndpointHealth::kNotServing;
  endpoint.outstanding = 2;
  s.endpoints.push_back(endpoint);
  return s;
}

TEST(UpstreamSnapshotTest, SumsThreadsAndServesOnlyWhenEveryThreadSaysSo) {
  UpstreamSnapshot all;
  all += ClusterStats(1, true);
  all += ClusterStats(2, true);
  EXPECT_EQ(all.ready, 2u);
  EXPECT_EQ(all.requests_active, 4u);
  EXPECT_EQ(all.connects, 6u);
  EXPECT_EQ(all.overflow_pending, 8u);
  EXPECT_EQ(all.ping_timeouts, 10u);
  EXPECT_EQ(all.retries_by_reason["unavailable"], 3u);
  const UpstreamSnapshot::Endpoint& endpoint = all.endpoints.at("10.0.0.1:50051");
  EXPECT_EQ(endpoint.outstanding, 4u);
  EXPECT_TRUE(endpoint.serving());
  all += ClusterStats(0, false);
  EXPECT_FALSE(all.endpoints.at("10.0.0.1:50051").serving());
}

TEST(UpstreamSnapshotTest, TotalsKeepCountersOnly) {
  UpstreamSnapshot one;
  one += ClusterStats(7, true);
  UpstreamSnapshot totals = one.Totals();
  EXPECT_EQ(totals.ready, 0u);
  EXPECT_EQ(totals.requests_active, 0u);
  EXPECT_TRUE(totals.endpoints.empty());
  EXPECT_EQ(totals.connects, 3u);
  EXPECT_EQ(totals.retries_by_reason["unavailable"], 7u);
}

class UpstreamMetricsTest : public ::testing::Test {
 protected:
  std::string Scrape() { return registry_.Serialize(); }
  metrics::Registry registry_;
  ProxyStats stats_ = ProxyStats::Register(registry_);
  UpstreamMetrics metrics_{&stats_};
};

TEST_F(UpstreamMetricsTest, ExportsCountersThatNeverGoDownAndDropsRemovedEndpoints) {
  UpstreamSnapshot snap;
  snap += ClusterStats(2, true);
  metrics_.Export({{"worker", snap}});
  std::string text = Scrape();
  EXPECT_NE(
      text.find("tipperary_upstream_retries_total{reason=\"unavailable\",upstream=\"worker\"} 2"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("tipperary_upstream_circuit_breaker_overflows_total{limit=\"max_pending_"
                      "requests\",upstream=\"worker\"} 4"),
            std::string::npos)
      << text;
  // Created at 0, so that rate() sees the first increment.
  EXPECT_NE(text.find("tipperary_upstream_retry_budget_exhausted_total{upstream=\"worker\"} 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tipperary_upstream_endpoint_healthy{endpoint=\"10.0.0.1:50051\","
                      "upstream=\"worker\"} 1"),
            std::string::npos)
      << text;

  // A smaller total (a cluster replaced before its totals were kept) never lowers a counter;
  // growth after it is counted from the highest value seen.
  UpstreamSnapshot lower;
  lower.retries_by_reason["unavailable"] = 1;
  metrics_.Export({{"worker", lower}});
  UpstreamSnapshot higher;
  higher.retries_by_reason["unavailable"] = 5;
  metrics_.Export({{"worker", higher}});
  text = Scrape();
  EXPECT_NE(
      text.find("tipperary_upstream_retries_total{reason=\"unavailable\",upstream=\"worker\"} 5"),
      std::string::npos)
      << text;
  // The endpoint is gone from the snapshots (a reload removed it): so are its series.
  EXPECT_EQ(text.find("tipperary_upstream_endpoint_healthy{"), std::string::npos) << text;
  EXPECT_EQ(text.find("tipperary_upstream_endpoint_outstanding_requests{"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace tipperary::proxy
