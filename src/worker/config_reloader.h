// A running worker's live reconfiguration (SIGHUP, POST /reload): re-reads the config file with
// the same --model-path overrides, checks it as --check-config does, and applies it whole or not
// at all.
//
// Order, so that nothing is half-applied and no request is lost:
//   1. Read and check (config_check.h): a problem rejects the reload; nothing changed.
//   2. Plan (reload_plan.h): restart-only keys keep their running values and are reported.
//   3. Load and warm up every added or replaced model, unpublished; one failing rejects the
//      reload and the others are unloaded again.
//   4. Publish at once: batching knobs and cache.dedup of the kept models (under each batcher's
//      lock), the embedding cache's size (a smaller one evicts at once), the logging level, then
//      the config and the new model set together (WorkerCore::Apply). Requests that already found a
//      model keep it (a shared_ptr).
//   5. Retire removed and replaced models: wait (up to `drain`) until no request holds one, so
//      its queued and executing work finishes, then stop its batcher and unload it.
//
//   ConfigReloader reloader(core, {.path = "worker.yaml"});
//   config::ReloadReport report = reloader.Reload("SIGHUP");  // logged and counted
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "model_runtime.h"
#include "reload_plan.h"
#include "tipperary/config/reload_report.h"
#include "tipperary/worker/config_check.h"
#include "worker_core.h"

namespace tipperary::worker {

class ConfigReloader {
 public:
  ConfigReloader(WorkerCore& core, WorkerConfigSource source);

  // Not concurrently with itself (ReloadRunner serialises). Logs one "config reload" line and
  // counts the result (tipperary_config_reload_total{result}).
  config::ReloadReport Reload(std::string_view source);

  // Shutdown: a reload in progress publishes nothing more, and models it still retires get until
  // `deadline`. Any thread.
  void Abort(std::chrono::steady_clock::time_point deadline);

  // The start's config: tipperary_config_last_reload_success_timestamp_seconds = now, and every
  // result of tipperary_config_reload_total at 0.
  static void InitMetrics(const WorkerStats& stats);

 private:
  config::ReloadReport Run();
  void Retire(std::vector<std::shared_ptr<ModelRuntime>> models,
              std::chrono::steady_clock::time_point deadline);
  std::chrono::steady_clock::time_point RetireDeadline(std::chrono::nanoseconds drain);

  WorkerCore& core_;
  const WorkerConfigSource source_;
  std::atomic<bool> aborted_{false};
  absl::Mutex abort_mu_;
  std::chrono::steady_clock::time_point abort_deadline_ ABSL_GUARDED_BY(abort_mu_) =
      std::chrono::steady_clock::time_point::max();
};

}  // namespace tipperary::worker
