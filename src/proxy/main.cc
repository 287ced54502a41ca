// tipperary-proxy: HTTP/1.1 (JSON or binary protobuf) in, gRPC over HTTP/2 out.
#include <iostream>
#include <string>

#include "config_check.h"
#include "proxy_server.h"
#include "routing.h"
#include "tipperary/common/command_line.h"
#include "tipperary/common/log.h"
#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/transcoder/schema.h"

namespace {

constexpr char kUsage[] = R"(usage: tipperary-proxy --config FILE [--check-config]
       tipperary-proxy --help | --version

Serves HTTP/1.1 clients (JSON or binary protobuf) by calling gRPC services over HTTP/2,
routing by the google.api.http annotations of the descriptors named in the config.

  --config FILE     the YAML configuration (see config/proxy.yaml, docs/configuration.md)
  --check-config    validate FILE and the routes of its descriptor files, print the effective
                    configuration and one warning per route problem (skipped or shadowed
                    rule) on stderr; exit 1 if FILE is invalid, or on any route problem
                    with transcoding.strict, else 0
  --help            this text
  --version         the version

Signals: SIGTERM/SIGINT drain (readiness fails, in-flight responses are written within
timeouts.drain), then exit 0, or 1 if the drain ran out; a second signal exits at once.
SIGHUP (or POST /reload on the admin port) re-reads FILE, checks it as --check-config does
and applies it whole, or changes nothing and logs why (docs/operations.md).
)";

// --check-config: everything startup does short of binding sockets (CheckProxyConfig, which a
// reload runs too), every route problem on stderr with its gRPC method and rule.
int CheckConfig(const tipperary::config::ProxyConfig& config) {
  auto checked = tipperary::proxy::CheckProxyConfig(config);
  if (!checked.ok() && !config.transcoding.strict) {
    std::cerr << "tipperary-proxy: " << checked.status().message() << "\n";
    return 1;
  }
  if (!checked.ok()) {
    // Strict: list the problems one per line, as a lenient check would, then fail.
    tipperary::config::ProxyConfig lenient = config;
    lenient.transcoding.strict = false;
    checked = tipperary::proxy::CheckProxyConfig(lenient);
    if (!checked.ok()) {
      std::cerr << "tipperary-proxy: " << checked.status().message() << "\n";
      return 1;
    }
  }
  const char* kind = config.transcoding.strict ? "error" : "warning";
  for (const std::string& problem : checked->route_problems) {
    std::cerr << "tipperary-proxy: " << kind << ": route " << problem << "\n";
  }
  if (checked->routing == nullptr) {
    std::cerr << "tipperary-proxy: schemas from reflection are checked when they are loaded\n";
    return 0;
  }
  std::cerr << "tipperary-proxy: " << checked->routing->routes->routes().size() << " routes, "
            << checked->route_problems.size() << " route problem(s)"
            << (checked->reflection_upstreams.empty()
                    ? ""
                    : "; schemas from reflection are checked when they are loaded")
            << "\n";
  return config.transcoding.strict && !checked->route_problems.empty() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  tipperary::common::CommandLine cl;
  if (auto exit_code =
          tipperary::common::ParseCommandLine(argc, argv, "tipperary-proxy", kUsage, {}, &cl)) {
    return *exit_code;
  }
  const std::string& config_path = cl.config_path;
  const bool check_only = cl.check_only;
  auto config = tipperary::config::LoadProxyConfigFile(config_path);
  if (!config.ok()) {
    std::cerr << "tipperary-proxy: " << config.status().message() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << tipperary::config::DumpProxyConfig(*config, /*redact_secrets=*/true);
    return CheckConfig(*config);
  }
  tipperary::common::SetLogLevel(config->logging.level);
  auto server = tipperary::proxy::ProxyServer::Create(std::move(*config), config_path);
  if (!server.ok()) {
    std::cerr << "tipperary-proxy: " << server.status().message() << "\n";
    return 1;
  }
  return (*server)->Run();
}
