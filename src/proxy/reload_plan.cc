#include "reload_plan.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/config/reload_report.h"

namespace tipperary::proxy {
namespace {

std::vector<std::string> ReflectionUpstreams(const config::ProxyConfig& config) {
  std::vector<std::string> out;
  for (const config::DescriptorSource& source : config.descriptors) {
    if (source.path.empty()) out.push_back(source.reflection_upstream);
  }
  return out;
}

// UpstreamKeys from the config's unredacted dump.
std::vector<std::string> KeysFromDump(const config::ProxyConfig& config, const std::string& dump) {
  std::vector<std::string> keys;
  const YAML::Node upstreams = YAML::Load(dump)["upstreams"];
  for (size_t i = 0; i < config.upstreams.size(); ++i) {
    YAML::Emitter out;
    if (upstreams && upstreams.IsSequence() && i < upstreams.size()) out << upstreams[i];
    keys.push_back(std::string(out.c_str()) + "\n#" + config.upstreams[i].name);
  }
  return keys;
}

}  // namespace

bool NeedsRestart(const std::string& key) {
  // Sockets bound at start (listeners, admin, the external scaler's gRPC server and its stream
  // cadence), the number of event loops, the admin route of the OpenAPI document, and the
  // sampling thread's cadence are fixed for a process.
  static const std::set<std::string> kRestart = {"listeners",
                                                 "admin",
                                                 "admin.address",
                                                 "threads",
                                                 "openapi.path",
                                                 "autoscaling.external_scaler_address",
                                                 "autoscaling.stream_interval",
                                                 "autoscaling.sample_interval"};
  return kRestart.count(key) > 0;
}

ReloadPlan PlanReload(const config::ProxyConfig& running, config::ProxyConfig loaded) {
  const std::string running_dump = config::DumpProxyConfig(running, /*redact_secrets=*/false);
  const std::vector<std::string> in_file =
      config::ChangedKeys(running_dump, config::DumpProxyConfig(loaded, false));
  ReloadPlan plan;
  // The running values of what cannot change live.
  for (const std::string& key : in_file) {
    if (!NeedsRestart(key)) continue;
    plan.restart_required.push_back(key);
    if (key == "listeners") loaded.listeners = running.listeners;
    if (key == "admin" || key == "admin.address") loaded.admin = running.admin;
    if (key == "threads") loaded.threads = running.threads;
    if (key == "openapi.path") loaded.openapi.path = running.openapi.path;
    if (key == "autoscaling.external_scaler_address") {
      loaded.autoscaling.external_scaler_address = running.autoscaling.external_scaler_address;
    }
    if (key == "autoscaling.stream_interval") {
      loaded.autoscaling.stream_interval = running.autoscaling.stream_interval;
    }
    if (key == "autoscaling.sample_interval") {
      loaded.autoscaling.sample_interval = running.autoscaling.sample_interval;
    }
  }
  // Schema sources from reflection are fetched by the running process's watchers; files can
  // come and go (they are read again on every reload).
  if (ReflectionUpstreams(loaded) != ReflectionUpstreams(running)) {
    plan.restart_required.push_back("descriptors (reflection sources)");
    loaded.descriptors = running.descriptors;
  }
  plan.dump = config::DumpProxyConfig(loaded, /*redact_secrets=*/false);
  plan.hash = config::ConfigHash(plan.dump);
  plan.changed = config::ChangedKeys(running_dump, plan.dump);
  plan.upstream_keys = KeysFromDump(loaded, plan.dump);
  plan.config = std::make_shared<const config::ProxyConfig>(std::move(loaded));
  return plan;
}

std::vector<std::string> UpstreamKeys(const config::ProxyConfig& config) {
  return KeysFromDump(config, config::DumpProxyConfig(config, /*redact_secrets=*/false));
}

}  // namespace tipperary::proxy
