#include "reload_plan.h"

#include <algorithm>
#include <map>

#include "tipperary/config/reload_report.h"

namespace tipperary::worker {

const std::vector<std::string>& RestartRequiredKeys() {
  // The gRPC server and the admin listener are bound once; the model threads are per model and
  // change with it (replaced); the front-door warm-up request runs once, at start.
  static const std::vector<std::string> keys = {"listen", "admin.address",
                                                "warmup_request_timeout"};
  return keys;
}

bool SameModel(const config::WorkerModelConfig& running, const config::WorkerModelConfig& next) {
  return running.name == next.name && running.aliases == next.aliases &&
         running.huggingface_aliases == next.huggingface_aliases && running.path == next.path &&
         running.backend == next.backend && running.dtype == next.dtype &&
         running.cuda_variant == next.cuda_variant &&
         running.max_seq_length == next.max_seq_length && running.instances == next.instances &&
         running.threads == next.threads && running.cuda_debug_sync == next.cuda_debug_sync &&
         running.cuda_graphs == next.cuda_graphs &&
         running.on_device_fault == next.on_device_fault && running.warmup == next.warmup;
}

ReloadPlan PlanReload(const config::WorkerConfig& running, config::WorkerConfig next) {
  ReloadPlan plan;
  const std::string running_dump = config::DumpWorkerConfig(running);
  const std::vector<std::string> file_changes =
      config::ChangedKeys(running_dump, config::DumpWorkerConfig(next));
  for (const std::string& key : RestartRequiredKeys()) {
    if (std::find(file_changes.begin(), file_changes.end(), key) != file_changes.end()) {
      plan.restart_required.push_back(key);
    }
  }
  next.listen = running.listen;
  next.admin_address = running.admin_address;
  next.warmup_request_timeout = running.warmup_request_timeout;
  plan.effective = std::move(next);
  plan.changed = config::ChangedKeys(running_dump, config::DumpWorkerConfig(plan.effective));

  auto changed = [&](const char* key) {
    return std::find(plan.changed.begin(), plan.changed.end(), key) != plan.changed.end();
  };
  // Which CPU instances compute at idle priority is set when their threads start: a change of
  // either key builds the models anew (hitless, as for any replaced model).
  const bool lanes_changed =
      changed("batching.interactive_instances") || changed("batching.bulk_cpu_priority");
  std::map<std::string, const config::WorkerModelConfig*> before;
  for (const config::WorkerModelConfig& model : running.models) before[model.name] = &model;
  for (const config::WorkerModelConfig& model : plan.effective.models) {
    auto it = before.find(model.name);
    if (it == before.end()) {
      plan.added.push_back(model.name);
    } else {
      if (lanes_changed || !SameModel(*it->second, model)) plan.replaced.push_back(model.name);
      before.erase(it);
    }
  }
  for (const auto& [name, model] : before) plan.removed.push_back(name);
  std::sort(plan.added.begin(), plan.added.end());
  std::sort(plan.replaced.begin(), plan.replaced.end());
  plan.batching_changed =
      std::any_of(plan.changed.begin(), plan.changed.end(),
                  [](const std::string& key) { return key.rfind("batching.", 0) == 0; });
  plan.cache_size_changed = changed("cache.max_bytes");
  plan.dedup_changed = changed("cache.dedup");
  return plan;
}

}  // namespace tipperary::worker
