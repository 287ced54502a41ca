// Readiness from the upstreams' health: the proxy is ready while at least one endpoint of some
// upstream is serving. The health checking itself is the upstream clusters' (grpc.health.v1
// Watch or Check per endpoint, upstream::HealthChecker); this reads loop 0's clusters every
// 100 ms and publishes the answer for /readyz. A worker that serves reflection but is still
// loading its model answers NOT_SERVING, so the proxy does not claim to be ready before it can
// answer. An endpoint without the health service counts as serving; an upstream with
// health_check.interval 0 always counts.
//
//   auto health = UpstreamHealth::Create(loop, config);   // polls on `loop`
//   health->Start();
//   if (!health->AnyServing()) { /* /readyz: 503 with health->Describe() */ }
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "event_loop.h"
#include "tipperary/config/proxy_config.h"

namespace tipperary::proxy {

class UpstreamHealth : public std::enable_shared_from_this<UpstreamHealth> {
 public:
  static std::shared_ptr<UpstreamHealth> Create(EventLoop& loop, const config::ProxyConfig& config);

  // Loop thread. The first reading is taken at once.
  void Start();
  // Loop thread (or after the loop stopped).
  void Stop();
  // Loop thread, before Start(): a reload's new instance starts from what the one it replaces
  // knew of the upstreams both have (by name), so readiness does not blink before its first
  // reading.
  void InheritFrom(const UpstreamHealth& before);

  // Any thread.
  bool AnyServing() const;
  // Why no upstream is serving, for /readyz.
  std::string Describe() const;

  // Private but for make_shared.
  UpstreamHealth(EventLoop& loop, const config::ProxyConfig& config);

 private:
  void Poll();
  void Schedule();

  EventLoop& loop_;
  const config::ProxyConfig& config_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool stopped_ = false;
  std::atomic<bool> any_serving_{false};
  mutable std::mutex mu_;             // Guards reasons_ (written on the loop, read by /readyz).
  std::vector<std::string> reasons_;  // Per upstream: "" while some endpoint serves.
};

}  // namespace tipperary::proxy
