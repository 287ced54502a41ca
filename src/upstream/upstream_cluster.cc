#include "tipperary/upstream/upstream_cluster.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <deque>
#include <random>
#include <unordered_map>
#include <utility>

#include "health_checker.h"
#include "http2_connection.h"
#include "load_balancer.h"
#include "outlier_detector.h"
#include "tipperary/common/log.h"
#include "upstream_call.h"

namespace tipperary::upstream {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

GrpcResult MakeResult(CallOutcome outcome, absl::StatusCode code, std::string message) {
  GrpcResult result;
  result.outcome = outcome;
  result.code = code;
  result.grpc_message = std::move(message);
  result.http_status = 0;  // No HTTP answer was involved.
  return result;
}

std::string Millis(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

Clock::duration ToClock(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<Clock::duration>(d);
}

// An attempt that says something is wrong with its endpoint (outlier detection): UNAVAILABLE,
// or a stream the server reset or broke. Other answers, errors included, prove it alive.
bool IsEndpointFailure(const GrpcResult& result) {
  return result.code == absl::StatusCode::kUnavailable ||
         result.outcome == CallOutcome::kProtocolError;
}

}  // namespace

class UpstreamCluster::Impl : public std::enable_shared_from_this<UpstreamCluster::Impl>,
                              public Http2Connection::Listener,
                              public HealthChecker::Host {
 public:
  Impl(asio::io_context& ioc, UpstreamOptions options)
      : ioc_(ioc),
        options_(std::make_shared<const UpstreamOptions>(std::move(options))),
        keepalive_interval_(options_->keepalive_interval),
        outlier_(options_->outlier_detection, options_->endpoints.size()),
        balancer_(options_->load_balancing, std::random_device{}()) {
    endpoints_.resize(options_->endpoints.size());
    std::vector<std::string> labels;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      endpoints_[i].backoff_timer = std::make_unique<asio::steady_timer>(ioc_);
      labels.push_back(options_->endpoints[i].ToString());
    }
    health_ = std::make_shared<HealthChecker>(ioc_, options_->health_check, options_->name,
                                              std::move(labels), this);
  }

  void Start() {
    if (started_ || shutting_down_) return;
    started_ = true;
    for (size_t i = 0; i < endpoints_.size(); ++i) ConnectEndpoint(i);
  }

  CallId Call(GrpcRequest request, CallHandlers handlers) {
    const CallId id = next_id_++;
    auto call = std::make_shared<UpstreamCall>(id, std::move(request), std::move(handlers),
                                               options_->max_response_bytes);
    if (shutting_down_) {
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                "upstream " + options_->name + " is shutting down"));
      return id;
    }
    if (!started_) Start();
    const CircuitBreakerOptions& breakers = options_->circuit_breakers;
    if (breakers.max_requests > 0 && active_requests_ >= breakers.max_requests) {
      ++counters_.overflow_requests_total;
      Complete(call, Overflow("max_requests", breakers.max_requests, "requests in progress"));
      return id;
    }
    calls_.emplace(id, call);
    ++active_requests_;
    if (const auto& timeout = call->request().timeout) {
      if (timeout->count() <= 0) {
        Complete(call, MakeResult(CallOutcome::kDeadline, absl::StatusCode::kDeadlineExceeded,
                                  "deadline exceeded before the call"));
        return id;
      }
      call->deadline = Clock::now() + ToClock(*timeout);
      ArmDeadline(call);
    }
    Place(call);
    return id;
  }

  void Cancel(CallId id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    std::shared_ptr<UpstreamCall> call = it->second;
    ResetIfActive(*call);
    Complete(call, MakeResult(CallOutcome::kCancelled, absl::StatusCode::kCancelled,
                              "call cancelled by the client"));
  }

  bool Send(CallId id, std::string framed) {
    UpstreamCall* call = Find(id);
    if (call == nullptr || !call->request().streaming) return false;
    call->Append(std::move(framed));
    ResumeIfActive(*call);
    return true;
  }

  void CloseSend(CallId id) {
    UpstreamCall* call = Find(id);
    if (call == nullptr || !call->request().streaming) return;
    call->CloseSend();
    ResumeIfActive(*call);
  }

  size_t send_buffered(CallId id) const {
    auto it = calls_.find(id);
    return it == calls_.end() ? 0 : it->second->send_buffered();
  }

  void PauseReceive(CallId id, bool paused) {
    UpstreamCall* call = Find(id);
    if (call == nullptr || call->receive_paused == paused) return;
    call->receive_paused = paused;
    if (paused || call->phase() != UpstreamCall::Phase::kActive) return;
    if (auto connection = call->connection()) connection->UpdateReceiveWindow(call->stream_id());
  }

  void Shutdown() {
    if (shutting_down_) return;
    // The health Watch streams never end by themselves: they would hold the drain open.
    health_->Stop();
    shutting_down_ = true;
    for (EndpointState& endpoint : endpoints_) {
      endpoint.backoff_timer->cancel();
      endpoint.in_backoff = false;
    }
    const GrpcResult result = MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                         "upstream " + options_->name + " is shutting down");
    FailAllPending(result);
    std::vector<std::shared_ptr<UpstreamCall>> waiting;
    for (const auto& [id, call] : calls_) {
      if (call->phase() == UpstreamCall::Phase::kBackoff) waiting.push_back(call);
    }
    for (const auto& call : waiting) Complete(call, result);
    for (const auto& connection : AllConnections()) connection->Drain();
  }

  // The cluster is going away: no more handlers, no more I/O.
  void Destroy() {
    destroyed_ = true;
    shutting_down_ = true;
    health_->Stop();  // CancelHealthCall is a no-op now: nothing is sent.
    for (EndpointState& endpoint : endpoints_) {
      endpoint.backoff_timer->cancel();
      for (const auto& connection : endpoint.connections) connection->Abort();
      endpoint.connections.clear();
    }
    for (auto& [id, call] : calls_) {
      if (call->deadline_timer) call->deadline_timer->cancel();
      if (call->attempt_timer) call->attempt_timer->cancel();
    }
    calls_.clear();
    pending_.clear();
    pending_live_ = 0;
  }

  bool HasReadyConnection() const {
    for (const EndpointState& endpoint : endpoints_) {
      for (const auto& connection : endpoint.connections) {
        if (connection->state() == Http2Connection::State::kReady) return true;
      }
    }
    return false;
  }

  std::vector<EndpointStatus> Endpoints() const {
    const Clock::time_point now = Clock::now();
    std::vector<EndpointStatus> out;
    out.reserve(endpoints_.size());
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      EndpointStatus status;
      status.endpoint = options_->endpoints[i].ToString();
      status.health = health_->health(i);
      status.health_detail = health_->detail(i);
      status.ejected = outlier_.IsEjected(i, now);
      status.times_ejected = outlier_.times_ejected(i);
      status.outstanding = endpoints_[i].outstanding;
      status.connected = ReadyConnections(endpoints_[i]) > 0;
      out.push_back(std::move(status));
    }
    return out;
  }

  Stats GetStats() const {
    Stats stats = counters_;
    for (const EndpointState& endpoint : endpoints_) {
      if (endpoint.in_backoff) ++stats.backoff;
      for (const auto& connection : endpoint.connections) {
        switch (connection->state()) {
          case Http2Connection::State::kConnecting:
            ++stats.connecting;
            break;
          case Http2Connection::State::kReady:
            ++stats.ready;
            break;
          case Http2Connection::State::kDraining:
            ++stats.draining;
            break;
          case Http2Connection::State::kClosed:
            break;
        }
        stats.streams_active += connection->active_streams();
      }
    }
    stats.calls_pending = pending_live_;
    stats.keepalive_interval_ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(keepalive_interval_).count());
    stats.requests_active = active_requests_;
    stats.retries_active = active_retries_;
    stats.health_checks_total = health_->checks_total();
    stats.health_check_failures_total = health_->failures_total();
    stats.endpoints = Endpoints();
    for (const EndpointStatus& endpoint : stats.endpoints) {
      if (endpoint.ejected) ++stats.endpoints_ejected;
      if (endpoint.health == EndpointHealth::kServing && !endpoint.ejected) {
        ++stats.endpoints_healthy;
      }
    }
    return stats;
  }

  // Http2Connection::Listener
  void OnConnectionReady(Http2Connection* connection) override {
    const size_t index = connection->endpoint_index();
    EndpointState& endpoint = endpoints_[index];
    endpoint.consecutive_failures = 0;
    ++counters_.connects_total;
    TIPPERARY_LOG(kDebug, "upstream connection ready",
                  {{"upstream", options_->name}, {"endpoint", connection->label()}});
    health_->OnConnectionReady(index);
    DispatchPending();
  }

  void OnConnectionDraining(Http2Connection* connection, bool by_server,
                            uint32_t goaway_error_code) override {
    if (by_server) {
      ++counters_.goaways_total;
      TIPPERARY_LOG(kInfo, "upstream sent GOAWAY",
                    {{"upstream", options_->name},
                     {"endpoint", connection->label()},
                     {"error", nghttp2_http2_strerror(goaway_error_code)}});
      // ENHANCE_YOUR_CALM is how gRPC servers say "too_many_pings": ping half as often from
      // now on, as gRPC clients do, instead of being disconnected again and again.
      if (goaway_error_code == NGHTTP2_ENHANCE_YOUR_CALM && keepalive_interval_.count() > 0) {
        keepalive_interval_ =
            std::min<std::chrono::nanoseconds>(keepalive_interval_ * 2, std::chrono::hours(2));
        TIPPERARY_LOG(
            kWarn, "upstream asked for fewer pings; keepalive interval doubled",
            {{"upstream", options_->name}, {"keepalive_interval", Millis(keepalive_interval_)}});
      }
    }
    if (shutting_down_) return;
    const size_t index = connection->endpoint_index();
    if (by_server) {
      // A server shutting down waits for its open calls: the health Watch must not be one.
      if (const CallId watch = health_->call(index); watch != 0) {
        auto it = calls_.find(watch);
        if (it != calls_.end() && it->second->connection().get() == connection) {
          health_->OnWatchConnectionDraining(index);
        }
      }
    }
    // New calls go to a fresh connection while this one finishes its streams.
    if (LiveConnections(endpoints_[index]) == 0 && !endpoints_[index].in_backoff) {
      ConnectEndpoint(index);
    }
  }

  void OnConnectionClosed(Http2Connection* connection, bool was_ready,
                          const std::string& reason) override {
    const size_t index = connection->endpoint_index();
    EndpointState& endpoint = endpoints_[index];
    std::erase_if(endpoint.connections,
                  [connection](const auto& c) { return c.get() == connection; });
    if (shutting_down_) return;
    if (!was_ready) {
      ++counters_.connect_failures_total;
      ++endpoint.consecutive_failures;
      endpoint.last_error = reason;
      if (endpoint.consecutive_failures == 1) {
        TIPPERARY_LOG(kWarn, "upstream connect failed",
                      {{"upstream", options_->name}, {"error", reason}});
      } else {
        TIPPERARY_LOG(kDebug, "upstream connect failed",
                      {{"upstream", options_->name}, {"error", reason}});
      }
      if (LiveConnections(endpoint) == 0) {
        health_->OnConnectFailed(index, reason);
        ScheduleReconnect(index);
      }
    } else {
      endpoint.last_error = reason;
      TIPPERARY_LOG(kInfo, "upstream connection closed",
                    {{"upstream", options_->name}, {"reason", reason}});
      // A connection that worked is replaced at once; backoff starts if that attempt fails.
      if (LiveConnections(endpoint) == 0 && !endpoint.in_backoff) ConnectEndpoint(index);
    }
    ScheduleDispatch();
  }

  void OnCallDone(const std::shared_ptr<UpstreamCall>& call, GrpcResult result) override {
    if (call->phase() == UpstreamCall::Phase::kDone) return;
    // The server enforces the deadline we sent as grpc-timeout and may report it a moment
    // before our own timer fires: that is still this call's deadline.
    // The same for the per-try deadline, which went out as grpc-timeout too.
    constexpr auto kSlack = std::chrono::milliseconds(20);
    const int endpoint = call->attempt_endpoint;
    bool per_try_timeout = false;
    if (result.outcome == CallOutcome::kGrpc &&
        result.code == absl::StatusCode::kDeadlineExceeded) {
      const Clock::time_point now = Clock::now();
      if (call->deadline && now + kSlack >= *call->deadline) {
        result.outcome = CallOutcome::kDeadline;
      } else if (call->try_deadline && now + kSlack >= *call->try_deadline) {
        per_try_timeout = true;
        result = PerTryTimeoutResult(*call, endpoint);
      }
    }
    EndAttempt(*call);
    if (!call->internal) {
      const bool failure = per_try_timeout || IsEndpointFailure(result);
      RecordOutcome(endpoint, failure, result.outcome == CallOutcome::kGrpc && !failure);
      if (MaybeRetry(call, result, per_try_timeout)) return;
    }
    Complete(call, std::move(result));
  }

  void OnCallRefused(const std::shared_ptr<UpstreamCall>& call) override {
    if (call->phase() == UpstreamCall::Phase::kDone) return;
    EndAttempt(*call);
    if (call->internal) {  // A health check is not moved: the checker tries again later.
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                "health check was not processed"));
      return;
    }
    ++call->unprocessed_retries;
    CountRetry("unprocessed");
    call->PrepareRetry();
    call->set_phase(UpstreamCall::Phase::kPending);
    pending_.push_front(call);
    ++pending_live_;
    ScheduleDispatch();
  }

  void OnStreamClosed(Http2Connection*) override {
    if (pending_live_ > 0) ScheduleDispatch();
  }

  void OnPingSent(Http2Connection*) override { ++counters_.pings_sent_total; }

  void OnPingTimeout(Http2Connection* connection, bool hung) override {
    ++counters_.keepalive_timeouts_total;
    if (!hung) return;
    ++counters_.hung_connections_total;
    TIPPERARY_LOG(kWarn, "upstream connection hung",
                  {{"upstream", options_->name}, {"endpoint", connection->label()}});
  }

  // HealthChecker::Host
  CallId StartHealthCall(size_t endpoint, GrpcRequest request, CallHandlers handlers,
                         bool watch) override {
    if (shutting_down_) return 0;
    std::shared_ptr<Http2Connection> connection = ConnectionWithCapacity(endpoints_[endpoint]);
    if (!connection) return 0;
    const CallId id = next_id_++;
    auto call = std::make_shared<UpstreamCall>(id, std::move(request), std::move(handlers),
                                               options_->max_response_bytes);
    call->internal = true;
    call->pinned_endpoint = static_cast<int>(endpoint);
    call->expects_silence = watch;
    if (const auto& timeout = call->request().timeout) {
      call->deadline = Clock::now() + ToClock(*timeout);
    }
    if (!Submit(call, connection)) return 0;
    calls_.emplace(id, call);
    if (call->deadline) ArmDeadline(call);
    return id;
  }

  void CancelHealthCall(CallId id) override {
    if (!destroyed_) Cancel(id);
  }

  bool EndpointConnected(size_t endpoint) const override {
    return ConnectionWithCapacity(endpoints_[endpoint]) != nullptr;
  }

  void OnHealthChanged(size_t) override {
    if (pending_live_ > 0) ScheduleDispatch();
  }

 private:
  struct EndpointState {
    std::vector<std::shared_ptr<Http2Connection>> connections;
    uint32_t consecutive_failures = 0;  // Connect attempts.
    bool in_backoff = false;
    std::unique_ptr<asio::steady_timer> backoff_timer;
    std::string last_error;
    uint64_t outstanding = 0;  // Attempts of callers' calls on its streams.
  };

  // Which endpoints new attempts may go to (health, ejection, panic), computed per placement.
  struct Routing {
    std::vector<char> allowed;
    bool panic = false;
  };

  Routing ComputeRouting(Clock::time_point now) const {
    const size_t n = endpoints_.size();
    Routing routing;
    routing.allowed.assign(n, 0);
    size_t healthy = 0;
    for (size_t i = 0; i < n; ++i) {
      if (health_->health(i) == EndpointHealth::kServing && !outlier_.IsEjected(i, now)) {
        routing.allowed[i] = 1;
        ++healthy;
      }
    }
    const uint32_t threshold = options_->health_check.panic_threshold_percent;
    if (threshold > 0 && healthy * 100 < threshold * n) {
      routing.panic = true;
    } else if (healthy > 0) {
      // Healthy endpoints none of which has a connection (all backing off): the others may
      // still answer, so they are all tried rather than none.
      bool any_live = false;
      for (size_t i = 0; i < n && !any_live; ++i) {
        any_live = routing.allowed[i] != 0 && LiveConnections(endpoints_[i]) > 0;
      }
      routing.panic = !any_live;
    }
    if (routing.panic) routing.allowed.assign(n, 1);
    return routing;
  }

  std::vector<std::shared_ptr<Http2Connection>> AllConnections() const {
    std::vector<std::shared_ptr<Http2Connection>> all;
    for (const EndpointState& endpoint : endpoints_) {
      all.insert(all.end(), endpoint.connections.begin(), endpoint.connections.end());
    }
    return all;
  }

  static size_t LiveConnections(const EndpointState& endpoint) {
    return std::count_if(endpoint.connections.begin(), endpoint.connections.end(),
                         [](const auto& c) {
                           return c->state() == Http2Connection::State::kConnecting ||
                                  c->state() == Http2Connection::State::kReady;
                         });
  }

  static size_t ReadyConnections(const EndpointState& endpoint) {
    return std::count_if(
        endpoint.connections.begin(), endpoint.connections.end(),
        [](const auto& c) { return c->state() == Http2Connection::State::kReady; });
  }

  static std::shared_ptr<Http2Connection> ConnectionWithCapacity(const EndpointState& endpoint) {
    for (const auto& connection : endpoint.connections) {
      if (connection->HasCapacity()) return connection;
    }
    return nullptr;
  }

  bool AnyAllowedInState(const Routing& routing, Http2Connection::State state) const {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (routing.allowed[i] == 0) continue;
      for (const auto& connection : endpoints_[i].connections) {
        if (connection->state() == state) return true;
      }
    }
    return false;
  }

  void ConnectEndpoint(size_t index) {
    auto connection =
        std::make_shared<Http2Connection>(ioc_, options_, index, keepalive_interval_, this);
    endpoints_[index].connections.push_back(connection);
    connection->Connect();
  }

  void ScheduleReconnect(size_t index) {
    EndpointState& endpoint = endpoints_[index];
    endpoint.in_backoff = true;
    const double exponent = std::min<uint32_t>(endpoint.consecutive_failures, 31) - 1.0;
    double delay = static_cast<double>(options_->reconnect_backoff_initial.count()) *
                   std::pow(2.0, std::max(0.0, exponent));
    delay = std::min(delay, static_cast<double>(options_->reconnect_backoff_max.count()));
    delay *= std::uniform_real_distribution<double>(0.8, 1.2)(balancer_.rng());
    endpoint.backoff_timer->expires_after(std::chrono::nanoseconds(static_cast<int64_t>(delay)));
    endpoint.backoff_timer->async_wait([weak = weak_from_this(), index](const error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      auto self = weak.lock();
      if (!self) return;
      EndpointState& backed_off = self->endpoints_[index];
      backed_off.in_backoff = false;
      if (self->shutting_down_) return;
      if (LiveConnections(backed_off) == 0) self->ConnectEndpoint(index);
    });
  }

  // The connection for the call's next attempt: its pinned endpoint's, or one with a free
  // stream on an endpoint chosen by the load balancer among the allowed ones (avoiding the
  // previous attempt's endpoint when there is another).
  std::shared_ptr<Http2Connection> PickConnection(const UpstreamCall& call) {
    if (call.pinned_endpoint >= 0) {
      return ConnectionWithCapacity(endpoints_[static_cast<size_t>(call.pinned_endpoint)]);
    }
    const Routing routing = ComputeRouting(Clock::now());
    eligible_.clear();
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (routing.allowed[i] != 0 && ConnectionWithCapacity(endpoints_[i])) eligible_.push_back(i);
    }
    if (eligible_.empty()) return nullptr;
    if (eligible_.size() > 1 && call.avoid_endpoint >= 0) {
      std::erase(eligible_, static_cast<size_t>(call.avoid_endpoint));
    }
    const size_t chosen =
        balancer_.Pick(eligible_, [this](size_t i) { return endpoints_[i].outstanding; });
    if (routing.panic) ++counters_.panic_routed_total;
    return ConnectionWithCapacity(endpoints_[chosen]);
  }

  // Opens one more connection to an allowed endpoint when the pool allows it; false if none
  // could be started.
  bool OpenExtraConnection(const Routing& routing) {
    const size_t n = endpoints_.size();
    const size_t per_endpoint = std::max<uint32_t>(1, options_->connections_per_endpoint);
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (extra_next_ + k) % n;
      if (routing.allowed[i] == 0 || endpoints_[i].in_backoff) continue;
      if (LiveConnections(endpoints_[i]) < per_endpoint) {
        extra_next_ = (i + 1) % n;
        ConnectEndpoint(i);
        return true;
      }
    }
    return false;
  }

  // Opens a stream for the call's next attempt on `connection`.
  bool Submit(const std::shared_ptr<UpstreamCall>& call,
              const std::shared_ptr<Http2Connection>& connection) {
    const RetryPolicy& policy = PolicyFor(*call);
    const Clock::time_point now = Clock::now();
    call->try_deadline.reset();
    if (!call->internal && policy.per_try_timeout.count() > 0) {
      call->try_deadline = now + ToClock(policy.per_try_timeout);
    }
    if (!connection->Submit(call)) {
      call->try_deadline.reset();
      return false;
    }
    const size_t index = connection->endpoint_index();
    call->attempt_endpoint = static_cast<int>(index);
    if (!call->internal) ++endpoints_[index].outstanding;
    // The per-try timer, unless the call's own deadline comes first.
    if (call->try_deadline && (!call->deadline || *call->try_deadline < *call->deadline)) {
      if (!call->attempt_timer) call->attempt_timer.emplace(ioc_);
      call->attempt_timer->expires_at(*call->try_deadline);
      call->attempt_timer->async_wait([weak = weak_from_this(), id = call->id(),
                                       stream_id = call->stream_id()](const error_code& ec) {
        if (ec == asio::error::operation_aborted) return;
        if (auto self = weak.lock()) self->OnPerTryTimeout(id, stream_id);
      });
    }
    return true;
  }

  // The attempt on a stream is over (answered, reset, timed out, or the call finished).
  void EndAttempt(UpstreamCall& call) {
    if (call.attempt_endpoint < 0) return;
    if (!call.internal) --endpoints_[static_cast<size_t>(call.attempt_endpoint)].outstanding;
    call.avoid_endpoint = call.attempt_endpoint;
    call.attempt_endpoint = -1;
    if (call.attempt_timer) call.attempt_timer->cancel();
  }

  const RetryPolicy& PolicyFor(const UpstreamCall& call) const {
    return call.request().retry_policy ? *call.request().retry_policy : options_->retry_policy;
  }

  void RecordOutcome(int endpoint, bool failure, bool success) {
    if (endpoint < 0) return;
    const auto index = static_cast<size_t>(endpoint);
    if (success) outlier_.RecordSuccess(index);
    if (!failure || !outlier_.RecordFailure(index, Clock::now())) return;
    ++counters_.ejections_total;
    TIPPERARY_LOG(
        kWarn, "upstream endpoint ejected",
        {{"upstream", options_->name},
         {"endpoint", options_->endpoints[index].ToString()},
         {"consecutive_failures", std::to_string(options_->outlier_detection.consecutive_failures)},
         {"ejection_time", Millis(outlier_.EjectionTime(index))}});
  }

  void CountRetry(const std::string& reason) {
    ++counters_.retries_total;
    ++counters_.retries_by_reason[reason];
  }

  // A possibly processed attempt failed: tries again (after a backoff) when the policy, the
  // deadline and the retry budget allow it.
  bool MaybeRetry(const std::shared_ptr<UpstreamCall>& call, const GrpcResult& result,
                  bool per_try_timeout) {
    if (shutting_down_ || result.outcome == CallOutcome::kCancelled) return false;
    if (result.outcome == CallOutcome::kDeadline && !per_try_timeout) return false;
    const RetryPolicy& policy = PolicyFor(*call);
    if (!policy.RetriesOn(result.code)) return false;
    if (!call->request().idempotent && !policy.IsIdempotent(call->request().path)) return false;
    if (call->policy_retries + 1 >= policy.max_attempts || !call->CanResend()) return false;
    // Full jitter: a random delay up to an exponentially growing bound.
    auto bound = policy.backoff_initial;
    for (uint32_t i = 0; i < call->policy_retries && bound < policy.backoff_max; ++i) bound *= 2;
    bound = std::min(bound, policy.backoff_max);
    const auto delay = std::chrono::nanoseconds(std::uniform_int_distribution<int64_t>(
        0, std::max<int64_t>(0, bound.count()))(balancer_.rng()));
    const Clock::time_point now = Clock::now();
    if (call->deadline && now + ToClock(delay) >= *call->deadline) return false;
    if (!call->retrying) {
      const RetryBudget& budget = options_->retry_budget;
      const uint64_t allowed = std::max<uint64_t>(budget.min_retry_concurrency,
                                                  active_requests_ * budget.budget_percent / 100);
      if (active_retries_ >= allowed) {
        ++counters_.retry_budget_exhausted_total;
        return false;
      }
      call->retrying = true;
      ++active_retries_;
    }
    ++call->policy_retries;
    CountRetry(RetryOnCodeName(result.code));
    TIPPERARY_LOG(kDebug, "upstream call retried",
                  {{"upstream", options_->name},
                   {"path", call->request().path},
                   {"reason", result.grpc_message},
                   {"backoff", Millis(delay)}});
    call->PrepareRetry();
    call->set_phase(UpstreamCall::Phase::kBackoff);
    if (!call->attempt_timer) call->attempt_timer.emplace(ioc_);
    call->attempt_timer->expires_after(ToClock(delay));
    call->attempt_timer->async_wait(
        [weak = weak_from_this(), id = call->id()](const error_code& ec) {
          if (ec == asio::error::operation_aborted) return;
          if (auto self = weak.lock()) self->OnBackoffDone(id);
        });
    return true;
  }

  void OnBackoffDone(CallId id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    std::shared_ptr<UpstreamCall> call = it->second;
    if (call->phase() != UpstreamCall::Phase::kBackoff) return;
    call->set_phase(UpstreamCall::Phase::kNew);
    Place(call);
  }

  void OnPerTryTimeout(CallId id, int32_t stream_id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    std::shared_ptr<UpstreamCall> call = it->second;
    if (call->phase() != UpstreamCall::Phase::kActive || call->stream_id() != stream_id) return;
    const int endpoint = call->attempt_endpoint;
    ResetIfActive(*call);
    EndAttempt(*call);
    GrpcResult result = PerTryTimeoutResult(*call, endpoint);
    RecordOutcome(endpoint, /*failure=*/true, /*success=*/false);
    if (MaybeRetry(call, result, /*per_try_timeout=*/true)) return;
    Complete(call, std::move(result));
  }

  GrpcResult PerTryTimeoutResult(const UpstreamCall& call, int endpoint) const {
    return MakeResult(
        CallOutcome::kDeadline, absl::StatusCode::kDeadlineExceeded,
        "per-try timeout of " + Millis(PolicyFor(call).per_try_timeout) + " exceeded on " +
            (endpoint >= 0 ? options_->endpoints[static_cast<size_t>(endpoint)].ToString()
                           : "upstream " + options_->name));
  }

  bool TrySubmit(const std::shared_ptr<UpstreamCall>& call) {
    // A failed Submit drains that connection, so this loop ends.
    while (auto connection = PickConnection(*call)) {
      if (Submit(call, connection)) return true;
    }
    return false;
  }

  // Whether a queued call can still hope for a stream; opens a connection if that helps.
  bool CanWait() {
    const Routing routing = ComputeRouting(Clock::now());
    if (!AnyAllowedInState(routing, Http2Connection::State::kConnecting)) {
      OpenExtraConnection(routing);
    }
    return AnyAllowedInState(routing, Http2Connection::State::kConnecting) ||
           AnyAllowedInState(routing, Http2Connection::State::kReady);
  }

  void Place(const std::shared_ptr<UpstreamCall>& call) {
    if (shutting_down_) {
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                "upstream " + options_->name + " is shutting down"));
      return;
    }
    // Queued calls go first (FIFO), so only try directly when none wait.
    if (pending_live_ == 0 && TrySubmit(call)) return;
    if (!CanWait()) {
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                NoConnectionMessage()));
      return;
    }
    const uint64_t max_pending = options_->circuit_breakers.max_pending_requests;
    if (pending_live_ >= max_pending) {
      ++counters_.overflow_pending_total;
      Complete(call, Overflow("max_pending_requests", max_pending, "calls waiting for a stream"));
      return;
    }
    call->set_phase(UpstreamCall::Phase::kPending);
    pending_.push_back(call);
    ++pending_live_;
    if (pending_live_ == 1) ScheduleDispatch();  // A stream may already be free.
  }

  GrpcResult Overflow(const char* limit, uint64_t value, const char* what) const {
    GrpcResult result =
        MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                   "upstream " + options_->name + " is overloaded: circuit breaker " + limit +
                       " (" + std::to_string(value) + " " + what + ") reached");
    // The proxy's 503 carries it as Retry-After.
    result.trailers.emplace_back("retry-after",
                                 std::to_string(options_->circuit_breakers.retry_after.count()));
    return result;
  }

  void ScheduleDispatch() {
    if (dispatch_scheduled_) return;
    dispatch_scheduled_ = true;
    asio::post(ioc_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->DispatchPending();
    });
  }

  void DispatchPending() {
    dispatch_scheduled_ = false;
    if (destroyed_) return;
    while (!pending_.empty()) {
      std::shared_ptr<UpstreamCall> call = pending_.front();
      if (call->phase() != UpstreamCall::Phase::kPending) {
        pending_.pop_front();
        continue;
      }
      auto connection = PickConnection(*call);
      if (!connection) break;
      pending_.pop_front();
      --pending_live_;
      call->set_phase(UpstreamCall::Phase::kNew);
      if (!Submit(call, connection)) {
        call->set_phase(UpstreamCall::Phase::kPending);
        pending_.push_front(call);
        ++pending_live_;
      }
    }
    if (pending_live_ > 0 && !CanWait()) {
      FailAllPending(MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                NoConnectionMessage()));
    }
    if (pending_live_ == 0) pending_.clear();
  }

  void FailAllPending(const GrpcResult& result) {
    std::deque<std::shared_ptr<UpstreamCall>> pending = std::move(pending_);
    pending_.clear();
    for (const auto& call : pending) {
      if (call->phase() == UpstreamCall::Phase::kPending) Complete(call, result);
    }
  }

  UpstreamCall* Find(CallId id) {
    auto it = calls_.find(id);
    return it == calls_.end() ? nullptr : it->second.get();
  }

  void ResumeIfActive(UpstreamCall& call) {
    if (call.phase() != UpstreamCall::Phase::kActive) return;
    if (auto connection = call.connection()) connection->ResumeSend(call.stream_id());
  }

  void ResetIfActive(UpstreamCall& call) {
    if (call.phase() != UpstreamCall::Phase::kActive) return;
    if (auto connection = call.connection())
      connection->ResetStream(call.stream_id(), NGHTTP2_CANCEL);
  }

  void ArmDeadline(const std::shared_ptr<UpstreamCall>& call) {
    call->deadline_timer.emplace(ioc_);
    call->deadline_timer->expires_at(*call->deadline);
    call->deadline_timer->async_wait(
        [weak = weak_from_this(), id = call->id()](const error_code& ec) {
          if (ec == asio::error::operation_aborted) return;
          if (auto self = weak.lock()) self->OnDeadline(id);
        });
  }

  void OnDeadline(CallId id) {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    std::shared_ptr<UpstreamCall> call = it->second;
    ResetIfActive(*call);
    Complete(call, MakeResult(CallOutcome::kDeadline, absl::StatusCode::kDeadlineExceeded,
                              "deadline of " + Millis(*call->request().timeout) + " exceeded"));
  }

  // Finishes the call exactly once; on_done always runs from the event loop, never from here.
  void Complete(const std::shared_ptr<UpstreamCall>& call, GrpcResult result) {
    if (call->phase() == UpstreamCall::Phase::kDone) return;
    if (call->phase() == UpstreamCall::Phase::kPending) --pending_live_;
    EndAttempt(*call);
    if (call->attempt_timer) call->attempt_timer->cancel();
    if (call->retrying) {
      call->retrying = false;
      --active_retries_;
    }
    call->set_phase(UpstreamCall::Phase::kDone);
    if (call->deadline_timer) call->deadline_timer->cancel();
    if (calls_.erase(call->id()) > 0 && !call->internal) --active_requests_;
    // Headers held back for a possible retry go out before the result (not to a caller that
    // cancelled).
    std::optional<Metadata> headers = call->TakeHeldHeaders();
    if (result.outcome == CallOutcome::kCancelled) headers.reset();
    // on_headers/on_message stay: one of them may be running right now (a Cancel from inside).
    std::function<void(GrpcResult)> on_done = std::move(call->handlers().on_done);
    call->handlers().on_done = nullptr;
    if (!on_done) return;
    std::function<void(const Metadata&)> on_headers;
    if (headers) on_headers = call->handlers().on_headers;
    asio::post(ioc_, [weak = weak_from_this(), on_done = std::move(on_done),
                      on_headers = std::move(on_headers), headers = std::move(headers),
                      result = std::move(result)]() mutable {
      if (weak.expired()) return;  // The cluster was destroyed: its calls are dropped.
      if (on_headers) on_headers(*headers);
      on_done(std::move(result));
    });
  }

  std::string NoConnectionMessage() const {
    const Routing routing = ComputeRouting(Clock::now());
    if (std::none_of(routing.allowed.begin(), routing.allowed.end(),
                     [](char allowed) { return allowed != 0; }) &&
        !endpoints_.empty()) {
      return "no endpoint of upstream " + options_->name + " is healthy";
    }
    std::string message = "no connection to upstream " + options_->name + " is available";
    for (const EndpointState& endpoint : endpoints_) {
      if (!endpoint.last_error.empty()) return message + ": " + endpoint.last_error;
    }
    if (endpoints_.empty()) message += ": it has no endpoints";
    return message;
  }

  asio::io_context& ioc_;
  std::shared_ptr<const UpstreamOptions> options_;
  std::chrono::nanoseconds keepalive_interval_;  // Doubled on GOAWAY(ENHANCE_YOUR_CALM).
  std::vector<EndpointState> endpoints_;
  std::shared_ptr<HealthChecker> health_;
  OutlierDetector outlier_;
  LoadBalancer balancer_;
  std::vector<size_t> eligible_;  // PickConnection's scratch space.
  std::unordered_map<CallId, std::shared_ptr<UpstreamCall>> calls_;
  std::deque<std::shared_ptr<UpstreamCall>> pending_;  // Done calls are skipped lazily.
  uint64_t pending_live_ = 0;                          // Calls in pending_ still kPending.
  uint64_t active_requests_ = 0;  // Callers' calls in calls_ (health checks not counted).
  uint64_t active_retries_ = 0;   // Of those, the ones retrying (the retry budget's count).
  CallId next_id_ = 1;
  size_t extra_next_ = 0;
  bool started_ = false;
  bool shutting_down_ = false;
  bool destroyed_ = false;
  bool dispatch_scheduled_ = false;
  Stats counters_;
};

UpstreamCluster::UpstreamCluster(asio::io_context& ioc, UpstreamOptions options)
    : impl_(std::make_shared<Impl>(ioc, std::move(options))) {}

UpstreamCluster::~UpstreamCluster() { impl_->Destroy(); }

void UpstreamCluster::Start() { impl_->Start(); }

CallId UpstreamCluster::Call(GrpcRequest request, CallHandlers handlers) {
  return impl_->Call(std::move(request), std::move(handlers));
}

void UpstreamCluster::Cancel(CallId id) { impl_->Cancel(id); }

bool UpstreamCluster::Send(CallId id, std::string framed_messages) {
  return impl_->Send(id, std::move(framed_messages));
}

void UpstreamCluster::CloseSend(CallId id) { impl_->CloseSend(id); }

size_t UpstreamCluster::send_buffered(CallId id) const { return impl_->send_buffered(id); }

void UpstreamCluster::PauseReceive(CallId id, bool paused) { impl_->PauseReceive(id, paused); }

void UpstreamCluster::Shutdown() { impl_->Shutdown(); }

bool UpstreamCluster::HasReadyConnection() const { return impl_->HasReadyConnection(); }

std::vector<EndpointStatus> UpstreamCluster::Endpoints() const { return impl_->Endpoints(); }

UpstreamCluster::Stats UpstreamCluster::GetStats() const { return impl_->GetStats(); }

}  // namespace tipperary::upstream
