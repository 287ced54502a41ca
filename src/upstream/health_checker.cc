#include "health_checker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "tipperary/common/log.h"

namespace tipperary::upstream {
namespace {

namespace asio = boost::asio;
namespace health_v1 = ::grpc::health::v1;

constexpr char kWatchPath[] = "/grpc.health.v1.Health/Watch";
constexpr char kCheckPath[] = "/grpc.health.v1.Health/Check";

std::string Failure(const char* what, const GrpcResult& result) {
  return absl::StrCat(what, ": ", absl::StatusCodeToString(result.code),
                      result.grpc_message.empty() ? "" : ": ", result.grpc_message);
}

}  // namespace

HealthChecker::HealthChecker(asio::io_context& ioc, const HealthCheckOptions& options,
                             std::string upstream, std::vector<std::string> endpoint_labels,
                             Host* host)
    : options_(options),
      upstream_(std::move(upstream)),
      labels_(std::move(endpoint_labels)),
      host_(host),
      endpoints_(labels_.size()) {
  for (Endpoint& endpoint : endpoints_) {
    endpoint.timer = std::make_unique<asio::steady_timer>(ioc);
    if (!enabled()) {
      endpoint.health = EndpointHealth::kServing;  // Not checked: always counts.
      endpoint.detail.clear();
    }
  }
}

void HealthChecker::OnConnectionReady(size_t index) {
  if (!enabled() || stopped_) return;
  Endpoint& endpoint = endpoints_[index];
  // A new connection may be to an upgraded server: Watch gets another chance.
  endpoint.watch_unimplemented = false;
  if (endpoint.call != 0) return;
  if (endpoint.timer_armed) {
    endpoint.timer->cancel();  // Its handler sees timer_armed false and does nothing.
    endpoint.timer_armed = false;
  }
  Probe(index);
}

void HealthChecker::OnConnectFailed(size_t index, const std::string& reason) {
  if (!enabled() || stopped_) return;
  Set(index, EndpointHealth::kNotServing, reason);
}

void HealthChecker::OnWatchConnectionDraining(size_t index) {
  Endpoint& endpoint = endpoints_[index];
  if (stopped_ || endpoint.call == 0) return;
  ++endpoint.generation;
  host_->CancelHealthCall(std::exchange(endpoint.call, 0));
  Probe(index);
}

void HealthChecker::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (Endpoint& endpoint : endpoints_) {
    endpoint.timer->cancel();
    endpoint.timer_armed = false;
    if (endpoint.call != 0) host_->CancelHealthCall(std::exchange(endpoint.call, 0));
  }
}

void HealthChecker::Probe(size_t index) {
  Endpoint& endpoint = endpoints_[index];
  if (stopped_ || endpoint.call != 0 || endpoint.timer_armed) return;
  if (!host_->EndpointConnected(index)) return;  // OnConnectionReady comes later.
  if (endpoint.watch_unimplemented) {
    StartCheck(index);
  } else {
    StartWatch(index);
  }
}

std::string HealthChecker::Request() const {
  health_v1::HealthCheckRequest request;
  request.set_service(options_.service);
  return request.SerializeAsString();
}

void HealthChecker::StartWatch(size_t index) {
  GrpcRequest request;
  request.path = kWatchPath;
  request.message = Request();
  auto got_message = std::make_shared<bool>(false);
  const Clock::time_point started = Clock::now();
  const uint64_t generation = endpoints_[index].generation;
  std::weak_ptr<HealthChecker> weak = weak_from_this();
  CallHandlers handlers;
  handlers.on_message = [weak, index, generation, got_message](std::string message) {
    auto self = weak.lock();
    if (!self || self->stopped_ || self->endpoints_[index].generation != generation) return;
    *got_message = true;
    self->Apply(index, message);
  };
  handlers.on_done = [weak, index, generation, got_message, started](GrpcResult result) {
    auto self = weak.lock();
    if (!self || self->stopped_ || self->endpoints_[index].generation != generation) return;
    self->endpoints_[index].call = 0;
    self->OnWatchDone(index, result, *got_message, started);
  };
  endpoints_[index].call =
      host_->StartHealthCall(index, std::move(request), std::move(handlers), /*watch=*/true);
  if (endpoints_[index].call == 0) {
    ProbeAfter(index, options_.interval);  // No free stream right now.
    return;
  }
  ++checks_total_;
}

void HealthChecker::OnWatchDone(size_t index, const GrpcResult& result, bool got_message,
                                Clock::time_point started) {
  Endpoint& endpoint = endpoints_[index];
  if (result.code == absl::StatusCode::kUnimplemented && !got_message) {
    endpoint.watch_unimplemented = true;  // An older server: Check on an interval.
    Probe(index);
    return;
  }
  ++failures_total_;
  // Its connection went away (GOAWAY, max connection age, a hung one closed) while the endpoint
  // has another: watch again at once, keeping the status, unless that keeps happening.
  if (result.outcome == CallOutcome::kUnavailable && host_->EndpointConnected(index) &&
      Clock::now() - started >= options_.interval) {
    Probe(index);
    return;
  }
  Set(index, EndpointHealth::kNotServing, Failure("health watch ended", result));
  ProbeAfter(index, options_.interval);
}

void HealthChecker::StartCheck(size_t index) {
  GrpcRequest request;
  request.path = kCheckPath;
  request.message = Request();
  request.timeout = options_.timeout;
  auto response = std::make_shared<std::string>();
  std::weak_ptr<HealthChecker> weak = weak_from_this();
  CallHandlers handlers;
  handlers.on_message = [response](std::string message) { *response = std::move(message); };
  handlers.on_done = [weak, index, response](GrpcResult result) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    self->endpoints_[index].call = 0;
    self->OnCheckDone(index, result, *response);
  };
  endpoints_[index].call =
      host_->StartHealthCall(index, std::move(request), std::move(handlers), /*watch=*/false);
  if (endpoints_[index].call == 0) {
    ProbeAfter(index, options_.interval);  // No free stream right now.
    return;
  }
  ++checks_total_;
}

void HealthChecker::OnCheckDone(size_t index, const GrpcResult& result,
                                const std::string& response) {
  if (result.code == absl::StatusCode::kUnimplemented) {
    Set(index, EndpointHealth::kServing, "");  // No health service: it cannot say otherwise.
  } else if (result.code != absl::StatusCode::kOk) {
    ++failures_total_;
    Set(index, EndpointHealth::kNotServing, Failure("health check failed", result));
  } else {
    Apply(index, response);
  }
  ProbeAfter(index, options_.interval);
}

void HealthChecker::ProbeAfter(size_t index, std::chrono::nanoseconds delay) {
  Endpoint& endpoint = endpoints_[index];
  if (stopped_ || endpoint.timer_armed) return;
  endpoint.timer_armed = true;
  endpoint.timer->expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(delay));
  std::weak_ptr<HealthChecker> weak = weak_from_this();
  endpoint.timer->async_wait([weak, index](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec == asio::error::operation_aborted) return;
    Endpoint& armed = self->endpoints_[index];
    if (!armed.timer_armed) return;
    armed.timer_armed = false;
    self->Probe(index);
  });
}

void HealthChecker::Apply(size_t index, const std::string& response) {
  health_v1::HealthCheckResponse parsed;
  if (!parsed.ParseFromString(response)) {
    Set(index, EndpointHealth::kNotServing, "unparsable health check response");
  } else if (parsed.status() == health_v1::HealthCheckResponse::SERVING) {
    Set(index, EndpointHealth::kServing, "");
  } else {
    Set(index, EndpointHealth::kNotServing,
        absl::StrCat("health ",
                     health_v1::HealthCheckResponse::ServingStatus_Name(parsed.status())));
  }
}

void HealthChecker::Set(size_t index, EndpointHealth health, std::string detail) {
  Endpoint& endpoint = endpoints_[index];
  const EndpointHealth before = endpoint.health;
  endpoint.health = health;
  endpoint.detail = std::move(detail);
  if (before == health) return;
  if (health == EndpointHealth::kServing) {
    if (before != EndpointHealth::kUnknown) {
      TIPPERARY_LOG(kInfo, "upstream endpoint serving again",
                    {{"upstream", upstream_}, {"endpoint", labels_[index]}});
    }
  } else {
    TIPPERARY_LOG(
        kWarn, "upstream endpoint not serving",
        {{"upstream", upstream_}, {"endpoint", labels_[index]}, {"detail", endpoint.detail}});
  }
  host_->OnHealthChanged(index);
}

}  // namespace tipperary::upstream
