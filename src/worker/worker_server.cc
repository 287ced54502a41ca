#include "tipperary/worker/worker_server.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <csignal>
#include <cstdlib>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "config_reloader.h"
#include "cuda_backend_loader.h"
#include "embedding_service.h"
#include "front_door_warmup.h"
#include "reload_runner.h"
#include "tei_service.h"
#include "tipperary/admin/v1/worker_load.pb.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/common/log.h"
#include "tipperary/common/status_json.h"
#include "tipperary/config/reload_report.h"
#include "tipperary/config/units.h"
#include "tipperary/http1/admin_router.h"
#include "tipperary/http1/http_listener.h"
#include "tipperary/metrics/process_metrics.h"
#include "tipperary/worker/server_reflection.h"
#include "worker_core.h"

namespace tipperary::worker {
namespace {

namespace http = boost::beast::http;

// The services whose health grpc.health.v1 reports (with "", the server's).
constexpr const char* kServiceNames[] = {"tipperary.embedding.v1.EmbeddingService",
                                         "tipperary.embedding.v1.TextEmbeddingsInference"};

void InitGrpcOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

}  // namespace

class WorkerServer::Impl {
 public:
  Impl(config::WorkerConfig config, WorkerConfigSource source)
      : core_(std::move(config)),
        service_(core_),
        tei_service_(core_),
        reloader_(core_, std::move(source)) {
    BuildAdminRoutes();
  }
  ~Impl() { Shutdown(); }

  absl::Status Start();
  absl::Status LoadModels();
  void Shutdown();
  int Run();

  WorkerCore& core() { return core_; }
  absl::StatusOr<config::ReloadReport> Reload();
  std::string grpc_address() const { return grpc_address_; }
  std::string admin_address() const { return admin_address_; }

 private:
  void BuildAdminRoutes();
  // Queue depth, cumulative batch counters and backlog, per model and summed over models, for
  // tipperary-proxy's autoscaling signals (which turn the counters into windowed batch fill) and
  // for operators: the tipperary.admin.v1.WorkerLoad contract in its JSON mapping.
  std::string AutoscalingJson();
  // The front-door warm-up (front_door_warmup.h), before the first SetHealth(true).
  void WarmFrontDoorIfConfigured(const config::WorkerConfig& config);
  void SetHealth(bool serving);
  // POST /reload: queued on the reload thread, answered when it is done (409 while another
  // reload runs).
  void HandleReload(http1::AdminRouter::Respond respond);

  WorkerCore core_;
  EmbeddingService service_;
  TeiService tei_service_;  // Hugging Face TEI's API (tei.proto), transcoded by the proxy.
  ConfigReloader reloader_;
  // Created by Start(), stopped by Shutdown() before the models drain.
  std::unique_ptr<ReloadRunner> reload_runner_;
  std::unique_ptr<grpc::Server> server_;
  std::string grpc_address_;
  std::string self_target_;  // grpc_address_ as this process dials it (front_door_warmup.h)
  std::string admin_address_;
  bool uses_gpu_ = false;

  boost::asio::io_context admin_ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      admin_work_;
  http1::AdminRouter admin_router_;
  std::unique_ptr<http1::HttpListener> admin_;
  std::thread admin_thread_;

  std::mutex lifecycle_mu_;  // Serialises Start/LoadModels/Shutdown.
  bool clean_drain_ = true;  // Shutdown() finished every request before the drain deadline.
  bool started_ = false;
  bool shut_down_ = false;
};

absl::Status WorkerServer::Impl::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_ || shut_down_) return absl::FailedPreconditionError("already started");
  const std::shared_ptr<const config::WorkerConfig> config_snapshot = core_.config();
  const config::WorkerConfig& config = *config_snapshot;
  absl::StatusOr<common::Endpoint> listen = common::ParseEndpoint(config.listen, true);
  if (!listen.ok()) return listen.status();
  absl::StatusOr<common::Endpoint> admin_endpoint =
      common::ParseEndpoint(config.admin_address, true);
  if (!admin_endpoint.ok()) return admin_endpoint.status();

  InitGrpcOnce();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service_);
  builder.RegisterService(&tei_service_);
  // v1alpha is grpc++'s plugin (InitGrpcOnce), v1 ours: clients speak either.
  AddServerReflection(builder, {.v1 = true, .v1alpha = true});
  builder.SetMaxReceiveMessageSize(64 << 20);
  // The sidecar proxy PINGs its connection while idle (upstreams[].keepalive_interval, 30 s) and
  // while requests wait in silence (hung_detection). grpc++'s default policy counts a PING as a
  // strike when it comes less than 5 minutes after the last one with no DATA sent in between (2
  // hours on a connection with no calls) and answers the third strike with GOAWAY
  // ENHANCE_YOUR_CALM, which also fails the requests in flight on the connection: seen as 503s
  // under a deep queue after an idle spell had used up the strikes.
  // Accept PINGs without calls, as often as every 100 ms; faster ones still count as strikes.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  server_ = builder.BuildAndStart();
  if (!server_) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen));
  }
  if (listen->kind == common::Endpoint::Kind::kTcp) {
    if (port == 0) return absl::UnavailableError(absl::StrCat("cannot bind ", config.listen));
    common::Endpoint bound = *listen;
    bound.port = static_cast<uint16_t>(port);
    grpc_address_ = bound.ToString();
    self_target_ = SelfTarget(bound);
  } else {
    grpc_address_ = config.listen;
    self_target_ = SelfTarget(*listen);
  }
  SetHealth(false);
  common::Log(common::LogLevel::kInfo, "listening", {{"name", "grpc"}, {"address", grpc_address_}});

  metrics::Registry& registry = core_.registry();
  metrics::RegisterProcessMetrics(registry);
  const WorkerStats& stats = core_.stats();
  registry.AddCollectHook([this, &stats] {
    stats.ready->Add({}).Set(core_.ready() ? 1 : 0);
    std::shared_ptr<const ModelSet> set = core_.models();
    if (set == nullptr) return;
    for (const auto& [name, model] : set->models()) {
      stats.queue_depth->Add({{"model", name}}).Set(static_cast<double>(model->queue_depth()));
      const ModelRuntime::Backlog backlog = model->backlog();
      stats.queued_tokens->Add({{"model", name}}).Set(static_cast<double>(backlog.queued_tokens));
      // Absent rate (nothing measured yet): the series keep their last value, 0 at first.
      if (backlog.tokens_per_second) {
        stats.tokens_per_second->Add({{"model", name}}).Set(*backlog.tokens_per_second);
      }
      if (backlog.seconds) stats.backlog_seconds->Add({{"model", name}}).Set(*backlog.seconds);
    }
    if (uses_gpu_) {
      // A model on the GPU means the backend is loaded already.
      absl::StatusOr<const kernels::CudaBackendApi*> cuda = LoadCudaBackend();
      absl::StatusOr<kernels::GpuStats> gpu =
          cuda.ok() ? (*cuda)->query_gpu_stats(0) : cuda.status();
      if (gpu.ok()) {
        stats.gpu_utilization->Add({}).Set(gpu->utilization_ratio);
        stats.gpu_memory_used->Add({}).Set(static_cast<double>(gpu->memory_used_bytes));
      }
    }
  });

  http1::ListenerOptions options;
  options.name = "admin";
  options.endpoint = *admin_endpoint;
  options.server_header = "tipperary-worker";
  options.limits.max_body_bytes = 64 << 10;
  absl::StatusOr<std::unique_ptr<http1::HttpListener>> admin = http1::HttpListener::Create(
      admin_ioc_, options, [this](auto ex) { admin_router_.Handle(ex); }, nullptr);
  if (!admin.ok()) {
    server_->Shutdown();
    server_->Wait();
    server_.reset();
    return admin.status();
  }
  admin_ = std::move(*admin);
  admin_address_ = admin_->address();
  reload_runner_ = std::make_unique<ReloadRunner>(
      [this](std::string_view source) { return reloader_.Reload(source); });
  admin_work_.emplace(admin_ioc_.get_executor());
  admin_->Start();
  admin_thread_ = std::thread([this] { admin_ioc_.run(); });
  started_ = true;
  return absl::OkStatus();
}

absl::Status WorkerServer::Impl::LoadModels() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (!started_ || shut_down_) return absl::FailedPreconditionError("not running");
  if (core_.loaded()) return absl::FailedPreconditionError("models already loaded");
  const std::shared_ptr<const config::WorkerConfig> config = core_.config();
  ModelSet::Models models;
  for (const config::WorkerModelConfig& model_config : config->models) {
    absl::StatusOr<std::unique_ptr<ModelRuntime>> model = ModelRuntime::Load(
        model_config, config->batching, config->cache, core_.cache(), core_.stats());
    if (!model.ok()) return model.status();
    uses_gpu_ = uses_gpu_ || (*model)->backend() == "cuda";
    models[model_config.name] = std::move(*model);
  }
  core_.PublishModels(ModelSet::Build(std::move(models), config->default_model().name));
  ConfigReloader::InitMetrics(core_.stats());
  // tipperary_config_info has one series, the hash in effect at the scrape.
  core_.registry().AddCollectHook([this, shown = std::string()]() mutable {
    const std::string hash = core_.config_hash();
    if (hash == shown) return;
    if (!shown.empty()) core_.stats().config_info->Remove({{"hash", shown}});
    core_.stats().config_info->Add({{"hash", hash}}).Set(1);
    shown = hash;
  });
  if (core_.draining()) return absl::OkStatus();
  WarmFrontDoorIfConfigured(*config);
  SetHealth(true);
  std::string names;
  const std::shared_ptr<const ModelSet> serving = core_.models();  // Held: see ListModels.
  for (const auto& [name, model] : serving->models()) {
    absl::StrAppend(&names, names.empty() ? "" : ",", name);
  }
  TIPPERARY_LOG(kInfo, "ready", {{"models", names}});
  return absl::OkStatus();
}

void WorkerServer::Impl::WarmFrontDoorIfConfigured(const config::WorkerConfig& config) {
  std::vector<std::string> models;
  for (const config::WorkerModelConfig& model : config.models) {
    if (model.warmup == "all") models.push_back(model.name);
  }
  if (models.empty() || config.warmup_request_timeout <= config::Duration::zero()) return;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = WarmFrontDoor(self_target_, models, config.warmup_request_timeout);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (status.ok()) {
    TIPPERARY_LOG(kInfo, "front door warmed",
                  {{"target", self_target_},
                   {"requests", absl::StrCat(models.size())},
                   {"seconds", absl::StrCat(seconds)}});
  } else {
    TIPPERARY_LOG(kWarn, "front door warm-up failed",
                  {{"target", self_target_}, {"error", status.ToString()}});
  }
}

void WorkerServer::Impl::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_ ? server_->GetHealthCheckService() : nullptr;
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  for (const char* name : kServiceNames) health->SetServingStatus(name, serving);
}

void WorkerServer::Impl::Shutdown() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  core_.SetDraining();
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    SetHealth(false);
    health->Shutdown();  // NOT_SERVING for good, whatever happens next.
  }
  const std::shared_ptr<const config::WorkerConfig> config = core_.config();
  TIPPERARY_LOG(kInfo, "draining", {{"drain", config::FormatDuration(config->drain)}});
  auto deadline = std::chrono::steady_clock::now() + config->drain;
  // A reload in progress publishes nothing more (models it loaded are unloaded again; models it
  // retires get until the deadline); from here on the model set is final.
  reloader_.Abort(deadline);
  reload_runner_->Stop();
  // The admin port answers Connection: close from now on; its responses are written before
  // it closes.
  boost::asio::post(admin_ioc_, [this] { admin_->SetDraining(); });
  const std::shared_ptr<const ModelSet> set = core_.models();
  if (set != nullptr) {
    for (const auto& [name, model] : set->models()) model->Drain(deadline);
  }
  size_t queued_left = 0;
  if (set != nullptr) {
    for (const auto& [name, model] : set->models()) queued_left += model->queue_depth();
  }
  // Queued work is done (or rejected): what remains are calls between messages (bidi streams)
  // and the few that raced the drain flag. They get until the deadline, then are cancelled.
  auto left = std::max(deadline - std::chrono::steady_clock::now(),
                       std::chrono::steady_clock::duration(std::chrono::milliseconds(100)));
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(left));
  const bool grpc_cut = std::chrono::steady_clock::now() >= deadline;
  if (set != nullptr) {
    for (const auto& [name, model] : set->models()) model->Stop();
  }
  server_->Wait();
  while (admin_->active_requests() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const size_t admin_left = admin_->active_requests();
  boost::asio::post(admin_ioc_, [this] {
    admin_->StopAccepting();
    admin_->CloseAll();
    admin_.reset();
    admin_work_.reset();
  });
  admin_thread_.join();
  clean_drain_ = queued_left == 0 && !grpc_cut && admin_left == 0;
  common::Log(clean_drain_ ? common::LogLevel::kInfo : common::LogLevel::kError, "drained",
              {{"queued_left", absl::StrCat(queued_left)},
               {"grpc_calls_cancelled_at_deadline", grpc_cut ? "true" : "false"},
               {"admin_unfinished", absl::StrCat(admin_left)},
               {"result", clean_drain_ ? "complete" : "drain timeout: work cut"}});
  TIPPERARY_LOG(kInfo, "stopped", {{"exit_code", clean_drain_ ? "0" : "1"}});
}

void WorkerServer::Impl::BuildAdminRoutes() {
  using http1::AdminReply;
  admin_router_.Add("/healthz", "liveness", [](const http1::HttpRequest&) {
    return AdminReply{.body = "{\"status\":\"ok\"}\n"};
  });
  admin_router_.Add("/readyz", "readiness: models loaded and warm, not draining, no device fault",
                    [this](const http1::HttpRequest&) {
                      if (core_.ready()) return AdminReply{.body = "{\"status\":\"ready\"}\n"};
                      const char* why = core_.draining()  ? "draining"
                                        : !core_.loaded() ? "models are loading"
                                                          : "an encoder is unusable (device fault)";
                      return AdminReply{
                          .status = http::status::service_unavailable,
                          .body = common::StatusJson(absl::StatusCode::kUnavailable, why)};
                    });
  admin_router_.Add("/metrics", "Prometheus metrics", [this](const http1::HttpRequest&) {
    return AdminReply{.content_type = std::string(metrics::Registry::kContentType),
                      .body = core_.registry().Serialize()};
  });
  admin_router_.Add("/config", "the effective configuration (YAML; its hash in X-Config-Hash)",
                    [this](const http1::HttpRequest&) {
                      // Hashed from the very text served, so body and header always agree.
                      std::string dump = config::DumpWorkerConfig(*core_.config());
                      std::string hash = config::ConfigHash(dump);
                      return AdminReply{.content_type = "application/yaml",
                                        .body = absl::StrCat("# config_hash: ", hash, "\n", dump),
                                        .headers = {{"X-Config-Hash", hash}}};
                    });
  admin_router_.AddAsync("/reload",
                         "POST: re-read the config file, check it and apply what can change live",
                         admin_ioc_.get_executor(),
                         [this](const http1::HttpRequest&, http1::AdminRouter::Respond respond) {
                           HandleReload(std::move(respond));
                         },
                         {http::verb::post});
  admin_router_.Add(
      "/autoscaling", "queue depth, batch counters and backlog (tipperary.admin.v1.WorkerLoad)",
      [this](const http1::HttpRequest&) { return AdminReply{.body = AutoscalingJson()}; });
}

std::string WorkerServer::Impl::AutoscalingJson() {
  admin::v1::WorkerLoad load;
  load.set_ready(core_.ready());
  double queue_depth = 0, batches = 0, texts = 0, tokens = 0, queued_tokens = 0, backlog = 0;
  bool backlog_known = true;
  if (std::shared_ptr<const ModelSet> set = core_.models()) {
    for (const auto& [name, model] : set->models()) {
      const metrics::Histogram& size = model->batch_sizes();
      const metrics::Histogram& padded = model->batch_tokens();
      admin::v1::ModelLoad& m = (*load.mutable_models())[name];
      m.set_queue_depth(static_cast<double>(model->queue_depth()));
      m.set_batches_total(static_cast<double>(size.Count()));
      m.set_batch_texts_total(size.Sum());
      m.set_batch_tokens_total(padded.Sum());
      queue_depth += m.queue_depth();
      batches += m.batches_total();
      texts += m.batch_texts_total();
      tokens += m.batch_tokens_total();
      const ModelRuntime::Backlog figures = model->backlog();
      m.set_queued_tokens(static_cast<double>(figures.queued_tokens));
      queued_tokens += m.queued_tokens();
      if (figures.tokens_per_second) m.set_tokens_per_second(*figures.tokens_per_second);
      if (figures.seconds) {
        m.set_backlog_seconds(*figures.seconds);
        backlog += *figures.seconds;
      } else {
        backlog_known = false;
      }
    }
  }
  const config::WorkerBatchingConfig batching = core_.config()->batching;
  load.set_queue_depth(queue_depth);
  load.set_batches_total(batches);
  load.set_batch_texts_total(texts);
  load.set_batch_tokens_total(tokens);
  load.set_queued_tokens(queued_tokens);
  if (backlog_known) load.set_backlog_seconds(backlog);
  load.set_max_batch_size(batching.max_batch_size);
  load.set_max_batch_tokens(batching.max_batch_tokens);
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(load, &json, print).ok()) return "{}\n";
  return json + "\n";
}

absl::StatusOr<config::ReloadReport> WorkerServer::Impl::Reload() {
  if (reload_runner_ == nullptr) return absl::FailedPreconditionError("not started");
  if (!core_.loaded()) return absl::FailedPreconditionError("the models are still loading");
  std::promise<absl::StatusOr<config::ReloadReport>> done;
  std::future<absl::StatusOr<config::ReloadReport>> report = done.get_future();
  switch (reload_runner_->Request(
      "WorkerServer::Reload",
      [&done](absl::StatusOr<config::ReloadReport> r) { done.set_value(std::move(r)); })) {
    case ReloadRunner::Accepted::kStarted:
      return report.get();
    case ReloadRunner::Accepted::kBusy:
      return absl::AbortedError("another config reload is in progress");
    case ReloadRunner::Accepted::kStopped:
      break;
  }
  return absl::UnavailableError("the worker is shutting down");
}

void WorkerServer::Impl::HandleReload(http1::AdminRouter::Respond respond) {
  using http1::AdminReply;
  auto refuse = [&](http::status status, absl::StatusCode code, std::string_view message) {
    respond(AdminReply{.status = status, .body = common::StatusJson(code, message)});
  };
  if (!core_.loaded() || core_.draining()) {
    refuse(http::status::service_unavailable, absl::StatusCode::kUnavailable,
           core_.draining() ? "the worker is shutting down" : "the models are still loading");
    return;
  }
  auto reply = [respond](absl::StatusOr<config::ReloadReport> report) {
    if (!report.ok()) {
      respond(AdminReply{.status = http::status::service_unavailable,
                         .body = common::StatusJson(report.status().code(),
                                                    std::string(report.status().message()))});
      return;
    }
    respond(AdminReply{.status = static_cast<http::status>(report->HttpStatus()),
                       .body = report->ToJson()});
  };
  switch (reload_runner_->Request("POST /reload", std::move(reply))) {
    case ReloadRunner::Accepted::kStarted:
      return;
    case ReloadRunner::Accepted::kBusy:
      refuse(http::status::conflict, absl::StatusCode::kAborted,
             "another config reload is in progress; try again when it is done");
      return;
    case ReloadRunner::Accepted::kStopped:
      refuse(http::status::service_unavailable, absl::StatusCode::kUnavailable,
             "the worker is shutting down");
      return;
  }
}

int WorkerServer::Impl::Run() {
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context signals_ioc;
  boost::asio::signal_set signals(signals_ioc, SIGTERM, SIGINT);
  // Installed now, so that a SIGHUP while the models load is held (and then reloads) rather
  // than ending the process.
  boost::asio::signal_set hangup(signals_ioc, SIGHUP);
  if (absl::Status s = Start(); !s.ok()) {
    TIPPERARY_LOG(kError, "cannot start", {{"error", s.ToString()}});
    return 1;
  }
  if (absl::Status s = LoadModels(); !s.ok()) {
    TIPPERARY_LOG(kError, "cannot load the models", {{"error", s.ToString()}});
    Shutdown();
    return 1;
  }
  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      TIPPERARY_LOG(kInfo, "signal", {{"signal", absl::StrCat(SIGHUP)}, {"action", "reload"}});
      reload_runner_->RequestFromSignal("SIGHUP");
      await_hangup();
    });
  };
  await_hangup();
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    received = signo;
    hangup.cancel();  // While draining, a SIGHUP is held by the signal set and ignored.
  });
  signals_ioc.run();
  TIPPERARY_LOG(kInfo, "signal", {{"signal", absl::StrCat(received)}});
  // A second signal while draining exits at once.
  signals_ioc.restart();
  signals.async_wait([](const boost::system::error_code& ec, int) {
    if (ec) return;
    TIPPERARY_LOG(kWarn, "second signal: exiting now", {});
    std::_Exit(1);
  });
  std::thread second([&] { signals_ioc.run(); });
  Shutdown();
  boost::asio::post(signals_ioc, [&] { signals.cancel(); });
  second.join();
  return clean_drain_ ? 0 : 1;
}

// --------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Create(config::WorkerConfig config,
                                                                   WorkerConfigSource source) {
  if (config.models.empty()) return absl::InvalidArgumentError("no models configured");
  if (absl::StatusOr<common::Endpoint> e = common::ParseEndpoint(config.listen, true); !e.ok()) {
    return e.status();
  }
  if (absl::StatusOr<common::Endpoint> e = common::ParseEndpoint(config.admin_address, true);
      !e.ok()) {
    return e.status();
  }
  common::SetLogLevel(config.log_level);
  return std::unique_ptr<WorkerServer>(
      new WorkerServer(std::make_unique<Impl>(std::move(config), std::move(source))));
}

WorkerServer::WorkerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WorkerServer::~WorkerServer() = default;

absl::Status WorkerServer::Start() { return impl_->Start(); }
absl::Status WorkerServer::LoadModels() { return impl_->LoadModels(); }
absl::StatusOr<config::ReloadReport> WorkerServer::Reload() { return impl_->Reload(); }
void WorkerServer::Shutdown() { impl_->Shutdown(); }
int WorkerServer::Run() { return impl_->Run(); }
std::string WorkerServer::grpc_address() const { return impl_->grpc_address(); }
std::string WorkerServer::admin_address() const { return impl_->admin_address(); }
std::string WorkerServer::config_hash() const { return impl_->core().config_hash(); }
bool WorkerServer::ready() const { return impl_->core().ready(); }
metrics::Registry& WorkerServer::registry() { return impl_->core().registry(); }

}  // namespace tipperary::worker
