// One upstream's state as a proxy thread sees it, in a form that sums over threads and survives
// a reload: the live cluster, the ones draining after a reload and the totals of those already
// closed. EventLoop refreshes one per upstream every 250 ms; the metrics collect hook
// (UpstreamMetrics) and the schema watcher read them from other threads.
//
//   UpstreamSnapshot all;
//   for (auto& loop : loops) all += loop->UpstreamSnapshots()["worker"];
//   all.ready;  // HTTP/2 connections ready, every thread together
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::proxy {

struct UpstreamSnapshot {
  // Now: gauges.
  uint64_t connecting = 0, ready = 0, draining = 0, backoff = 0;
  uint64_t requests_active = 0, retries_active = 0, endpoints_ejected = 0;
  // Totals: they never go down (a reaped cluster's stay in EventLoop's closed totals).
  uint64_t connects = 0, connect_failures = 0, goaways = 0;
  uint64_t retry_budget_exhausted = 0, ejections = 0, panic_routed = 0;
  uint64_t overflow_requests = 0, overflow_pending = 0;
  uint64_t hung_connections = 0, ping_timeouts = 0;
  uint64_t health_checks = 0, health_check_failures = 0;
  std::map<std::string, uint64_t> retries_by_reason;

  // Per configured endpoint, now. Threads check health on their own, so an endpoint counts as
  // serving only when every thread that knows it says so: an alert on it is never optimistic.
  struct Endpoint {
    uint64_t outstanding = 0;
    uint32_t threads = 0;          // Threads whose cluster lists the endpoint.
    uint32_t threads_serving = 0;  // Of those, seeing it SERVING and not ejected.
    bool serving() const { return threads > 0 && threads_serving == threads; }
  };
  std::map<std::string, Endpoint> endpoints;

  UpstreamSnapshot& operator+=(const UpstreamSnapshot& other);
  UpstreamSnapshot& operator+=(const upstream::UpstreamCluster::Stats& stats);
  // The totals alone (gauges zero, no endpoints): what a closed cluster leaves behind.
  UpstreamSnapshot Totals() const;
};

}  // namespace tipperary::proxy
