// The upstream client's options for one configured upstream: the one place where the config's
// upstreams[] section becomes upstream::UpstreamOptions (each event loop builds its own cluster
// from it, at start and when a reload changes the upstream).
//
//   upstream::UpstreamOptions options = UpstreamOptionsFor(config.upstreams[0]);
//   // A route's own retry policy (GrpcRequest::retry_policy), from the same config section:
//   std::shared_ptr<const upstream::RetryPolicy> policy = RetryPolicyFor(route_retry_config);
#pragma once

#include <memory>

#include "tipperary/config/proxy_config.h"
#include "tipperary/upstream/retry_policy.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::proxy {

upstream::UpstreamOptions UpstreamOptionsFor(const config::UpstreamConfig& upstream);

// The per-call part of a retry_policy section (budget_percent and min_retry_concurrency are the
// upstream's: UpstreamOptions::retry_budget).
upstream::RetryPolicy RetryPolicyFor(const config::RetryPolicyConfig& retry);

}  // namespace tipperary::proxy
