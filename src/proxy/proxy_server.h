// tipperary-proxy as a whole: N event loops, each with its own listeners and upstream pools,
// the admin port, schema loading (files or server reflection), live reload of the config file
// (SIGHUP, POST /reload) and graceful shutdown.
//
//   auto server = ProxyServer::Create(std::move(config), "proxy.yaml");   // binds every port
//   if (!server.ok()) { ... }
//   return (*server)->Run();   // until SIGTERM/SIGINT and the drain; returns the exit code
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "admin_handler.h"
#include "autoscaling_runtime.h"
#include "event_loop.h"
#include "reload_plan.h"
#include "schema_fingerprint.h"
#include "shared_state.h"
#include "tipperary/config/reload_report.h"
#include "tipperary/http1/http_listener.h"
#include "upstream_health.h"

namespace tipperary::proxy {

class ProxyServer {
 public:
  // `config_path`: the file `config` came from, read again by a reload.
  static absl::StatusOr<std::unique_ptr<ProxyServer>> Create(config::ProxyConfig config,
                                                             std::string config_path);
  ~ProxyServer();

  int Run();

 private:
  ProxyServer() = default;
  absl::Status Init(config::ProxyConfig config);
  absl::Status CreateListeners();
  // The HTTP listeners' options from `config` (limits, timeouts, compression, and the hooks
  // into `loop`), all but the address and TLS.
  http1::ListenerOptions HttpListenerOptions(const config::ProxyConfig& config, EventLoop* loop);
  http1::ListenerOptions AdminListenerOptions(const config::ProxyConfig& config);
  // Loop 0: re-reads config_path_, checks it as --check-config does and applies it whole, or
  // changes nothing. `trigger` ("SIGHUP", "POST /reload") is logged.
  config::ReloadReport Reload(const std::string& trigger);
  config::ReloadReport Rejected(const std::string& trigger, std::string error);
  void RecordConfig(const std::string& old_hash, const std::string& hash);
  absl::StatusOr<std::shared_ptr<AccessLog>> OpenAccessLog(const config::LoggingConfig& logging);
  void InstallCollectHook();
  void PublishRouting(std::shared_ptr<const Routing> routing);
  // Loop 0: fetch descriptors over reflection, retrying with backoff until it works (the
  // first load) or once (`refresh`: the last good schema stays if it fails).
  void FetchReflection(size_t source, std::vector<google::protobuf::FileDescriptorSet> sets,
                       bool refresh);
  void RetryReflection();
  void OnSchemaFetched(const std::vector<google::protobuf::FileDescriptorSet>& sets, bool refresh);
  // Records the schema now served (fingerprint, generation, time).
  void AcceptSchema(SchemaFingerprint fingerprint);
  // Loop 0: a refresh from reflection, unless one is running; `why` is logged.
  void RefreshSchema(const std::string& why);
  void RefreshFailed(const std::string& error);
  void ArmRefreshTimer();
  // Loop 0, every second: a reconnect or GOAWAY of a reflection upstream triggers a refresh.
  void WatchReflectionUpstreams();

  std::string config_path_;
  // The configuration in effect (loop 0's copy of shared_->Config()).
  std::shared_ptr<const config::ProxyConfig> config_;
  std::shared_ptr<AccessLog> access_log_;  // Null when off.
  std::unique_ptr<SharedState> shared_;
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::unique_ptr<AutoscalingRuntime> autoscaling_;
  std::shared_ptr<UpstreamHealth> health_;
  std::shared_ptr<const config::ProxyConfig> health_config_;  // The one health_ refers to.
  std::unique_ptr<AdminHandler> admin_;
  std::vector<google::protobuf::FileDescriptorSet> file_sets_;
  std::vector<google::protobuf::FileDescriptorSet> reflection_sets_;  // Last learnt (loop 0).
  std::vector<std::string> reflection_upstreams_;
  std::unique_ptr<boost::asio::steady_timer> reflection_timer_;
  std::chrono::milliseconds reflection_backoff_{250};
  SchemaFingerprint fingerprint_;  // Of the schema served now (loop 0).
  bool refreshing_ = false;
  std::unique_ptr<boost::asio::steady_timer> refresh_timer_;
  std::unique_ptr<boost::asio::steady_timer> watch_timer_;
  uint64_t seen_reconnects_ = 0;  // connects + GOAWAYs of the reflection upstreams on loop 0.
};

}  // namespace tipperary::proxy
