#include "admin_handler.h"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/transcoder/status_mapping.h"

namespace tipperary::proxy {
namespace {
namespace http = boost::beast::http;
}  // namespace

std::string AdminHandler::NotReadyReason() const {
  if (shared_.draining.load()) return "draining";
  if (!shared_.schema_loaded.load()) return "no schema loaded yet";
  bool connected = false;
  for (const auto& loop : loops_) connected = connected || loop->AnyUpstreamReady();
  if (!connected) return "no upstream connection is ready";
  if (health_ != nullptr && !health_->AnyServing()) {
    return "no upstream is serving: " + health_->Describe();
  }
  return "";
}

void AdminHandler::Handle(std::shared_ptr<http1::HttpExchange> ex) {
  const http1::HttpRequest& req = ex->request();
  std::string_view target = req.target();
  std::string_view path = target.substr(0, target.find('?'));
  http1::HttpResponse res{http::status::ok, req.version()};
  res.set(http::field::cache_control, "no-store");
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "application/json");
    res.body() = transcoder::MinimalStatusJson(12, "the admin port only serves GET");
  } else if (path == "/healthz") {
    res.set(http::field::content_type, "application/json");
    res.body() = "{\"status\":\"ok\"}\n";
  } else if (path == "/readyz") {
    std::string reason = NotReadyReason();
    res.set(http::field::content_type, "application/json");
    if (reason.empty()) {
      res.body() = "{\"status\":\"ready\"}\n";
    } else {
      res.result(http::status::service_unavailable);
      res.body() = transcoder::MinimalStatusJson(14, reason);
    }
  } else if (path == "/metrics") {
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = shared_.registry.Serialize();
  } else if (path == "/config") {
    res.set(http::field::content_type, "application/yaml");
    res.body() = config::DumpProxyConfig(shared_.config, /*redact_secrets=*/true);
  } else if (path == "/routes") {
    res.set(http::field::content_type, "application/json");
    const auto& routing = home_.routing();
    res.body() = routing ? routing->routes->DescribeJson() : "[]";
  } else if (path == "/autoscaling" && signals_ != nullptr) {
    res.set(http::field::content_type, "application/json");
    res.body() = autoscaling::SnapshotToJson(signals_->Snapshot());
  } else {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "application/json");
    res.body() = transcoder::MinimalStatusJson(
        5, "unknown admin path; try /healthz /readyz /metrics /config /routes /autoscaling");
  }
  ex->Respond(std::move(res));
}

}  // namespace tipperary::proxy
