// One proxy thread: an io_context with its own HTTP listeners and upstream connection pools,
// so a request is read, transcoded, sent upstream and answered without a thread hop.
//
//   EventLoop loop(0, shared);
//   loop.AddListener(...);    // before Run
//   loop.Run();               // on its own thread
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "request_environment.h"
#include "route_stats.h"
#include "routing.h"
#include "shared_state.h"
#include "tipperary/common/check.h"
#include "tipperary/http1/http_listener.h"
#include "tipperary/metrics/counter.h"
#include "tipperary/metrics/gauge.h"
#include "tipperary/metrics/histogram.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::proxy {

class EventLoop final : public RequestEnvironment {
 public:
  EventLoop(int index, SharedState& shared);
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io_context() { return ioc_; }
  int index() const { return index_; }

  // Setup, before Start(): one cluster per configured upstream, in config order.
  void CreateUpstreams();
  void AddListener(std::unique_ptr<http1::HttpListener> listener);

  // Starts the thread (or, with run_here, runs on the caller's thread until Stop).
  void Start();
  void Stop();
  void Join();

  // Loop-thread only.
  // A new schema generation: requests in flight keep the one they started with, and the
  // stats they hold (RouteStatsCache).
  void SetRouting(std::shared_ptr<const Routing> routing);
  upstream::UpstreamCluster* cluster(int index) { return clusters_[index].get(); }
  void BeginDrain();

  // Any thread: requests read whose response is not fully written yet, on every listener.
  size_t ActiveRequests() const;
  // Any thread: the counters of this loop's listeners named `name` ("http", "admin"), summed.
  http1::ListenerCounters ListenerTotals(std::string_view name) const;

  // RequestEnvironment, loop-thread only.
  const config::ProxyConfig& config() const override { return shared_.config; }
  std::shared_ptr<const Routing> routing() const override { return routing_; }
  upstream::UpstreamClient& upstream(int index) override {
    TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
    TIPPERARY_DCHECK(index >= 0 && static_cast<size_t>(index) < clusters_.size());
    return *clusters_[index];
  }
  std::shared_ptr<RouteStats> StatsFor(const transcoder::Route* route) override {
    TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
    return route_stats_.For(route);
  }
  void RecordUpstream(int index, absl::StatusCode code, double seconds) override;
  Clock::time_point Now() const override { return Clock::now(); }
  std::unique_ptr<Timer> StartTimer(Clock::duration delay, std::function<void()> fire) override;
  AccessLog* access_log() const override { return shared_.access_log.get(); }
  const CorsPolicy& cors() const override { return cors_; }
  std::atomic<int64_t>& in_flight() override { return shared_.in_flight; }

  // Snapshot of this loop's upstream and listener state, refreshed on the loop every second
  // and read by the metrics collect hook from another thread.
  struct Snapshot {
    std::atomic<uint64_t> connecting{0}, ready{0}, draining{0}, backoff{0};
    std::atomic<uint64_t> connects{0}, connect_failures{0}, goaways{0};
    std::atomic<uint64_t> http_connections{0};
  };
  const std::vector<std::unique_ptr<Snapshot>>& snapshots() const { return snapshots_; }
  bool AnyUpstreamReady() const { return any_ready_.load(std::memory_order_relaxed); }

 private:
  void RefreshSnapshot();
  void WaitForUpstreamsClosed(std::chrono::steady_clock::time_point deadline);

  int index_;
  SharedState& shared_;
  CorsPolicy cors_;
  boost::asio::io_context ioc_{1};
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::unique_ptr<upstream::UpstreamCluster>> clusters_;
  std::vector<std::unique_ptr<http1::HttpListener>> listeners_;
  std::shared_ptr<const Routing> routing_;
  RouteStatsCache route_stats_;
  std::vector<std::vector<metrics::Counter*>> upstream_requests_;  // [upstream][grpc code]
  std::vector<metrics::Histogram*> upstream_duration_;
  std::vector<std::unique_ptr<Snapshot>> snapshots_;  // One per upstream + listeners.
  std::atomic<bool> any_ready_{false};
  std::unique_ptr<boost::asio::steady_timer> snapshot_timer_;
  std::unique_ptr<boost::asio::steady_timer> stop_timer_;
  common::ThreadChecker loop_thread_;  // Bound once the loop runs; setup may come before.
  std::thread thread_;
};

}  // namespace tipperary::proxy
