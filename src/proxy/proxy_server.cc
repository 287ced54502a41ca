#include "proxy_server.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxied_request.h"
#include "reflection_client.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/common/log.h"
#include "tipperary/http1/http_listener.h"
#include "tipperary/metrics/process_metrics.h"
#include "tipperary/transcoder/schema.h"

namespace tipperary::proxy {
namespace {

// The compression section, for every listener of the proxy (the admin port's /metrics too).
http1::CompressionOptions CompressionOptionsFor(const config::CompressionConfig& config) {
  http1::CompressionOptions options;
  options.enabled = config.enabled;
  options.min_length_bytes = config.min_length;
  options.level = static_cast<int>(config.level);
  options.types = config.types;
  options.decode_requests = config.decode_requests;
  options.max_decoded_body_bytes = config.max_decoded_request_body_bytes;
  options.max_decoding_ratio = config.max_request_decoding_ratio;
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::Create(config::ProxyConfig config) {
  std::unique_ptr<ProxyServer> server(new ProxyServer());
  absl::Status status = server->Init(std::move(config));
  if (!status.ok()) return status;
  return server;
}

ProxyServer::~ProxyServer() {
  if (health_) {
    boost::asio::post(loops_[0]->io_context(), [health = health_] { health->Stop(); });
  }
  for (auto& loop : loops_) loop->Stop();
  for (auto& loop : loops_) loop->Join();
  // After the loops: the admin handler reads the sampler until its loop stops.
  if (autoscaling_) autoscaling_->Stop();
}

absl::Status ProxyServer::Init(config::ProxyConfig config) {
  shared_ = std::make_unique<SharedState>();
  shared_->config = std::move(config);
  const config::ProxyConfig& cfg = shared_->config;
  shared_->stats = ProxyStats::Register(shared_->registry);
  metrics::RegisterProcessMetrics(shared_->registry);
  shared_->stats.build_info->Add({{"version", TIPPERARY_VERSION}}).Set(1);
  if (cfg.logging.access_log) {
    auto log = AccessLog::Open(cfg.logging.access_log_path, cfg.logging.access_log_sample_rate);
    if (!log.ok()) return log.status();
    shared_->access_log = std::move(*log);
  }

  for (const config::DescriptorSource& source : cfg.descriptors) {
    if (!source.path.empty()) {
      auto set = transcoder::ReadDescriptorSetFile(source.path);
      if (!set.ok()) {
        return absl::Status(set.status().code(),
                            absl::StrCat(source.location, ": ", set.status().message()));
      }
      file_sets_.push_back(std::move(*set));
    } else {
      reflection_upstreams_.push_back(source.reflection_upstream);
    }
  }

  unsigned threads = cfg.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) {
    loops_.push_back(std::make_unique<EventLoop>(static_cast<int>(i), *shared_));
    loops_.back()->CreateUpstreams();
  }
  auto autoscaling = AutoscalingRuntime::Start(*shared_);
  if (!autoscaling.ok()) return autoscaling.status();
  autoscaling_ = std::move(*autoscaling);
  absl::Status status = CreateListeners();
  if (!status.ok()) return status;

  if (reflection_upstreams_.empty()) {
    auto routing = BuildRouting(cfg, file_sets_);
    if (!routing.ok()) return routing.status();
    LogRouteIssues(*(*routing)->routes);
    for (auto& loop : loops_) loop->SetRouting(*routing);  // Loops are not running yet.
    shared_->schema_loaded = true;
    shared_->stats.schema_loaded->Add({}).Set(1);
    AcceptSchema(FingerprintOf(file_sets_));
  } else {
    shared_->stats.schema_loaded->Add({}).Set(0);
  }
  InstallCollectHook();
  return absl::OkStatus();
}

absl::Status ProxyServer::CreateListeners() {
  const config::ProxyConfig& cfg = shared_->config;
  for (const config::ListenerConfig& lc : cfg.listeners) {
    auto endpoint = common::ParseEndpoint(lc.address, /*allow_port_zero=*/true);
    if (!endpoint.ok()) return endpoint.status();
    http1::ListenerOptions options;
    options.name = "http";
    options.endpoint = *endpoint;
    options.limits.max_header_bytes = cfg.limits.max_header_bytes;
    options.limits.max_body_bytes = cfg.limits.max_request_body_bytes;
    options.limits.max_chunk_extension_bytes = cfg.limits.max_chunk_extension_bytes;
    options.limits.max_trailer_bytes = cfg.limits.max_trailer_bytes;
    options.limits.max_streamed_body_bytes = cfg.limits.max_streamed_request_body_bytes;
    options.stream_body_window_bytes = cfg.limits.stream_window_bytes;
    options.max_connection_buffer_bytes = cfg.limits.max_connection_buffer_bytes;
    options.max_pipelined_requests = cfg.limits.max_pipelined_requests;
    options.max_connections = cfg.limits.max_connections;
    options.idle_timeout = cfg.timeouts.idle;
    options.request_read_timeout = cfg.timeouts.request_read;
    options.response_write_timeout = cfg.timeouts.response_write;
    options.compression = CompressionOptionsFor(cfg.compression);
    std::shared_ptr<boost::asio::ssl::context> tls;
    if (lc.tls) {
      http1::TlsOptions t;
      t.cert_file = lc.tls->cert;
      t.key_file = lc.tls->key;
      t.client_ca_file = lc.tls->client_ca;
      t.require_client_cert = lc.tls->require_client_cert;
      t.min_version = lc.tls->min_version;
      options.tls = t;
      auto ctx = http1::MakeServerTlsContext(t);
      if (!ctx.ok()) return ctx.status();
      tls = *ctx;
    }
    // The first loop binds (port 0 resolves here); the others share the port via SO_REUSEPORT.
    for (size_t i = 0; i < loops_.size(); ++i) {
      options.log_listening = (i == 0);
      EventLoop* loop = loops_[i].get();
      // Client streams go upstream as they arrive (ProxiedRequest reads them piece by piece).
      options.stream_request_body = [loop](const http1::HttpRequest& head) {
        return ProxiedRequest::StreamsBody(*loop, head);
      };
      // The listener's own errors in the route's error shape (OpenAI's on /v1/embeddings).
      options.render_error = [loop](const http1::HttpRequest& head,
                                    const http1::RequestError& error) {
        return ProxiedRequest::ListenerErrorBody(*loop, head, error);
      };
      auto l = http1::HttpListener::Create(
          loops_[i]->io_context(), options,
          [loop](std::shared_ptr<http1::HttpExchange> ex) {
            ProxiedRequest::Start(*loop, std::move(ex));
          },
          tls);
      if (!l.ok()) return l.status();
      options.endpoint.port = (*l)->port();
      loops_[i]->AddListener(std::move(*l));
    }
  }

  auto admin_endpoint = common::ParseEndpoint(cfg.admin.address, /*allow_port_zero=*/true);
  if (!admin_endpoint.ok()) return admin_endpoint.status();
  http1::ListenerOptions admin_options;
  admin_options.name = "admin";
  admin_options.endpoint = *admin_endpoint;
  admin_options.server_header = "tipperary-proxy-admin";
  admin_options.compression = CompressionOptionsFor(cfg.compression);
  health_ = UpstreamHealth::Create(*loops_[0], shared_->config);
  admin_ = std::make_unique<AdminHandler>(*shared_, loops_, *loops_[0], &autoscaling_->sampler(),
                                          health_.get());
  AdminHandler* admin = admin_.get();
  auto l = http1::HttpListener::Create(
      loops_[0]->io_context(), admin_options,
      [admin](std::shared_ptr<http1::HttpExchange> ex) { admin->Handle(std::move(ex)); }, nullptr);
  if (!l.ok()) return l.status();
  loops_[0]->AddListener(std::move(*l));
  return absl::OkStatus();
}

void ProxyServer::InstallCollectHook() {
  // Upstream and connection state lives on the loops; each loop publishes a snapshot into
  // atomics every 250 ms and the scrape sums them here.
  struct Last {
    uint64_t connects = 0, failures = 0, goaways = 0;
  };
  auto last = std::make_shared<std::vector<Last>>(shared_->config.upstreams.size());
  auto listener_last = std::make_shared<std::map<std::string, http1::ListenerCounters>>();
  shared_->registry.AddCollectHook([this, last, listener_last] {
    const auto& upstreams = shared_->config.upstreams;
    for (size_t u = 0; u < upstreams.size(); ++u) {
      uint64_t connecting = 0, ready = 0, draining = 0, backoff = 0;
      uint64_t connects = 0, failures = 0, goaways = 0;
      for (const auto& loop : loops_) {
        const auto& snap = *loop->snapshots()[u];
        connecting += snap.connecting;
        ready += snap.ready;
        draining += snap.draining;
        backoff += snap.backoff;
        connects += snap.connects;
        failures += snap.connect_failures;
        goaways += snap.goaways;
      }
      const std::string& name = upstreams[u].name;
      auto& gauge = *shared_->stats.upstream_connections;
      gauge.Add({{"upstream", name}, {"state", "connecting"}}).Set(static_cast<double>(connecting));
      gauge.Add({{"upstream", name}, {"state", "ready"}}).Set(static_cast<double>(ready));
      gauge.Add({{"upstream", name}, {"state", "draining"}}).Set(static_cast<double>(draining));
      gauge.Add({{"upstream", name}, {"state", "backoff"}}).Set(static_cast<double>(backoff));
      Last& l = (*last)[u];
      uint64_t successes = connects >= failures ? connects - failures : 0;
      uint64_t last_successes = l.connects >= l.failures ? l.connects - l.failures : 0;
      if (successes > last_successes) {
        shared_->stats.upstream_connects->Add({{"upstream", name}, {"result", "success"}})
            .Increment(static_cast<double>(successes - last_successes));
      }
      if (failures > l.failures) {
        shared_->stats.upstream_connects->Add({{"upstream", name}, {"result", "failure"}})
            .Increment(static_cast<double>(failures - l.failures));
      }
      if (goaways > l.goaways) {
        shared_->stats.upstream_goaways->Add({{"upstream", name}})
            .Increment(static_cast<double>(goaways - l.goaways));
      }
      l = Last{std::max(connects, l.connects), std::max(failures, l.failures),
               std::max(goaways, l.goaways)};
    }
    uint64_t connections = 0;
    for (const auto& loop : loops_) connections += loop->snapshots().back()->http_connections;
    shared_->stats.http_connections->Add({{"listener", "http"}})
        .Set(static_cast<double>(connections));
    // The listeners' own counters, exported as counters: the scrape adds what grew since.
    for (const char* name : {"http", "admin"}) {
      http1::ListenerCounters now;
      for (const auto& loop : loops_) {
        http1::ListenerCounters c = loop->ListenerTotals(name);
        now.connections_accepted += c.connections_accepted;
        now.protocol_errors += c.protocol_errors;
        now.timeouts += c.timeouts;
        now.tls_handshake_failures += c.tls_handshake_failures;
        now.compressed_responses += c.compressed_responses;
        now.compression_input_bytes += c.compression_input_bytes;
        now.compression_output_bytes += c.compression_output_bytes;
        now.decoded_request_bodies += c.decoded_request_bodies;
      }
      http1::ListenerCounters& before = (*listener_last)[name];
      auto add = [name](metrics::Family<metrics::Counter>* family, uint64_t now_value,
                        uint64_t& before_value) {
        if (now_value > before_value) {
          family->Add({{"listener", name}})
              .Increment(static_cast<double>(now_value - before_value));
          before_value = now_value;
        }
      };
      add(shared_->stats.http_connections_accepted, now.connections_accepted,
          before.connections_accepted);
      add(shared_->stats.http_protocol_errors, now.protocol_errors, before.protocol_errors);
      add(shared_->stats.http_timeouts, now.timeouts, before.timeouts);
      add(shared_->stats.tls_handshake_failures, now.tls_handshake_failures,
          before.tls_handshake_failures);
      add(shared_->stats.http_compressed_responses, now.compressed_responses,
          before.compressed_responses);
      add(shared_->stats.http_compression_input_bytes, now.compression_input_bytes,
          before.compression_input_bytes);
      add(shared_->stats.http_compression_output_bytes, now.compression_output_bytes,
          before.compression_output_bytes);
      add(shared_->stats.http_decoded_request_bodies, now.decoded_request_bodies,
          before.decoded_request_bodies);
    }
    shared_->stats.draining->Add({}).Set(shared_->draining.load() ? 1 : 0);
    shared_->stats.schema_loaded->Add({}).Set(shared_->schema_loaded.load() ? 1 : 0);
    shared_->stats.schema_generation->Add({}).Set(
        static_cast<double>(shared_->schema_generation.load()));
    if (const int64_t checked = shared_->schema_checked_ns.load(); checked != 0) {
      const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
      shared_->stats.schema_age->Add({}).Set(static_cast<double>(now - checked) / 1e9);
    }
  });
}

void ProxyServer::PublishRouting(std::shared_ptr<const Routing> routing) {
  for (auto& loop : loops_) {
    EventLoop* l = loop.get();
    boost::asio::post(l->io_context(), [l, routing] { l->SetRouting(routing); });
  }
  shared_->schema_loaded = true;
}

void ProxyServer::AcceptSchema(SchemaFingerprint fingerprint) {
  {
    absl::MutexLock lock(&shared_->schema_mu);
    shared_->schema_digest = fingerprint.digest;
  }
  fingerprint_ = std::move(fingerprint);
  shared_->schema_generation.fetch_add(1);
  shared_->schema_checked_ns = std::chrono::steady_clock::now().time_since_epoch().count();
}

void ProxyServer::RefreshSchema(const std::string& why) {
  if (reflection_upstreams_.empty() || refreshing_ || !shared_->schema_loaded.load()) return;
  refreshing_ = true;
  TIPPERARY_LOG(kDebug, "refreshing the schema", {{"why", why}});
  FetchReflection(0, file_sets_, /*refresh=*/true);
}

void ProxyServer::RefreshFailed(const std::string& error) {
  refreshing_ = false;
  shared_->stats.schema_refreshes->Add({{"result", "failed"}}).Increment();
  {
    absl::MutexLock lock(&shared_->schema_mu);
    shared_->schema_last_error = error;
  }
  TIPPERARY_LOG(kWarn, "schema refresh failed; keeping the last good schema", {{"error", error}});
}

void ProxyServer::ArmRefreshTimer() {
  const auto interval = shared_->config.schema.refresh_interval;
  if (reflection_upstreams_.empty() || interval.count() <= 0) return;
  if (!refresh_timer_) {
    refresh_timer_ = std::make_unique<boost::asio::steady_timer>(loops_[0]->io_context());
  }
  refresh_timer_->expires_after(interval);
  refresh_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    RefreshSchema("interval");
    ArmRefreshTimer();
  });
}

void ProxyServer::WatchReflectionUpstreams() {
  if (reflection_upstreams_.empty() || !shared_->config.schema.refresh_on_reconnect) return;
  if (!watch_timer_) {
    watch_timer_ = std::make_unique<boost::asio::steady_timer>(loops_[0]->io_context());
  }
  uint64_t events = 0;
  const auto& upstreams = shared_->config.upstreams;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    if (std::find(reflection_upstreams_.begin(), reflection_upstreams_.end(), upstreams[i].name) ==
        reflection_upstreams_.end()) {
      continue;
    }
    const upstream::UpstreamCluster::Stats stats =
        loops_[0]->cluster(static_cast<int>(i))->GetStats();
    events += stats.connects_total + stats.goaways_total;
  }
  // A new connection after the first, or a GOAWAY: the worker restarted or is being replaced.
  if (events != seen_reconnects_) {
    if (seen_reconnects_ != 0) RefreshSchema("upstream reconnected or sent GOAWAY");
    seen_reconnects_ = events;
  }
  watch_timer_->expires_after(std::chrono::seconds(1));
  watch_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    WatchReflectionUpstreams();
  });
}

void ProxyServer::OnSchemaFetched(const std::vector<google::protobuf::FileDescriptorSet>& sets,
                                  bool refresh) {
  SchemaFingerprint fingerprint = FingerprintOf(sets);
  if (refresh && fingerprint.digest == fingerprint_.digest) {
    refreshing_ = false;
    shared_->schema_checked_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    shared_->stats.schema_refreshes->Add({{"result", "unchanged"}}).Increment();
    return;
  }
  auto routing = BuildRouting(shared_->config, sets);
  if (!routing.ok()) {
    TIPPERARY_LOG(kError, "schema from reflection rejected",
                  {{"error", std::string(routing.status().message())}});
    if (refresh) {
      RefreshFailed(std::string(routing.status().message()));
    } else {
      RetryReflection();
    }
    return;
  }
  LogRouteIssues(*(*routing)->routes);
  size_t services = 0;
  for (const auto& set : sets) {
    for (const auto& file : set.file()) services += file.service_size();
  }
  size_t problems = 0;
  for (const auto& issue : (*routing)->routes->issues()) problems += issue.problem ? 1 : 0;
  if (refresh) {
    MethodChanges changes = DiffMethods(fingerprint_, fingerprint);
    TIPPERARY_LOG(kInfo, "schema changed",
                  {{"source", "reflection"},
                   {"generation", absl::StrCat(shared_->schema_generation.load() + 1)},
                   {"added", absl::StrJoin(changes.added, ",")},
                   {"removed", absl::StrJoin(changes.removed, ",")},
                   {"routes", absl::StrCat((*routing)->routes->routes().size())},
                   {"route_problems", absl::StrCat(problems)}});
    shared_->stats.schema_refreshes->Add({{"result", "changed"}}).Increment();
  } else {
    TIPPERARY_LOG(kInfo, "schema loaded",
                  {{"source", "reflection"},
                   {"services", absl::StrCat(services)},
                   {"routes", absl::StrCat((*routing)->routes->routes().size())},
                   {"route_problems", absl::StrCat(problems)}});
  }
  PublishRouting(*routing);
  AcceptSchema(std::move(fingerprint));
  if (!refresh) {
    ArmRefreshTimer();
    WatchReflectionUpstreams();
  }
  refreshing_ = false;
}

void ProxyServer::FetchReflection(size_t source,
                                  std::vector<google::protobuf::FileDescriptorSet> sets,
                                  bool refresh) {
  if (source == reflection_upstreams_.size()) {
    OnSchemaFetched(sets, refresh);
    return;
  }
  const auto& upstreams = shared_->config.upstreams;
  int index = -1;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    if (upstreams[i].name == reflection_upstreams_[source]) index = static_cast<int>(i);
  }
  if (index < 0) return;  // The config loader rejects this; nothing to fetch.
  ReflectionClient::Fetch(
      *loops_[0]->cluster(index), shared_->config.upstreams[index].connect_timeout * 5,
      [this, source, refresh,
       sets = std::move(sets)](absl::StatusOr<google::protobuf::FileDescriptorSet> set) mutable {
        if (!set.ok()) {
          if (refresh) {
            RefreshFailed(absl::StrCat("reflection on ", reflection_upstreams_[source], ": ",
                                       set.status().message()));
            return;
          }
          TIPPERARY_LOG(kWarn, "reflection failed; retrying",
                        {{"upstream", reflection_upstreams_[source]},
                         {"error", std::string(set.status().message())}});
          RetryReflection();
          return;
        }
        reflection_backoff_ = std::chrono::milliseconds(250);
        sets.push_back(std::move(*set));
        FetchReflection(source + 1, std::move(sets), refresh);
      });
}

void ProxyServer::RetryReflection() {
  if (!reflection_timer_) {
    reflection_timer_ = std::make_unique<boost::asio::steady_timer>(loops_[0]->io_context());
  }
  reflection_timer_->expires_after(reflection_backoff_);
  reflection_backoff_ = std::min(reflection_backoff_ * 2, std::chrono::milliseconds(5000));
  reflection_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    FetchReflection(0, file_sets_, /*refresh=*/false);
  });
}

int ProxyServer::Run() {
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGTERM, SIGINT);
  for (auto& loop : loops_) loop->Start();
  boost::asio::post(loops_[0]->io_context(), [health = health_] { health->Start(); });
  if (!reflection_upstreams_.empty()) {
    boost::asio::post(loops_[0]->io_context(),
                      [this] { FetchReflection(0, file_sets_, /*refresh=*/false); });
  }

  bool stop = false;
  int exit_code = 0;
  std::chrono::steady_clock::time_point drain_deadline;
  boost::asio::steady_timer poll(signals_ioc);
  // A request is unfinished until its last response byte is written (or its client left):
  // the listeners count those; in_flight counts the ones not yet answered at all.
  auto unfinished = [this] {
    size_t n = 0;
    for (const auto& loop : loops_) n += loop->ActiveRequests();
    return n;
  };
  std::function<void()> wait_drained = [&] {
    size_t left = unfinished();
    bool timed_out = std::chrono::steady_clock::now() >= drain_deadline;
    if (left == 0 || timed_out) {
      if (left > 0) exit_code = 1;
      common::Log(left == 0 ? common::LogLevel::kInfo : common::LogLevel::kError, "drained",
                  {{"unfinished", absl::StrCat(left)},
                   {"in_flight", absl::StrCat(shared_->in_flight.load())},
                   {"result", left == 0 ? "complete" : "drain timeout: responses cut"}});
      stop = true;
      signals.cancel();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(20));
    poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) wait_drained();
    });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (shared_->draining.exchange(true)) {
          // At once, even if a loop is stuck: the operator asked twice.
          TIPPERARY_LOG(kWarn, "second signal: exiting now",
                        {{"unfinished", absl::StrCat(unfinished())}});
          std::_Exit(1);
        }
        TIPPERARY_LOG(
            kInfo, "draining",
            {{"signal", absl::StrCat(signo)}, {"unfinished", absl::StrCat(unfinished())}});
        for (auto& loop : loops_) {
          EventLoop* l = loop.get();
          boost::asio::post(l->io_context(), [l] { l->BeginDrain(); });
        }
        drain_deadline = std::chrono::steady_clock::now() + shared_->config.timeouts.drain;
        signals.async_wait(on_signal);
        wait_drained();
      };
  signals.async_wait(on_signal);
  signals_ioc.run();
  // A loop stuck in a handler must not keep the process alive past the drain.
  std::atomic<bool> joined{false};
  std::thread watchdog([&joined, &unfinished] {
    for (int i = 0; i < 300 && !joined.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!joined.load()) {
      TIPPERARY_LOG(kError, "event loops did not stop within 3s; exiting",
                    {{"unfinished", absl::StrCat(unfinished())}});
      std::_Exit(1);
    }
  });
  for (auto& loop : loops_) loop->Stop();
  for (auto& loop : loops_) loop->Join();
  joined = true;
  watchdog.join();
  TIPPERARY_LOG(kInfo, "stopped", {{"exit_code", absl::StrCat(exit_code)}});
  return exit_code;
}

}  // namespace tipperary::proxy
