// PlanReload: what a worker config reload would change, decided from the two configs alone.
#include "reload_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tipperary/config/reload_report.h"
#include "tipperary/config/worker_config.h"

namespace tipperary::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

config::WorkerConfig Config(const std::string& yaml) {
  absl::StatusOr<config::WorkerConfig> config =
      config::LoadWorkerConfigString(yaml, "/etc/tipperary/worker.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : config::WorkerConfig{};
}

constexpr char kBase[] = R"(
listen: 127.0.0.1:50051
admin: {address: 127.0.0.1:9902}
models:
  - {name: a, path: /models/a}
  - {name: b, path: /models/b, aliases: [bee]}
)";

TEST(ReloadPlanTest, TheSameFileChangesNothing) {
  ReloadPlan plan = PlanReload(Config(kBase), Config(kBase));
  EXPECT_THAT(plan.changed, IsEmpty());
  EXPECT_THAT(plan.restart_required, IsEmpty());
  EXPECT_THAT(plan.added, IsEmpty());
  EXPECT_THAT(plan.removed, IsEmpty());
  EXPECT_THAT(plan.replaced, IsEmpty());
  EXPECT_FALSE(plan.batching_changed);
}

TEST(ReloadPlanTest, LiveKeysAreChangedRestartOnlyKeysKeepTheirRunningValues) {
  ReloadPlan plan = PlanReload(Config(kBase), Config(R"(
listen: 0.0.0.0:6000
admin: {address: 0.0.0.0:9000}
models:
  - {name: a, path: /models/a}
  - {name: b, path: /models/b, aliases: [bee]}
batching: {max_batch_size: 8, max_queue_delay: 1ms}
max_inputs: 10
drain: 3s
warmup_request_timeout: 0s
logging: {level: debug}
)"));
  EXPECT_THAT(plan.changed, ElementsAre("batching.max_batch_size", "batching.max_queue_delay",
                                        "drain", "logging.level", "max_inputs"));
  EXPECT_THAT(plan.restart_required,
              ElementsAre("listen", "admin.address", "warmup_request_timeout"));
  EXPECT_EQ(plan.effective.listen, "127.0.0.1:50051");
  EXPECT_EQ(plan.effective.admin_address, "127.0.0.1:9902");
  EXPECT_EQ(plan.effective.warmup_request_timeout, std::chrono::seconds(10));
  EXPECT_EQ(plan.effective.batching.max_batch_size, 8u);
  EXPECT_TRUE(plan.batching_changed);
  EXPECT_THAT(plan.added, IsEmpty());
  EXPECT_THAT(plan.replaced, IsEmpty());
}

TEST(ReloadPlanTest, CacheKeysApplyLiveWithoutReloadingModels) {
  ReloadPlan plan =
      PlanReload(Config(kBase), Config(std::string(kBase) + "cache: {max_bytes: 64MiB}\n"));
  EXPECT_THAT(plan.changed, ElementsAre("cache.max_bytes"));
  EXPECT_TRUE(plan.cache_size_changed);
  EXPECT_FALSE(plan.dedup_changed);
  EXPECT_FALSE(plan.batching_changed);
  EXPECT_THAT(plan.replaced, IsEmpty());
  EXPECT_EQ(plan.effective.cache.max_bytes, uint64_t{64} << 20);
  plan = PlanReload(Config(kBase), Config(std::string(kBase) + "cache: {dedup: false}\n"));
  EXPECT_THAT(plan.changed, ElementsAre("cache.dedup"));
  EXPECT_FALSE(plan.cache_size_changed);
  EXPECT_TRUE(plan.dedup_changed);
  EXPECT_THAT(plan.replaced, IsEmpty());
  // The default written out changes nothing.
  plan = PlanReload(Config(kBase),
                    Config(std::string(kBase) + "cache: {max_bytes: 0, dedup: true}\n"));
  EXPECT_THAT(plan.changed, IsEmpty());
}

TEST(ReloadPlanTest, LaneInstanceKeysReplaceEveryModel) {
  // Which CPU instances compute at idle priority is fixed when their threads start.
  for (const char* batching :
       {"batching: {interactive_instances: 1}\n", "batching: {bulk_cpu_priority: normal}\n"}) {
    ReloadPlan plan = PlanReload(Config(kBase), Config(std::string(kBase) + batching));
    EXPECT_TRUE(plan.batching_changed) << batching;
    EXPECT_THAT(plan.replaced, ElementsAre("a", "b")) << batching;
  }
  // Other batching keys apply live.
  ReloadPlan plan =
      PlanReload(Config(kBase), Config(std::string(kBase) + "batching: {priority_aging: 2s}\n"));
  EXPECT_THAT(plan.replaced, IsEmpty());
}

TEST(ReloadPlanTest, OnlyRestartOnlyKeysChanged) {
  ReloadPlan plan = PlanReload(Config(kBase), Config(R"(
listen: 127.0.0.1:7000
admin: {address: 127.0.0.1:9902}
models:
  - {name: a, path: /models/a}
  - {name: b, path: /models/b, aliases: [bee]}
)"));
  EXPECT_THAT(plan.changed, IsEmpty());
  EXPECT_THAT(plan.restart_required, ElementsAre("listen"));
  // The effective config hashes as the running one: nothing to apply.
  EXPECT_EQ(config::ConfigHash(config::DumpWorkerConfig(plan.effective)),
            config::ConfigHash(config::DumpWorkerConfig(Config(kBase))));
}

TEST(ReloadPlanTest, ModelsAreAddedRemovedOrReplaced) {
  ReloadPlan plan = PlanReload(Config(kBase), Config(R"(
listen: 127.0.0.1:50051
admin: {address: 127.0.0.1:9902}
models:
  - {name: b, path: /models/b2, aliases: [bee]}
  - {name: c, path: /models/c}
)"));
  EXPECT_THAT(plan.changed, ElementsAre("models"));
  EXPECT_THAT(plan.added, ElementsAre("c"));
  EXPECT_THAT(plan.removed, ElementsAre("a"));
  EXPECT_THAT(plan.replaced, ElementsAre("b"));
}

TEST(ReloadPlanTest, EveryModelKeyButDefaultReplacesTheModel) {
  const config::WorkerConfig running = Config(kBase);
  for (const char* entry :
       {"{name: a, path: /models/a, backend: cpu}", "{name: a, path: /models/a, dtype: float32}",
        "{name: a, path: /models/a, cuda_variant: fused}",
        "{name: a, path: /models/a, instances: 2}", "{name: a, path: /models/a, threads: 3}",
        "{name: a, path: /models/a, max_seq_length: 128}", "{name: a, path: /models/a2}",
        "{name: a, path: /models/a, aliases: [ay]}",
        "{name: a, path: /models/a, huggingface_aliases: false}",
        "{name: a, path: /models/a, warmup: minimal}"}) {
    ReloadPlan plan = PlanReload(
        running, Config(std::string("listen: 127.0.0.1:50051\nadmin: {address: 127.0.0.1:9902}\n"
                                    "models:\n  - ") +
                        entry + "\n  - {name: b, path: /models/b, aliases: [bee]}\n"));
    EXPECT_THAT(plan.replaced, ElementsAre("a")) << entry;
  }
  // The default moves: the name table changes, no model is loaded anew.
  ReloadPlan plan = PlanReload(running, Config(R"(
listen: 127.0.0.1:50051
admin: {address: 127.0.0.1:9902}
models:
  - {name: a, path: /models/a}
  - {name: b, path: /models/b, aliases: [bee], default: true}
)"));
  EXPECT_THAT(plan.changed, ElementsAre("models"));
  EXPECT_THAT(plan.replaced, IsEmpty());
  EXPECT_EQ(plan.effective.default_model().name, "b");
}

}  // namespace
}  // namespace tipperary::worker
