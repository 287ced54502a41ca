#include "event_loop.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"
#include "tipperary/common/thread_name.h"
#include "upstream_options.h"

namespace tipperary::proxy {

EventLoop::EventLoop(int index, SharedState& shared,
                     std::shared_ptr<const config::ProxyConfig> config)
    : index_(index),
      shared_(shared),
      config_(std::move(config)),
      cors_(std::make_shared<const CorsPolicy>(config_->cors)),
      route_stats_(shared.stats) {
  work_ =
      std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          ioc_.get_executor());
}

EventLoop::~EventLoop() {
  Stop();
  Join();
}

EventLoop::ClusterEntry EventLoop::MakeCluster(const config::UpstreamConfig& u, std::string key) {
  if (!upstream_duration_.contains(u.name)) {
    upstream_duration_[u.name] = &shared_.stats.upstream_duration->Add({{"upstream", u.name}});
  }
  return ClusterEntry{u.name, std::move(key),
                      std::make_shared<upstream::UpstreamCluster>(ioc_, UpstreamOptionsFor(u))};
}

void EventLoop::CreateUpstreams(const std::vector<std::string>& upstream_keys) {
  const auto& upstreams = config_->upstreams;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    clusters_.push_back(MakeCluster(upstreams[i], upstream_keys[i]));
  }
}

void EventLoop::ApplyConfig(std::shared_ptr<const config::ProxyConfig> config,
                            const std::vector<std::string>& upstream_keys,
                            std::shared_ptr<const Routing> routing,
                            std::shared_ptr<AccessLog> access_log) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  std::vector<ClusterEntry> old = std::move(clusters_);
  clusters_.clear();
  for (size_t i = 0; i < config->upstreams.size(); ++i) {
    auto same = std::find_if(old.begin(), old.end(), [&](const ClusterEntry& e) {
      return e.cluster != nullptr && e.key == upstream_keys[i];
    });
    if (same != old.end()) {
      clusters_.push_back(std::move(*same));
      same->cluster = nullptr;
      continue;
    }
    clusters_.push_back(MakeCluster(config->upstreams[i], upstream_keys[i]));
    clusters_.back().cluster->Start();
  }
  for (ClusterEntry& e : old) {
    if (e.cluster == nullptr) continue;
    TIPPERARY_LOG(kDebug, "upstream cluster retired by a reload",
                  {{"upstream", e.name}, {"loop", absl::StrCat(index_)}});
    e.cluster->Shutdown();
    retired_.push_back(std::move(e));
  }
  cors_ = std::make_shared<const CorsPolicy>(config->cors);
  config_ = std::move(config);
  access_log_ = std::move(access_log);
  SetRouting(std::move(routing));
}

void EventLoop::UpdateListeners(std::string_view name, const http1::ListenerOptions& options) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  for (auto& l : listeners_) {
    if (l->name() == name) l->UpdateOptions(options);
  }
}

upstream::UpstreamCluster* EventLoop::ClusterNamed(std::string_view name) {
  for (ClusterEntry& e : clusters_) {
    if (e.name == name) return e.cluster.get();
  }
  return nullptr;
}

void EventLoop::ReapRetired() {
  // A retired cluster whose connections are all closed has nothing more to do; its totals stay
  // in the upstream's counters. Requests still holding it keep the object alive, idle.
  for (auto it = retired_.begin(); it != retired_.end();) {
    upstream::UpstreamCluster::Stats s = it->cluster->GetStats();
    if (s.connecting + s.ready + s.draining > 0 || s.streams_active + s.calls_pending > 0) {
      ++it;
      continue;
    }
    UpstreamSnapshot closed;
    closed += s;
    closed_totals_[it->name] += closed.Totals();
    it = retired_.erase(it);
  }
}

std::map<std::string, EventLoop::UpstreamSnapshot> EventLoop::UpstreamSnapshots() const {
  absl::MutexLock lock(&snapshot_mu_);
  return snapshots_;
}

void EventLoop::AddListener(std::unique_ptr<http1::HttpListener> listener) {
  listeners_.push_back(std::move(listener));
}

void EventLoop::Start() {
  boost::asio::post(ioc_, [this] {
    loop_thread_.Bind();
    for (auto& c : clusters_) c.cluster->Start();
    for (auto& l : listeners_) l->Start();
    snapshot_timer_ = std::make_unique<boost::asio::steady_timer>(ioc_);
    RefreshSnapshot();
  });
  thread_ = std::thread([this] {
    common::SetThreadName(absl::StrCat("proxy-loop-", index_));
    ioc_.run();
  });
}

std::map<std::string, EventLoop::UpstreamSnapshot> EventLoop::ComputeSnapshots() const {
  std::map<std::string, UpstreamSnapshot> snapshots = closed_totals_;
  for (const std::vector<ClusterEntry>* list : {&clusters_, &retired_}) {
    for (const ClusterEntry& e : *list) snapshots[e.name] += e.cluster->GetStats();
  }
  return snapshots;
}

std::map<std::string, EventLoop::UpstreamSnapshot> EventLoop::LiveUpstreamSnapshots() {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  ReapRetired();
  return ComputeSnapshots();
}

void EventLoop::RefreshSnapshot() {
  ReapRetired();
  bool ready = false;
  for (const ClusterEntry& e : clusters_) ready = ready || e.cluster->HasReadyConnection();
  std::map<std::string, UpstreamSnapshot> snapshots = ComputeSnapshots();
  {
    absl::MutexLock lock(&snapshot_mu_);
    snapshots_ = std::move(snapshots);
  }
  uint64_t connections = 0;
  for (auto& l : listeners_) connections += l->active_connections();
  http_connections_.store(connections, std::memory_order_relaxed);
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
    for (auto& c : clusters_) c.cluster->Shutdown();
    for (auto& c : retired_) c.cluster->Shutdown();
    WaitForUpstreamsClosed(std::chrono::steady_clock::now() + std::chrono::seconds(1));
  });
}

void EventLoop::WaitForUpstreamsClosed(std::chrono::steady_clock::time_point deadline) {
  bool open = false;
  for (const std::vector<ClusterEntry>* list : {&clusters_, &retired_}) {
    for (const ClusterEntry& c : *list) {
      upstream::UpstreamCluster::Stats s = c.cluster->GetStats();
      open = open || s.ready + s.draining + s.connecting > 0;
    }
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

void EventLoop::RecordUpstream(const std::string& upstream, absl::StatusCode code, double seconds) {
  TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
  std::vector<metrics::Counter*>& codes = upstream_requests_[upstream];
  if (codes.empty()) codes.resize(17, nullptr);
  const size_t slot = static_cast<size_t>(code) < 17 ? static_cast<size_t>(code) : 2;
  if (codes[slot] == nullptr) {
    codes[slot] = &shared_.stats.upstream_requests->Add(
        {{"upstream", upstream}, {"grpc_code", absl::StrCat(slot)}});
  }
  codes[slot]->Increment();
  auto duration = upstream_duration_.find(upstream);
  if (duration == upstream_duration_.end()) {
    duration =
        upstream_duration_
            .emplace(upstream, &shared_.stats.upstream_duration->Add({{"upstream", upstream}}))
            .first;
  }
  duration->second->Observe(seconds);
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
