// tipperary-proxy: HTTP/1.1 (JSON or binary protobuf) in, gRPC over HTTP/2 out.
#include <iostream>
#include <string>

#include "proxy_server.h"
#include "tipperary/common/command_line.h"
#include "tipperary/common/log.h"
#include "tipperary/config/proxy_config_loader.h"

namespace {

constexpr char kUsage[] = R"(usage: tipperary-proxy --config FILE [--check-config]
       tipperary-proxy --help | --version

Serves HTTP/1.1 clients (JSON or binary protobuf) by calling gRPC services over HTTP/2,
routing by the google.api.http annotations of the descriptors named in the config.

  --config FILE     the YAML configuration (see config/proxy.yaml, docs/configuration.md)
  --check-config    validate FILE, print the effective configuration, exit 0 if valid, else 1
  --help            this text
  --version         the version

Signals: SIGTERM/SIGINT drain (readiness fails, in-flight responses are written within
timeouts.drain), then exit 0, or 1 if the drain ran out; a second signal exits at once.
)";

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
    return 0;
  }
  tipperary::common::SetLogLevel(config->logging.level);
  auto server = tipperary::proxy::ProxyServer::Create(std::move(*config));
  if (!server.ok()) {
    std::cerr << "tipperary-proxy: " << server.status().message() << "\n";
    return 1;
  }
  return (*server)->Run();
}
