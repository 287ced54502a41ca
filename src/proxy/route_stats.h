// Per-route metric children, looked up once per event loop so that a request never takes the
// registry's lock, and held by the requests that record into them.
//
// A schema swap (SetRouting) forgets the old schema's entries, but a request still in flight
// holds its RouteStats by shared_ptr, so what it records into is never freed under it.
//
//   RouteStatsCache cache(stats);
//   std::shared_ptr<RouteStats> s = cache.For(route);   // nullptr route: "unmatched"
//   s->Requests(200).Increment();
#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "proxy_stats.h"
#include "tipperary/metrics/counter.h"
#include "tipperary/metrics/gauge.h"
#include "tipperary/metrics/histogram.h"
#include "tipperary/transcoder/route_table.h"

namespace tipperary::proxy {

class RouteStats {
 public:
  RouteStats(ProxyStats& stats, std::string label, std::string method);

  const std::string& label() const { return label_; }
  metrics::Counter& Requests(int http_status);  // By HTTP status, created on first use.
  metrics::Histogram& duration() const { return *duration_; }
  metrics::Gauge& in_flight() const { return *in_flight_; }
  metrics::Counter& request_bytes() const { return *request_bytes_; }
  metrics::Counter& response_bytes() const { return *response_bytes_; }

 private:
  ProxyStats& stats_;
  std::string label_;
  std::string method_;
  metrics::Histogram* duration_;
  metrics::Gauge* in_flight_;
  metrics::Counter* request_bytes_;
  metrics::Counter* response_bytes_;
  absl::flat_hash_map<int, metrics::Counter*> by_status_;
};

// One per event loop; loop thread only.
class RouteStatsCache {
 public:
  explicit RouteStatsCache(ProxyStats& stats) : stats_(stats) {}

  // The route's stats (route of the current schema), or the "unmatched" ones for nullptr.
  std::shared_ptr<RouteStats> For(const transcoder::Route* route);
  // A new schema: its routes are new objects. In-flight requests keep what they hold.
  void Clear() { by_route_.clear(); }

 private:
  ProxyStats& stats_;
  absl::flat_hash_map<const transcoder::Route*, std::shared_ptr<RouteStats>> by_route_;
  std::shared_ptr<RouteStats> unmatched_;
};

}  // namespace tipperary::proxy
