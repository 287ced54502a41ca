// The proxy's metrics: every family it exports, declared once in a stats table and registered
// together (the worker's table is src/worker/worker_stats.h).
//
// Names follow Prometheus conventions (base units, _total for counters). `route` is always a
// route template such as "POST /v1/{parent=shelves/*}/things" (bounded cardinality), never the
// raw path; requests that match no route use route="unmatched".
#pragma once

#include "tipperary/metrics/histogram.h"
#include "tipperary/metrics/stats_table.h"

namespace tipperary::proxy {

// Labels per family are in the help text; latency buckets are 0.5 ms to 30 s.
// clang-format off
#define TIPPERARY_PROXY_METRICS(COUNTER, GAUGE, HISTOGRAM)                                        \
  COUNTER(http_requests, "tipperary_http_requests_total",                                         \
          "HTTP requests completed, by route template, method and status.")                       \
  HISTOGRAM(http_duration, "tipperary_http_request_duration_seconds",                              \
            "Time from the request's last byte read to its response queued.",                     \
            ::tipperary::metrics::DefaultLatencyBuckets())                                        \
  GAUGE(http_in_flight, "tipperary_http_requests_in_flight",                                      \
        "HTTP requests being handled, by route template.")                                       \
  COUNTER(http_request_bytes, "tipperary_http_request_bytes_total",                               \
          "HTTP request body bytes received, by route template.")                                 \
  COUNTER(http_response_bytes, "tipperary_http_response_bytes_total",                             \
          "HTTP response body bytes sent, by route template.")                                    \
  COUNTER(upstream_requests, "tipperary_upstream_requests_total",                                 \
          "gRPC calls made upstream, by upstream and gRPC status code.")                          \
  HISTOGRAM(upstream_duration, "tipperary_upstream_request_duration_seconds",                      \
            "gRPC call time upstream, from send to status.",                                      \
            ::tipperary::metrics::DefaultLatencyBuckets())                                        \
  GAUGE(upstream_connections, "tipperary_upstream_connections",                                   \
        "HTTP/2 connections to upstreams, by state.")                                            \
  COUNTER(upstream_connects, "tipperary_upstream_connect_attempts_total",                         \
          "Upstream connection attempts, by result.")                                             \
  COUNTER(upstream_goaways, "tipperary_upstream_goaways_total",                                   \
          "GOAWAY frames received from upstreams.")                                               \
  /* Upstream resilience (UpstreamCluster::Stats summed over threads; UpstreamMetrics). */       \
  COUNTER(upstream_retries, "tipperary_upstream_retries_total",                                   \
          "Retries, by upstream and reason: unprocessed (never reached the application) or the " \
          "gRPC code that ended the retried attempt.")                                        \
  COUNTER(upstream_retry_budget_exhausted, "tipperary_upstream_retry_budget_exhausted_total",     \
          "Retries the retry budget refused (the failed attempt was final), by upstream.")       \
  GAUGE(upstream_retries_active, "tipperary_upstream_retries_active",                             \
        "Requests retrying a possibly processed attempt now, by upstream.")                     \
  GAUGE(upstream_requests_active, "tipperary_upstream_requests_active",                           \
        "Requests in progress (pending, on a stream or in backoff), by upstream.")              \
  COUNTER(upstream_ejections, "tipperary_upstream_ejections_total",                               \
          "Outlier ejections, by upstream.")                                                     \
  GAUGE(upstream_endpoints_ejected, "tipperary_upstream_endpoints_ejected",                       \
        "Endpoints ejected now, summed over proxy threads, by upstream.")                       \
  GAUGE(upstream_endpoint_healthy, "tipperary_upstream_endpoint_healthy",                         \
        "1 while every proxy thread sees the endpoint SERVING and not ejected, else 0.")        \
  GAUGE(upstream_endpoint_outstanding, "tipperary_upstream_endpoint_outstanding_requests",        \
        "Requests on the endpoint's streams now, by upstream and endpoint.")                    \
  COUNTER(upstream_panic_routed, "tipperary_upstream_panic_routed_total",                         \
          "Requests placed while too few endpoints were healthy (panic mode), by upstream.")     \
  COUNTER(upstream_overflows, "tipperary_upstream_circuit_breaker_overflows_total",               \
          "Requests failed at once by a circuit breaker, by upstream and limit.")                \
  COUNTER(upstream_hung_connections, "tipperary_upstream_hung_connections_total",                 \
          "Connections closed for a PING unanswered while requests waited, by upstream.")        \
  COUNTER(upstream_ping_timeouts, "tipperary_upstream_ping_timeouts_total",                       \
          "PING timeouts, keepalive and hung detection, by upstream.")                           \
  COUNTER(upstream_health_checks, "tipperary_upstream_health_checks_total",                       \
          "Health Watch streams and Checks started, and those that failed, by upstream and "    \
          "result.")                                                                            \
  GAUGE(http_connections, "tipperary_http_connections",                                           \
        "Open HTTP/1.1 client connections, by listener.")                                        \
  COUNTER(http_connections_accepted, "tipperary_http_connections_accepted_total",                 \
          "HTTP/1.1 connections accepted, by listener.")                                          \
  COUNTER(http_protocol_errors, "tipperary_http_protocol_errors_total",                           \
          "Requests the listener answered itself (framing, limits, versions, 408, request "   \
          "content codings), by listener.")                                                   \
  COUNTER(http_timeouts, "tipperary_http_timeouts_total",                                         \
          "Request-read, response-write and TLS handshake timeouts, by listener.")               \
  COUNTER(tls_handshake_failures, "tipperary_tls_handshake_failures_total",                       \
          "TLS handshakes that failed or timed out, by listener.")                               \
  COUNTER(http_compressed_responses, "tipperary_http_compressed_responses_total",                 \
          "Responses sent with a Content-Encoding the proxy applied (gzip, deflate), whole or "   \
          "streamed, by listener.")                                                           \
  COUNTER(http_compression_input_bytes, "tipperary_http_compression_input_bytes_total",           \
          "Response body bytes given to the compressor, by listener.")                          \
  COUNTER(http_compression_output_bytes, "tipperary_http_compression_output_bytes_total",         \
          "Compressed response body bytes sent (their ratio to the input is the saving), by "     \
          "listener.")                                                                         \
  COUNTER(http_decoded_request_bodies, "tipperary_http_decoded_request_bodies_total",             \
          "Request bodies sent with a Content-Encoding and decoded, by listener.")              \
  GAUGE(draining, "tipperary_draining", "1 while the proxy drains for shutdown, else 0.")         \
  GAUGE(schema_loaded, "tipperary_schema_loaded",                                                 \
        "1 once descriptors are loaded and routes built, else 0.")                               \
  GAUGE(schema_generation, "tipperary_schema_generation",                                         \
        "How many schemas have been served: 1 for the first, +1 for each that changed.")         \
  GAUGE(schema_age, "tipperary_schema_age_seconds",                                               \
        "Seconds since the schema served now was loaded (or last confirmed unchanged).")         \
  COUNTER(schema_refreshes, "tipperary_schema_refreshes_total",                                   \
          "Schema refreshes from reflection, by result: changed, unchanged or failed (the last " \
          "good schema stays).")                                                              \
  GAUGE(build_info, "tipperary_build_info", "Always 1; the version is a label.")                  \
  COUNTER(config_reloads, "tipperary_config_reload_total",                                        \
          "Configuration reloads (SIGHUP, POST /reload), by result: applied, unchanged or "     \
          "rejected (nothing changed).")                                                      \
  GAUGE(config_info, "tipperary_config_info",                                                     \
        "Always 1; hash is the SHA-256 of the configuration in effect (as /config shows it).")   \
  GAUGE(config_last_reload_success, "tipperary_config_last_reload_success_timestamp_seconds",     \
        "Unix time the configuration in effect was loaded (at start or by a reload).")          \
  /* Autoscaling signals (AutoscalingRuntime), refreshed every sample_interval. */                \
  GAUGE(autoscaling_rate, "tipperary_autoscaling_request_rate",                                   \
        "Completed requests per second over a sliding window, by route template and window.")    \
  GAUGE(autoscaling_saturation, "tipperary_autoscaling_saturation",                               \
        "Requests in flight divided by autoscaling.capacity.")                                   \
  GAUGE(autoscaling_capacity, "tipperary_autoscaling_capacity",                                   \
        "In-flight requests per replica that make saturation 1.")                                \
  GAUGE(autoscaling_worker_up, "tipperary_autoscaling_worker_up",                                 \
        "1 when the last poll of the worker's admin port worked.")                               \
  GAUGE(autoscaling_worker_queue_depth, "tipperary_autoscaling_worker_queue_depth",               \
        "Texts queued in the worker's batcher, as of the last poll.")                            \
  GAUGE(autoscaling_worker_batch_fill, "tipperary_autoscaling_worker_batch_fill",                 \
        "How full the worker's batches were over the first rate window (0..1).")                 \
  GAUGE(autoscaling_worker_backlog_seconds, "tipperary_autoscaling_worker_backlog_seconds",       \
        "Seconds of work queued in the worker (queued tokens / the tokens per second it has "     \
        "been sustaining), all models; absent while the worker does not report it.")
// clang-format on

TIPPERARY_DECLARE_METRICS_STRUCT(ProxyStats, TIPPERARY_PROXY_METRICS);

}  // namespace tipperary::proxy
