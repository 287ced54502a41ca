#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "status_macros.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/config/units.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/config/yaml_reader.h"

namespace tipperary::config {
namespace {

namespace fs = std::filesystem;

absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }
std::string Quoted(std::string_view text) { return absl::StrCat("\"", AbslView(text), "\""); }

bool IsModelName(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A name, or ORG/NAME as Hugging Face ids are.
bool IsAlias(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return IsModelName(text);
  return IsModelName(text.substr(0, slash)) && IsModelName(text.substr(slash + 1));
}

class Loader {
 public:
  explicit Loader(std::string source)
      : source_(std::move(source)), base_dir_(fs::path(source_).parent_path()) {}

  absl::Status Load(const YamlValue& root, WorkerConfig* config);

 private:
  absl::Status LoadListen(const YamlMap& root, WorkerConfig* config);
  absl::Status LoadAdmin(const YamlMap& root, WorkerConfig* config);
  absl::Status LoadModels(const YamlMap& root, WorkerConfig* config);
  absl::Status LoadModel(const YamlValue& item, WorkerModelConfig* out);
  absl::Status LoadBatching(const YamlMap& root, WorkerBatchingConfig* out);
  absl::Status LoadCache(const YamlMap& root, WorkerCacheConfig* out);
  absl::Status LoadLogging(const YamlMap& root, WorkerConfig* config);

  std::string Resolve(const std::string& path) const {
    fs::path p(path);
    if (p.is_absolute() || base_dir_.empty()) return path;
    return (base_dir_ / p).lexically_normal().string();
  }

  std::string source_;
  fs::path base_dir_;
};

absl::Status Loader::Load(const YamlValue& root, WorkerConfig* config) {
  if (!root.node().IsMap()) {
    return root.Error(
        absl::StrCat("the top level must be a map of keys (listen, models, ...), got ",
                     YamlKindName(root.node())));
  }
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      root.AsMap({"listen", "admin", "models", "batching", "cache", "stream_chunk_size",
                  "max_inputs", "drain", "warmup_request_timeout", "logging"}));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"models"}));
  TIPPERARY_RETURN_IF_ERROR(LoadListen(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadAdmin(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadModels(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadBatching(map, &config->batching));
  TIPPERARY_RETURN_IF_ERROR(LoadCache(map, &config->cache));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("stream_chunk_size", &config->stream_chunk_size, 1, 1 << 16));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("max_inputs", &config->max_inputs, 1, 1 << 24));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("drain", &config->drain));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("warmup_request_timeout", &config->warmup_request_timeout));
  TIPPERARY_RETURN_IF_ERROR(LoadLogging(map, config));
  config->source_path = source_;
  return absl::OkStatus();
}

absl::Status Loader::LoadListen(const YamlMap& root, WorkerConfig* config) {
  std::optional<YamlValue> value = root.Find("listen");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(config->listen, value->AsNonEmptyString());
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(config->listen, true);
  if (!endpoint.ok()) return value->Error(std::string(endpoint.status().message()));
  return absl::OkStatus();
}

absl::Status Loader::LoadAdmin(const YamlMap& root, WorkerConfig* config) {
  std::optional<YamlValue> value = root.Find("admin");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, value->AsMap({"address"}));
  std::optional<YamlValue> address = map.Find("address");
  if (!address) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(config->admin_address, address->AsNonEmptyString());
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(config->admin_address, true);
  if (!endpoint.ok()) return address->Error(std::string(endpoint.status().message()));
  if (endpoint->kind != common::Endpoint::Kind::kTcp) {
    return address->Error(
        absl::StrCat("the admin listener needs host:port, got ", Quoted(config->admin_address)));
  }
  common::Endpoint listen = *common::ParseEndpoint(config->listen, true);
  if (endpoint->port != 0 && listen.ToString() == endpoint->ToString()) {
    return address->Error(absl::StrCat("admin address ", Quoted(config->admin_address),
                                       " is also the gRPC listen address"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadModels(const YamlMap& root, WorkerConfig* config) {
  YamlValue value = *root.Find("models");
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, value.AsList());
  if (items.empty()) return value.Error("at least one model is required");
  std::map<std::string, std::string> names;  // Name -> path of its first use.
  std::string default_path;                  // Path of the item marked default.
  for (const YamlValue& item : items) {
    WorkerModelConfig model;
    TIPPERARY_RETURN_IF_ERROR(LoadModel(item, &model));
    auto [it, inserted] = names.emplace(model.name, item.path());
    if (!inserted) {
      return item.Error(
          absl::StrCat("duplicate model name ", Quoted(model.name), " (also in ", it->second, ")"));
    }
    if (model.is_default) {
      if (!default_path.empty()) {
        return item.Error(
            absl::StrCat("more than one model has default: true (also ", default_path, ")"));
      }
      default_path = item.path();
    }
    config->models.push_back(std::move(model));
  }
  if (default_path.empty()) config->models.front().is_default = true;
  // Names match case-insensitively when nothing matches exactly: an alias that folds to another
  // model's name or alias would make a request's model ambiguous.
  std::map<std::string, size_t> owner;  // Folded name or alias -> model index.
  for (size_t i = 0; i < config->models.size(); ++i) {
    owner.emplace(absl::AsciiStrToLower(config->models[i].name), i);
  }
  for (size_t i = 0; i < config->models.size(); ++i) {
    for (const std::string& alias : config->models[i].aliases) {
      auto [it, inserted] = owner.emplace(absl::AsciiStrToLower(alias), i);
      if (!inserted) {
        return items[i].Error(
            absl::StrCat("alias ", Quoted(alias), " of model ", Quoted(config->models[i].name),
                         it->second == i ? " repeats its name or another of its aliases"
                                         : absl::StrCat(" is also a name or alias of model ",
                                                        Quoted(config->models[it->second].name)),
                         " (names and aliases match case-insensitively)"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadModel(const YamlValue& item, WorkerModelConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      item.AsMap({"name", "aliases", "huggingface_aliases", "path", "backend", "dtype",
                  "cuda_variant", "max_seq_length", "instances", "threads", "cuda_debug_sync",
                  "cuda_graphs", "on_device_fault", "default", "warmup"}));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"name", "path"}));
  YamlValue name = *map.Find("name");
  TIPPERARY_ASSIGN_OR_RETURN(out->name, name.AsNonEmptyString());
  if (!IsModelName(out->name)) {
    return name.Error(absl::StrCat("bad model name ", Quoted(out->name),
                                   " (use letters, digits, '.', '_' and '-')"));
  }
  if (std::optional<YamlValue> aliases = map.Find("aliases")) {
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> list, aliases->AsList());
    for (const YamlValue& alias : list) {
      TIPPERARY_ASSIGN_OR_RETURN(std::string text, alias.AsNonEmptyString());
      if (!IsAlias(text)) {
        return alias.Error(absl::StrCat("bad alias ", Quoted(text),
                                        " (use letters, digits, '.', '_' and '-', or ORG/NAME)"));
      }
      out->aliases.push_back(std::move(text));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("huggingface_aliases", &out->huggingface_aliases));
  YamlValue path_value = *map.Find("path");
  TIPPERARY_ASSIGN_OR_RETURN(std::string path, path_value.AsNonEmptyString());
  out->path = Resolve(path);
  out->path_location = path_value.Location();
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("backend", &out->backend, {"auto", "cuda", "cpu"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("dtype", &out->dtype, {"auto", "float32", "float16", "bfloat16", "int8"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("cuda_variant", &out->cuda_variant, {"auto", "reference", "fused"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("max_seq_length", &out->max_seq_length, 0, 1 << 16));
  if (std::optional<YamlValue> v = map.Find("max_seq_length"); v && out->max_seq_length == 1) {
    return v->Error("max_seq_length must be 0 (the model's) or at least 2 ([CLS] and [SEP])");
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("instances", &out->instances, 0, 64));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("threads", &out->threads, 0, 1024));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("cuda_debug_sync", &out->cuda_debug_sync));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("cuda_graphs", &out->cuda_graphs));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("on_device_fault", &out->on_device_fault, {"exit", "unready"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("default", &out->is_default));
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("warmup", &out->warmup, {"all", "minimal", "none"}));
  return absl::OkStatus();
}

absl::Status Loader::LoadBatching(const YamlMap& root, WorkerBatchingConfig* out) {
  std::optional<YamlValue> value = root.Find("batching");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      value->AsMap({"max_batch_size", "max_batch_tokens", "max_queue_delay", "max_queue",
                    "group_by_length", "dispatch_when_idle", "throughput_window", "priority_aging",
                    "interactive_instances", "bulk_cpu_priority"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("max_batch_size", &out->max_batch_size, 1, 1 << 16));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("max_batch_tokens", &out->max_batch_tokens, 1, 1u << 30));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("max_queue_delay", &out->max_queue_delay,
                                             Duration::zero(), std::chrono::seconds(60)));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("max_queue", &out->max_queue, 1, 1u << 30));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("group_by_length", &out->group_by_length));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("dispatch_when_idle", &out->dispatch_when_idle));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("throughput_window", &out->throughput_window,
                                             std::chrono::milliseconds(100),
                                             std::chrono::hours(1)));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("priority_aging", &out->priority_aging,
                                             Duration::zero(), std::chrono::hours(1)));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("interactive_instances", &out->interactive_instances, 0, 63));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("bulk_cpu_priority", &out->bulk_cpu_priority, {"idle", "normal"}));
  return absl::OkStatus();
}

absl::Status Loader::LoadCache(const YamlMap& root, WorkerCacheConfig* out) {
  std::optional<YamlValue> value = root.Find("cache");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, value->AsMap({"max_bytes", "dedup"}));
  // 1 TiB: beyond any worker's memory, so a unit slip (KB for GB...) is caught either way.
  TIPPERARY_RETURN_IF_ERROR(map.ReadSize("max_bytes", &out->max_bytes, 0, uint64_t{1} << 40));
  return map.ReadBool("dedup", &out->dedup);
}

absl::Status Loader::LoadLogging(const YamlMap& root, WorkerConfig* config) {
  std::optional<YamlValue> value = root.Find("logging");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, value->AsMap({"level"}));
  return map.ReadEnum("level", &config->log_level, {"debug", "info", "warn", "error"});
}

}  // namespace

const WorkerModelConfig& WorkerConfig::default_model() const {
  for (const WorkerModelConfig& model : models) {
    if (model.is_default) return model;
  }
  return models.front();
}

absl::StatusOr<WorkerConfig> LoadWorkerConfigString(const std::string& yaml,
                                                    const std::string& source_name) {
  TIPPERARY_ASSIGN_OR_RETURN(YamlValue root, ParseYamlDocument(yaml, source_name));
  WorkerConfig config;
  try {
    TIPPERARY_RETURN_IF_ERROR(Loader(source_name).Load(root, &config));
  } catch (const YAML::Exception& e) {
    return YamlError(source_name, e.mark, "", e.msg);
  }
  return config;
}

absl::StatusOr<WorkerConfig> LoadWorkerConfigFile(const std::string& path) {
  TIPPERARY_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
  return LoadWorkerConfigString(text, path);
}

absl::Status OverrideModelPath(WorkerConfig& config, const std::string& spec) {
  size_t eq = spec.find('=');
  std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
  std::string dir = eq == std::string::npos ? spec : spec.substr(eq + 1);
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model-path ", Quoted(spec), ": expected NAME=DIR or DIR"));
  }
  if (config.models.empty()) {
    return absl::InvalidArgumentError("--model-path: the config has no models");
  }
  for (WorkerModelConfig& model : config.models) {
    if (name.empty() ? model.is_default : model.name == name) {
      model.path = dir;
      model.path_location = "--model-path " + spec;
      return absl::OkStatus();
    }
  }
  std::string known;
  for (const WorkerModelConfig& model : config.models) {
    absl::StrAppend(&known, known.empty() ? "" : ", ", model.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("--model-path ", Quoted(spec), ": unknown model ",
                                                 Quoted(name), " (models: ", known, ")"));
}

}  // namespace tipperary::config
