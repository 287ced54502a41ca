// What every event loop of one proxy process shares: the config, the metrics, the drain flag.
// Everything here is immutable after start, atomic, or guarded; the configuration is replaced
// whole by a reload (ProxyServer::Reload) and read as a reference-counted snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "access_log.h"
#include "proxy_stats.h"
#include "tipperary/config/proxy_config.h"
#include "tipperary/metrics/registry.h"

namespace tipperary::proxy {

struct SharedState {
  // Any thread: the configuration in effect now, and the hash of its dump (config::ConfigHash).
  std::shared_ptr<const config::ProxyConfig> Config() const {
    absl::MutexLock lock(&config_mu);
    return config;
  }
  std::string ConfigHash() const {
    absl::MutexLock lock(&config_mu);
    return config_hash;
  }
  void SetConfig(std::shared_ptr<const config::ProxyConfig> c, std::string hash) {
    absl::MutexLock lock(&config_mu);
    config = std::move(c);
    config_hash = std::move(hash);
  }

  mutable absl::Mutex config_mu;
  std::shared_ptr<const config::ProxyConfig> config ABSL_GUARDED_BY(config_mu);
  std::string config_hash ABSL_GUARDED_BY(config_mu);
  metrics::Registry registry;
  ProxyStats stats;
  std::atomic<bool> draining{false};
  std::atomic<bool> schema_loaded{false};
  // The schema served now (/readyz, metrics): its generation (1 = the first), when it was last
  // loaded or confirmed unchanged (steady clock, ns), and its digest (guarded: a string).
  std::atomic<uint64_t> schema_generation{0};
  std::atomic<int64_t> schema_checked_ns{0};
  mutable absl::Mutex schema_mu;
  std::string schema_digest ABSL_GUARDED_BY(schema_mu);
  std::string schema_last_error ABSL_GUARDED_BY(schema_mu);  // Of the last failed refresh.
  std::atomic<int64_t> in_flight{0};  // Requests being handled, all loops together.
  std::chrono::steady_clock::time_point start_time = std::chrono::steady_clock::now();
};

}  // namespace tipperary::proxy
