// The proxy's metrics: every family it exports, declared in one place and registered once.
//
// Names follow Prometheus conventions (base units, _total for counters). `route` is always a
// route template such as "POST /v1/{parent=shelves/*}/things" (bounded cardinality), never the
// raw path; requests that match no route use route="unmatched".
#pragma once

#include "tipperary/metrics/builder.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::proxy {

struct ProxyStats {
  metrics::Family<metrics::Counter>* http_requests;         // {route, method, code}
  metrics::Family<metrics::Histogram>* http_duration;       // {route}
  metrics::Family<metrics::Gauge>* http_in_flight;          // {route}
  metrics::Family<metrics::Counter>* http_request_bytes;    // {route}
  metrics::Family<metrics::Counter>* http_response_bytes;   // {route}
  metrics::Family<metrics::Counter>* upstream_requests;     // {upstream, grpc_code}
  metrics::Family<metrics::Histogram>* upstream_duration;   // {upstream}
  metrics::Family<metrics::Gauge>* upstream_connections;    // {upstream, state}
  metrics::Family<metrics::Counter>* upstream_connects;     // {upstream, result}
  metrics::Family<metrics::Counter>* upstream_goaways;      // {upstream}
  metrics::Family<metrics::Gauge>* http_connections;        // {listener}
  metrics::Family<metrics::Gauge>* draining;                // {}
  metrics::Family<metrics::Gauge>* schema_loaded;           // {}
  metrics::Family<metrics::Gauge>* build_info;              // {version}
  // Autoscaling signals (AutoscalingRuntime), refreshed every sample_interval.
  metrics::Family<metrics::Gauge>* autoscaling_rate;        // {route, window}
  metrics::Family<metrics::Gauge>* autoscaling_saturation;  // {}
  metrics::Family<metrics::Gauge>* autoscaling_capacity;    // {}
  metrics::Family<metrics::Gauge>* autoscaling_worker_up;           // {}
  metrics::Family<metrics::Gauge>* autoscaling_worker_queue_depth;  // {}
  metrics::Family<metrics::Gauge>* autoscaling_worker_batch_fill;   // {}

  static ProxyStats Register(metrics::Registry& registry);
};

}  // namespace tipperary::proxy
