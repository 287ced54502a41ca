#include "routing.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"
#include "upstream_options.h"

namespace tipperary::proxy {

bool ServiceMatches(const std::string& pattern, const std::string& service) {
  if (pattern == "*") return true;
  if (absl::EndsWith(pattern, ".*")) {
    return absl::StartsWith(service, pattern.substr(0, pattern.size() - 1));
  }
  return pattern == service;
}

int Routing::UpstreamFor(const transcoder::Route& route) const {
  const std::string& service = route.method->service()->full_name();
  for (size_t i = 0; i < upstreams.size(); ++i) {
    for (const std::string& pattern : upstreams[i].services) {
      if (ServiceMatches(pattern, service)) return static_cast<int>(i);
    }
  }
  // One upstream with no services list serves everything.
  if (upstreams.size() == 1 && upstreams[0].services.empty()) return 0;
  return -1;
}

const Routing::RouteRetry* Routing::RetryFor(const transcoder::Route& route) const {
  if (route.source != transcoder::RouteSource::kConfig || route.config_index < 0 ||
      static_cast<size_t>(route.config_index) >= route_retries.size()) {
    return nullptr;
  }
  return &route_retries[static_cast<size_t>(route.config_index)];
}

const std::string& Routing::OpenApiDocument() const {
  std::call_once(openapi_once_, [this] {
    openapi_document_ = transcoder::RenderOpenApi(*routes, openapi_options);
  });
  return openapi_document_;
}

absl::StatusOr<std::shared_ptr<const Routing>> BuildRouting(
    const config::ProxyConfig& config,
    const std::vector<google::protobuf::FileDescriptorSet>& sets) {
  auto routing = std::make_shared<Routing>();
  routing->upstreams = config.upstreams;
  auto schema = transcoder::Schema::Create(sets);
  if (!schema.ok()) return schema.status();
  routing->schema = *schema;

  std::vector<transcoder::RouteSpec> specs;
  for (const config::RouteConfig& r : config.routes) {
    Routing::RouteRetry& retry = routing->route_retries.emplace_back();
    retry.idempotent = r.idempotent;
    if (r.retry_policy) {
      retry.policy = std::make_shared<const upstream::RetryPolicy>(RetryPolicyFor(*r.retry_policy));
    }
    transcoder::RouteSpec spec;
    spec.http_method = r.method;
    spec.path_template = r.path;
    spec.grpc_method = r.grpc_method;
    spec.body = r.body;
    spec.response_body = r.response_body;
    spec.timeout = r.timeout;
    if (r.error_format == "openai") spec.error_format = transcoder::ErrorFormat::kOpenAi;
    if (r.error_format == "tei") spec.error_format = transcoder::ErrorFormat::kTei;
    if (r.error_format == "google_rpc") spec.error_format = transcoder::ErrorFormat::kGoogleRpc;
    spec.ignore_unknown_fields = r.ignore_unknown_fields;
    spec.location = r.location;
    specs.push_back(std::move(spec));
  }
  transcoder::RouteTableOptions options;
  options.annotations = config.transcoding.annotations;
  options.allow_grpc_method_paths = config.transcoding.allow_grpc_method_paths;
  options.strict = config.transcoding.strict;
  options.first_wins = config.transcoding.duplicate_rule_wins == "first";
  for (const config::UpstreamConfig& u : config.upstreams) {
    for (const std::string& s : u.services) options.service_filters.push_back(s);
  }
  auto routes = transcoder::RouteTable::Build(routing->schema, specs, options);
  if (!routes.ok()) return routes.status();
  routing->routes = *routes;
  for (const auto& route : routing->routes->routes()) {
    routing->has_client_streams = routing->has_client_streams || route->client_streaming;
  }
  transcoder::RouteTableOptions grpc_options;
  grpc_options.annotations = false;
  grpc_options.allow_grpc_method_paths = true;
  grpc_options.service_filters = options.service_filters;
  auto grpc_routes = transcoder::RouteTable::Build(routing->schema, {}, grpc_options);
  if (!grpc_routes.ok()) return grpc_routes.status();
  routing->grpc_routes = *grpc_routes;

  transcoder::TranscoderOptions topts;
  topts.preserve_proto_field_names = config.transcoding.preserve_proto_field_names;
  topts.always_print_primitive_fields = config.transcoding.always_print_primitive_fields;
  topts.enums_as_ints = config.transcoding.enums_as_ints;
  topts.ignore_unknown_fields = config.transcoding.ignore_unknown_fields;
  topts.ignore_unknown_query_parameters = config.transcoding.ignore_unknown_query_parameters;
  topts.ignored_query_parameters = config.transcoding.ignored_query_parameters;
  const std::string& separator = config.transcoding.repeated_path_param_separator;
  topts.repeated_path_param_separator = separator == "pipes" ? '|'
                                        : separator == "ssv" ? ' '
                                        : separator == "tsv" ? '\t'
                                                             : ',';
  routing->transcoder = std::make_shared<transcoder::Transcoder>(routing->schema, topts);

  transcoder::OpenApiOptions& openapi = routing->openapi_options;
  openapi.title = config.openapi.title;
  openapi.version = config.openapi.version;
  openapi.servers = config.openapi.servers;
  openapi.preserve_proto_field_names = topts.preserve_proto_field_names;
  openapi.enums_as_ints = topts.enums_as_ints;
  openapi.stream_json_format = config.streaming.json_format;
  openapi.repeated_path_param_separator = topts.repeated_path_param_separator;
  return std::shared_ptr<const Routing>(std::move(routing));
}

void LogRouteIssues(const transcoder::RouteTable& routes) {
  for (const transcoder::RouteIssue& issue : routes.issues()) {
    if (!issue.problem) continue;
    const std::string rule = absl::StrCat(issue.http_method, " ", issue.path);
    if (issue.kind == transcoder::RouteIssue::Kind::kSkipped) {
      TIPPERARY_LOG(kWarn, "route skipped",
                    {{"grpc_method", issue.grpc_method},
                     {"rule", rule},
                     {"source", transcoder::RouteSourceName(issue.source)},
                     {"reason", issue.reason}});
    } else {
      TIPPERARY_LOG(kWarn, "route shadowed",
                    {{"grpc_method", issue.grpc_method},
                     {"rule", rule},
                     {"source", transcoder::RouteSourceName(issue.source)},
                     {"shadowed_by", issue.shadowed_by_method},
                     {"shadowed_by_rule", issue.shadowed_by_rule}});
    }
  }
}

}  // namespace tipperary::proxy
