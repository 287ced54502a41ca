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
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
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
#include "upstream_snapshot.h"

namespace tipperary::proxy {

class EventLoop final : public RequestEnvironment {
 public:
  EventLoop(int index, SharedState& shared, std::shared_ptr<const config::ProxyConfig> config);
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io_context() { return ioc_; }
  int index() const { return index_; }

  // Setup, before Start(): one cluster per configured upstream, in config order.
  // `upstream_keys[i]` identifies the whole section of config.upstreams[i] (UpstreamKeys).
  void CreateUpstreams(const std::vector<std::string>& upstream_keys);
  void AddListener(std::unique_ptr<http1::HttpListener> listener);

  // Starts the thread (or, with run_here, runs on the caller's thread until Stop).
  void Start();
  void Stop();
  void Join();

  // Loop-thread only.
  // A new schema generation: requests in flight keep the one they started with, and the
  // stats they hold (RouteStatsCache).
  void SetRouting(std::shared_ptr<const Routing> routing);
  // A reload: from now on requests get `config`, `routing` and `access_log`. An upstream whose
  // section is unchanged (same key) keeps its cluster and connections; a new or changed one gets
  // a new cluster (calls queue while it connects); a cluster no longer configured drains (its
  // calls in flight finish, held by their requests) and closes.
  void ApplyConfig(std::shared_ptr<const config::ProxyConfig> config,
                   const std::vector<std::string>& upstream_keys,
                   std::shared_ptr<const Routing> routing, std::shared_ptr<AccessLog> access_log);
  // Limits, timeouts and compression of the listeners named `name`, from their next request.
  void UpdateListeners(std::string_view name, const http1::ListenerOptions& options);
  void SetAccessLog(std::shared_ptr<AccessLog> access_log) { access_log_ = std::move(access_log); }
  upstream::UpstreamCluster* cluster(int index) { return clusters_[index].cluster.get(); }
  // The cluster serving the upstream named `name` now, or null.
  upstream::UpstreamCluster* ClusterNamed(std::string_view name);
  void BeginDrain();

  // Any thread: requests read whose response is not fully written yet, on every listener.
  size_t ActiveRequests() const;
  // Any thread: the counters of this loop's listeners named `name` ("http", "admin"), summed.
  http1::ListenerCounters ListenerTotals(std::string_view name) const;

  // RequestEnvironment, loop-thread only.
  std::shared_ptr<const config::ProxyConfig> config() const override { return config_; }
  std::shared_ptr<const Routing> routing() const override { return routing_; }
  std::shared_ptr<upstream::UpstreamClient> upstream(int index) override {
    TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
    TIPPERARY_DCHECK(index >= 0 && static_cast<size_t>(index) < clusters_.size());
    return clusters_[index].cluster;
  }
  std::shared_ptr<RouteStats> StatsFor(const transcoder::Route* route) override {
    TIPPERARY_DCHECK_ON_THREAD(loop_thread_);
    return route_stats_.For(route);
  }
  void RecordUpstream(const std::string& upstream, absl::StatusCode code, double seconds) override;
  Clock::time_point Now() const override { return Clock::now(); }
  std::unique_ptr<Timer> StartTimer(Clock::duration delay, std::function<void()> fire) override;
  AccessLog* access_log() const override { return access_log_.get(); }
  std::shared_ptr<const CorsPolicy> cors() const override { return cors_; }
  std::atomic<int64_t>& in_flight() override { return shared_.in_flight; }

  // This loop's upstream state per upstream name (its live cluster, the draining ones and those
  // already closed: totals never go down), refreshed on the loop every 250 ms and read by the
  // metrics collect hook and the schema watcher from other threads.
  using UpstreamSnapshot = proxy::UpstreamSnapshot;
  std::map<std::string, UpstreamSnapshot> UpstreamSnapshots() const;
  // Loop thread: the same, computed now rather than at the last refresh.
  std::map<std::string, UpstreamSnapshot> LiveUpstreamSnapshots();
  uint64_t http_connections() const { return http_connections_.load(std::memory_order_relaxed); }
  bool AnyUpstreamReady() const { return any_ready_.load(std::memory_order_relaxed); }

 private:
  void RefreshSnapshot();
  void WaitForUpstreamsClosed(std::chrono::steady_clock::time_point deadline);

  struct ClusterEntry {
    std::string name;
    std::string key;  // The upstream's whole config section: equal keys, same cluster.
    std::shared_ptr<upstream::UpstreamCluster> cluster;
  };
  ClusterEntry MakeCluster(const config::UpstreamConfig& upstream, std::string key);
  void ReapRetired();
  std::map<std::string, UpstreamSnapshot> ComputeSnapshots() const;

  int index_;
  SharedState& shared_;
  std::shared_ptr<const config::ProxyConfig> config_;
  std::shared_ptr<const CorsPolicy> cors_;
  std::shared_ptr<AccessLog> access_log_;
  boost::asio::io_context ioc_{1};
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<ClusterEntry> clusters_;  // Aligned with config_->upstreams.
  std::vector<ClusterEntry> retired_;   // Draining after a reload; dropped once closed.
  std::vector<std::unique_ptr<http1::HttpListener>> listeners_;
  std::shared_ptr<const Routing> routing_;
  RouteStatsCache route_stats_;
  absl::flat_hash_map<std::string, std::vector<metrics::Counter*>> upstream_requests_;  // [code]
  absl::flat_hash_map<std::string, metrics::Histogram*> upstream_duration_;
  mutable absl::Mutex snapshot_mu_;
  std::map<std::string, UpstreamSnapshot> snapshots_ ABSL_GUARDED_BY(snapshot_mu_);
  std::map<std::string, UpstreamSnapshot> closed_totals_;  // Of reaped clusters, loop only.
  std::atomic<uint64_t> http_connections_{0};
  std::atomic<bool> any_ready_{false};
  std::unique_ptr<boost::asio::steady_timer> snapshot_timer_;
  std::unique_ptr<boost::asio::steady_timer> stop_timer_;
  common::ThreadChecker loop_thread_;  // Bound once the loop runs; setup may come before.
  std::thread thread_;
};

}  // namespace tipperary::proxy
