// The proxy's effective configuration, as loaded from YAML by LoadProxyConfig().
//
// Every limit and timeout the proxy has is a field here with its default; config/proxy.yaml
// documents each key and docs/configuration.md is the reference.
//
//   absl::StatusOr<ProxyConfig> config = LoadProxyConfigFile("/etc/tipperary/proxy.yaml");
//   if (!config.ok()) { std::cerr << config.status() << "\n"; return 1; }  // names file:line:col
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tipperary::config {

using Duration = std::chrono::nanoseconds;

struct TlsConfig {
  std::string cert;       // PEM certificate chain file.
  std::string key;        // PEM private key file (redacted by /config).
  std::string client_ca;  // PEM CA bundle; when set, client certificates are verified (mTLS).
  bool require_client_cert = true;  // With client_ca: reject clients without a certificate.
  std::string min_version = "1.2";  // "1.2" or "1.3".
};

struct ListenerConfig {
  std::string address;  // host:port; port 0 picks a free port (logged at start).
  std::optional<TlsConfig> tls;
};

struct AdminConfig {
  std::string address = "127.0.0.1:9901";
};

// One schema source: a FileDescriptorSet file, or gRPC server reflection on an upstream.
struct DescriptorSource {
  std::string path;                 // Set for a file.
  std::string reflection_upstream;  // Set for {reflection: NAME}.
  std::string location;  // "proxy.yaml:3:5: descriptors[0]" (not a key), for load errors.
};

// A schema from reflection follows its upstream: fetched again on an interval and whenever the
// reflection upstream's connection is re-established or sends GOAWAY (a restarted or upgraded
// worker), and swapped only when its digest changed. A failed refresh keeps the last good one.
struct SchemaConfig {
  Duration refresh_interval = std::chrono::seconds(30);  // 0 = only on reconnects.
  bool refresh_on_reconnect = true;
};

// Active health checking of each endpoint of an upstream with grpc.health.v1.Health: a Watch
// stream where the server supports it, else Check on `interval`. Unhealthy endpoints get no new
// requests (unless fewer than panic_threshold_percent are healthy: then all do). The proxy is
// ready only while some endpoint of some upstream answers SERVING (a worker still loading its
// model answers NOT_SERVING). An endpoint without the health service counts as serving.
struct HealthCheckConfig {
  Duration interval = std::chrono::seconds(1);  // 0 = off (every endpoint always counts).
  Duration timeout = std::chrono::seconds(1);   // Per Check.
  std::string service;  // The service name asked about; "" = the server as a whole.
  uint32_t panic_threshold_percent = 50;  // 0..100; 0 = never route to unhealthy endpoints.
};

// Ejection of an endpoint whose attempts failed (UNAVAILABLE, reset or broken streams, per-try
// timeouts) consecutive_failures times in a row: base_ejection_time * 2^(n-1) for its n-th
// ejection, at most max_ejection_time; at most max_ejection_percent of the endpoints at once.
struct OutlierDetectionConfig {
  uint32_t consecutive_failures = 5;  // 0 = off.
  Duration base_ejection_time = std::chrono::seconds(30);
  Duration max_ejection_time = std::chrono::seconds(300);
  uint32_t max_ejection_percent = 50;
};

// A connection whose requests have waited ping_after with nothing received gets an HTTP/2 PING;
// no ack within ping_timeout closes it as hung (a stopped process accepts and never answers).
struct HungDetectionConfig {
  Duration ping_after = std::chrono::milliseconds(500);  // 0 = off.
  Duration ping_timeout = std::chrono::seconds(1);
};

// Retries (upstream::RetryPolicy). Requests that never reached the application are always
// placed again; these keys govern retries of requests that may have been processed.
struct RetryPolicyConfig {
  // gRPC codes, lower snake case ("unavailable", "deadline_exceeded", ...).
  std::vector<std::string> retry_on = {"unavailable", "deadline_exceeded"};
  // Methods safe to run twice: "pkg.Service/Method", "pkg.Service/*" or "*".
  std::vector<std::string> idempotent_methods;
  uint32_t max_attempts = 3;               // 1..10, the first included.
  Duration per_try_timeout = Duration(0);  // 0 = none.
  Duration backoff_initial = std::chrono::milliseconds(25);
  Duration backoff_max = std::chrono::milliseconds(250);
  // Retries in progress stay below max(min_retry_concurrency, budget_percent% of the requests
  // in progress), per upstream and proxy thread.
  uint32_t budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
};

// Per upstream and proxy thread; over a limit the request fails at once with 503 and
// Retry-After: retry_after.
struct CircuitBreakersConfig {
  uint64_t max_requests = 0;              // Requests in progress; 0 = unlimited.
  uint64_t max_pending_requests = 10000;  // Requests waiting for a stream.
  Duration retry_after = std::chrono::seconds(1);
};

// TLS from the proxy to an upstream (its endpoints must be host:port): HTTP/2 negotiated by ALPN
// "h2", the server's certificate verified against `ca` (or the system's CA store) and the
// server name, and a client certificate for mTLS when cert and key are set.
struct UpstreamTlsConfig {
  std::string ca;    // PEM CA bundle; "" = the system's CA store.
  std::string cert;  // PEM client certificate chain (mTLS); with key, or neither.
  std::string key;   // PEM private key of cert, unencrypted (redacted by /config).
  // SNI and the name the certificate must carry; "" = each endpoint's host (for an IP address:
  // no SNI, and the certificate must carry that IP).
  std::string server_name;
  bool verify = true;               // false: any certificate is accepted (warned at start).
  std::string min_version = "1.2";  // "1.2" or "1.3".
};

struct UpstreamConfig {
  std::string name;
  std::vector<std::string> endpoints;  // "host:port" or "unix:/path".
  std::vector<std::string> services;   // Full service names; a trailing ".*" matches a package.
  Duration connect_timeout = std::chrono::seconds(2);
  Duration keepalive_interval = std::chrono::seconds(30);  // HTTP/2 PING when idle; 0 = off.
  Duration keepalive_timeout = std::chrono::seconds(10);   // PING ack deadline.
  Duration reconnect_backoff_initial = std::chrono::milliseconds(100);
  Duration reconnect_backoff_max = std::chrono::seconds(5);
  uint32_t max_concurrent_streams = 1000;     // Our own cap; the server's SETTINGS also applies.
  uint32_t connections_per_thread = 1;        // More connections once streams are exhausted.
  uint64_t max_response_bytes = 64ull << 20;  // Largest gRPC message accepted from upstream.
  uint32_t initial_window_size = 1u << 20;    // HTTP/2 stream flow-control window.
  std::string load_balancing = "p2c";         // "p2c" (power of two choices) or "round_robin".
  HealthCheckConfig health_check;
  std::optional<UpstreamTlsConfig> tls;  // Unset: h2c (HTTP/2 over plain TCP or unix sockets).
  OutlierDetectionConfig outlier_detection;
  HungDetectionConfig hung_detection;
  RetryPolicyConfig retry_policy;
  CircuitBreakersConfig circuit_breakers;
};

// A route for a method that has no google.api.http annotation, or one that overrides it.
struct RouteConfig {
  std::string method;               // HTTP method: GET, POST, PUT, PATCH, DELETE or a custom verb.
  std::string path;                 // Path template, e.g. /v1/things/{name=things/*}:run
  std::string grpc_method;          // "package.Service/Method"
  std::string body;                 // "", "*" or a field name, as in google.api.HttpRule.
  std::string response_body;        // "" or a field name.
  std::optional<Duration> timeout;  // Per-route deadline; else timeouts.upstream_default.
  // Error bodies: "google_rpc", "openai" or "tei"; "" = what the method's tipperary.api.v1.http_api
  // option says (proto/tipperary/api/v1/http_api.proto), else google_rpc.
  std::string error_format;
  // Unset = the method's http_api option, else transcoding.ignore_unknown_fields.
  std::optional<bool> ignore_unknown_fields;
  // The method is safe to run twice: a possibly processed attempt may be retried on the retry
  // policy's codes, as if the upstream's idempotent_methods named it.
  bool idempotent = false;
  // Replaces the upstream's retry policy for this route (keys left out take their defaults, as
  // Envoy's route-level retry_policy). Only the per-call keys: the budget stays the upstream's.
  std::optional<RetryPolicyConfig> retry_policy;
  // Where it was written, "proxy.yaml:12:5: routes[2]" (not a key): its problems name it.
  std::string location;
};

struct TranscodingConfig {
  bool preserve_proto_field_names = false;
  bool always_print_primitive_fields = false;
  bool enums_as_ints = false;
  bool ignore_unknown_fields = false;  // Else unknown JSON fields and query params are 400.
  // Query parameters that never bind a field (an API key, a cache buster): Envoy's
  // ignored_query_parameters. "pretty" is always one.
  std::vector<std::string> ignored_query_parameters;
  // Unknown query parameters are ignored while unknown JSON fields are still a 400 (Envoy's
  // ignore_unknown_query_parameters); ignore_unknown_fields covers both.
  bool ignore_unknown_query_parameters = false;
  bool allow_grpc_method_paths = false;  // Serve POST /package.Service/Method for every method.
  bool annotations = true;  // Route by google.api.http annotations found in the descriptors.
  // A rule that cannot be served, or two rules with the same method and template shape: with
  // false the rule is skipped (or shadowed) with a warning; with true the proxy refuses the
  // schema (at start, or from reflection) and --check-config exits 1 (for CI pipelines).
  bool strict = false;
  // A request body sent to a rule without `body`: "ignore" it (grpc-gateway) or "reject" (400).
  std::string unexpected_body = "ignore";
  // Between the values of a path variable bound to a repeated field, as protoc-gen-grpc-gateway's
  // repeated_path_param_separator: "csv" (','), "pipes" ('|'), "ssv" (' ') or "tsv" ('\t').
  std::string repeated_path_param_separator = "csv";
  // Of two rules with the same HTTP method and path shape (from the same source), which one is
  // served: "last" registered (grpc-gateway v2) or "first" (grpc-gateway v1's default mux).
  std::string duplicate_rule_wins = "last";
};

// What one client can make the proxy hold (docs/http-conformance.md).
struct LimitsConfig {
  uint64_t max_header_bytes = 16 * 1024;         // Request line + headers; over it: 431 (414).
  uint64_t max_request_body_bytes = 4ull << 20;  // Over it: 413.
  uint64_t max_chunk_extension_bytes = 1024;     // One chunk line's extensions; over it: 400.
  uint64_t max_trailer_bytes = 8 * 1024;         // A chunked body's trailer section; 431.
  // Unparsed input per connection, and the bodies of requests read ahead of their responses
  // (reading ahead pauses past it). At least each of the three limits above allows.
  uint64_t max_connection_buffer_bytes = 64 * 1024;
  uint32_t max_query_params = 1024;      // Query parameters per request; over it: 414.
  uint32_t max_pipelined_requests = 16;  // Requests read ahead of their responses per connection.
  uint32_t max_connections = 10000;      // Per listener; further accepts wait.
  uint32_t max_in_flight_requests = 0;   // Whole proxy; 0 = unlimited; over it: 503.
  // A streamed response's bytes waiting for a client that reads slower than the upstream sends;
  // past it the stream ends with RESOURCE_EXHAUSTED and the call is cancelled.
  uint64_t max_stream_buffer_bytes = 4ull << 20;
  // Flow control of streams, both ways: how much of a client stream's body is read ahead of
  // what the upstream has taken, and how far a server stream's client may fall behind before
  // the upstream's HTTP/2 window is held closed (it then waits for the client).
  uint64_t stream_window_bytes = 256 * 1024;
  // A client stream's whole body (each message is still bounded by max_request_body_bytes);
  // 0 = unbounded; over it: 413, or the stream ends with RESOURCE_EXHAUSTED.
  uint64_t max_streamed_request_body_bytes = 1ull << 30;
};

// HTTP content codings on the listeners (http1::CompressionOptions; docs/http-conformance.md).
struct CompressionConfig {
  bool enabled = true;         // gzip/deflate responses for clients that accept them.
  uint64_t min_length = 1024;  // Whole responses smaller than this are sent as they are.
  uint32_t level = 1;          // zlib level 1-9 (docs/configuration.md has the measurement).
  // Media types compressed: "type/subtype", "type/*", "type/*+suffix" (lower case).
  std::vector<std::string> types = {"application/json", "application/*+json",
                                    "application/x-ndjson", "application/openmetrics-text",
                                    "text/*"};
  bool decode_requests = true;  // Decode gzip/deflate request bodies; else 415.
  // Decoded size of a request body; over it: 413. 0 (unset) = limits.max_request_body_bytes.
  uint64_t max_decoded_request_body_bytes = 0;
  // Decoded / encoded size of a request body past 64 KiB decoded; over it: 413. 0 = off.
  uint32_t max_request_decoding_ratio = 100;
};

struct TimeoutsConfig {
  Duration idle = std::chrono::seconds(60);              // Keep-alive connection with no request.
  Duration request_read = std::chrono::seconds(30);      // Headers + body of one request; 408.
  Duration response_write = std::chrono::seconds(30);    // A write with no progress: close.
  Duration upstream_default = std::chrono::seconds(30);  // Deadline when a route sets none.
  Duration max_upstream = std::chrono::minutes(5);       // Cap on any deadline, Grpc-Timeout too.
  Duration drain = std::chrono::seconds(15);  // On SIGTERM: how long in-flight requests get.
  // Retry-After on the proxy's 429 and 503 when the upstream sends no retry-after metadata.
  Duration retry_after = std::chrono::seconds(1);
};

// HTTP headers and trailers <-> gRPC metadata beyond the fixed mapping (metadata_mapping.h).
struct MetadataConfig {
  // Request trailer fields (chunked bodies) sent upstream as metadata, by lower-case name.
  // Every other trailer field is dropped: trailers never merge into the header fields.
  std::vector<std::string> forward_request_trailers;
  // Initial response metadata keys sent as header fields of their own (lower-case) name instead
  // of grpc-gateway's Grpc-Metadata-<Key> (its WithOutgoingHeaderMatcher, as a list): by
  // default TEI's timing headers, which the worker sends on every embedding call, so that a TEI
  // client reads x-queue-time as TEI names it.
  std::vector<std::string> unprefixed_response_metadata = {
      "x-compute-type",   "x-compute-time",   "x-compute-characters",
      "x-compute-tokens", "x-total-time",     "x-tokenization-time",
      "x-queue-time",     "x-inference-time", "x-tokens-per-second"};
};

// Server streams over HTTP/1.1 (docs/streaming.md); the format is chosen per request by Accept.
struct StreamingConfig {
  // What application/json (and no Accept) gets: "array" (Envoy's: one JSON array) or
  // "grpc_gateway" (grpc-gateway's: one {"result": ...} object per line).
  std::string json_format = "array";
  // text/event-stream: a comment line after this long without an event, so that ingresses'
  // read timeouts (nginx's proxy_read_timeout is 60s) do not cut a quiet stream; 0 = off.
  Duration sse_heartbeat_interval = std::chrono::seconds(15);
};

// Cross-origin requests from browsers (docs/grpc-web.md): preflights answered by the proxy and
// the Access-Control-* headers on every response, errors included. Off while allow_origins is
// empty.
struct CorsConfig {
  // "https://app.example.com", "https://*.example.com" (any subdomain) or "*" (any origin).
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_methods = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  // Request headers a page may send; "*" allows whatever the preflight asks for.
  std::vector<std::string> allow_headers = {"content-type", "authorization", "x-grpc-web",
                                            "x-user-agent", "grpc-timeout",  "x-request-id"};
  // Response headers a page may read. "*" covers every other one (Grpc-Trailer-*,
  // Grpc-Metadata-*) for requests without credentials; the names also cover credentialed ones.
  std::vector<std::string> expose_headers = {"*", "grpc-status", "grpc-message",
                                             "grpc-status-details-bin", "x-request-id"};
  Duration max_age = std::chrono::minutes(10);  // How long a browser may cache a preflight.
  bool allow_credentials = false;  // Cookies and HTTP auth: the origin is echoed, never "*".
};

// gRPC-Web (application/grpc-web, -text) on the HTTP listeners, at the gRPC method paths.
struct GrpcWebConfig {
  bool enabled = true;
};

// The OpenAPI 3.1 document of the served routes, rendered from the live descriptors
// (docs/openapi.md).
struct OpenApiConfig {
  std::string path = "/openapi.json";     // On the admin port; "" = not served anywhere.
  bool on_listener = false;               // Also at `path` on the HTTP listeners (before routes).
  std::string title = "tipperary-proxy";  // info.title
  std::string version = "1.0.0";          // info.version: the API's version.
  std::vector<std::string> servers;       // servers[].url; empty = none (the document's origin).
};

struct LoggingConfig {
  std::string level = "info";  // debug, info, warn, error.
  bool access_log = false;
  double access_log_sample_rate = 1.0;  // Fraction of requests logged when access_log is on.
  std::string access_log_path = "-";    // "-" = stdout.
};

// Autoscaling signals computed inside the proxy (docs/autoscaling.md): windowed request rates,
// in-flight and saturation per route, the worker's queue depth and batch fill; served on the
// admin port (/autoscaling, for KEDA's metrics-api scaler), as Prometheus gauges, and by a KEDA
// external scaler (gRPC externalscaler.ExternalScaler).
struct AutoscalingConfig {
  // KEDA external scaler gRPC listener, host:port; "" = off; port 0 picks a free port.
  std::string external_scaler_address = "127.0.0.1:9903";
  Duration sample_interval = std::chrono::seconds(1);  // How often counters are sampled.
  // Rate windows; the first is the default for `rps`. Each a multiple of sample_interval.
  std::vector<Duration> windows = {std::chrono::seconds(10), std::chrono::seconds(60)};
  uint32_t capacity = 64;  // In-flight requests per replica that count as saturation 1.0.
  // The worker's admin address (host:port) for its queue depth and batch fill; "" = none.
  std::string worker_admin;
  Duration worker_timeout = std::chrono::milliseconds(500);  // Per poll of worker_admin.
  // StreamIsActive: how often activity is re-evaluated (a change is pushed at once).
  Duration stream_interval = std::chrono::seconds(1);
};

struct ProxyConfig {
  std::vector<ListenerConfig> listeners;
  AdminConfig admin;
  std::vector<DescriptorSource> descriptors;
  SchemaConfig schema;
  std::vector<UpstreamConfig> upstreams;
  std::vector<RouteConfig> routes;
  TranscodingConfig transcoding;
  LimitsConfig limits;
  CompressionConfig compression;
  TimeoutsConfig timeouts;
  MetadataConfig metadata;
  StreamingConfig streaming;
  CorsConfig cors;
  GrpcWebConfig grpc_web;
  OpenApiConfig openapi;
  LoggingConfig logging;
  AutoscalingConfig autoscaling;
  uint32_t threads = 0;     // Event-loop threads; 0 = one per core.
  std::string source_path;  // The file this was loaded from (not a key).
};

}  // namespace tipperary::config
