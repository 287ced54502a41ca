#include "upstream_health.h"

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "tipperary/common/log.h"

namespace tipperary::proxy {
namespace {

constexpr char kCheckPath[] = "/grpc.health.v1.Health/Check";

}  // namespace

std::shared_ptr<UpstreamHealth> UpstreamHealth::Create(EventLoop& loop,
                                                       const config::ProxyConfig& config) {
  return std::make_shared<UpstreamHealth>(loop, config);
}

UpstreamHealth::UpstreamHealth(EventLoop& loop, const config::ProxyConfig& config)
    : loop_(loop), config_(config), reasons_(config.upstreams.size()) {
  for (size_t i = 0; i < config.upstreams.size(); ++i) {
    upstreams_.push_back(std::make_unique<Upstream>());
    if (config.upstreams[i].health_check.interval.count() <= 0) {
      upstreams_.back()->status = Status::kServing;  // Not checked: always counts.
    }
  }
}

void UpstreamHealth::Start() {
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    if (config_.upstreams[i].health_check.interval.count() <= 0) continue;
    upstreams_[i]->timer = std::make_unique<boost::asio::steady_timer>(loop_.io_context());
    Check(i);
  }
}

void UpstreamHealth::Stop() {
  stopped_ = true;
  for (auto& u : upstreams_) {
    if (u->timer) u->timer->cancel();
  }
}

bool UpstreamHealth::AnyServing() const {
  for (const auto& u : upstreams_) {
    if (u->status.load(std::memory_order_relaxed) == Status::kServing) return true;
  }
  return upstreams_.empty();
}

std::string UpstreamHealth::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (size_t i = 0; i < reasons_.size(); ++i) {
    if (upstreams_[i]->status.load(std::memory_order_relaxed) == Status::kServing) continue;
    if (!out.empty()) out += "; ";
    absl::StrAppend(&out, "upstream ", config_.upstreams[i].name, ": ",
                    reasons_[i].empty() ? "no health answer yet" : reasons_[i]);
  }
  return out;
}

void UpstreamHealth::InheritFrom(const UpstreamHealth& before) {
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    for (size_t j = 0; j < before.upstreams_.size(); ++j) {
      if (before.config_.upstreams[j].name != config_.upstreams[i].name) continue;
      upstreams_[i]->status.store(before.upstreams_[j]->status.load());
      std::lock_guard<std::mutex> lock(before.mu_);
      reasons_[i] = before.reasons_[j];
    }
  }
}

void UpstreamHealth::Check(size_t index) {
  if (stopped_) return;
  const config::HealthCheckConfig& hc = config_.upstreams[index].health_check;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(hc.service);
  upstream::GrpcRequest call;
  call.path = kCheckPath;
  call.message = request.SerializeAsString();
  call.timeout = hc.timeout;
  auto response = std::make_shared<std::string>();
  upstream::CallHandlers handlers;
  handlers.on_message = [response](std::string message) { *response = std::move(message); };
  std::weak_ptr<UpstreamHealth> weak = weak_from_this();
  handlers.on_done = [weak, index, response](const upstream::GrpcResult& result) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    if (result.code == absl::StatusCode::kUnimplemented) {
      self->Set(index, Status::kServing, "");  // No health service: it cannot say otherwise.
    } else if (result.code != absl::StatusCode::kOk) {
      self->Set(index, Status::kNotServing,
                absl::StrCat("health check failed: ", absl::StatusCodeToString(result.code), ": ",
                             result.grpc_message));
    } else {
      grpc::health::v1::HealthCheckResponse parsed;
      if (!parsed.ParseFromString(*response)) {
        self->Set(index, Status::kNotServing, "unparsable health check response");
      } else if (parsed.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        self->Set(index, Status::kServing, "");
      } else {
        self->Set(index, Status::kNotServing,
                  absl::StrCat("health ", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                                              parsed.status())));
      }
    }
    self->Schedule(index);
  };
  loop_.upstream(static_cast<int>(index))->Call(std::move(call), std::move(handlers));
}

void UpstreamHealth::Schedule(size_t index) {
  Upstream& u = *upstreams_[index];
  u.timer->expires_after(std::chrono::duration_cast<boost::asio::steady_timer::duration>(
      config_.upstreams[index].health_check.interval));
  std::weak_ptr<UpstreamHealth> weak = weak_from_this();
  u.timer->async_wait([weak, index](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (auto self = weak.lock()) self->Check(index);
  });
}

void UpstreamHealth::Set(size_t index, Status status, std::string why) {
  Status before = upstreams_[index]->status.exchange(status, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    reasons_[index] = std::move(why);
  }
  if (before != status && before != Status::kUnknown) {
    TIPPERARY_LOG(kInfo, "upstream health changed",
                  {{"upstream", config_.upstreams[index].name},
                   {"serving", status == Status::kServing ? "true" : "false"}});
  }
}

}  // namespace tipperary::proxy
