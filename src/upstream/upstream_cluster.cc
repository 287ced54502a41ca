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

#include "http2_connection.h"
#include "tipperary/common/log.h"
#include "upstream_call.h"

namespace tipperary::upstream {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

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

}  // namespace

class UpstreamCluster::Impl : public std::enable_shared_from_this<UpstreamCluster::Impl>,
                              public Http2Connection::Listener {
 public:
  Impl(asio::io_context& ioc, UpstreamOptions options)
      : ioc_(ioc),
        options_(std::make_shared<const UpstreamOptions>(std::move(options))),
        keepalive_interval_(options_->keepalive_interval),
        rng_(std::random_device{}()) {
    endpoints_.resize(options_->endpoints.size());
    for (EndpointState& endpoint : endpoints_) {
      endpoint.backoff_timer = std::make_unique<asio::steady_timer>(ioc_);
    }
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
    calls_.emplace(id, call);
    if (const auto& timeout = call->request().timeout) {
      if (timeout->count() <= 0) {
        Complete(call, MakeResult(CallOutcome::kDeadline, absl::StatusCode::kDeadlineExceeded,
                                  "deadline exceeded before the call"));
        return id;
      }
      call->deadline = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
      call->deadline_timer.emplace(ioc_);
      call->deadline_timer->expires_at(*call->deadline);
      call->deadline_timer->async_wait([weak = weak_from_this(), id](const error_code& ec) {
        if (ec == asio::error::operation_aborted) return;
        if (auto self = weak.lock()) self->OnDeadline(id);
      });
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
    shutting_down_ = true;
    for (EndpointState& endpoint : endpoints_) {
      endpoint.backoff_timer->cancel();
      endpoint.in_backoff = false;
    }
    FailAllPending(MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                              "upstream " + options_->name + " is shutting down"));
    for (const auto& connection : AllConnections()) connection->Drain();
  }

  // The cluster is going away: no more handlers, no more I/O.
  void Destroy() {
    destroyed_ = true;
    shutting_down_ = true;
    for (EndpointState& endpoint : endpoints_) {
      endpoint.backoff_timer->cancel();
      for (const auto& connection : endpoint.connections) connection->Abort();
      endpoint.connections.clear();
    }
    for (auto& [id, call] : calls_) {
      if (call->deadline_timer) call->deadline_timer->cancel();
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
    return stats;
  }

  // Http2Connection::Listener
  void OnConnectionReady(Http2Connection* connection) override {
    EndpointState& endpoint = endpoints_[connection->endpoint_index()];
    endpoint.consecutive_failures = 0;
    ++counters_.connects_total;
    TIPPERARY_LOG(kDebug, "upstream connection ready",
                  {{"upstream", options_->name}, {"endpoint", connection->label()}});
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
    // New calls go to a fresh connection while this one finishes its streams.
    const size_t index = connection->endpoint_index();
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
      if (LiveConnections(endpoint) == 0) ScheduleReconnect(index);
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
    // The server enforces the deadline we sent as grpc-timeout and may report it a moment
    // before our own timer fires: that is still this call's deadline.
    constexpr auto kSlack = std::chrono::milliseconds(20);
    if (result.outcome == CallOutcome::kGrpc &&
        result.code == absl::StatusCode::kDeadlineExceeded && call->deadline &&
        std::chrono::steady_clock::now() + kSlack >= *call->deadline) {
      result.outcome = CallOutcome::kDeadline;
    }
    Complete(call, std::move(result));
  }

  void OnCallRefused(const std::shared_ptr<UpstreamCall>& call) override {
    if (call->phase() == UpstreamCall::Phase::kDone) return;
    ++counters_.retries_total;
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
  void OnKeepaliveTimeout(Http2Connection*) override { ++counters_.keepalive_timeouts_total; }

 private:
  struct EndpointState {
    std::vector<std::shared_ptr<Http2Connection>> connections;
    uint32_t consecutive_failures = 0;
    bool in_backoff = false;
    std::unique_ptr<asio::steady_timer> backoff_timer;
    std::string last_error;
  };

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

  bool AnyInState(Http2Connection::State state) const {
    for (const EndpointState& endpoint : endpoints_) {
      for (const auto& connection : endpoint.connections) {
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
    delay *= std::uniform_real_distribution<double>(0.8, 1.2)(rng_);
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

  // Round-robin over endpoints; within one, the first connection with a free stream.
  std::shared_ptr<Http2Connection> PickConnection() {
    const size_t n = endpoints_.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (rr_next_ + k) % n;
      for (const auto& connection : endpoints_[i].connections) {
        if (connection->HasCapacity()) {
          rr_next_ = (i + 1) % n;
          return connection;
        }
      }
    }
    return nullptr;
  }

  // Opens one more connection when the pool allows it; false if none could be started.
  bool OpenExtraConnection() {
    const size_t n = endpoints_.size();
    const size_t per_endpoint = std::max<uint32_t>(1, options_->connections_per_endpoint);
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (rr_next_ + k) % n;
      if (endpoints_[i].in_backoff) continue;
      if (LiveConnections(endpoints_[i]) < per_endpoint) {
        ConnectEndpoint(i);
        return true;
      }
    }
    return false;
  }

  bool TrySubmit(const std::shared_ptr<UpstreamCall>& call) {
    // A failed Submit drains that connection, so this loop ends.
    while (auto connection = PickConnection()) {
      if (connection->Submit(call)) return true;
    }
    return false;
  }

  // Whether a queued call can still hope for a stream; opens a connection if that helps.
  bool CanWait() {
    if (!AnyInState(Http2Connection::State::kConnecting)) OpenExtraConnection();
    return AnyInState(Http2Connection::State::kConnecting) ||
           AnyInState(Http2Connection::State::kReady);
  }

  void Place(const std::shared_ptr<UpstreamCall>& call) {
    // Queued calls go first (FIFO), so only try directly when none wait.
    if (pending_live_ == 0 && TrySubmit(call)) return;
    if (!CanWait()) {
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                NoConnectionMessage()));
      return;
    }
    if (pending_live_ >= options_->max_pending_calls) {
      Complete(call, MakeResult(CallOutcome::kUnavailable, absl::StatusCode::kUnavailable,
                                "too many calls waiting for upstream " + options_->name));
      return;
    }
    call->set_phase(UpstreamCall::Phase::kPending);
    pending_.push_back(call);
    ++pending_live_;
    if (pending_live_ == 1) ScheduleDispatch();  // A stream may already be free.
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
      auto connection = PickConnection();
      if (!connection) break;
      pending_.pop_front();
      --pending_live_;
      if (!connection->Submit(call)) {
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
    call->set_phase(UpstreamCall::Phase::kDone);
    if (call->deadline_timer) call->deadline_timer->cancel();
    calls_.erase(call->id());
    // on_headers/on_message stay: one of them may be running right now (a Cancel from inside).
    std::function<void(GrpcResult)> on_done = std::move(call->handlers().on_done);
    call->handlers().on_done = nullptr;
    if (!on_done) return;
    asio::post(ioc_, [weak = weak_from_this(), on_done = std::move(on_done),
                      result = std::move(result)]() mutable {
      if (weak.expired()) return;  // The cluster was destroyed: its calls are dropped.
      on_done(std::move(result));
    });
  }

  std::string NoConnectionMessage() const {
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
  std::unordered_map<CallId, std::shared_ptr<UpstreamCall>> calls_;
  std::deque<std::shared_ptr<UpstreamCall>> pending_;  // Done calls are skipped lazily.
  uint64_t pending_live_ = 0;                          // Calls in pending_ still kPending.
  CallId next_id_ = 1;
  size_t rr_next_ = 0;
  bool started_ = false;
  bool shutting_down_ = false;
  bool destroyed_ = false;
  bool dispatch_scheduled_ = false;
  Stats counters_;
  std::mt19937_64 rng_;
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

UpstreamCluster::Stats UpstreamCluster::GetStats() const { return impl_->GetStats(); }

}  // namespace tipperary::upstream
