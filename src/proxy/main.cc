// tipperary-proxy: HTTP/1.1 (JSON or binary protobuf) in, gRPC over HTTP/2 out.
#include <iostream>
#include <string>

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
)";

// --check-config's route check: the routes of the descriptor files, every problem on stderr
// with its gRPC method and rule. Schemas learnt by reflection are checked when they arrive.
int CheckRoutes(const tipperary::config::ProxyConfig& config) {
  std::vector<google::protobuf::FileDescriptorSet> sets;
  bool reflection = false;
  for (const tipperary::config::DescriptorSource& source : config.descriptors) {
    if (source.path.empty()) {
      reflection = true;
      continue;
    }
    auto set = tipperary::transcoder::ReadDescriptorSetFile(source.path);
    if (!set.ok()) {
      std::cerr << "tipperary-proxy: " << source.location << ": " << set.status().message() << "\n";
      return 1;
    }
    sets.push_back(std::move(*set));
  }
  if (sets.empty()) return 0;
  // Every problem, strict or not: the exit status says whether they are fatal.
  tipperary::config::ProxyConfig lenient = config;
  lenient.transcoding.strict = false;
  auto routing = tipperary::proxy::BuildRouting(lenient, sets);
  if (!routing.ok()) {
    std::cerr << "tipperary-proxy: " << routing.status().message() << "\n";
    return 1;
  }
  size_t problems = 0;
  const char* kind = config.transcoding.strict ? "error" : "warning";
  for (const tipperary::transcoder::RouteIssue& issue : (*routing)->routes->issues()) {
    if (!issue.problem) continue;
    ++problems;
    std::cerr << "tipperary-proxy: " << kind << ": route " << issue.Describe() << "\n";
  }
  std::cerr << "tipperary-proxy: " << (*routing)->routes->routes().size() << " routes, " << problems
            << " route problem(s)"
            << (reflection ? "; schemas from reflection are checked when they are loaded" : "")
            << "\n";
  return config.transcoding.strict && problems > 0 ? 1 : 0;
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
    return CheckRoutes(*config);
  }
  tipperary::common::SetLogLevel(config->logging.level);
  auto server = tipperary::proxy::ProxyServer::Create(std::move(*config));
  if (!server.ok()) {
    std::cerr << "tipperary-proxy: " << server.status().message() << "\n";
    return 1;
  }
  return (*server)->Run();
}
