// What a reload of tipperary-proxy's configuration would change, worked out before anything
// changes (pure: unit-tested without a server). Keys that cannot change in a running process
// (addresses it is bound to, its thread count) keep their running values in the effective
// configuration and are reported as needing a restart: never half-applied.
//
//   ReloadPlan plan = PlanReload(*running, std::move(*loaded));
//   if (plan.changed.empty()) { /* unchanged */ }
//   for (const std::string& key : plan.restart_required) { ... }
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tipperary/config/proxy_config.h"

namespace tipperary::proxy {

struct ReloadPlan {
  std::shared_ptr<const config::ProxyConfig> config;  // What will be in effect.
  std::string dump;                                   // Its unredacted dump.
  std::string hash;                                   // config::ConfigHash(dump).
  std::vector<std::string> changed;                   // Keys that change live.
  std::vector<std::string> restart_required;          // Changed in the file, not applied.
  std::vector<std::string> upstream_keys;             // UpstreamKeys(*config).
};

ReloadPlan PlanReload(const config::ProxyConfig& running, config::ProxyConfig loaded);

// Whether a changed key (as config::ChangedKeys names it) needs a restart.
bool NeedsRestart(const std::string& key);

// One string per configured upstream that is equal for two configurations exactly when the
// upstream's whole section is: a reload keeps the cluster (and its connections) of an upstream
// whose key did not change.
std::vector<std::string> UpstreamKeys(const config::ProxyConfig& config);

}  // namespace tipperary::proxy
