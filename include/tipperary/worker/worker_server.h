// tipperary-worker's server: the gRPC EmbeddingService (plus grpc.health.v1 and server
// reflection v1 and v1alpha) in front of one dynamic batcher and `instances` encoders per
// configured model, and an HTTP/1.1 admin port (/healthz, /readyz, /metrics, /autoscaling,
// /config, POST /reload).
//
// Lifecycle: Start() binds both ports (health NOT_SERVING, requests UNAVAILABLE); LoadModels()
// loads and warms every model, sends one Embed per `warmup: all` model through its own gRPC
// port (warmup_request_timeout), then health turns SERVING and "ready" is logged; Shutdown()
// drains: NOT_SERVING at once, new requests UNAVAILABLE, queued work finishes within
// config.drain, then the gRPC server shuts down. Run() does all of it around SIGTERM/SIGINT,
// and reloads the config on SIGHUP. Reload() (and SIGHUP, POST /reload) re-reads the source's
// file and applies what can change live (config_reloader.h; docs/operations.md).
//
//   absl::StatusOr<std::unique_ptr<WorkerServer>> server = WorkerServer::Create(config);
//   if (absl::Status s = (*server)->Start(); !s.ok()) ...
//   if (absl::Status s = (*server)->LoadModels(); !s.ok()) ...
//   ... clients use (*server)->grpc_address() ...
//   (*server)->Shutdown();
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/config/reload_report.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/worker/config_check.h"

namespace tipperary::metrics {
class Registry;
}  // namespace tipperary::metrics

namespace tipperary::worker {

class WorkerServer {
 public:
  // Validates the addresses; binds nothing yet. `source` is where `config` came from: reloads
  // read it again (none: a reload is rejected).
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Create(config::WorkerConfig config,
                                                              WorkerConfigSource source = {});
  ~WorkerServer();  // Shutdown() if still running.

  WorkerServer(const WorkerServer&) = delete;
  WorkerServer& operator=(const WorkerServer&) = delete;

  // Binds and starts the gRPC server and the admin listener; logs a "listening" line for each
  // ("name": "grpc" / "admin") with the real port.
  absl::Status Start();
  // Loads and warms up every model; then SERVING and {"msg":"ready"}. Call once, after Start().
  absl::Status LoadModels();
  // Drains and stops (see above). Idempotent; blocks until the gRPC server has shut down.
  void Shutdown();
  // A config reload, as SIGHUP and POST /reload make it, once it is done; ABORTED while another
  // runs, UNAVAILABLE once shutting down, FAILED_PRECONDITION before LoadModels().
  absl::StatusOr<config::ReloadReport> Reload();

  // Start, LoadModels, then waits for SIGTERM/SIGINT and shuts down; a second signal exits at
  // once. Returns the process exit status (0 after a clean drain).
  int Run();

  // "127.0.0.1:PORT" (the bound port) or "unix:/path".
  std::string grpc_address() const;
  // The admin listener's "host:port".
  std::string admin_address() const;
  bool ready() const;
  // ConfigHash of the configuration in effect (as GET /config shows it).
  std::string config_hash() const;
  metrics::Registry& registry();

 private:
  class Impl;
  explicit WorkerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tipperary::worker
