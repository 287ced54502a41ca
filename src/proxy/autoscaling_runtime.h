// The proxy's autoscaling: a sampling thread that turns the request counters into windowed
// rates, in-flight and saturation (plus the worker's queue and batch fill), publishes them as
// tipperary_autoscaling_* gauges, and serves them to KEDA through the external scaler.
// GET /autoscaling on the admin port reads sampler().
//
//   auto runtime = AutoscalingRuntime::Start(shared);   // binds the external scaler port
//   ... admin reads (*runtime)->sampler().Snapshot() ...
//   (*runtime)->Stop();                                  // after the drain
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "shared_state.h"
#include "tipperary/autoscaling/external_scaler_server.h"
#include "tipperary/autoscaling/signal_sampler.h"
#include "tipperary/autoscaling/worker_probe.h"

namespace tipperary::proxy {

class AutoscalingRuntime {
 public:
  static absl::StatusOr<std::unique_ptr<AutoscalingRuntime>> Start(SharedState& shared);
  ~AutoscalingRuntime();

  const autoscaling::SignalSampler& sampler() const { return sampler_; }
  void Stop();
  // Any thread (a config reload): windows, capacity and the worker poll from the next sample on.
  // The scaler's address and cadence and the sample interval need a restart.
  void Reconfigure(const config::AutoscalingConfig& config);

 private:
  AutoscalingRuntime(SharedState& shared, const config::AutoscalingConfig& config);
  void Run();
  void SampleOnce(std::chrono::steady_clock::time_point now);

  SharedState& shared_;
  autoscaling::SignalSampler sampler_;
  std::optional<autoscaling::WorkerProbe> probe_;
  std::unique_ptr<autoscaling::ExternalScalerServer> scaler_;
  bool worker_was_up_ = true;  // Sampling thread only: log worker poll failures on change.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // Guarded by mu_.
  std::chrono::nanoseconds interval_;
  // A reload's worker poll settings, taken by the sampling thread (guarded by mu_).
  std::optional<config::AutoscalingConfig> pending_;
  std::thread thread_;
};

}  // namespace tipperary::proxy
