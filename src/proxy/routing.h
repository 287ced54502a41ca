// One generation of the proxy's schema: descriptors, routes and the transcoder built on them.
//
// Immutable once built. Each event loop holds a shared_ptr to the current generation; a new
// one (descriptors learnt over reflection) is posted to every loop, and requests in flight
// keep the old one alive until they finish.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"
#include "tipperary/config/proxy_config.h"
#include "tipperary/transcoder/openapi.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"
#include "tipperary/upstream/retry_policy.h"

namespace tipperary::proxy {

struct Routing {
  std::shared_ptr<const transcoder::Schema> schema;
  std::shared_ptr<const transcoder::RouteTable> routes;
  // gRPC-Web calls: every method of the served services at POST /pkg.Service/Method, whatever
  // transcoding.allow_grpc_method_paths says for JSON.
  std::shared_ptr<const transcoder::RouteTable> grpc_routes;
  std::shared_ptr<const transcoder::Transcoder> transcoder;
  // Some route takes a client stream: only then is a request head matched before its body.
  bool has_client_streams = false;

  // Index into config.upstreams of the upstream serving the route's service; -1 if none.
  int UpstreamFor(const transcoder::Route& route) const;

  // A config route's retry settings (routes[].idempotent, routes[].retry_policy), by its
  // transcoder::Route::config_index; other routes use the upstream's policy.
  struct RouteRetry {
    bool idempotent = false;
    std::shared_ptr<const upstream::RetryPolicy> policy;  // Null: the upstream's.
  };
  std::vector<RouteRetry> route_retries;  // Aligned with config.routes.
  const RouteRetry* RetryFor(const transcoder::Route& route) const;

  std::vector<config::UpstreamConfig> upstreams;

  // The OpenAPI document of `routes` (openapi.path), rendered on first use and then kept for
  // this generation: a new schema is a new Routing, so the document follows it.
  const std::string& OpenApiDocument() const;
  transcoder::OpenApiOptions openapi_options;

 private:
  mutable std::once_flag openapi_once_;
  mutable std::string openapi_document_;
};

absl::StatusOr<std::shared_ptr<const Routing>> BuildRouting(
    const config::ProxyConfig& config,
    const std::vector<google::protobuf::FileDescriptorSet>& sets);

// One warning line per problem among the route table's issues (skipped rules naming the gRPC
// method and the reason; shadowed ones naming both methods).
void LogRouteIssues(const transcoder::RouteTable& routes);

// Whether `service` (full name) matches a services entry: "pkg.Service", or "pkg.*" for a
// package and its sub-packages, or "*".
bool ServiceMatches(const std::string& pattern, const std::string& service);

}  // namespace tipperary::proxy
