// A pool of HTTP/2 connections to one gRPC upstream, for one event loop: h2c (prior knowledge)
// over TCP or unix sockets, or HTTP/2 over TLS (ALPN "h2") when UpstreamOptions::tls is set.
//
// The proxy runs N threads, each with its own io_context, and creates one UpstreamCluster per
// upstream per thread: everything in a cluster runs on that io_context's thread, with no locks.
// Calls are multiplexed over the pool (a new connection only when the open ones have no free
// stream), queued while a connection is being established, and fail fast with UNAVAILABLE while
// every endpoint is backing off after a failed connect.
//
// Resilience, all per cluster (so per proxy thread):
// - Load balancing across endpoints: power of two choices on outstanding requests (or
//   round-robin), only over the endpoints that are healthy and not ejected, unless fewer than
//   health_check.panic_threshold_percent of them are (then over all: Envoy's panic mode).
// - Active health checking per endpoint with grpc.health.v1 (Watch, or Check on an interval
//   where Watch is UNIMPLEMENTED), over the endpoint's own connection (HealthChecker).
// - Outlier ejection after consecutive failures (OutlierDetector).
// - Hung connections: a PING with a short ack timeout once requests have waited for
//   hung_detection.ping_after with nothing received; no ack closes the connection.
// - Retries (RetryPolicy) within a retry budget, and circuit breakers whose overflow fails the
//   call at once with UNAVAILABLE and a retry-after trailer.
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tipperary/common/endpoint.h"
#include "tipperary/upstream/grpc_call.h"
#include "tipperary/upstream/retry_policy.h"
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

enum class LoadBalancing {
  kPowerOfTwoChoices,  // Two random endpoints, the one with fewer outstanding requests.
  kRoundRobin,
};

struct HealthCheckOptions {
  // How often Check runs, and how long a failed Watch waits before it is opened again;
  // 0 = no health checking (every endpoint counts as healthy).
  std::chrono::nanoseconds interval{0};
  std::chrono::nanoseconds timeout = std::chrono::seconds(1);  // Per Check.
  std::string service;  // The service asked about; "" = the server as a whole.
  // Fewer healthy (and not ejected) endpoints than this percentage: route to all of them.
  // 0 = never.
  uint32_t panic_threshold_percent = 50;
};

// Ejection n of an endpoint lasts base_ejection_time * 2^(n-1), at most max_ejection_time; n
// drops by one for each base_ejection_time the endpoint spends without being ejected.
struct OutlierDetectionOptions {
  // Attempts in a row that ended with UNAVAILABLE, a reset or broken stream, or a per-try
  // timeout; 0 = no outlier detection.
  uint32_t consecutive_failures = 5;
  std::chrono::nanoseconds base_ejection_time = std::chrono::seconds(30);
  std::chrono::nanoseconds max_ejection_time = std::chrono::seconds(300);
  // At most this share of the endpoints is ejected at once (but always one may be).
  uint32_t max_ejection_percent = 50;
};

// A hung endpoint (accepts, never answers: a stopped process) is found by an HTTP/2 PING sent
// once a request has waited ping_after with nothing received on its connection (at most two
// per such silence, so that gRPC servers' ping policing never counts three strikes); no ack
// within ping_timeout closes the connection: requests not yet sent move to another endpoint,
// sent ones fail with UNAVAILABLE (which the retry policy retries for idempotent methods).
struct HungDetectionOptions {
  std::chrono::nanoseconds ping_after = std::chrono::milliseconds(500);  // 0 = off.
  std::chrono::nanoseconds ping_timeout = std::chrono::seconds(1);
};

// Per cluster, so per proxy thread. Over either limit a call fails at once with UNAVAILABLE and
// a "retry-after" trailer (the proxy's 503 with Retry-After).
struct CircuitBreakerOptions {
  uint64_t max_requests = 0;              // Calls in progress; 0 = unlimited.
  uint64_t max_pending_requests = 10000;  // Calls waiting for a stream.
  std::chrono::seconds retry_after = std::chrono::seconds(1);
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
  std::optional<UpstreamTlsOptions> tls;      // Unset: h2c.
  LoadBalancing load_balancing = LoadBalancing::kPowerOfTwoChoices;
  HealthCheckOptions health_check;
  OutlierDetectionOptions outlier_detection;
  HungDetectionOptions hung_detection;
  RetryPolicy retry_policy;  // For calls whose GrpcRequest::retry_policy is null.
  RetryBudget retry_budget;
  CircuitBreakerOptions circuit_breakers;
};

enum class EndpointHealth {
  kUnknown,     // Health checking has not answered yet (counts as unhealthy for routing).
  kServing,     // SERVING, the server has no health service, or health checking is off.
  kNotServing,  // Anything else, or the endpoint cannot be reached.
};

// One endpoint as the cluster sees it.
struct EndpointStatus {
  std::string endpoint;  // As configured ("10.0.0.1:50051", "unix:/run/w.sock").
  EndpointHealth health = EndpointHealth::kUnknown;
  std::string health_detail;   // Why not serving ("health NOT_SERVING", "connect failed: ...").
  bool ejected = false;        // By outlier detection, right now.
  uint32_t times_ejected = 0;  // The ejection multiplier (decays while not ejected).
  uint64_t outstanding = 0;    // Requests on its streams now (health checks not counted).
  bool connected = false;      // Has a connection that completed the handshake.
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

  // Every endpoint's health, ejection and load, in configuration order.
  std::vector<EndpointStatus> Endpoints() const;

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
    uint64_t pings_sent_total = 0;          // Keepalive and hung-detection PINGs.
    uint64_t keepalive_timeouts_total = 0;  // Connections closed for a missing PING ack.
    uint64_t retries_total = 0;             // Every retry: both kinds (RetryPolicy), all reasons.
    uint64_t keepalive_interval_ms = 0;     // Doubles on each GOAWAY(ENHANCE_YOUR_CALM).

    uint64_t requests_active = 0;  // Calls in progress (pending, on a stream or in backoff).
    // Retries by reason: "unprocessed" (never reached the application: refused, GOAWAY,
    // connection lost before sending) or the code that ended a possibly processed attempt
    // ("unavailable", "deadline_exceeded", ...). Sums to retries_total.
    std::map<std::string, uint64_t> retries_by_reason;
    uint64_t retries_active = 0;                // Calls retrying a possibly processed attempt.
    uint64_t retry_budget_exhausted_total = 0;  // Retries the budget refused.
    uint64_t hung_connections_total = 0;        // Closed for a PING unanswered while calls waited.
    uint64_t ejections_total = 0;               // Outlier ejections.
    uint32_t endpoints_ejected = 0;             // Now.
    uint32_t endpoints_healthy = 0;             // Serving and not ejected, now.
    uint64_t panic_routed_total = 0;  // Calls placed while too few endpoints were healthy.
    // Calls failed at once by a circuit breaker: max_requests, max_pending_requests.
    uint64_t overflow_requests_total = 0;
    uint64_t overflow_pending_total = 0;
    uint64_t health_checks_total = 0;          // Check calls and Watch streams opened.
    uint64_t health_check_failures_total = 0;  // Of those, ended by an error (not UNIMPLEMENTED).
    std::vector<EndpointStatus> endpoints;     // As Endpoints().
  };
  Stats GetStats() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace tipperary::upstream
