#include "tipperary/autoscaling/external_scaler_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "externalscaler/externalscaler.grpc.pb.h"
#include "tipperary/autoscaling/scaler_query.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/common/log.h"

namespace tipperary::autoscaling {
namespace {

using externalscaler::ExternalScaler;

std::map<std::string, std::string> Metadata(const externalscaler::ScaledObjectRef& ref) {
  return {ref.scalermetadata().begin(), ref.scalermetadata().end()};
}

// int64 fields for KEDA versions that ignore the float ones; never below 1 for a target.
int64_t RoundTarget(double v) { return std::max<int64_t>(1, std::llround(std::ceil(v))); }

class Service final : public ExternalScaler::Service {
 public:
  Service(const SignalSampler* sampler, std::chrono::milliseconds stream_interval)
      : sampler_(sampler), stream_interval_(stream_interval) {}

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

  grpc::Status IsActive(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                        externalscaler::IsActiveResponse* response) override {
    absl::StatusOr<ScalerQuery> q = Parse(*ref);
    if (!q.ok()) return Invalid(q.status());
    std::optional<bool> active = Active(*q);
    if (!active) return Unavailable(*q);
    response->set_result(*active);
    return grpc::Status::OK;
  }

  grpc::Status StreamIsActive(
      grpc::ServerContext* context, const externalscaler::ScaledObjectRef* ref,
      grpc::ServerWriter<externalscaler::IsActiveResponse>* writer) override {
    absl::StatusOr<ScalerQuery> q = Parse(*ref);
    if (!q.ok()) return Invalid(q.status());
    std::optional<bool> sent;
    std::unique_lock lock(mu_);
    while (!stopping_ && !context->IsCancelled()) {
      // An unavailable signal sends nothing: KEDA keeps the last answer.
      std::optional<bool> active = Active(*q);
      if (active && sent != *active) {
        lock.unlock();
        externalscaler::IsActiveResponse response;
        response.set_result(*active);
        if (!writer->Write(response)) return grpc::Status::CANCELLED;
        sent = *active;
        lock.lock();
        continue;
      }
      cv_.wait_for(lock, stream_interval_);
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "the scaler is shutting down");
  }

  grpc::Status GetMetricSpec(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                             externalscaler::GetMetricSpecResponse* response) override {
    absl::StatusOr<ScalerQuery> q = Parse(*ref);
    if (!q.ok()) return Invalid(q.status());
    externalscaler::MetricSpec* spec = response->add_metricspecs();
    spec->set_metricname(q->metric_name);
    spec->set_targetsize(RoundTarget(q->target));
    spec->set_targetsizefloat(q->target);
    return grpc::Status::OK;
  }

  grpc::Status GetMetrics(grpc::ServerContext*, const externalscaler::GetMetricsRequest* request,
                          externalscaler::GetMetricsResponse* response) override {
    absl::StatusOr<ScalerQuery> q = Parse(request->scaledobjectref());
    if (!q.ok()) return Invalid(q.status());
    std::optional<double> read = ReadSignal(sampler_->Snapshot(), *q);
    if (!read) return Unavailable(*q);
    const double value = *read;
    externalscaler::MetricValue* v = response->add_metricvalues();
    // KEDA asks by the name GetMetricSpec gave (it may prefix it, e.g. "s0-"): echo it back.
    v->set_metricname(request->metricname().empty() ? q->metric_name : request->metricname());
    v->set_metricvalue(std::llround(value));
    v->set_metricvaluefloat(value);
    return grpc::Status::OK;
  }

 private:
  absl::StatusOr<ScalerQuery> Parse(const externalscaler::ScaledObjectRef& ref) const {
    return ParseScalerQuery(Metadata(ref), sampler_->windows());
  }

  std::optional<bool> Active(const ScalerQuery& q) const {
    std::optional<double> value = ReadSignal(sampler_->Snapshot(), q);
    if (!value) return std::nullopt;
    return *value > q.activation_target;
  }

  // The signal exists but this proxy cannot read it now (ReadSignal): an error rather than 0,
  // which KEDA would take for "idle".
  static grpc::Status Unavailable(const ScalerQuery& q) {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat(q.metric_name, ": the worker does not report ",
                     q.model.empty() ? std::string("backlog_seconds")
                                     : absl::StrCat("backlog_seconds for model \"", q.model, "\""),
                     " (not answering, older than the backlog signal, or no such model)"));
  }

  static grpc::Status Invalid(const absl::Status& status) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message()));
  }

  const SignalSampler* sampler_;
  const std::chrono::milliseconds stream_interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // Guarded by mu_.
};

}  // namespace

class ExternalScalerServer::Impl {
 public:
  Impl(const Options& options, const SignalSampler* sampler)
      : service_(sampler, options.stream_interval) {}

  absl::Status Start(const Options& options) {
    absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(options.address, true);
    if (!endpoint.ok()) return endpoint.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort(endpoint->ToString(), grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    // gRPC sets SO_REUSEPORT by default: a second proxy on the same port would then silently
    // share it instead of failing at start.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    grpc::ResourceQuota quota("tipperary-external-scaler");
    quota.SetMaxThreads(options.max_threads);
    builder.SetResourceQuota(quota);
    // KEDA polls every few seconds: one completion queue and few pollers keep the sidecar's
    // idle footprint small.
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("external scaler: cannot listen on ", options.address));
    }
    common::Endpoint bound = *endpoint;
    bound.port = static_cast<uint16_t>(port_);
    TIPPERARY_LOG(kInfo, "listening", {{"name", "external_scaler"}, {"address", bound.ToString()}});
    return absl::OkStatus();
  }

  void Shutdown() {
    if (stopped_.exchange(true)) return;
    service_.Stop();
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
      server_->Wait();
    }
  }

  int port() const { return port_; }

 private:
  Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
};

absl::StatusOr<std::unique_ptr<ExternalScalerServer>> ExternalScalerServer::Start(
    const Options& options, const SignalSampler* sampler) {
  auto impl = std::make_unique<Impl>(options, sampler);
  absl::Status status = impl->Start(options);
  if (!status.ok()) return status;
  return std::unique_ptr<ExternalScalerServer>(new ExternalScalerServer(std::move(impl)));
}

ExternalScalerServer::ExternalScalerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExternalScalerServer::~ExternalScalerServer() { impl_->Shutdown(); }
int ExternalScalerServer::port() const { return impl_->port(); }
void ExternalScalerServer::Shutdown() { impl_->Shutdown(); }

}  // namespace tipperary::autoscaling
