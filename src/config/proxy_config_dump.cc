// DumpProxyConfig: the effective configuration, for `tipperary-proxy --dump-config` and /config.
#include <charconv>
#include <string>

#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/config/units.h"
#include "yaml-cpp/yaml.h"
#include "yaml_emit.h"

namespace tipperary::config {
using internal::Emit;
using internal::EmitDuration;
using internal::EmitKey;
using internal::EmitSize;
using internal::EmitString;
using internal::EmitStringList;
using internal::FormatDouble;

namespace {

// Block style reads better, but an empty block list prints as a bare "[]" on its own line.
void BeginSeq(YAML::Emitter& out, bool empty) {
  if (empty) out << YAML::Flow;
  out << YAML::BeginSeq;
}

// A route's retry_policy has the per-call keys only (the budget is the upstream's).
void EmitRetryPolicy(YAML::Emitter& out, const RetryPolicyConfig& retry, bool for_route) {
  out << YAML::BeginMap;
  EmitStringList(out, "retry_on", retry.retry_on);
  if (!for_route) EmitStringList(out, "idempotent_methods", retry.idempotent_methods);
  Emit(out, "max_attempts", retry.max_attempts);
  EmitDuration(out, "per_try_timeout", retry.per_try_timeout);
  EmitDuration(out, "backoff_initial", retry.backoff_initial);
  EmitDuration(out, "backoff_max", retry.backoff_max);
  if (!for_route) {
    Emit(out, "budget_percent", retry.budget_percent);
    Emit(out, "min_retry_concurrency", retry.min_retry_concurrency);
  }
  out << YAML::EndMap;
}

}  // namespace

std::string DumpProxyConfig(const ProxyConfig& config, bool redact_secrets) {
  YAML::Emitter out;
  internal::UseLowerCaseBools(out);
  if (!config.source_path.empty())
    out << YAML::Comment("Effective config of " + config.source_path);
  out << YAML::BeginMap;

  EmitKey(out, "listeners");
  BeginSeq(out, config.listeners.empty());
  for (const ListenerConfig& listener : config.listeners) {
    out << YAML::BeginMap;
    EmitString(out, "address", listener.address);
    if (listener.tls) {
      const TlsConfig& tls = *listener.tls;
      EmitKey(out, "tls");
      out << YAML::BeginMap;
      EmitString(out, "cert", tls.cert);
      EmitString(out, "key", redact_secrets && !tls.key.empty() ? "<redacted>" : tls.key);
      if (!tls.client_ca.empty()) EmitString(out, "client_ca", tls.client_ca);
      Emit(out, "require_client_cert", tls.require_client_cert);
      EmitString(out, "min_version", tls.min_version);
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  EmitKey(out, "admin");
  out << YAML::BeginMap;
  EmitString(out, "address", config.admin.address);
  out << YAML::EndMap;

  EmitKey(out, "descriptors");
  BeginSeq(out, config.descriptors.empty());
  for (const DescriptorSource& source : config.descriptors) {
    if (!source.reflection_upstream.empty()) {
      out << YAML::Flow << YAML::BeginMap;
      EmitString(out, "reflection", source.reflection_upstream);
      out << YAML::EndMap;
    } else {
      out << YAML::DoubleQuoted << source.path;
    }
  }
  out << YAML::EndSeq;

  EmitKey(out, "upstreams");
  BeginSeq(out, config.upstreams.empty());
  for (const UpstreamConfig& upstream : config.upstreams) {
    out << YAML::BeginMap;
    EmitString(out, "name", upstream.name);
    EmitStringList(out, "endpoints", upstream.endpoints);
    EmitStringList(out, "services", upstream.services);
    EmitDuration(out, "connect_timeout", upstream.connect_timeout);
    EmitDuration(out, "keepalive_interval", upstream.keepalive_interval);
    EmitDuration(out, "keepalive_timeout", upstream.keepalive_timeout);
    EmitDuration(out, "reconnect_backoff_initial", upstream.reconnect_backoff_initial);
    EmitDuration(out, "reconnect_backoff_max", upstream.reconnect_backoff_max);
    Emit(out, "max_concurrent_streams", upstream.max_concurrent_streams);
    Emit(out, "connections_per_thread", upstream.connections_per_thread);
    EmitSize(out, "max_response_bytes", upstream.max_response_bytes);
    EmitSize(out, "initial_window_size", upstream.initial_window_size);
    EmitString(out, "load_balancing", upstream.load_balancing);
    EmitKey(out, "health_check");
    out << YAML::BeginMap;
    EmitDuration(out, "interval", upstream.health_check.interval);
    EmitDuration(out, "timeout", upstream.health_check.timeout);
    EmitString(out, "service", upstream.health_check.service);
    Emit(out, "panic_threshold_percent", upstream.health_check.panic_threshold_percent);
    out << YAML::EndMap;
    const OutlierDetectionConfig& od = upstream.outlier_detection;
    EmitKey(out, "outlier_detection");
    out << YAML::BeginMap;
    Emit(out, "consecutive_failures", od.consecutive_failures);
    EmitDuration(out, "base_ejection_time", od.base_ejection_time);
    EmitDuration(out, "max_ejection_time", od.max_ejection_time);
    Emit(out, "max_ejection_percent", od.max_ejection_percent);
    out << YAML::EndMap;
    EmitKey(out, "hung_detection");
    out << YAML::BeginMap;
    EmitDuration(out, "ping_after", upstream.hung_detection.ping_after);
    EmitDuration(out, "ping_timeout", upstream.hung_detection.ping_timeout);
    out << YAML::EndMap;
    EmitKey(out, "retry_policy");
    EmitRetryPolicy(out, upstream.retry_policy, /*for_route=*/false);
    EmitKey(out, "circuit_breakers");
    out << YAML::BeginMap;
    Emit(out, "max_requests", upstream.circuit_breakers.max_requests);
    Emit(out, "max_pending_requests", upstream.circuit_breakers.max_pending_requests);
    EmitDuration(out, "retry_after", upstream.circuit_breakers.retry_after);
    out << YAML::EndMap;
    if (upstream.tls) {
      const UpstreamTlsConfig& tls = *upstream.tls;
      EmitKey(out, "tls");
      out << YAML::BeginMap;
      // Absent ca means the system's CA store; absent cert and key, no client certificate.
      if (!tls.ca.empty()) EmitString(out, "ca", tls.ca);
      if (!tls.cert.empty()) {
        EmitString(out, "cert", tls.cert);
        EmitString(out, "key", redact_secrets ? "<redacted>" : tls.key);
      }
      // Absent means each endpoint's host.
      if (!tls.server_name.empty()) EmitString(out, "server_name", tls.server_name);
      Emit(out, "verify", tls.verify);
      EmitString(out, "min_version", tls.min_version);
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  EmitKey(out, "routes");
  BeginSeq(out, config.routes.empty());
  for (const RouteConfig& route : config.routes) {
    out << YAML::BeginMap;
    EmitString(out, "method", route.method);
    EmitString(out, "path", route.path);
    EmitString(out, "grpc_method", route.grpc_method);
    EmitString(out, "body", route.body);
    EmitString(out, "response_body", route.response_body);
    // Absent means timeouts.upstream_default.
    if (route.timeout) EmitDuration(out, "timeout", *route.timeout);
    // Absent means the method's tipperary.api.v1.http_api option decides.
    if (!route.error_format.empty()) EmitString(out, "error_format", route.error_format);
    if (route.ignore_unknown_fields) {
      Emit(out, "ignore_unknown_fields", *route.ignore_unknown_fields);
    }
    Emit(out, "idempotent", route.idempotent);
    // Absent means the upstream's retry_policy.
    if (route.retry_policy) {
      EmitKey(out, "retry_policy");
      EmitRetryPolicy(out, *route.retry_policy, /*for_route=*/true);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  const TranscodingConfig& transcoding = config.transcoding;
  EmitKey(out, "transcoding");
  out << YAML::BeginMap;
  Emit(out, "preserve_proto_field_names", transcoding.preserve_proto_field_names);
  Emit(out, "always_print_primitive_fields", transcoding.always_print_primitive_fields);
  Emit(out, "enums_as_ints", transcoding.enums_as_ints);
  Emit(out, "ignore_unknown_fields", transcoding.ignore_unknown_fields);
  EmitStringList(out, "ignored_query_parameters", transcoding.ignored_query_parameters);
  Emit(out, "ignore_unknown_query_parameters", transcoding.ignore_unknown_query_parameters);
  Emit(out, "allow_grpc_method_paths", transcoding.allow_grpc_method_paths);
  Emit(out, "annotations", transcoding.annotations);
  Emit(out, "strict", transcoding.strict);
  EmitString(out, "unexpected_body", transcoding.unexpected_body);
  EmitString(out, "repeated_path_param_separator", transcoding.repeated_path_param_separator);
  EmitString(out, "duplicate_rule_wins", transcoding.duplicate_rule_wins);
  out << YAML::EndMap;

  const LimitsConfig& limits = config.limits;
  EmitKey(out, "limits");
  out << YAML::BeginMap;
  EmitSize(out, "max_header_bytes", limits.max_header_bytes);
  EmitSize(out, "max_request_body_bytes", limits.max_request_body_bytes);
  EmitSize(out, "max_chunk_extension_bytes", limits.max_chunk_extension_bytes);
  EmitSize(out, "max_trailer_bytes", limits.max_trailer_bytes);
  EmitSize(out, "max_connection_buffer_bytes", limits.max_connection_buffer_bytes);
  Emit(out, "max_query_params", limits.max_query_params);
  Emit(out, "max_pipelined_requests", limits.max_pipelined_requests);
  Emit(out, "max_connections", limits.max_connections);
  Emit(out, "max_in_flight_requests", limits.max_in_flight_requests);
  EmitSize(out, "max_stream_buffer_bytes", limits.max_stream_buffer_bytes);
  EmitSize(out, "stream_window_bytes", limits.stream_window_bytes);
  EmitSize(out, "max_streamed_request_body_bytes", limits.max_streamed_request_body_bytes);
  out << YAML::EndMap;

  const CompressionConfig& compression = config.compression;
  EmitKey(out, "compression");
  out << YAML::BeginMap;
  Emit(out, "enabled", compression.enabled);
  EmitSize(out, "min_length", compression.min_length);
  Emit(out, "level", compression.level);
  EmitStringList(out, "types", compression.types);
  Emit(out, "decode_requests", compression.decode_requests);
  EmitSize(out, "max_decoded_request_body_bytes", compression.max_decoded_request_body_bytes);
  Emit(out, "max_request_decoding_ratio", compression.max_request_decoding_ratio);
  out << YAML::EndMap;

  const TimeoutsConfig& timeouts = config.timeouts;
  EmitKey(out, "timeouts");
  out << YAML::BeginMap;
  EmitDuration(out, "idle", timeouts.idle);
  EmitDuration(out, "request_read", timeouts.request_read);
  EmitDuration(out, "response_write", timeouts.response_write);
  EmitDuration(out, "upstream_default", timeouts.upstream_default);
  EmitDuration(out, "max_upstream", timeouts.max_upstream);
  EmitDuration(out, "drain", timeouts.drain);
  EmitDuration(out, "retry_after", timeouts.retry_after);
  out << YAML::EndMap;

  EmitKey(out, "metadata");
  out << YAML::BeginMap;
  EmitStringList(out, "forward_request_trailers", config.metadata.forward_request_trailers);
  EmitStringList(out, "unprefixed_response_metadata", config.metadata.unprefixed_response_metadata);
  out << YAML::EndMap;

  EmitKey(out, "streaming");
  out << YAML::BeginMap;
  EmitString(out, "json_format", config.streaming.json_format);
  EmitDuration(out, "sse_heartbeat_interval", config.streaming.sse_heartbeat_interval);
  out << YAML::EndMap;

  const CorsConfig& cors = config.cors;
  EmitKey(out, "cors");
  out << YAML::BeginMap;
  EmitStringList(out, "allow_origins", cors.allow_origins);
  EmitStringList(out, "allow_methods", cors.allow_methods);
  EmitStringList(out, "allow_headers", cors.allow_headers);
  EmitStringList(out, "expose_headers", cors.expose_headers);
  EmitDuration(out, "max_age", cors.max_age);
  Emit(out, "allow_credentials", cors.allow_credentials);
  out << YAML::EndMap;

  EmitKey(out, "schema");
  out << YAML::BeginMap;
  EmitDuration(out, "refresh_interval", config.schema.refresh_interval);
  Emit(out, "refresh_on_reconnect", config.schema.refresh_on_reconnect);
  out << YAML::EndMap;

  EmitKey(out, "grpc_web");
  out << YAML::BeginMap;
  Emit(out, "enabled", config.grpc_web.enabled);
  out << YAML::EndMap;

  const OpenApiConfig& openapi = config.openapi;
  EmitKey(out, "openapi");
  out << YAML::BeginMap;
  EmitString(out, "path", openapi.path);
  Emit(out, "on_listener", openapi.on_listener);
  EmitString(out, "title", openapi.title);
  EmitString(out, "version", openapi.version);
  EmitStringList(out, "servers", openapi.servers);
  out << YAML::EndMap;

  const LoggingConfig& logging = config.logging;
  EmitKey(out, "logging");
  out << YAML::BeginMap;
  EmitString(out, "level", logging.level);
  Emit(out, "access_log", logging.access_log);
  Emit(out, "access_log_sample_rate", FormatDouble(logging.access_log_sample_rate));
  EmitString(out, "access_log_path", logging.access_log_path);
  out << YAML::EndMap;

  const AutoscalingConfig& autoscaling = config.autoscaling;
  EmitKey(out, "autoscaling");
  out << YAML::BeginMap;
  EmitString(out, "external_scaler_address", autoscaling.external_scaler_address);
  EmitDuration(out, "sample_interval", autoscaling.sample_interval);
  EmitKey(out, "windows");
  out << YAML::Flow << YAML::BeginSeq;
  for (Duration window : autoscaling.windows) out << FormatDuration(window);
  out << YAML::EndSeq;
  Emit(out, "capacity", autoscaling.capacity);
  EmitString(out, "worker_admin", autoscaling.worker_admin);
  EmitDuration(out, "worker_timeout", autoscaling.worker_timeout);
  EmitDuration(out, "stream_interval", autoscaling.stream_interval);
  out << YAML::EndMap;

  Emit(out, "threads", config.threads);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace tipperary::config
