// Active health checking, the minimal form readiness needs: every upstream is asked
// grpc.health.v1.Health/Check on its health_check.interval, and the proxy is ready only while
// at least one upstream answers SERVING. A worker that serves reflection but is still loading
// its model answers NOT_SERVING, so the proxy does not claim to be ready before it can answer.
// An upstream without the health service (UNIMPLEMENTED) counts as serving.
//
//   auto health = UpstreamHealth::Create(loop, config);   // checks run on `loop`
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

  // Loop thread. The first checks go out at once.
  void Start();
  // Loop thread (or after the loop stopped).
  void Stop();
  // Loop thread, before Start(): a reload's new checker starts from what the one it replaces
  // knew of the upstreams both have (by name), so readiness does not blink.
  void InheritFrom(const UpstreamHealth& before);

  // Any thread.
  bool AnyServing() const;
  // Why no upstream is serving, for /readyz.
  std::string Describe() const;

  // Private but for make_shared.
  UpstreamHealth(EventLoop& loop, const config::ProxyConfig& config);

 private:
  enum class Status { kUnknown, kServing, kNotServing };
  struct Upstream {
    std::atomic<Status> status{Status::kUnknown};
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  void Check(size_t index);
  void Schedule(size_t index);
  void Set(size_t index, Status status, std::string why);

  EventLoop& loop_;
  const config::ProxyConfig& config_;
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  bool stopped_ = false;
  mutable std::mutex mu_;  // Guards reasons_ (written on the loop, read by /readyz).
  std::vector<std::string> reasons_;
};

}  // namespace tipperary::proxy
