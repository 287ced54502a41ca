#include "config_reloader.h"

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tipperary/common/log.h"

namespace tipperary::worker {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

ConfigReloader::ConfigReloader(WorkerCore& core, WorkerConfigSource source)
    : core_(core), source_(std::move(source)) {}

void ConfigReloader::InitMetrics(const WorkerStats& stats) {
  for (const char* result : {"applied", "unchanged", "rejected"}) {
    stats.config_reloads->Add({{"result", result}});
  }
  stats.config_last_reload_success->Add({}).Set(UnixSeconds());
}

void ConfigReloader::Abort(std::chrono::steady_clock::time_point deadline) {
  absl::MutexLock lock(&abort_mu_);
  aborted_.store(true);
  abort_deadline_ = std::min(abort_deadline_, deadline);
}

std::chrono::steady_clock::time_point ConfigReloader::RetireDeadline(
    std::chrono::nanoseconds drain) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(drain);
  absl::MutexLock lock(&abort_mu_);
  return std::min(deadline, abort_deadline_);
}

config::ReloadReport ConfigReloader::Reload(std::string_view source) {
  TIPPERARY_LOG(kInfo, "config reload started",
                {{"source", std::string(source)}, {"file", source_.path}});
  config::ReloadReport report = Run();
  const WorkerStats& stats = core_.stats();
  stats.config_reloads->Add({{"result", std::string(report.ResultName())}}).Increment();
  if (report.result != config::ReloadReport::Result::kRejected) {
    stats.config_last_reload_success->Add({}).Set(UnixSeconds());
  }
  common::Log(report.result == config::ReloadReport::Result::kRejected ? common::LogLevel::kWarn
                                                                       : common::LogLevel::kInfo,
              "config reload",
              {{"source", std::string(source)},
               {"result", std::string(report.ResultName())},
               {"changed", absl::StrJoin(report.changed, ",")},
               {"restart_required", absl::StrJoin(report.restart_required, ",")},
               {"config_hash", report.config_hash},
               {"error", report.error}});
  return report;
}

config::ReloadReport ConfigReloader::Run() {
  using Result = config::ReloadReport::Result;
  config::ReloadReport report;
  auto reject = [&](std::string error) {
    report.result = Result::kRejected;
    report.error = std::move(error);
    report.changed.clear();
    report.restart_required.clear();
    report.config_hash = core_.config_hash();
    return report;
  };
  if (source_.path.empty()) return reject("the worker was not started from a config file");

  // 1. Read and check, as --check-config does.
  absl::StatusOr<config::WorkerConfig> next = LoadAndCheckWorkerConfig(source_);
  if (!next.ok()) return reject(std::string(next.status().message()));

  // 2. Plan.
  const std::shared_ptr<const config::WorkerConfig> running = core_.config();
  ReloadPlan plan = PlanReload(*running, *std::move(next));
  report.restart_required = plan.restart_required;
  if (plan.changed.empty()) {
    report.result = Result::kUnchanged;
    report.config_hash = core_.config_hash();
    return report;
  }

  // 3. Load and warm up what is new, unpublished.
  std::map<std::string, std::shared_ptr<ModelRuntime>> loaded;
  std::vector<std::string> to_load = plan.added;
  to_load.insert(to_load.end(), plan.replaced.begin(), plan.replaced.end());
  for (const std::string& name : to_load) {
    if (aborted_.load()) return reject("the worker is shutting down");
    const config::WorkerModelConfig* model_config = nullptr;
    for (const config::WorkerModelConfig& m : plan.effective.models) {
      if (m.name == name) model_config = &m;
    }
    absl::StatusOr<std::unique_ptr<ModelRuntime>> model = ModelRuntime::Load(
        *model_config, plan.effective.batching, plan.effective.cache, core_.cache(), core_.stats());
    if (!model.ok()) {
      // What was loaded goes again (on this thread: its batchers stop here).
      loaded.clear();
      return reject(absl::StrCat(model_config->path_location, ": ", model.status().message()));
    }
    loaded[name] = std::move(*model);
  }
  if (aborted_.load()) return reject("the worker is shutting down");

  // 4. Publish.
  std::shared_ptr<const ModelSet> old_set = core_.models();
  ModelSet::Models models;
  std::vector<std::shared_ptr<ModelRuntime>> retiring;
  for (const auto& [name, model] : old_set->models()) {
    if (loaded.count(name) > 0 ||
        std::find(plan.removed.begin(), plan.removed.end(), name) != plan.removed.end()) {
      retiring.push_back(model);
      continue;
    }
    if (plan.batching_changed) model->SetBatching(plan.effective.batching);
    if (plan.dedup_changed) model->SetDedup(plan.effective.cache.dedup);
    models[name] = model;
  }
  if (plan.cache_size_changed) core_.SetCacheMaxBytes(plan.effective.cache.max_bytes);
  for (auto& [name, model] : loaded) models[name] = std::move(model);
  loaded.clear();
  common::SetLogLevel(plan.effective.log_level);
  const std::string default_model = plan.effective.default_model().name;
  const std::chrono::nanoseconds drain = plan.effective.drain;
  core_.Apply(std::move(plan.effective), ModelSet::Build(std::move(models), default_model));
  report.result = Result::kApplied;
  report.changed = plan.changed;
  report.config_hash = core_.config_hash();
  for (const std::string& name : plan.added) {
    TIPPERARY_LOG(kInfo, "model added", {{"model", name}});
  }
  for (const std::string& name : plan.replaced) {
    TIPPERARY_LOG(kInfo, "model replaced", {{"model", name}});
  }
  for (const std::string& name : plan.removed) {
    TIPPERARY_LOG(kInfo, "model removed: draining", {{"model", name}});
  }

  // 5. Retire: the old set goes first, so that only requests still hold the runtimes.
  const auto deadline = RetireDeadline(drain);
  old_set.reset();
  Retire(std::move(retiring), deadline);
  // The collect hook only refreshes the models served; a removed one's gauge would keep its
  // last value.
  for (const std::string& name : plan.removed) {
    core_.stats().queue_depth->Add({{"model", name}}).Set(0);
  }
  return report;
}

void ConfigReloader::Retire(std::vector<std::shared_ptr<ModelRuntime>> models,
                            std::chrono::steady_clock::time_point deadline) {
  for (std::shared_ptr<ModelRuntime>& model : models) {
    // Every request that found this model holds it until answered; the published sets no longer
    // do, so no new holder can appear: one reference left (ours) means it is idle.
    while (model.use_count() > 1 && std::chrono::steady_clock::now() < deadline) {
      if (aborted_.load()) {
        absl::MutexLock lock(&abort_mu_);
        deadline = std::min(deadline, abort_deadline_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const long holders = model.use_count() - 1;
    // Queued work is rejected UNAVAILABLE, executing batches finish, the threads are joined: the
    // runtime can then be released on any thread (a call still holding it after the deadline
    // gets UNAVAILABLE for anything it submits).
    model->Stop();
    common::Log(holders > 0 ? common::LogLevel::kWarn : common::LogLevel::kInfo, "model unloaded",
                {{"model", model->name()},
                 {"calls_still_open", absl::StrCat(holders)},
                 {"result", holders > 0 ? "drain deadline passed" : "drained"}});
    model.reset();
  }
}

}  // namespace tipperary::worker
