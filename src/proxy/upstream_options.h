// The upstream client's options for one configured upstream: the one place where the config's
// upstreams[] section becomes upstream::UpstreamOptions (each event loop builds its own cluster
// from it, at start and when a reload changes the upstream).
//
//   upstream::UpstreamOptions options = UpstreamOptionsFor(config.upstreams[0]);
#pragma once

#include "tipperary/config/proxy_config.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::proxy {

upstream::UpstreamOptions UpstreamOptionsFor(const config::UpstreamConfig& upstream);

}  // namespace tipperary::proxy
