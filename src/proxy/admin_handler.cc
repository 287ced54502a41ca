#include "admin_handler.h"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"
#include "tipperary/common/status_json.h"
#include "tipperary/config/proxy_config_loader.h"

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
  const UpstreamHealth* health = hooks_.health ? hooks_.health() : nullptr;
  if (health != nullptr && !health->AnyServing()) {
    return "no upstream is serving: " + health->Describe();
  }
  return "";
}

std::string AdminHandler::ReadyBody() const {
  // Which schema is served, and how fresh it is: a schema that follows its worker shows here.
  const int64_t checked = shared_.schema_checked_ns.load();
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::string digest;
  std::string last_error;
  {
    absl::MutexLock lock(&shared_.schema_mu);
    digest = shared_.schema_digest;
    last_error = shared_.schema_last_error;
  }
  std::string body = absl::StrCat(
      "{\"status\":\"ready\",\"schema\":{\"generation\":", shared_.schema_generation.load(),
      ",\"age_seconds\":", absl::SixDigits(checked == 0 ? 0.0 : (now - checked) / 1e9),
      ",\"digest\":\"", digest, "\"");
  if (!last_error.empty()) {
    body += ",\"last_refresh_error\":\"";
    common::AppendJsonEscaped(body, last_error);
    body += "\"";
  }
  return body + "}}\n";
}

void AdminHandler::Handle(std::shared_ptr<http1::HttpExchange> ex) { router_.Handle(ex); }

void AdminHandler::BuildRoutes() {
  using http1::AdminReply;
  router_.Add("/healthz", "liveness", [](const http1::HttpRequest&) {
    return AdminReply{.body = "{\"status\":\"ok\"}\n"};
  });
  router_.Add("/readyz", "readiness: schema, an upstream connection, an upstream serving",
              [this](const http1::HttpRequest&) {
                std::string reason = NotReadyReason();
                if (reason.empty()) return AdminReply{.body = ReadyBody()};
                return AdminReply{
                    .status = http::status::service_unavailable,
                    .body = common::StatusJson(absl::StatusCode::kUnavailable, reason)};
              });
  router_.Add("/metrics", "Prometheus metrics", [this](const http1::HttpRequest&) {
    return AdminReply{.content_type = "text/plain; version=0.0.4; charset=utf-8",
                      .body = shared_.registry.Serialize()};
  });
  router_.Add("/config",
              "the configuration in effect (secrets redacted); its hash in X-Config-Hash and on "
              "the first line",
              [this](const http1::HttpRequest&) {
                std::shared_ptr<const config::ProxyConfig> config;
                std::string hash;
                {
                  absl::MutexLock lock(&shared_.config_mu);
                  config = shared_.config;
                  hash = shared_.config_hash;
                }
                return AdminReply{
                    .content_type = "application/yaml",
                    .body = absl::StrCat("# config_hash: ", hash, "\n",
                                         config::DumpProxyConfig(*config, /*redact_secrets=*/true)),
                    .headers = {{"X-Config-Hash", hash}}};
              });
  if (hooks_.reload) {
    router_.Add("/reload",
                "POST: re-read the config file and apply it whole, or change nothing (JSON report)",
                [this](const http1::HttpRequest&) {
                  const config::ReloadReport report = hooks_.reload();
                  return AdminReply{.status = static_cast<http::status>(report.HttpStatus()),
                                    .body = report.ToJson()};
                },
                {http::verb::post});
  }
  router_.Add("/routes", "the route table: active, shadowed (by which) and skipped (why) rules",
              [this](const http1::HttpRequest&) {
                std::shared_ptr<const Routing> routing = home_.routing();
                return AdminReply{.body = routing ? routing->routes->DescribeJson() : "[]"};
              });
  // The path is fixed for the process (a reload reports a change as needing a restart).
  const std::string openapi_path = shared_.Config()->openapi.path;
  if (!openapi_path.empty()) {
    router_.Add(openapi_path, "the OpenAPI 3.1 document of the served routes (docs/openapi.md)",
                [this](const http1::HttpRequest&) {
                  std::shared_ptr<const Routing> routing = home_.routing();
                  if (!routing) {
                    return AdminReply{.status = http::status::service_unavailable,
                                      .body = common::StatusJson(absl::StatusCode::kUnavailable,
                                                                 "no schema loaded yet")};
                  }
                  return AdminReply{.body = routing->OpenApiDocument()};
                });
  }
  if (signals_ != nullptr) {
    router_.Add("/autoscaling", "the autoscaling signals (KEDA metrics-api)",
                [this](const http1::HttpRequest&) {
                  return AdminReply{.body = autoscaling::SnapshotToJson(signals_->Snapshot())};
                });
  }
}

}  // namespace tipperary::proxy
