#include "upstream_options.h"

#include "tipperary/common/endpoint.h"

namespace tipperary::proxy {

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
  return options;
}

}  // namespace tipperary::proxy
