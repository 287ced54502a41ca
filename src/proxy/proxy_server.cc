#include "proxy_server.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdlib>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config_check.h"
#include "proxied_request.h"
#include "reflection_client.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/common/log.h"
#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/http1/http_listener.h"
#include "tipperary/metrics/process_metrics.h"
#include "tipperary/transcoder/schema.h"
#include "upstream_metrics.h"

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

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::Create(config::ProxyConfig config,
                                                                 std::string config_path) {
  std::unique_ptr<ProxyServer> server(new ProxyServer());
  server->config_path_ = std::move(config_path);
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

absl::StatusOr<std::shared_ptr<AccessLog>> ProxyServer::OpenAccessLog(
    const config::LoggingConfig& logging) {
  if (!logging.access_log) return std::shared_ptr<AccessLog>();
  auto log = AccessLog::Open(logging.access_log_path, logging.access_log_sample_rate);
  if (!log.ok()) return log.status();
  return std::shared_ptr<AccessLog>(std::move(*log));
}

absl::Status ProxyServer::Init(config::ProxyConfig config) {
  shared_ = std::make_unique<SharedState>();
  config_ = std::make_shared<const config::ProxyConfig>(std::move(config));
  const std::string hash = config::ConfigHash(config::DumpProxyConfig(*config_, false));
  shared_->SetConfig(config_, hash);
  const config::ProxyConfig& cfg = *config_;
  shared_->stats = ProxyStats::Register(shared_->registry);
  metrics::RegisterProcessMetrics(shared_->registry);
  shared_->stats.build_info->Add({{"version", TIPPERARY_VERSION}}).Set(1);
  RecordConfig("", hash);
  auto access_log = OpenAccessLog(cfg.logging);
  if (!access_log.ok()) return access_log.status();
  access_log_ = std::move(*access_log);

  // What --check-config checks, with the same code (a reload runs it too).
  auto checked = CheckProxyConfig(cfg);
  if (!checked.ok()) return checked.status();
  file_sets_ = checked->file_sets;
  reflection_upstreams_ = checked->reflection_upstreams;

  unsigned threads = cfg.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const std::vector<std::string> upstream_keys = UpstreamKeys(cfg);
  for (unsigned i = 0; i < threads; ++i) {
    loops_.push_back(std::make_unique<EventLoop>(static_cast<int>(i), *shared_, config_));
    loops_.back()->CreateUpstreams(upstream_keys);
    loops_.back()->SetAccessLog(access_log_);
  }
  auto autoscaling = AutoscalingRuntime::Start(*shared_);
  if (!autoscaling.ok()) return autoscaling.status();
  autoscaling_ = std::move(*autoscaling);
  absl::Status status = CreateListeners();
  if (!status.ok()) return status;

  if (reflection_upstreams_.empty()) {
    LogRouteIssues(*checked->routing->routes);
    for (auto& loop : loops_) loop->SetRouting(checked->routing);  // Loops are not running yet.
    shared_->schema_loaded = true;
    shared_->stats.schema_loaded->Add({}).Set(1);
    AcceptSchema(FingerprintOf(file_sets_));
  } else {
    shared_->stats.schema_loaded->Add({}).Set(0);
  }
  InstallCollectHook();
  return absl::OkStatus();
}

void ProxyServer::RecordConfig(const std::string& old_hash, const std::string& hash) {
  if (old_hash == hash) return;
  if (!old_hash.empty()) shared_->stats.config_info->Remove({{"hash", old_hash}});
  shared_->stats.config_info->Add({{"hash", hash}}).Set(1);
  shared_->stats.config_last_reload_success->Add({}).Set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

http1::ListenerOptions ProxyServer::HttpListenerOptions(const config::ProxyConfig& cfg,
                                                        EventLoop* loop) {
  http1::ListenerOptions options;
  options.name = "http";
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
  // Client streams go upstream as they arrive (ProxiedRequest reads them piece by piece).
  options.stream_request_body = [loop](const http1::HttpRequest& head) {
    return ProxiedRequest::StreamsBody(*loop, head);
  };
  // The listener's own errors in the route's error shape (OpenAI's on /v1/embeddings).
  options.render_error = [loop](const http1::HttpRequest& head, const http1::RequestError& error) {
    return ProxiedRequest::ListenerErrorBody(*loop, head, error);
  };
  return options;
}

http1::ListenerOptions ProxyServer::AdminListenerOptions(const config::ProxyConfig& cfg) {
  http1::ListenerOptions options;
  options.name = "admin";
  options.server_header = "tipperary-proxy-admin";
  options.compression = CompressionOptionsFor(cfg.compression);
  return options;
}

absl::Status ProxyServer::CreateListeners() {
  const config::ProxyConfig& cfg = *config_;
  for (const config::ListenerConfig& lc : cfg.listeners) {
    auto endpoint = common::ParseEndpoint(lc.address, /*allow_port_zero=*/true);
    if (!endpoint.ok()) return endpoint.status();
    std::shared_ptr<boost::asio::ssl::context> tls;
    std::optional<http1::TlsOptions> tls_options;
    if (lc.tls) {
      http1::TlsOptions t;
      t.cert_file = lc.tls->cert;
      t.key_file = lc.tls->key;
      t.client_ca_file = lc.tls->client_ca;
      t.require_client_cert = lc.tls->require_client_cert;
      t.min_version = lc.tls->min_version;
      tls_options = t;
      auto ctx = http1::MakeServerTlsContext(t);
      if (!ctx.ok()) return ctx.status();
      tls = *ctx;
    }
    // The first loop binds (port 0 resolves here); the others share the port via SO_REUSEPORT.
    for (size_t i = 0; i < loops_.size(); ++i) {
      EventLoop* loop = loops_[i].get();
      http1::ListenerOptions options = HttpListenerOptions(cfg, loop);
      options.endpoint = *endpoint;
      options.tls = tls_options;
      options.log_listening = (i == 0);
      auto l = http1::HttpListener::Create(
          loops_[i]->io_context(), options,
          [loop](std::shared_ptr<http1::HttpExchange> ex) {
            ProxiedRequest::Start(*loop, std::move(ex));
          },
          tls);
      if (!l.ok()) return l.status();
      endpoint->port = (*l)->port();
      loops_[i]->AddListener(std::move(*l));
    }
  }

  auto admin_endpoint = common::ParseEndpoint(cfg.admin.address, /*allow_port_zero=*/true);
  if (!admin_endpoint.ok()) return admin_endpoint.status();
  http1::ListenerOptions admin_options = AdminListenerOptions(cfg);
  admin_options.endpoint = *admin_endpoint;
  health_config_ = config_;
  health_ = UpstreamHealth::Create(*loops_[0], *health_config_);
  AdminHandler::Hooks hooks;
  hooks.health = [this] { return health_.get(); };
  hooks.reload = [this] { return Reload("POST /reload"); };
  admin_ = std::make_unique<AdminHandler>(*shared_, loops_, *loops_[0], &autoscaling_->sampler(),
                                          std::move(hooks));
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
  auto upstream_metrics = std::make_shared<UpstreamMetrics>(&shared_->stats);
  auto listener_last = std::make_shared<std::map<std::string, http1::ListenerCounters>>();
  shared_->registry.AddCollectHook([this, upstream_metrics, listener_last] {
    // Every upstream a loop knows (a reload may have removed some: their series stay, at 0).
    std::map<std::string, UpstreamSnapshot> upstreams;
    for (const auto& loop : loops_) {
      for (const auto& [name, snap] : loop->UpstreamSnapshots()) upstreams[name] += snap;
    }
    upstream_metrics->Export(upstreams);
    uint64_t connections = 0;
    for (const auto& loop : loops_) connections += loop->http_connections();
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
  const auto interval = config_->schema.refresh_interval;
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
  if (reflection_upstreams_.empty()) return;
  if (!watch_timer_) {
    watch_timer_ = std::make_unique<boost::asio::steady_timer>(loops_[0]->io_context());
  }
  if (config_->schema.refresh_on_reconnect) {
    // Loop 0's connections to the reflection upstreams (its totals survive a reload's new
    // cluster): a new connection after the first, or a GOAWAY, means the worker restarted or
    // is being replaced.
    uint64_t events = 0;
    const std::map<std::string, EventLoop::UpstreamSnapshot> snaps =
        loops_[0]->LiveUpstreamSnapshots();
    for (const std::string& name : reflection_upstreams_) {
      auto it = snaps.find(name);
      if (it != snaps.end()) events += it->second.connects + it->second.goaways;
    }
    if (events != seen_reconnects_) {
      if (seen_reconnects_ != 0) RefreshSchema("upstream reconnected or sent GOAWAY");
      seen_reconnects_ = events;
    }
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
  auto routing = BuildRouting(*config_, sets);
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
  const size_t from_files = std::min(file_sets_.size(), sets.size());
  reflection_sets_.assign(sets.begin() + static_cast<std::ptrdiff_t>(from_files), sets.end());
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
  const auto& upstreams = config_->upstreams;
  int index = -1;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    if (upstreams[i].name == reflection_upstreams_[source]) index = static_cast<int>(i);
  }
  if (index < 0) return;  // The config loader rejects this; nothing to fetch.
  ReflectionClient::Fetch(
      *loops_[0]->cluster(index), upstreams[index].connect_timeout * 5,
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

config::ReloadReport ProxyServer::Rejected(const std::string& trigger, std::string error) {
  config::ReloadReport report;
  report.result = config::ReloadReport::Result::kRejected;
  report.config_hash = shared_->ConfigHash();
  report.error = std::move(error);
  shared_->stats.config_reloads->Add({{"result", "rejected"}}).Increment();
  TIPPERARY_LOG(kError, "config reload rejected; nothing changed",
                {{"trigger", trigger}, {"error", report.error}});
  return report;
}

config::ReloadReport ProxyServer::Reload(const std::string& trigger) {
  if (shared_->draining.load()) return Rejected(trigger, "the proxy is draining for shutdown");
  auto loaded = config::LoadProxyConfigFile(config_path_);
  if (!loaded.ok()) return Rejected(trigger, std::string(loaded.status().message()));
  ReloadPlan plan = PlanReload(*config_, std::move(*loaded));
  // Everything --check-config checks, against the schema served now when it came by reflection.
  auto checked = CheckProxyConfig(*plan.config, reflection_sets_);
  if (!checked.ok()) return Rejected(trigger, std::string(checked.status().message()));
  std::shared_ptr<AccessLog> access_log = access_log_;
  const bool logging_changed = std::any_of(
      plan.changed.begin(), plan.changed.end(),
      [](const std::string& key) { return absl::StartsWith(key, "logging.access_log"); });
  if (logging_changed) {
    auto opened = OpenAccessLog(plan.config->logging);
    if (!opened.ok()) {
      return Rejected(trigger, absl::StrCat(plan.config->source_path, ": logging.access_log_path: ",
                                            opened.status().message()));
    }
    access_log = std::move(*opened);
  }
  // A descriptor file may have changed on disk while the config did not.
  std::vector<google::protobuf::FileDescriptorSet> all_sets = checked->file_sets;
  all_sets.insert(all_sets.end(), reflection_sets_.begin(), reflection_sets_.end());
  SchemaFingerprint fingerprint = FingerprintOf(all_sets);
  const bool schema_changed =
      checked->routing != nullptr && fingerprint.digest != fingerprint_.digest;

  config::ReloadReport report;
  report.restart_required = plan.restart_required;
  report.changed = plan.changed;
  report.config_hash = plan.hash;
  if (plan.changed.empty() && !schema_changed) {
    report.result = config::ReloadReport::Result::kUnchanged;
  } else {
    report.result = config::ReloadReport::Result::kApplied;
    const std::string old_hash = shared_->ConfigHash();
    config_ = plan.config;
    shared_->SetConfig(config_, plan.hash);
    access_log_ = access_log;
    file_sets_ = checked->file_sets;
    common::SetLogLevel(config_->logging.level);
    const std::vector<std::string>& keys = plan.upstream_keys;
    std::shared_ptr<const Routing> routing = checked->routing;
    for (auto& loop : loops_) {
      EventLoop* l = loop.get();
      boost::asio::post(l->io_context(), [this, l, config = config_, keys, routing, access_log] {
        l->ApplyConfig(config, keys, routing, access_log);
        l->UpdateListeners("http", HttpListenerOptions(*config, l));
        if (l->index() == 0) l->UpdateListeners("admin", AdminListenerOptions(*config));
      });
    }
    // Health checks follow the new upstreams (after loop 0 has its new clusters).
    boost::asio::post(loops_[0]->io_context(), [this, config = config_] {
      std::shared_ptr<UpstreamHealth> next = UpstreamHealth::Create(*loops_[0], *config);
      if (health_) {
        next->InheritFrom(*health_);
        health_->Stop();
      }
      health_ = std::move(next);
      health_config_ = config;  // Outlives the checker that refers to it.
      health_->Start();
    });
    if (autoscaling_) autoscaling_->Reconfigure(config_->autoscaling);
    if (schema_changed) {
      MethodChanges changes = DiffMethods(fingerprint_, fingerprint);
      TIPPERARY_LOG(kInfo, "schema changed",
                    {{"source", "reload"},
                     {"generation", absl::StrCat(shared_->schema_generation.load() + 1)},
                     {"added", absl::StrJoin(changes.added, ",")},
                     {"removed", absl::StrJoin(changes.removed, ",")}});
      LogRouteIssues(*routing->routes);
      AcceptSchema(std::move(fingerprint));
    }
    if (routing != nullptr) shared_->schema_loaded = true;
    RecordConfig(old_hash, plan.hash);
  }
  shared_->stats.config_reloads->Add({{"result", std::string(report.ResultName())}}).Increment();
  TIPPERARY_LOG(kInfo, "config reloaded",
                {{"trigger", trigger},
                 {"result", std::string(report.ResultName())},
                 {"config_hash", report.config_hash},
                 {"changed", absl::StrJoin(report.changed, ",")},
                 {"restart_required", absl::StrJoin(report.restart_required, ",")},
                 {"schema_changed", schema_changed ? "true" : "false"}});
  // A reload also asks the workers for their schema now.
  RefreshSchema("reload");
  return report;
}

int ProxyServer::Run() {
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGTERM, SIGINT);
  // SIGHUP reloads the config file (on loop 0, like POST /reload); the report is logged.
  boost::asio::signal_set hangups(signals_ioc, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        boost::asio::post(loops_[0]->io_context(), [this] { Reload("SIGHUP"); });
        hangups.async_wait(on_hangup);
      };
  hangups.async_wait(on_hangup);
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
      hangups.cancel();
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
        drain_deadline = std::chrono::steady_clock::now() + shared_->Config()->timeouts.drain;
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
