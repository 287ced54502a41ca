// What one proxied request needs from the event loop that runs it, as an interface: the
// EventLoop is the real one; tests of ProxiedRequest pass a fake (a fake upstream, a fake clock,
// a real metrics registry) and drive the request through every path without a socket.
//
//   class FakeEnvironment : public RequestEnvironment { ... };
//   FakeEnvironment env;
//   auto request = ProxiedRequest::Start(env, std::make_shared<FakeHttpExchange>(...));
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "access_log.h"
#include "cors_policy.h"
#include "route_stats.h"
#include "routing.h"
#include "tipperary/config/proxy_config.h"
#include "tipperary/upstream/upstream_client.h"

namespace tipperary::proxy {

class RequestEnvironment {
 public:
  using Clock = std::chrono::steady_clock;

  // A pending one-shot timer; destroying it cancels it (its callback then never runs).
  class Timer {
   public:
    virtual ~Timer() = default;
  };

  virtual ~RequestEnvironment() = default;

  // The configuration in effect (a reload replaces it); a request keeps the one it started with.
  virtual std::shared_ptr<const config::ProxyConfig> config() const = 0;
  // The current schema generation (null until one is loaded). A request keeps the one it
  // started with for its whole life.
  virtual std::shared_ptr<const Routing> routing() const = 0;
  // The client of config()->upstreams[index], for the current config and routing(): the request
  // holds it for its life, so a cluster retired by a reload lives on until its calls end.
  virtual std::shared_ptr<upstream::UpstreamClient> upstream(int index) = 0;
  // The route's stats (nullptr: "unmatched"); held by the request until it is recorded.
  virtual std::shared_ptr<RouteStats> StatsFor(const transcoder::Route* route) = 0;
  // One finished upstream call, for the upstream's metrics.
  virtual void RecordUpstream(const std::string& upstream, absl::StatusCode code,
                              double seconds) = 0;
  virtual Clock::time_point Now() const = 0;
  // Runs `fire` on the loop thread after `delay`, unless the returned handle is gone by then.
  virtual std::unique_ptr<Timer> StartTimer(Clock::duration delay, std::function<void()> fire) = 0;
  virtual AccessLog* access_log() const = 0;  // Null when off.
  // The config's CORS policy, built once per configuration.
  virtual std::shared_ptr<const CorsPolicy> cors() const = 0;
  // Requests being handled by the whole proxy (limits.max_in_flight_requests).
  virtual std::atomic<int64_t>& in_flight() = 0;
};

}  // namespace tipperary::proxy
