// What a worker config reload would change, decided without touching anything: which keys
// apply live, which need a restart (and keep their running value), and what happens to each
// model. ConfigReloader carries the plan out.
//
//   ReloadPlan plan = PlanReload(*core.config(), *std::move(next));
//   // plan.effective: `next` with listen and admin.address kept at their running values
//   // plan.added / removed / replaced: model names; plan.changed: "batching.max_batch_size", ...
#pragma once

#include <string>
#include <vector>

#include "tipperary/config/worker_config.h"

namespace tipperary::worker {

struct ReloadPlan {
  // The configuration to run: the new file's, less the keys that need a restart.
  config::WorkerConfig effective;
  // Keys (config::ChangedKeys) whose new values apply live; empty = nothing to do.
  std::vector<std::string> changed;
  // Keys that changed in the file but cannot change in a running worker: listen, admin.address.
  std::vector<std::string> restart_required;
  std::vector<std::string> added;     // Models to load and warm up, then serve.
  std::vector<std::string> removed;   // Models to stop serving, drain, then unload.
  std::vector<std::string> replaced;  // Models loaded anew and swapped in when ready.
  bool batching_changed = false;
  bool cache_size_changed = false;  // cache.max_bytes: the shared cache is resized at publish.
  bool dedup_changed = false;       // cache.dedup: set on the kept models at publish.
};

// The restart-only keys, as ChangedKeys names them.
const std::vector<std::string>& RestartRequiredKeys();

// Whether a running model can stay as it is under `next`: every key but `default` (which only
// the name table uses) is the same. Any other change (path, backend, dtype, instances, threads,
// max_seq_length, aliases, warmup) loads the model anew.
bool SameModel(const config::WorkerModelConfig& running, const config::WorkerModelConfig& next);

ReloadPlan PlanReload(const config::WorkerConfig& running, config::WorkerConfig next);

}  // namespace tipperary::worker
