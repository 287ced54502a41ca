// A KEDA external scaler (gRPC service externalscaler.ExternalScaler) over the proxy's own
// signals, so that KEDA can scale a deployment on per-route rates, in-flight requests or the
// worker's queue with no Prometheus in the loop. Triggers: `external` (IsActive, GetMetricSpec,
// GetMetrics) and `external-push` (StreamIsActive).
//
//   ExternalScalerServer::Options options{.address = "127.0.0.1:9903"};
//   auto server = ExternalScalerServer::Start(options, &sampler);   // binds; port 0 allowed
//   ... (*server)->port() ...
//   (*server)->Shutdown();                                          // ends open streams
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/autoscaling/signal_sampler.h"

namespace tipperary::autoscaling {

class ExternalScalerServer {
 public:
  struct Options {
    std::string address;  // host:port.
    // StreamIsActive re-evaluates activity this often and sends a message when it changes.
    std::chrono::milliseconds stream_interval{1000};
    int max_threads = 8;  // gRPC sync-server threads (each open stream holds one).
  };

  // `sampler` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ExternalScalerServer>> Start(const Options& options,
                                                                     const SignalSampler* sampler);
  ~ExternalScalerServer();

  int port() const;
  // Idempotent; open streams end with status CANCELLED (KEDA reconnects).
  void Shutdown();

 private:
  class Impl;
  explicit ExternalScalerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tipperary::autoscaling
