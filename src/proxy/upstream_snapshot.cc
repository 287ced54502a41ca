#include "upstream_snapshot.h"

namespace tipperary::proxy {

UpstreamSnapshot& UpstreamSnapshot::operator+=(const UpstreamSnapshot& other) {
  connecting += other.connecting;
  ready += other.ready;
  draining += other.draining;
  backoff += other.backoff;
  requests_active += other.requests_active;
  retries_active += other.retries_active;
  endpoints_ejected += other.endpoints_ejected;
  connects += other.connects;
  connect_failures += other.connect_failures;
  goaways += other.goaways;
  retry_budget_exhausted += other.retry_budget_exhausted;
  ejections += other.ejections;
  panic_routed += other.panic_routed;
  overflow_requests += other.overflow_requests;
  overflow_pending += other.overflow_pending;
  hung_connections += other.hung_connections;
  ping_timeouts += other.ping_timeouts;
  health_checks += other.health_checks;
  health_check_failures += other.health_check_failures;
  for (const auto& [reason, count] : other.retries_by_reason) retries_by_reason[reason] += count;
  for (const auto& [name, endpoint] : other.endpoints) {
    Endpoint& mine = endpoints[name];
    mine.outstanding += endpoint.outstanding;
    mine.threads += endpoint.threads;
    mine.threads_serving += endpoint.threads_serving;
  }
  return *this;
}

UpstreamSnapshot& UpstreamSnapshot::operator+=(const upstream::UpstreamCluster::Stats& s) {
  UpstreamSnapshot snap;
  snap.connecting = s.connecting;
  snap.ready = s.ready;
  snap.draining = s.draining;
  snap.backoff = s.backoff;
  snap.requests_active = s.requests_active;
  snap.retries_active = s.retries_active;
  snap.endpoints_ejected = s.endpoints_ejected;
  snap.connects = s.connects_total;
  snap.connect_failures = s.connect_failures_total;
  snap.goaways = s.goaways_total;
  snap.retry_budget_exhausted = s.retry_budget_exhausted_total;
  snap.ejections = s.ejections_total;
  snap.panic_routed = s.panic_routed_total;
  snap.overflow_requests = s.overflow_requests_total;
  snap.overflow_pending = s.overflow_pending_total;
  snap.hung_connections = s.hung_connections_total;
  snap.ping_timeouts = s.keepalive_timeouts_total;
  snap.health_checks = s.health_checks_total;
  snap.health_check_failures = s.health_check_failures_total;
  snap.retries_by_reason = s.retries_by_reason;
  for (const upstream::EndpointStatus& e : s.endpoints) {
    Endpoint& endpoint = snap.endpoints[e.endpoint];
    endpoint.outstanding += e.outstanding;
    endpoint.threads = 1;
    endpoint.threads_serving = e.health == upstream::EndpointHealth::kServing && !e.ejected ? 1 : 0;
  }
  return *this += snap;
}

UpstreamSnapshot UpstreamSnapshot::Totals() const {
  UpstreamSnapshot totals = *this;
  totals.connecting = totals.ready = totals.draining = totals.backoff = 0;
  totals.requests_active = totals.retries_active = totals.endpoints_ejected = 0;
  totals.endpoints.clear();
  return totals;
}

}  // namespace tipperary::proxy
