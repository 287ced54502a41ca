// DumpWorkerConfig: the effective configuration, for `tipperary-worker --check-config`.
#include <string>

#include "tipperary/config/units.h"
#include "tipperary/config/worker_config.h"
#include "yaml-cpp/yaml.h"
#include "yaml_emit.h"

namespace tipperary::config {
using internal::Emit;
using internal::EmitKey;
using internal::EmitString;
using internal::EmitStringList;

std::string DumpWorkerConfig(const WorkerConfig& config) {
  YAML::Emitter out;
  internal::UseLowerCaseBools(out);
  if (!config.source_path.empty()) {
    out << YAML::Comment("Effective config of " + config.source_path);
  }
  out << YAML::BeginMap;
  EmitString(out, "listen", config.listen);
  EmitKey(out, "admin");
  out << YAML::BeginMap;
  EmitString(out, "address", config.admin_address);
  out << YAML::EndMap;
  EmitKey(out, "models");
  out << YAML::BeginSeq;
  for (const WorkerModelConfig& model : config.models) {
    out << YAML::BeginMap;
    EmitString(out, "name", model.name);
    EmitStringList(out, "aliases", model.aliases);
    Emit(out, "huggingface_aliases", model.huggingface_aliases);
    EmitString(out, "path", model.path);
    Emit(out, "backend", model.backend);
    Emit(out, "dtype", model.dtype);
    Emit(out, "cuda_variant", model.cuda_variant);
    Emit(out, "max_seq_length", model.max_seq_length);
    Emit(out, "instances", model.instances);
    Emit(out, "threads", model.threads);
    Emit(out, "cuda_debug_sync", model.cuda_debug_sync);
    Emit(out, "cuda_graphs", model.cuda_graphs);
    Emit(out, "on_device_fault", model.on_device_fault);
    Emit(out, "default", model.is_default);
    Emit(out, "warmup", model.warmup);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  EmitKey(out, "batching");
  out << YAML::BeginMap;
  Emit(out, "max_batch_size", config.batching.max_batch_size);
  Emit(out, "max_batch_tokens", config.batching.max_batch_tokens);
  Emit(out, "max_queue_delay", FormatDuration(config.batching.max_queue_delay));
  Emit(out, "max_queue", config.batching.max_queue);
  Emit(out, "group_by_length", config.batching.group_by_length);
  Emit(out, "dispatch_when_idle", config.batching.dispatch_when_idle);
  Emit(out, "throughput_window", FormatDuration(config.batching.throughput_window));
  Emit(out, "priority_aging", FormatDuration(config.batching.priority_aging));
  Emit(out, "interactive_instances", config.batching.interactive_instances);
  Emit(out, "bulk_cpu_priority", config.batching.bulk_cpu_priority);
  out << YAML::EndMap;
  EmitKey(out, "cache");
  out << YAML::BeginMap;
  Emit(out, "max_bytes", FormatSize(config.cache.max_bytes));
  Emit(out, "dedup", config.cache.dedup);
  out << YAML::EndMap;
  Emit(out, "stream_chunk_size", config.stream_chunk_size);
  Emit(out, "max_inputs", config.max_inputs);
  Emit(out, "drain", FormatDuration(config.drain));
  Emit(out, "warmup_request_timeout", FormatDuration(config.warmup_request_timeout));
  EmitKey(out, "logging");
  out << YAML::BeginMap;
  Emit(out, "level", config.log_level);
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tipperary::config
