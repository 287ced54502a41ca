// Active health checking of each endpoint of one cluster with grpc.health.v1.Health.
// Internal to tipperary::upstream; the cluster owns it and routes only to serving endpoints.
//
// Each endpoint gets a Watch stream (server-streaming: the server tells every change at once)
// over one of its own ready connections; where Watch is UNIMPLEMENTED, a Check every
// `interval` instead; where Check is UNIMPLEMENTED too, the endpoint counts as serving (it
// cannot say otherwise). A Watch that ends, a failed Check or a failed connect makes the
// endpoint NOT serving until an answer says otherwise. The Watch stream is silent by design, so
// it is exempt from hung detection; the requests themselves are not.
//
//   auto checker = std::make_shared<HealthChecker>(ioc, options, "worker", labels, &host);
//   checker->OnConnectionReady(0);  // the cluster reports its connections' events
//   if (checker->health(0) == EndpointHealth::kServing) { ... }
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tipperary/upstream/grpc_call.h"
#include "tipperary/upstream/upstream_client.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {

class HealthChecker : public std::enable_shared_from_this<HealthChecker> {
 public:
  // The cluster's side.
  class Host {
   public:
    virtual ~Host() = default;
    // Starts a call on a ready connection of `endpoint`, outside load balancing, retries,
    // circuit breakers and outlier detection; 0 when the endpoint has no ready connection.
    // Handlers run as for UpstreamClient::Call. `watch`: a long-lived silent stream.
    virtual CallId StartHealthCall(size_t endpoint, GrpcRequest request, CallHandlers handlers,
                                   bool watch) = 0;
    virtual void CancelHealthCall(CallId id) = 0;
    virtual bool EndpointConnected(size_t endpoint) const = 0;
    // After health(endpoint) changed.
    virtual void OnHealthChanged(size_t endpoint) = 0;
  };

  HealthChecker(boost::asio::io_context& ioc, const HealthCheckOptions& options,
                std::string upstream, std::vector<std::string> endpoint_labels, Host* host);

  bool enabled() const { return options_.interval.count() > 0; }

  // Events from the cluster.
  void OnConnectionReady(size_t endpoint);
  void OnConnectFailed(size_t endpoint, const std::string& reason);
  // The endpoint's Watch runs on a connection the server is draining (GOAWAY): a server waits
  // for open calls before it exits, so the Watch is cancelled now and opened again on another
  // connection (at once, or when one is ready). The health stays as it was meanwhile.
  void OnWatchConnectionDraining(size_t endpoint);
  // The Watch or Check in flight for the endpoint; 0 when none.
  CallId call(size_t endpoint) const { return endpoints_[endpoint].call; }
  // Cancels the calls and timers; health stays as it was. For Shutdown and destruction.
  void Stop();

  EndpointHealth health(size_t endpoint) const { return endpoints_[endpoint].health; }
  const std::string& detail(size_t endpoint) const { return endpoints_[endpoint].detail; }
  uint64_t checks_total() const { return checks_total_; }
  uint64_t failures_total() const { return failures_total_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Endpoint {
    EndpointHealth health = EndpointHealth::kUnknown;
    std::string detail = "no health answer yet";
    CallId call = 0;          // The Watch or Check in flight.
    uint64_t generation = 0;  // Bumped when a call is abandoned: its late events are ignored.
    bool watch_unimplemented = false;
    std::unique_ptr<boost::asio::steady_timer> timer;
    bool timer_armed = false;
  };

  // Opens a Watch (or sends a Check) unless one is in flight or a timer waits.
  void Probe(size_t index);
  void StartWatch(size_t index);
  void StartCheck(size_t index);
  void OnWatchDone(size_t index, const GrpcResult& result, bool got_message,
                   Clock::time_point started);
  void OnCheckDone(size_t index, const GrpcResult& result, const std::string& response);
  void ProbeAfter(size_t index, std::chrono::nanoseconds delay);
  // A HealthCheckResponse: SERVING or not.
  void Apply(size_t index, const std::string& response);
  void Set(size_t index, EndpointHealth health, std::string detail);
  std::string Request() const;

  HealthCheckOptions options_;
  std::string upstream_;
  std::vector<std::string> labels_;
  Host* host_;
  std::vector<Endpoint> endpoints_;
  bool stopped_ = false;
  uint64_t checks_total_ = 0;
  uint64_t failures_total_ = 0;
};

}  // namespace tipperary::upstream
