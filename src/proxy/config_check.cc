#include "config_check.h"

#include "absl/strings/str_cat.h"
#include "tipperary/transcoder/schema.h"

namespace tipperary::proxy {

absl::StatusOr<CheckedConfig> CheckProxyConfig(
    const config::ProxyConfig& config,
    const std::vector<google::protobuf::FileDescriptorSet>& reflection_sets) {
  CheckedConfig checked;
  for (const config::DescriptorSource& source : config.descriptors) {
    if (source.path.empty()) {
      checked.reflection_upstreams.push_back(source.reflection_upstream);
      continue;
    }
    auto set = transcoder::ReadDescriptorSetFile(source.path);
    if (!set.ok()) {
      return absl::Status(set.status().code(),
                          absl::StrCat(source.location, ": ", set.status().message()));
    }
    checked.file_sets.push_back(std::move(*set));
  }
  std::vector<google::protobuf::FileDescriptorSet> sets = checked.file_sets;
  if (!checked.reflection_upstreams.empty()) {
    if (reflection_sets.empty()) return checked;  // Checked when the schema arrives.
    sets.insert(sets.end(), reflection_sets.begin(), reflection_sets.end());
  }
  // Every problem, strict or not: the caller says whether they are fatal.
  config::ProxyConfig lenient = config;
  lenient.transcoding.strict = false;
  auto routing = BuildRouting(lenient, sets);
  if (!routing.ok()) return routing.status();
  for (const transcoder::RouteIssue& issue : (*routing)->routes->issues()) {
    if (issue.problem) checked.route_problems.push_back(issue.Describe());
  }
  if (config.transcoding.strict && !checked.route_problems.empty()) {
    auto strict = BuildRouting(config, sets);  // Fails, listing the problems one per line.
    if (!strict.ok()) return strict.status();
  }
  // Strictness only turns problems into errors: without any, the lenient build is the real one.
  checked.routing = std::move(*routing);
  return checked;
}

}  // namespace tipperary::proxy
