// The proxy's admin port: /healthz, /readyz, /metrics, /config, /routes, /autoscaling and
// POST /reload, as a table of handlers (http1::AdminRouter, shared with the worker's admin port).
//
//   AdminHandler admin(shared, loops, loop0, &sampler, {.health = ..., .reload = ...});
//   http1::RequestHandler fn = [&admin](auto ex) { admin.Handle(std::move(ex)); };
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "event_loop.h"
#include "shared_state.h"
#include "tipperary/autoscaling/signal_sampler.h"
#include "tipperary/config/reload_report.h"
#include "tipperary/http1/admin_router.h"
#include "tipperary/http1/http_exchange.h"
#include "upstream_health.h"

namespace tipperary::proxy {

class AdminHandler {
 public:
  // What the admin port asks of the server, on `home`'s thread.
  struct Hooks {
    // The active health checker now (a reload replaces it); null: no health checking.
    std::function<const UpstreamHealth*()> health;
    // POST /reload; null: no such route.
    std::function<config::ReloadReport()> reload;
  };

  // `home` is the loop the admin listener runs on (its routing is read there).
  // `signals` may be null (then /autoscaling is 404); it must outlive the handler.
  AdminHandler(SharedState& shared, const std::vector<std::unique_ptr<EventLoop>>& loops,
               EventLoop& home, const autoscaling::SignalSampler* signals, Hooks hooks)
      : shared_(shared), loops_(loops), home_(home), signals_(signals), hooks_(std::move(hooks)) {
    BuildRoutes();
  }

  void Handle(std::shared_ptr<http1::HttpExchange> exchange);

  // The reason the proxy is not ready, or empty when it is.
  std::string NotReadyReason() const;
  // /readyz's body when ready: the schema served (generation, age, digest).
  std::string ReadyBody() const;

 private:
  void BuildRoutes();

  SharedState& shared_;
  const std::vector<std::unique_ptr<EventLoop>>& loops_;
  EventLoop& home_;
  const autoscaling::SignalSampler* signals_;
  Hooks hooks_;
  http1::AdminRouter router_;
};

}  // namespace tipperary::proxy
