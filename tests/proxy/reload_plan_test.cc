#include "reload_plan.h"

#include <gtest/gtest.h>

#include "tipperary/config/proxy_config_loader.h"

namespace tipperary::proxy {
namespace {

config::ProxyConfig Load(const std::string& yaml) {
  auto config = config::LoadProxyConfigString(yaml, "proxy.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

constexpr char kBase[] = R"(listeners: [{address: "127.0.0.1:8080"}]
admin: {address: "127.0.0.1:9901"}
descriptors: [{reflection: worker}]
upstreams:
  - {name: worker, endpoints: ["127.0.0.1:50051"], services: ["a.A"]}
  - {name: other, endpoints: ["127.0.0.1:50052"], services: ["b.B"]}
threads: 2
)";

TEST(ReloadPlanTest, SameFileChangesNothing) {
  const config::ProxyConfig running = Load(kBase);
  ReloadPlan plan = PlanReload(running, Load(kBase));
  EXPECT_TRUE(plan.changed.empty());
  EXPECT_TRUE(plan.restart_required.empty());
  EXPECT_EQ(plan.hash.size(), 64u);
  EXPECT_EQ(plan.hash, PlanReload(running, Load(kBase)).hash);
}

TEST(ReloadPlanTest, LiveKeysChangeAndRestartKeysKeepTheirRunningValues) {
  const config::ProxyConfig running = Load(kBase);
  std::string next = kBase;
  next.replace(next.find("threads: 2"), 10, "threads: 8");
  next.replace(next.find("127.0.0.1:8080"), 14, "127.0.0.1:9090");
  next +=
      "limits: {max_request_body_bytes: 1KiB}\nautoscaling: {external_scaler_address: "
      "\"127.0.0.1:1\", capacity: 9}\n";
  ReloadPlan plan = PlanReload(running, Load(next));
  // The decoded-body limit follows the body limit by default: it changes with it.
  EXPECT_EQ(plan.changed, (std::vector<std::string>{"autoscaling.capacity",
                                                    "compression.max_decoded_request_body_bytes",
                                                    "limits.max_request_body_bytes"}));
  EXPECT_EQ(plan.restart_required, (std::vector<std::string>{"autoscaling.external_scaler_address",
                                                             "listeners", "threads"}));
  EXPECT_EQ(plan.config->threads, 2u);
  EXPECT_EQ(plan.config->listeners[0].address, "127.0.0.1:8080");
  EXPECT_EQ(plan.config->autoscaling.external_scaler_address,
            running.autoscaling.external_scaler_address);
  EXPECT_EQ(plan.config->limits.max_request_body_bytes, 1024u);
  EXPECT_EQ(plan.config->autoscaling.capacity, 9u);
}

TEST(ReloadPlanTest, OnlyRestartKeysChangedIsNotAChange) {
  const config::ProxyConfig running = Load(kBase);
  std::string next = kBase;
  next.replace(next.find("threads: 2"), 10, "threads: 3");
  ReloadPlan plan = PlanReload(running, Load(next));
  EXPECT_TRUE(plan.changed.empty());
  EXPECT_EQ(plan.restart_required, (std::vector<std::string>{"threads"}));
}

TEST(ReloadPlanTest, AnotherReflectionSourceNeedsARestart) {
  const config::ProxyConfig running = Load(kBase);
  std::string next = kBase;
  next.replace(next.find("{reflection: worker}"), 20, "{reflection: other}");
  ReloadPlan plan = PlanReload(running, Load(next));
  EXPECT_EQ(plan.restart_required, (std::vector<std::string>{"descriptors (reflection sources)"}));
  EXPECT_EQ(plan.config->descriptors[0].reflection_upstream, "worker");
}

TEST(UpstreamKeysTest, EqualExactlyWhenTheSectionIs) {
  const config::ProxyConfig running = Load(kBase);
  std::string next = kBase;
  next.replace(next.find("127.0.0.1:50052"), 15, "127.0.0.1:50053");
  const std::vector<std::string> before = UpstreamKeys(running);
  const std::vector<std::string> after = UpstreamKeys(Load(next));
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0], after[0]);
  EXPECT_NE(before[1], after[1]);
  EXPECT_NE(before[0], before[1]);
}

TEST(NeedsRestartTest, Keys) {
  EXPECT_TRUE(NeedsRestart("listeners"));
  EXPECT_TRUE(NeedsRestart("threads"));
  EXPECT_FALSE(NeedsRestart("upstreams"));
  EXPECT_FALSE(NeedsRestart("limits.max_header_bytes"));
  EXPECT_FALSE(NeedsRestart("logging.level"));
}

}  // namespace
}  // namespace tipperary::proxy
