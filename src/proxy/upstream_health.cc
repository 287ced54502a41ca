#include "upstream_health.h"

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"

namespace tipperary::proxy {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(100);

}  // namespace

std::shared_ptr<UpstreamHealth> UpstreamHealth::Create(EventLoop& loop,
                                                       const config::ProxyConfig& config) {
  return std::make_shared<UpstreamHealth>(loop, config);
}

UpstreamHealth::UpstreamHealth(EventLoop& loop, const config::ProxyConfig& config)
    : loop_(loop), config_(config), reasons_(config.upstreams.size(), "no health answer yet") {
  for (size_t i = 0; i < config.upstreams.size(); ++i) {
    if (config.upstreams[i].health_check.interval.count() <= 0) {
      reasons_[i].clear();
      any_serving_ = true;  // Not checked: always counts.
    }
  }
  if (config.upstreams.empty()) any_serving_ = true;
}

void UpstreamHealth::Start() {
  timer_ = std::make_unique<boost::asio::steady_timer>(loop_.io_context());
  Poll();
}

void UpstreamHealth::Stop() {
  stopped_ = true;
  if (timer_) timer_->cancel();
}

void UpstreamHealth::InheritFrom(const UpstreamHealth& before) {
  std::scoped_lock lock(mu_, before.mu_);
  bool any = any_serving_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < reasons_.size(); ++i) {
    for (size_t j = 0; j < before.reasons_.size(); ++j) {
      if (before.config_.upstreams[j].name != config_.upstreams[i].name) continue;
      reasons_[i] = before.reasons_[j];
      any = any || reasons_[i].empty();
    }
  }
  any_serving_ = any;
}

bool UpstreamHealth::AnyServing() const { return any_serving_.load(std::memory_order_relaxed); }

std::string UpstreamHealth::Describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (size_t i = 0; i < reasons_.size(); ++i) {
    if (reasons_[i].empty()) continue;
    if (!out.empty()) out += "; ";
    absl::StrAppend(&out, "upstream ", config_.upstreams[i].name, ": ", reasons_[i]);
  }
  return out;
}

void UpstreamHealth::Poll() {
  if (stopped_) return;
  const auto& upstreams = config_.upstreams;
  bool any = upstreams.empty();
  std::vector<std::string> reasons(upstreams.size());
  for (size_t i = 0; i < upstreams.size(); ++i) {
    if (upstreams[i].health_check.interval.count() <= 0) {
      any = true;
      continue;
    }
    upstream::UpstreamCluster* cluster = loop_.cluster(static_cast<int>(i));
    bool serving = false;
    std::string why;
    for (const upstream::EndpointStatus& endpoint : cluster->Endpoints()) {
      if (endpoint.health == upstream::EndpointHealth::kServing) {
        serving = true;
        break;
      }
      if (!why.empty()) why += ", ";
      absl::StrAppend(&why, endpoint.endpoint, ": ",
                      endpoint.health_detail.empty() ? "not serving" : endpoint.health_detail);
    }
    if (serving) {
      any = true;
    } else {
      reasons[i] = why.empty() ? "no endpoints" : why;
    }
  }
  const bool before = any_serving_.exchange(any, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    reasons_ = std::move(reasons);
  }
  if (before != any) {
    TIPPERARY_LOG(kInfo, "upstream readiness changed", {{"serving", any ? "true" : "false"}});
  }
  Schedule();
}

void UpstreamHealth::Schedule() {
  timer_->expires_after(kPollInterval);
  std::weak_ptr<UpstreamHealth> weak = weak_from_this();
  timer_->async_wait([weak](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (auto self = weak.lock()) self->Poll();
  });
}

}  // namespace tipperary::proxy
