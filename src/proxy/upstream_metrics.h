// Exports the upstream clusters' state (UpstreamSnapshot, summed over proxy threads) into the
// proxy's stats table at scrape time. Totals become counter increments (what grew since the
// last scrape), so a reload that replaces a cluster never makes a counter go down; endpoints a
// reload removed lose their series.
//
//   UpstreamMetrics metrics(&stats);
//   registry.AddCollectHook([&] { metrics.Export(SumOverLoops()); });
#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "proxy_stats.h"
#include "upstream_snapshot.h"

namespace tipperary::proxy {

class UpstreamMetrics {
 public:
  explicit UpstreamMetrics(ProxyStats* stats) : stats_(stats) {}
  // From the registry's collect hook; two scrapes at once take turns.
  void Export(const std::map<std::string, UpstreamSnapshot>& upstreams) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ProxyStats* stats_;
  absl::Mutex mu_;
  // Totals as of the last export.
  std::map<std::string, UpstreamSnapshot> exported_ ABSL_GUARDED_BY(mu_);
  // (upstream, endpoint) pairs with series.
  std::set<std::pair<std::string, std::string>> endpoint_series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tipperary::proxy
