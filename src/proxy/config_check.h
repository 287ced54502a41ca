// Everything startup does with a configuration short of binding sockets, as one function that
// both `--check-config` and a live reload run: the descriptor files are read, every route is
// built and resolved against them, and problems are named with their place in the file.
//
//   absl::StatusOr<CheckedConfig> checked = CheckProxyConfig(config);
//   if (!checked.ok()) { /* "proxy.yaml:7:5: descriptors[0]: ..." */ }
//   for (const std::string& w : checked->warnings) { ... }   // skipped or shadowed rules
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"
#include "routing.h"
#include "tipperary/config/proxy_config.h"

namespace tipperary::proxy {

struct CheckedConfig {
  // The descriptor files' sets, in config order (the reflection sources are not in them).
  std::vector<google::protobuf::FileDescriptorSet> file_sets;
  // The upstreams named by `descriptors: [{reflection: NAME}]`, in config order.
  std::vector<std::string> reflection_upstreams;
  // The routing built from `file_sets` plus `reflection_sets` (null when there is nothing to
  // build it from yet: reflection only, not fetched yet).
  std::shared_ptr<const Routing> routing;
  // One line per route problem (a skipped or shadowed rule); fatal with transcoding.strict.
  std::vector<std::string> route_problems;
};

// `reflection_sets`: the schema last learnt over reflection, checked together with the files
// (a reload checks the routes against the schema the proxy serves). An error names the place:
// "proxy.yaml:7:5: descriptors[0]: ..." or the route's location.
absl::StatusOr<CheckedConfig> CheckProxyConfig(
    const config::ProxyConfig& config,
    const std::vector<google::protobuf::FileDescriptorSet>& reflection_sets = {});

}  // namespace tipperary::proxy
