// tipperary-worker's configuration: the structs, their defaults, and the strict YAML loader.
//
// config/worker.yaml documents every key with its default; docs/configuration.md (section
// "tipperary-worker") is the reference. Loading is as strict as the proxy's: an unknown key, a
// value of the wrong type or out of range is an InvalidArgument error naming file:line:col and
// the key's path. Relative model paths resolve against the config file's directory.
//
//   absl::StatusOr<WorkerConfig> config = LoadWorkerConfigFile("worker.yaml");
//   if (!config.ok()) { std::cerr << config.status().message() << "\n"; return 1; }
//   // --model-path all-minilm-l6-v2=/models/minilm
//   if (absl::Status s = OverrideModelPath(*config, "all-minilm-l6-v2=/models/minilm"); !s.ok())
//   ... std::cout << DumpWorkerConfig(*config);  // Every key, defaults filled in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/config/proxy_config.h"

namespace tipperary::config {

struct WorkerModelConfig {
  std::string name;  // The model id clients send; [a-zA-Z0-9._-]+.
  // Other names clients may send ([a-zA-Z0-9._-]+, or ORG/NAME as on Hugging Face); like every
  // name, matched case-insensitively when no name matches exactly.
  std::vector<std::string> aliases;
  // Also answer to the model's Hugging Face id, found in its files (model_card.h), and that id's
  // short name: "sentence-transformers/all-MiniLM-L6-v2" and "all-MiniLM-L6-v2".
  bool huggingface_aliases = true;
  std::string path;              // Model directory (config.json, model.safetensors, vocab.txt).
  std::string backend = "auto";  // auto (CUDA when a GPU is usable, else CPU), cuda, cpu.
  std::string dtype = "auto";    // auto, float32, float16, bfloat16, int8 (CPU GEMMs).
  uint32_t max_seq_length = 0;   // Tokens per text incl. [CLS]/[SEP]; 0 = the model's own.
  // Encoders (and batch executor threads) for this model; 0 = auto: 2 on CUDA (one instance's
  // host work overlaps the other's GPU work), 1 on the CPU.
  uint32_t instances = 0;
  uint32_t threads = 0;  // CPU backend: threads per encoder; 0 = cores / instances.
  // CUDA backend: synchronise and check after every stage of the forward pass, so a kernel
  // fault names its stage and layer (slow; also env TIPPERARY_CUDA_DEBUG=1).
  bool cuda_debug_sync = false;
  // CUDA backend: capture each batch shape's forward pass as a CUDA Graph and replay it.
  bool cuda_graphs = false;
  // When an encoder becomes unusable (a sticky CUDA error: the GPU context is lost for the whole
  // process): "exit" (the worker exits with status 70 so that it is restarted with a fresh
  // context) or "unready" (it stays up, /readyz fails, for someone to inspect it).
  std::string on_device_fault = "exit";
  // CUDA backend: "reference" (padded batches, cuBLAS attention), "fused" (packed sequences,
  // flash-style attention, fused LayerNorm/GELU kernels; docs/gpu.md "Kernels") or "auto" (fused
  // where the model's shape allows it, else reference).
  std::string cuda_variant = "auto";
  bool is_default = false;  // Key "default": serves requests that name no model.
  // Before the model reports ready: "all" runs every batch shape bucket the batcher can form
  // (src/worker/warmup_plan.h), "minimal" one tiny batch, "none" nothing.
  std::string warmup = "all";
  // Where `path` was given: "worker.yaml:9:11: models[0].path", or "--model-path" (not a key).
  std::string path_location;
};

struct WorkerBatchingConfig {
  uint32_t max_batch_size = 32;       // Texts per batch.
  uint32_t max_batch_tokens = 16384;  // Padded tokens per batch (batch x longest text).
  Duration max_queue_delay = std::chrono::milliseconds(2);  // Wait for a fuller batch.
  uint32_t max_queue = 4096;    // Queued texts per model; beyond: RESOURCE_EXHAUSTED.
  bool group_by_length = true;  // Batch texts of similar length together.
  // No batch executing: a partial batch goes at once (max_queue_delay applies only while some
  // instance is busy).
  bool dispatch_when_idle = true;
  // Busy time (encoder compute time) of the recent batches that the sustained tokens/s behind
  // backlog_seconds is measured over (src/worker/throughput_estimator.h).
  Duration throughput_window = std::chrono::seconds(10);
  // Priority lanes: a bulk text queued this long is batched as interactive (no starvation).
  Duration priority_aging = std::chrono::seconds(1);
  // Instances per model kept for interactive batches (capped at instances - 1); 0 = none.
  uint32_t interactive_instances = 0;
  // With interactive_instances > 0 on the CPU backend, the other instances (those that may
  // run bulk batches) compute at this OS priority: "idle" (SCHED_IDLE: whatever else wants a
  // core, the kept instances and the I/O threads included, preempts them at once) or "normal".
  std::string bulk_cpu_priority = "idle";
};

// The embedding cache and in-flight deduplication (docs/caching.md).
struct WorkerCacheConfig {
  // Bound on the cache's memory, all models together (ids, vectors and bookkeeping); 0 = no
  // cache. Off by default: docs/caching.md says why and how to size it.
  uint64_t max_bytes = 0;
  // A text identical (same token ids) to one already queued or executing for the same model
  // joins it instead of being computed again.
  bool dedup = true;
};

struct WorkerConfig {
  std::string listen = "127.0.0.1:50051";  // gRPC: host:port (0 = any free port) or unix:/path.
  std::string admin_address = "127.0.0.1:9902";  // Key admin.address: /healthz /readyz /metrics.
  std::vector<WorkerModelConfig> models;         // At least one; exactly one default after loading.
  WorkerBatchingConfig batching;
  WorkerCacheConfig cache;
  uint32_t stream_chunk_size = 64;  // EmbedStream texts per message when the request says 0.
  uint32_t max_inputs = 16384;      // Texts per request; beyond: INVALID_ARGUMENT.
  Duration drain = std::chrono::seconds(15);  // On SIGTERM: time queued work gets to finish.
  // At start, after the models with warmup "all" are warmed and before ready: one Embed per such
  // model through the worker's own gRPC port, within this time; 0 = none. Read at start only.
  Duration warmup_request_timeout = std::chrono::seconds(10);
  std::string log_level = "info";  // Key logging.level: debug, info, warn, error.
  std::string source_path;         // The file this was loaded from (not a key).

  // The model marked default (the loader guarantees exactly one).
  const WorkerModelConfig& default_model() const;
};

// Reads and validates `path`. A file that cannot be read is NotFound/PermissionDenied;
// everything else is InvalidArgument.
absl::StatusOr<WorkerConfig> LoadWorkerConfigFile(const std::string& path);

// As LoadWorkerConfigFile, from text; relative paths resolve against source_name's directory.
absl::StatusOr<WorkerConfig> LoadWorkerConfigString(const std::string& yaml,
                                                    const std::string& source_name);

// Applies a --model-path override "NAME=DIR" (NAME must be a configured model). A bare "DIR"
// overrides the default model.
absl::Status OverrideModelPath(WorkerConfig& config, const std::string& spec);

// The effective configuration as YAML, every key present; loads back to an equal config.
std::string DumpWorkerConfig(const WorkerConfig& config);

}  // namespace tipperary::config
