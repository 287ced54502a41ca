#include "upstream_metrics.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace tipperary::proxy {
namespace {

// Adds to the counter what the total grew by since the last export. The series exists from the
// first scrape, at 0, so that rate() and increase() see its first increment.
void Grow(metrics::Family<metrics::Counter>* family, const metrics::Labels& labels, uint64_t now,
          uint64_t& exported) {
  metrics::Counter& counter = family->Add(labels);
  if (now > exported) {
    counter.Increment(static_cast<double>(now - exported));
    exported = now;
  }
}

void Set(metrics::Family<metrics::Gauge>* family, const metrics::Labels& labels, uint64_t value) {
  family->Add(labels).Set(static_cast<double>(value));
}

}  // namespace

void UpstreamMetrics::Export(const std::map<std::string, UpstreamSnapshot>& upstreams) {
  absl::MutexLock lock(&mu_);
  std::set<std::pair<std::string, std::string>> endpoint_series;
  for (const auto& [name, snap] : upstreams) {
    const metrics::Labels up = {{"upstream", name}};
    auto with = [&name](const char* key, const std::string& value) {
      return metrics::Labels{{"upstream", name}, {key, value}};
    };
    Set(stats_->upstream_connections, with("state", "connecting"), snap.connecting);
    Set(stats_->upstream_connections, with("state", "ready"), snap.ready);
    Set(stats_->upstream_connections, with("state", "draining"), snap.draining);
    Set(stats_->upstream_connections, with("state", "backoff"), snap.backoff);
    Set(stats_->upstream_requests_active, up, snap.requests_active);
    Set(stats_->upstream_retries_active, up, snap.retries_active);
    Set(stats_->upstream_endpoints_ejected, up, snap.endpoints_ejected);

    UpstreamSnapshot& last = exported_[name];
    // connects counts the attempts that became ready; failures the others.
    Grow(stats_->upstream_connects, with("result", "success"), snap.connects, last.connects);
    Grow(stats_->upstream_connects, with("result", "failure"), snap.connect_failures,
         last.connect_failures);
    Grow(stats_->upstream_goaways, up, snap.goaways, last.goaways);
    Grow(stats_->upstream_retry_budget_exhausted, up, snap.retry_budget_exhausted,
         last.retry_budget_exhausted);
    Grow(stats_->upstream_ejections, up, snap.ejections, last.ejections);
    Grow(stats_->upstream_panic_routed, up, snap.panic_routed, last.panic_routed);
    Grow(stats_->upstream_overflows, with("limit", "max_requests"), snap.overflow_requests,
         last.overflow_requests);
    Grow(stats_->upstream_overflows, with("limit", "max_pending_requests"), snap.overflow_pending,
         last.overflow_pending);
    Grow(stats_->upstream_hung_connections, up, snap.hung_connections, last.hung_connections);
    Grow(stats_->upstream_ping_timeouts, up, snap.ping_timeouts, last.ping_timeouts);
    Grow(stats_->upstream_health_checks, with("result", "started"), snap.health_checks,
         last.health_checks);
    Grow(stats_->upstream_health_checks, with("result", "failed"), snap.health_check_failures,
         last.health_check_failures);
    for (const auto& [reason, count] : snap.retries_by_reason) {
      Grow(stats_->upstream_retries, with("reason", reason), count, last.retries_by_reason[reason]);
    }
    for (const auto& [endpoint, state] : snap.endpoints) {
      const metrics::Labels labels = {{"upstream", name}, {"endpoint", endpoint}};
      Set(stats_->upstream_endpoint_healthy, labels, state.serving() ? 1 : 0);
      Set(stats_->upstream_endpoint_outstanding, labels, state.outstanding);
      endpoint_series.emplace(name, endpoint);
    }
  }
  for (const auto& [upstream, endpoint] : endpoint_series_) {
    if (endpoint_series.contains({upstream, endpoint})) continue;
    const metrics::Labels labels = {{"upstream", upstream}, {"endpoint", endpoint}};
    stats_->upstream_endpoint_healthy->Remove(labels);
    stats_->upstream_endpoint_outstanding->Remove(labels);
  }
  endpoint_series_ = std::move(endpoint_series);
}

}  // namespace tipperary::proxy
