#include "proxy_stats.h"

namespace tipperary::proxy {

ProxyStats ProxyStats::Register(metrics::Registry& registry) {
  using metrics::BuildCounter;
  using metrics::BuildGauge;
  using metrics::BuildHistogram;
  ProxyStats s{};
  s.http_requests = &BuildCounter()
                         .Name("tipperary_http_requests_total")
                         .Help("HTTP requests completed, by route template, method and status.")
                         .Register(registry);
  s.http_duration = &BuildHistogram()
                         .Name("tipperary_http_request_duration_seconds")
                         .Help("Time from the request's last byte read to its response queued.")
                         .Register(registry);
  s.http_in_flight = &BuildGauge()
                          .Name("tipperary_http_requests_in_flight")
                          .Help("HTTP requests being handled, by route template.")
                          .Register(registry);
  s.http_request_bytes = &BuildCounter()
                              .Name("tipperary_http_request_bytes_total")
                              .Help("HTTP request body bytes received, by route template.")
                              .Register(registry);
  s.http_response_bytes = &BuildCounter()
                               .Name("tipperary_http_response_bytes_total")
                               .Help("HTTP response body bytes sent, by route template.")
                               .Register(registry);
  s.upstream_requests = &BuildCounter()
                             .Name("tipperary_upstream_requests_total")
                             .Help("gRPC calls made upstream, by upstream and gRPC status code.")
                             .Register(registry);
  s.upstream_duration = &BuildHistogram()
                             .Name("tipperary_upstream_request_duration_seconds")
                             .Help("gRPC call time upstream, from send to status.")
                             .Register(registry);
  s.upstream_connections = &BuildGauge()
                                .Name("tipperary_upstream_connections")
                                .Help("HTTP/2 connections to upstreams, by state.")
                                .Register(registry);
  s.upstream_connects = &BuildCounter()
                             .Name("tipperary_upstream_connect_attempts_total")
                             .Help("Upstream connection attempts, by result.")
                             .Register(registry);
  s.upstream_goaways = &BuildCounter()
                            .Name("tipperary_upstream_goaways_total")
                            .Help("GOAWAY frames received from upstreams.")
                            .Register(registry);
  s.http_connections = &BuildGauge()
                            .Name("tipperary_http_connections")
                            .Help("Open HTTP/1.1 client connections, by listener.")
                            .Register(registry);
  s.draining = &BuildGauge()
                    .Name("tipperary_draining")
                    .Help("1 while the proxy drains for shutdown, else 0.")
                    .Register(registry);
  s.schema_loaded = &BuildGauge()
                         .Name("tipperary_schema_loaded")
                         .Help("1 once descriptors are loaded and routes built, else 0.")
                         .Register(registry);
  s.build_info = &BuildGauge()
                      .Name("tipperary_build_info")
                      .Help("Always 1; the version is a label.")
                      .Register(registry);
  s.autoscaling_rate = &BuildGauge()
                          .Name("tipperary_autoscaling_request_rate")
                          .Help("Completed requests per second over a sliding window, by route "
                                "template and window.")
                          .Register(registry);
  s.autoscaling_saturation = &BuildGauge()
                                 .Name("tipperary_autoscaling_saturation")
                                 .Help("Requests in flight divided by autoscaling.capacity.")
                                 .Register(registry);
  s.autoscaling_capacity = &BuildGauge()
                               .Name("tipperary_autoscaling_capacity")
                               .Help("In-flight requests per replica that make saturation 1.")
                               .Register(registry);
  s.autoscaling_worker_up = &BuildGauge()
                                .Name("tipperary_autoscaling_worker_up")
                                .Help("1 when the last poll of the worker's admin port worked.")
                                .Register(registry);
  s.autoscaling_worker_queue_depth =
      &BuildGauge()
           .Name("tipperary_autoscaling_worker_queue_depth")
           .Help("Texts queued in the worker's batcher, as of the last poll.")
           .Register(registry);
  s.autoscaling_worker_batch_fill =
      &BuildGauge()
           .Name("tipperary_autoscaling_worker_batch_fill")
           .Help("How full the worker's batches were over the first rate window (0..1).")
           .Register(registry);
  return s;
}

}  // namespace tipperary::proxy
