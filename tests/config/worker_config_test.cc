#include "tipperary/config/worker_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace tipperary::config {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<WorkerConfig> Load(const std::string& yaml) {
  return LoadWorkerConfigString(yaml, "/etc/tipperary/worker.yaml");
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<WorkerConfig> config = Load(yaml);
  EXPECT_FALSE(config.ok()) << yaml;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(WorkerConfigTest, MinimalConfigGetsDefaults) {
  absl::StatusOr<WorkerConfig> config = Load("models: [{name: m, path: models/m}]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "127.0.0.1:50051");
  EXPECT_EQ(config->admin_address, "127.0.0.1:9902");
  ASSERT_EQ(config->models.size(), 1u);
  const WorkerModelConfig& m = config->models[0];
  EXPECT_EQ(m.name, "m");
  EXPECT_EQ(m.path, "/etc/tipperary/models/m");  // Relative to the file.
  EXPECT_EQ(m.backend, "auto");
  EXPECT_EQ(m.dtype, "auto");
  EXPECT_EQ(m.cuda_variant, "auto");
  EXPECT_EQ(m.max_seq_length, 0u);
  EXPECT_EQ(m.instances, 0u);  // auto: 2 on CUDA, 1 on the CPU
  EXPECT_EQ(m.threads, 0u);
  EXPECT_EQ(m.warmup, "all");
  EXPECT_FALSE(m.cuda_debug_sync);
  EXPECT_FALSE(m.cuda_graphs);
  EXPECT_EQ(m.on_device_fault, "exit");
  EXPECT_TRUE(m.is_default);  // The only model is the default.
  EXPECT_TRUE(m.aliases.empty());
  EXPECT_TRUE(m.huggingface_aliases);
  EXPECT_EQ(config->batching.max_batch_size, 32u);
  EXPECT_EQ(config->batching.max_batch_tokens, 16384u);
  EXPECT_EQ(config->batching.max_queue_delay, std::chrono::milliseconds(2));
  EXPECT_EQ(config->batching.max_queue, 4096u);
  EXPECT_TRUE(config->batching.group_by_length);
  EXPECT_TRUE(config->batching.dispatch_when_idle);
  EXPECT_EQ(config->batching.throughput_window, std::chrono::seconds(10));
  EXPECT_EQ(config->cache.max_bytes, 0u);  // No cache unless asked (docs/caching.md).
  EXPECT_TRUE(config->cache.dedup);
  EXPECT_EQ(config->drain, std::chrono::seconds(15));
  EXPECT_EQ(config->warmup_request_timeout, std::chrono::seconds(10));
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->source_path, "/etc/tipperary/worker.yaml");
}

TEST(WorkerConfigTest, ReadsEveryKey) {
  absl::StatusOr<WorkerConfig> config = Load(R"(
listen: unix:/run/worker.sock
admin: {address: "0.0.0.0:0"}
models:
  - name: a
    path: /models/a
  - name: b.v2
    aliases: [b, acme/B-v2]
    huggingface_aliases: false
    path: /models/b
    backend: cpu
    dtype: bfloat16
    cuda_variant: fused
    max_seq_length: 128
    instances: 2
    threads: 3
    cuda_debug_sync: true
    cuda_graphs: true
    on_device_fault: unready
    default: true
    warmup: minimal
batching: {max_batch_size: 8, max_batch_tokens: 1024, max_queue_delay: 5ms, max_queue: 10,
           group_by_length: false, dispatch_when_idle: false, throughput_window: 30s,
           priority_aging: 250ms, interactive_instances: 1, bulk_cpu_priority: normal}
cache: {max_bytes: 64MiB, dedup: false}
stream_chunk_size: 7
max_inputs: 100
drain: 1s
warmup_request_timeout: 0s
logging: {level: debug}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "unix:/run/worker.sock");
  EXPECT_EQ(config->admin_address, "0.0.0.0:0");
  ASSERT_EQ(config->models.size(), 2u);
  EXPECT_FALSE(config->models[0].is_default);
  EXPECT_EQ(config->default_model().name, "b.v2");
  EXPECT_EQ(config->models[1].backend, "cpu");
  EXPECT_EQ(config->models[1].dtype, "bfloat16");
  EXPECT_EQ(config->models[1].cuda_variant, "fused");
  EXPECT_EQ(config->models[1].max_seq_length, 128u);
  EXPECT_EQ(config->models[1].instances, 2u);
  EXPECT_EQ(config->models[1].threads, 3u);
  EXPECT_EQ(config->models[1].warmup, "minimal");
  EXPECT_EQ(config->models[0].warmup, "all");
  EXPECT_TRUE(config->models[1].cuda_debug_sync);
  EXPECT_TRUE(config->models[1].cuda_graphs);
  EXPECT_EQ(config->models[1].on_device_fault, "unready");
  EXPECT_EQ(config->models[1].aliases, (std::vector<std::string>{"b", "acme/B-v2"}));
  EXPECT_FALSE(config->models[1].huggingface_aliases);
  EXPECT_EQ(config->batching.max_batch_size, 8u);
  EXPECT_EQ(config->batching.max_batch_tokens, 1024u);
  EXPECT_EQ(config->batching.max_queue_delay, std::chrono::milliseconds(5));
  EXPECT_EQ(config->batching.max_queue, 10u);
  EXPECT_FALSE(config->batching.group_by_length);
  EXPECT_FALSE(config->batching.dispatch_when_idle);
  EXPECT_EQ(config->batching.throughput_window, std::chrono::seconds(30));
  EXPECT_EQ(config->batching.priority_aging, std::chrono::milliseconds(250));
  EXPECT_EQ(config->batching.interactive_instances, 1u);
  EXPECT_EQ(config->batching.bulk_cpu_priority, "normal");
  EXPECT_EQ(config->cache.max_bytes, uint64_t{64} << 20);
  EXPECT_FALSE(config->cache.dedup);
  EXPECT_EQ(config->stream_chunk_size, 7u);
  EXPECT_EQ(config->max_inputs, 100u);
  EXPECT_EQ(config->drain, std::chrono::seconds(1));
  EXPECT_EQ(config->warmup_request_timeout, std::chrono::seconds(0));
  EXPECT_EQ(config->log_level, "debug");

  // The dump loads back to the same values.
  absl::StatusOr<WorkerConfig> again = LoadWorkerConfigString(DumpWorkerConfig(*config), "x.yaml");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << DumpWorkerConfig(*config);
  EXPECT_EQ(DumpWorkerConfig(*again), DumpWorkerConfig(*config)
                                          .substr(DumpWorkerConfig(*config).find('\n') + 1)
                                          .insert(0, "# Effective config of x.yaml\n"));
}

TEST(WorkerConfigTest, ErrorsNamePositionAndPath) {
  EXPECT_THAT(ErrorOf("listen: 127.0.0.1:1\n"), HasSubstr("missing required key \"models\""));
  EXPECT_THAT(ErrorOf("models: []\n"), HasSubstr("at least one model"));
  EXPECT_THAT(ErrorOf("models: [{name: m}]\n"), HasSubstr("\"path\""));
  EXPECT_THAT(ErrorOf("models:\n  - name: m\n    path: p\n    backend: tpu\n"),
              HasSubstr("worker.yaml:4:14: models[0].backend"));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, dtype: int4}\n"),
              HasSubstr("models[0].dtype"));
  // int8 is a dtype (the CPU's int8 GEMMs); whether this CPU runs it is the encoder's check.
  absl::StatusOr<WorkerConfig> int8 = Load("models:\n  - {name: m, path: p, dtype: int8}\n");
  ASSERT_TRUE(int8.ok()) << int8.status();
  EXPECT_EQ(int8->models[0].dtype, "int8");
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, cuda_variant: turbo}\n"),
              HasSubstr("models[0].cuda_variant"));
  EXPECT_THAT(ErrorOf("models:\n  - {name: 'a b', path: p}\n"), HasSubstr("bad model name"));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p}\n  - {name: m, path: q}\n"),
              HasSubstr("duplicate model name \"m\""));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, default: true}\n"
                      "  - {name: n, path: q, default: true}\n"),
              HasSubstr("more than one model has default: true"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p, instances: 65}]\n"),
              HasSubstr("models[0].instances"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p, warmup: some}]\n"),
              HasSubstr("models[0].warmup"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p, on_device_fault: retry}]\n"),
              HasSubstr("models[0].on_device_fault"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nbatching: {max_queue_delay: 2 parsecs}\n"),
              HasSubstr("bad duration"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nbatching: {max_batch_size: 0}\n"),
              HasSubstr("batching.max_batch_size"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nbatching: {throughput_window: 1ms}\n"),
              HasSubstr("batching.throughput_window"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nbatching: {bulk_cpu_priority: low}\n"),
              HasSubstr("batching.bulk_cpu_priority"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nlisten: nowhere\n"), HasSubstr("listen"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nadmin: {address: 'unix:/x'}\n"),
              HasSubstr("needs host:port"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\nlogging: {level: loud}\n"),
              HasSubstr("logging.level"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ndrian: 1s\n"),
              HasSubstr("did you mean \"drain\""));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p, max_seq_length: 1}]\n"),
              HasSubstr("max_seq_length"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ncache: {max_bytes: lots}\n"),
              HasSubstr("worker.yaml:2:20: cache.max_bytes"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ncache: {max_bytes: 2TiB}\n"),
              HasSubstr("cache.max_bytes"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ncache: {dedup: maybe}\n"),
              HasSubstr("cache.dedup"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ncache: {max_entries: 5}\n"),
              HasSubstr("unknown key \"max_entries\" in cache (known: max_bytes, dedup)"));
  EXPECT_THAT(ErrorOf("models: [{name: m, path: p}]\ncahce: {max_bytes: 1MiB}\n"),
              HasSubstr("did you mean \"cache\""));
}

TEST(WorkerConfigTest, AliasesMustBeWellFormedAndUnambiguous) {
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: ['a b']}\n"),
              HasSubstr("worker.yaml:2:34: models[0].aliases[0]: bad alias \"a b\""));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: ['a/b/c']}\n"),
              HasSubstr("bad alias \"a/b/c\""));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: ['']}\n"),
              HasSubstr("models[0].aliases[0]"));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: x}\n"),
              HasSubstr("models[0].aliases"));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, huggingface_aliases: maybe}\n"),
              HasSubstr("models[0].huggingface_aliases"));
  // Names and aliases match case-insensitively, so none may fold onto another model's.
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p}\n  - {name: n, path: q, aliases: [M]}\n"),
              HasSubstr("worker.yaml:3:5: models[1]: alias \"M\" of model \"n\" is also a name or "
                        "alias of model \"m\""));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: [x]}\n"
                      "  - {name: n, path: q, aliases: [X]}\n"),
              HasSubstr("is also a name or alias of model \"m\""));
  EXPECT_THAT(ErrorOf("models:\n  - {name: m, path: p, aliases: [x, x]}\n"),
              HasSubstr("repeats its name or another of its aliases"));
}

TEST(WorkerConfigTest, ModelPathOverride) {
  absl::StatusOr<WorkerConfig> config =
      Load("models: [{name: a, path: /a}, {name: b, path: /b, default: true}]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(OverrideModelPath(*config, "a=/x").ok());
  EXPECT_EQ(config->models[0].path, "/x");
  ASSERT_TRUE(OverrideModelPath(*config, "/y").ok());  // The default model.
  EXPECT_EQ(config->models[1].path, "/y");
  absl::Status unknown = OverrideModelPath(*config, "c=/z");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("unknown model \"c\" (models: a, b)"));
  EXPECT_FALSE(OverrideModelPath(*config, "a=").ok());
}

TEST(WorkerConfigTest, MissingFileIsNotFound) {
  absl::StatusOr<WorkerConfig> config = LoadWorkerConfigFile("/nonexistent/worker.yaml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkerConfigTest, DocumentedExampleLoads) {
  absl::StatusOr<WorkerConfig> config =
      LoadWorkerConfigFile(std::string(TIPPERARY_SOURCE_DIR) + "/config/worker.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  // The example spells out every default.
  WorkerConfig defaults;
  EXPECT_EQ(config->listen, defaults.listen);
  EXPECT_EQ(config->admin_address, defaults.admin_address);
  EXPECT_EQ(config->batching.max_batch_size, defaults.batching.max_batch_size);
  EXPECT_EQ(config->batching.max_queue_delay, defaults.batching.max_queue_delay);
  EXPECT_EQ(config->batching.dispatch_when_idle, defaults.batching.dispatch_when_idle);
  EXPECT_EQ(config->batching.throughput_window, defaults.batching.throughput_window);
  EXPECT_EQ(config->batching.priority_aging, defaults.batching.priority_aging);
  EXPECT_EQ(config->batching.interactive_instances, defaults.batching.interactive_instances);
  EXPECT_EQ(config->batching.bulk_cpu_priority, "idle");
  EXPECT_EQ(config->drain, defaults.drain);
  EXPECT_EQ(config->warmup_request_timeout, defaults.warmup_request_timeout);
  EXPECT_EQ(config->stream_chunk_size, defaults.stream_chunk_size);
  EXPECT_EQ(config->max_inputs, defaults.max_inputs);
  EXPECT_EQ(config->cache.max_bytes, defaults.cache.max_bytes);
  EXPECT_EQ(config->cache.dedup, defaults.cache.dedup);
  ASSERT_EQ(config->models.size(), 1u);
  EXPECT_EQ(config->models[0].name, "all-minilm-l6-v2");
  EXPECT_TRUE(config->models[0].is_default);
  EXPECT_EQ(config->models[0].warmup, WorkerModelConfig().warmup);
}

}  // namespace
}  // namespace tipperary::config
