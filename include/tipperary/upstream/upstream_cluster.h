// A pool of HTTP/2 connections to one gRPC upstream, for one event loop: h2c (prior knowledge)
// over TCP or unix sockets, or HTTP/2 over TLS (ALPN "h2") when UpstreamOptions::tls is set.
//
// The proxy runs N threads, each with its own io_context, and creates one UpstreamCluster per
// upstream per thread: everything in a cluster runs on that io_context's thread, with no locks.
// Calls are multiplexed over the pool (round-robin across endpoints, a new connection only when
// the open ones have no free stream), queued while a connection is being established, and fail
// fast with UNAVAILABLE while every endpoint is backing off after a failed connect.
//
//   UpstreamCluster cluster(ioc, {.name = "worker", .endpoints =
//   {*ParseEndpoint("unix:/w.sock")}}); cluster.Start(); cluster.Call({.path = "/pkg.Svc/Method",
//   .message = bytes, .timeout = 2s},
//                {.on_message = [](std::string m) {...},
//                 .on_done = [](GrpcResult r) {...}});
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tipperary/common/endpoint.h"
#include "tipperary/upstream/grpc_call.h"
#include "tipperary/upstream/upstream_client.h"

namespace tipperary::upstream {

// TLS to an upstream's endpoints (host:port ones only). A connection checks (stat) the files when
// it connects and reloads them when they changed, so renewed certificates are used from the next
// connection on.
struct UpstreamTlsOptions {
  std::string ca_file;    // PEM bundle the server's certificate must chain to; "" = the system's.
  std::string cert_file;  // PEM client certificate chain for mTLS, with key_file; "" = none.
  std::string key_file;
  // SNI and the name the server's certificate must carry; "" = the endpoint's host (for an IP
  // address: no SNI, and the certificate must carry that IP).
  std::string server_name;
  bool verify = true;               // false: any server certificate is accepted.
  std::string min_version = "1.2";  // "1.2" or "1.3".
};

struct UpstreamOptions {
  std::string name;
  std::vector<common::Endpoint> endpoints;
  // TCP connect, TLS handshake and the server's first SETTINGS, together.
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  std::chrono::nanoseconds keepalive_interval = std::chrono::seconds(30);  // 0 = no PINGs.
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds reconnect_backoff_initial = std::chrono::milliseconds(100);
  std::chrono::nanoseconds reconnect_backoff_max = std::chrono::seconds(5);
  uint32_t max_concurrent_streams = 1000;     // Per connection; the server's SETTINGS also applies.
  uint32_t connections_per_endpoint = 1;      // More are opened only when streams are exhausted.
  uint64_t max_response_bytes = 64ull << 20;  // Per message; larger -> RESOURCE_EXHAUSTED.
  uint32_t initial_window_size = 1u << 20;    // Stream and connection receive windows.
  uint64_t max_pending_calls = 10000;         // Calls waiting for a stream; beyond -> UNAVAILABLE.
  std::optional<UpstreamTlsOptions> tls;      // Unset: h2c.
};

class UpstreamCluster final : public UpstreamClient {
 public:
  UpstreamCluster(boost::asio::io_context& ioc, UpstreamOptions options);
  // Drops unfinished calls WITHOUT calling their handlers and closes every connection.
  // Must run on the io_context thread (or after the io_context stopped), never from a handler.
  ~UpstreamCluster() override;

  UpstreamCluster(const UpstreamCluster&) = delete;
  UpstreamCluster& operator=(const UpstreamCluster&) = delete;

  // Connects eagerly to every endpoint and keeps reconnecting with backoff. Call() starts the
  // cluster if this was not called.
  void Start();

  // On the io_context thread. Handlers run on the same thread, never from inside Call() (an
  // immediate failure is posted). on_headers is not called for trailers-only responses: their
  // metadata goes to GrpcResult::trailers.
  CallId Call(GrpcRequest request, CallHandlers handlers) override;

  // Sends RST_STREAM(CANCEL) if the call reached a connection; on_done(kCancelled) is posted.
  // Unknown or finished ids are ignored.
  void Cancel(CallId id) override;

  bool Send(CallId id, std::string framed_messages) override;
  void CloseSend(CallId id) override;
  size_t send_buffered(CallId id) const override;
  void PauseReceive(CallId id, bool paused) override;

  // Graceful: fails queued calls, lets in-flight calls finish, then sends GOAWAY and closes.
  // Later calls fail with UNAVAILABLE.
  void Shutdown();

  // A connection has completed the HTTP/2 handshake and accepts new streams.
  bool HasReadyConnection() const;

  struct Stats {
    uint32_t connecting = 0;  // Connections: connect, TLS handshake or waiting for SETTINGS.
    uint32_t ready = 0;
    uint32_t draining = 0;                // GOAWAY received or sent: no new streams.
    uint32_t backoff = 0;                 // Endpoints waiting to reconnect after a failure.
    uint64_t connects_total = 0;          // Connections that became ready.
    uint64_t connect_failures_total = 0;  // Attempts that failed before becoming ready (TLS too).
    uint64_t goaways_total = 0;           // Connections that received a GOAWAY.
    uint64_t streams_active = 0;
    uint64_t calls_pending = 0;
    uint64_t pings_sent_total = 0;          // Keepalive PINGs.
    uint64_t keepalive_timeouts_total = 0;  // Connections closed for a missing PING ack.
    uint64_t retries_total = 0;  // Calls moved to another connection (GOAWAY, REFUSED_STREAM).
    uint64_t keepalive_interval_ms = 0;  // Doubles on each GOAWAY(ENHANCE_YOUR_CALM).
  };
  Stats GetStats() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tipperary::upstream
