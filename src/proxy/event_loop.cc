#include "event_loop.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"
#include "upstream_options.h"

namespace tipperary::proxy {

EventLoop::EventLoop(int index, SharedState& shared)
    : index_(index), shared_(shared), cors_(shared.config.cors), route_stats_(shared.stats) {
  work_ =
      std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          ioc_.get_executor());
}

EventLoop::~EventLoop() {
  Stop();
  Join();
}

void EventLoop::CreateUpstreams() {
  const auto& upstreams = shared_.config.upstreams;
  upstream_requests_.resize(upstreams.size());
  for (const config::UpstreamConfig& u : upstreams) {
    upstream::UpstreamOptions options = UpstreamOptionsFor(u);
    clusters_.push_back(std::make_unique<upstream::UpstreamCluster>(ioc_, std::move(options)));
    upstream_duration_.push_back(&shared_.stats.upstream_duration->Add({{"upstream", u.name}}));
    snapshots_.push_back(std::make_unique<Snapshot>());
  }
  snapshots_.push_back(std::make_unique<Snapshot>());  // Listeners.
}

void EventLoop::AddListener(std::unique_ptr<http1::HttpListener> listener) {
  listeners_.push_back(std::move(listener));
}

void EventLoop::Start() {
  boost::asio::post(ioc_, [this] {
    loop_thread_.Bind();
    for (auto& c : clusters_) c->Start();
    for (auto& l : listeners_) l->Start();
    snapshot_timer_ = std::make_unique<boost::asio::steady_timer>(ioc_);
    RefreshSnapshot();
  });
  thread_ = std::thread([this] { ioc_.run(); });
}

void EventLoop::RefreshSnapshot() {
  bool ready = false;
  for (size_t i = 0; i < clusters_.size(); ++i) {
    upstream::UpstreamCluster::Stats s = clusters_[i]->GetStats();
    Snapshot& snap = *snapshots_[i];
    snap.connecting = s.connecting;
    snap.ready = s.ready;
    snap.draining = s.draining;
    snap.backoff = s.backoff;
    snap.connects = s.connects_total;
    snap.connect_failures = s.connect_failures_total;
    snap.goaways = s.goaways_total;
    ready = ready || clusters_[i]->HasReadyConnection();
  }
  uint64_t connections = 0;
  for (auto& l : listeners_) connections += l->active_connections();
  snapshots_.back()->http_connections = connections;
  any_ready_.store(ready, std::memory_order_relaxed);
  snapshot_timer_->expires_after(std::chrono::milliseconds(250));
  snapshot_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    RefreshSnapshot();
  });
}

void EventLoop::Stop() {
  if (!work_) return;
  work_.reset();
  boost::asio::post(ioc_, [this] {
    if (snapshot_timer_) snapshot_timer_->cancel();
    for (auto& l : listeners_) {
      l->StopAccepting();
      l->CloseAll();
    }
    // Graceful: in-flight upstream calls finish, then GOAWAY and close.
    for (auto& c : clusters_) c->Shutdown();
    WaitForUpstreamsClosed(std::chrono::steady_clock::now() + std::chrono::seconds(1));
  });
}

void EventLoop::WaitForUpstreamsClosed(std::chrono::steady_clock::time_point deadline) {
  bool open = false;
  for (auto& c : clusters_) {
    upstream::UpstreamCluster::Stats s = c->GetStats();
    open = open || s.ready + s.draining + s.connecting > 0;
  }
  if (!open || std::chrono::steady_clock::now() >= deadline) {
    ioc_.stop();
    return;
  }
  if (!stop_timer_) stop_timer_ = std::make_unique<boost::asio::steady_timer>(ioc_);
  stop_timer_->expires_after(std::chrono::milliseconds(10));
  stop_timer_->async_wait([this, deadline](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    WaitForUpstreamsClosed(deadline);
  });
}

void EventLoop::Join() {
  if (thread_.joinable()) thread_.join();
}

void EventLoop::SetRouting(std::shared_ptr<const Routing> routing) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  route_stats_.Clear();
  routing_ = std::move(routing);
}

namespace {

// The callback lives in the handle; the pending wait holds only a weak reference to it, so a
// handle destroyed after the timer expired but before its completion ran still wins.
class AsioTimer final : public RequestEnvironment::Timer {
 public:
  AsioTimer(boost::asio::io_context& ioc, RequestEnvironment::Clock::duration delay,
            std::function<void()> fire)
      : timer_(std::make_shared<boost::asio::steady_timer>(ioc, delay)),
        fire_(std::make_shared<std::function<void()>>(std::move(fire))) {
    timer_->async_wait([timer = timer_, weak = std::weak_ptr<std::function<void()>>(fire_)](
                           const boost::system::error_code& ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (auto callback = weak.lock()) (*callback)();
    });
  }
  ~AsioTimer() override { timer_->cancel(); }

 private:
  std::shared_ptr<boost::asio::steady_timer> timer_;
  std::shared_ptr<std::function<void()>> fire_;
};

}  // namespace

std::unique_ptr<RequestEnvironment::Timer> EventLoop::StartTimer(Clock::duration delay,
                                                                 std::function<void()> fire) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  return std::make_unique<AsioTimer>(ioc_, delay, std::move(fire));
}

void EventLoop::RecordUpstream(int index, absl::StatusCode code, double seconds) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  auto& codes = upstream_requests_[index];
  if (codes.empty()) codes.resize(17, nullptr);
  const size_t slot = static_cast<size_t>(code) < 17 ? static_cast<size_t>(code) : 2;
  if (codes[slot] == nullptr) {
    codes[slot] = &shared_.stats.upstream_requests->Add(
        {{"upstream", shared_.config.upstreams[index].name}, {"grpc_code", absl::StrCat(slot)}});
  }
  codes[slot]->Increment();
  upstream_duration_[index]->Observe(seconds);
}

void EventLoop::BeginDrain() {
  for (auto& l : listeners_) l->SetDraining();
}

http1::ListenerCounters EventLoop::ListenerTotals(std::string_view name) const {
  http1::ListenerCounters total;
  for (const auto& l : listeners_) {
    if (l->name() != name) continue;
    http1::ListenerCounters c = l->counters();
    total.connections_accepted += c.connections_accepted;
    total.requests += c.requests;
    total.protocol_errors += c.protocol_errors;
    total.timeouts += c.timeouts;
    total.tls_handshake_failures += c.tls_handshake_failures;
    total.compressed_responses += c.compressed_responses;
    total.compression_input_bytes += c.compression_input_bytes;
    total.compression_output_bytes += c.compression_output_bytes;
    total.decoded_request_bodies += c.decoded_request_bodies;
  }
  return total;
}

size_t EventLoop::ActiveRequests() const {
  size_t n = 0;
  for (const auto& l : listeners_) n += l->active_requests();
  return n;
}

}  // namespace tipperary::proxy
