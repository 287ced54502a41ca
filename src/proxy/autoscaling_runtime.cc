#include "autoscaling_runtime.h"

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"

namespace tipperary::proxy {
namespace {

std::vector<std::chrono::seconds> Windows(const config::AutoscalingConfig& config) {
  std::vector<std::chrono::seconds> out;
  for (auto w : config.windows) out.push_back(std::chrono::duration_cast<std::chrono::seconds>(w));
  return out;
}

}  // namespace

AutoscalingRuntime::AutoscalingRuntime(SharedState& shared, const config::AutoscalingConfig& config)
    : shared_(shared),
      sampler_(Windows(config), config.capacity),
      interval_(config.sample_interval) {}

absl::StatusOr<std::unique_ptr<AutoscalingRuntime>> AutoscalingRuntime::Start(SharedState& shared) {
  const std::shared_ptr<const config::ProxyConfig> snapshot = shared.Config();
  const config::AutoscalingConfig& config = snapshot->autoscaling;
  std::unique_ptr<AutoscalingRuntime> runtime(new AutoscalingRuntime(shared, config));
  if (!config.worker_admin.empty()) {
    runtime->probe_.emplace(config.worker_admin, config.worker_timeout);
  }
  if (!config.external_scaler_address.empty()) {
    autoscaling::ExternalScalerServer::Options options;
    options.address = config.external_scaler_address;
    options.stream_interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(config.stream_interval);
    auto scaler = autoscaling::ExternalScalerServer::Start(options, &runtime->sampler_);
    if (!scaler.ok()) return scaler.status();
    runtime->scaler_ = std::move(*scaler);
  }
  shared.stats.autoscaling_capacity->Add({}).Set(config.capacity);
  runtime->SampleOnce(std::chrono::steady_clock::now());
  runtime->thread_ = std::thread([r = runtime.get()] { r->Run(); });
  return runtime;
}

AutoscalingRuntime::~AutoscalingRuntime() { Stop(); }

void AutoscalingRuntime::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (scaler_) scaler_->Shutdown();
}

void AutoscalingRuntime::Reconfigure(const config::AutoscalingConfig& config) {
  sampler_.Reconfigure(Windows(config), config.capacity);
  shared_.stats.autoscaling_capacity->Add({}).Set(config.capacity);
  std::lock_guard lock(mu_);
  pending_ = config;
}

void AutoscalingRuntime::Run() {
  const auto interval = interval_;
  auto next = std::chrono::steady_clock::now() + interval;
  std::unique_lock lock(mu_);
  while (!cv_.wait_until(lock, next, [this] { return stopping_; })) {
    lock.unlock();
    auto now = std::chrono::steady_clock::now();
    SampleOnce(now);
    // Fixed cadence: a slow worker poll must not stretch the windows' sample spacing.
    next += interval;
    if (next < now) next = now + interval;
    lock.lock();
  }
}

void AutoscalingRuntime::SampleOnce(std::chrono::steady_clock::time_point now) {
  std::optional<config::AutoscalingConfig> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  if (pending) {
    probe_.reset();
    if (!pending->worker_admin.empty()) {
      probe_.emplace(pending->worker_admin, pending->worker_timeout);
    }
  }
  autoscaling::SampleInput input;
  shared_.stats.http_requests->ForEach(
      [&](const metrics::Labels& labels, const metrics::Counter& c) {
        auto it = labels.find("route");
        if (it != labels.end()) input.requests[it->second] += c.Value();
      });
  shared_.stats.http_in_flight->ForEach(
      [&](const metrics::Labels& labels, const metrics::Gauge& g) {
        auto it = labels.find("route");
        if (it != labels.end()) input.in_flight[it->second] += g.Value();
      });
  if (probe_) {
    absl::StatusOr<autoscaling::WorkerCounters> counters = probe_->Poll();
    if (counters.ok()) {
      input.worker = *counters;
      if (!worker_was_up_) TIPPERARY_LOG(kInfo, "worker admin answers again", {});
      worker_was_up_ = true;
    } else if (worker_was_up_) {
      worker_was_up_ = false;
      TIPPERARY_LOG(kWarn, "worker admin poll failed; queue signals unknown",
                    {{"error", std::string(counters.status().message())}});
    }
  }
  sampler_.Sample(now, input);

  const autoscaling::SignalSnapshot s = sampler_.Snapshot();
  ProxyStats& stats = shared_.stats;
  for (const auto& [route, signal] : s.routes) {
    for (size_t i = 0; i < s.windows.size(); ++i) {
      stats.autoscaling_rate
          ->Add({{"route", route}, {"window", absl::StrCat(s.windows[i].count(), "s")}})
          .Set(signal.rps[i]);
    }
  }
  stats.autoscaling_saturation->Add({}).Set(s.all.saturation);
  if (probe_) {
    stats.autoscaling_worker_up->Add({}).Set(s.worker.known ? 1 : 0);
    stats.autoscaling_worker_queue_depth->Add({}).Set(s.worker.queue_depth);
    stats.autoscaling_worker_batch_fill->Add({}).Set(s.worker.batch_fill);
    // No series rather than a made-up 0 (which would read as "no backlog").
    if (s.worker.backlog_seconds) {
      stats.autoscaling_worker_backlog_seconds->Add({}).Set(*s.worker.backlog_seconds);
    } else {
      stats.autoscaling_worker_backlog_seconds->Remove({});
    }
  }
}

}  // namespace tipperary::proxy
