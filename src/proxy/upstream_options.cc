#include "upstream_options.h"

#include "tipperary/common/endpoint.h"

namespace tipperary::proxy {

upstream::RetryPolicy RetryPolicyFor(const config::RetryPolicyConfig& retry) {
  upstream::RetryPolicy policy;
  policy.retry_on.clear();
  for (const std::string& name : retry.retry_on) {
    absl::StatusCode code;
    if (upstream::ParseRetryOnCode(name, &code)) policy.retry_on.push_back(code);  // Validated.
  }
  policy.idempotent_methods = retry.idempotent_methods;
  policy.max_attempts = retry.max_attempts;
  policy.per_try_timeout = retry.per_try_timeout;
  policy.backoff_initial = retry.backoff_initial;
  policy.backoff_max = retry.backoff_max;
  return policy;
}

upstream::UpstreamOptions UpstreamOptionsFor(const config::UpstreamConfig& u) {
  upstream::UpstreamOptions options;
  options.name = u.name;
  for (const std::string& e : u.endpoints) {
    auto ep = common::ParseEndpoint(e);
    if (ep.ok()) options.endpoints.push_back(*ep);  // Validated by the config loader.
  }
  options.connect_timeout = u.connect_timeout;
  options.keepalive_interval = u.keepalive_interval;
  options.keepalive_timeout = u.keepalive_timeout;
  options.reconnect_backoff_initial = u.reconnect_backoff_initial;
  options.reconnect_backoff_max = u.reconnect_backoff_max;
  options.max_concurrent_streams = u.max_concurrent_streams;
  options.connections_per_endpoint = u.connections_per_thread;
  options.max_response_bytes = u.max_response_bytes;
  options.initial_window_size = u.initial_window_size;
  if (u.tls) {
    options.tls.emplace();
    options.tls->ca_file = u.tls->ca;
    options.tls->cert_file = u.tls->cert;
    options.tls->key_file = u.tls->key;
    options.tls->server_name = u.tls->server_name;
    options.tls->verify = u.tls->verify;
    options.tls->min_version = u.tls->min_version;
  }
  options.load_balancing = u.load_balancing == "round_robin"
                               ? upstream::LoadBalancing::kRoundRobin
                               : upstream::LoadBalancing::kPowerOfTwoChoices;
  options.health_check.interval = u.health_check.interval;
  options.health_check.timeout = u.health_check.timeout;
  options.health_check.service = u.health_check.service;
  options.health_check.panic_threshold_percent = u.health_check.panic_threshold_percent;
  options.outlier_detection.consecutive_failures = u.outlier_detection.consecutive_failures;
  options.outlier_detection.base_ejection_time = u.outlier_detection.base_ejection_time;
  options.outlier_detection.max_ejection_time = u.outlier_detection.max_ejection_time;
  options.outlier_detection.max_ejection_percent = u.outlier_detection.max_ejection_percent;
  options.hung_detection.ping_after = u.hung_detection.ping_after;
  options.hung_detection.ping_timeout = u.hung_detection.ping_timeout;
  options.retry_policy = RetryPolicyFor(u.retry_policy);
  options.retry_budget.budget_percent = u.retry_policy.budget_percent;
  options.retry_budget.min_retry_concurrency = u.retry_policy.min_retry_concurrency;
  options.circuit_breakers.max_requests = u.circuit_breakers.max_requests;
  options.circuit_breakers.max_pending_requests = u.circuit_breakers.max_pending_requests;
  options.circuit_breakers.retry_after =
      std::chrono::ceil<std::chrono::seconds>(u.circuit_breakers.retry_after);
  return options;
}

}  // namespace tipperary::proxy
