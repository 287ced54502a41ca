// Fuzz target: YAML through the proxy's and the worker's config loaders
// (LoadProxyConfigString, LoadWorkerConfigString: yaml-cpp, the strict readers, every section's
// validation, units, endpoints), as `tipperary-proxy --config` and `tipperary-worker --config`
// read a file. Every input goes through both loaders. Besides not crashing, hanging or leaking,
// checks the dumpers' promise: a loaded config dumps to YAML that loads back to a config that
// dumps to the same YAML (--check-config and /config show what the process runs with). A loaded
// proxy config's routes then go through RouteTable::Build on the fuzz schema, as BuildRouting
// does (path templates from the operator).
//
// The config is "loaded" from a scratch directory holding the files a config may name (relative
// paths resolve against it): services.pb, tls/server.crt, tls/server.key, tls/ca.crt.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tipperary/config/proxy_config_loader.h"
#include "tipperary/config/worker_config.h"
#include "tipperary/transcoder/route_table.h"
#include "transcoder_world.h"

namespace {

namespace fs = std::filesystem;
using namespace tipperary::config;  // NOLINT
using tipperary::fuzz::Fail;

std::string& ScratchDir() {
  static std::string dir;
  return dir;
}

void RemoveScratchDir() {
  std::error_code error;
  if (!ScratchDir().empty()) fs::remove_all(ScratchDir(), error);
}

void ProxyRoundTrip(const std::string& yaml, const std::string& source) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigString(yaml, source);
  if (!config.ok()) return;
  const std::string dump = DumpProxyConfig(*config, /*redact_secrets=*/false);
  absl::StatusOr<ProxyConfig> again = LoadProxyConfigString(dump, source);
  if (!again.ok()) {
    Fail("a dumped proxy config does not load back: " + again.status().ToString(),
         yaml + "\n----- dump -----\n" + dump);
  }
  const std::string dump_again = DumpProxyConfig(*again, false);
  if (dump_again != dump) {
    Fail("a proxy config changes through dump and load",
         yaml + "\n----- dump -----\n" + dump + "\n----- dump of the reload -----\n" + dump_again);
  }
  (void)DumpProxyConfig(*config, /*redact_secrets=*/true);

  // As proxy::BuildRouting: the config's routes over the schema's annotations.
  std::vector<tipperary::transcoder::RouteSpec> specs;
  for (const RouteConfig& r : config->routes) {
    specs.push_back({r.method, r.path, r.grpc_method, r.body, r.response_body, r.timeout,
                     std::nullopt, r.ignore_unknown_fields});
  }
  tipperary::transcoder::RouteTableOptions options;
  options.annotations = config->transcoding.annotations;
  options.allow_grpc_method_paths = config->transcoding.allow_grpc_method_paths;
  for (const UpstreamConfig& u : config->upstreams) {
    for (const std::string& s : u.services) options.service_filters.push_back(s);
  }
  auto table =
      tipperary::transcoder::RouteTable::Build(tipperary::fuzz::FuzzSchema(), specs, options);
  if (table.ok()) (void)(*table)->DescribeJson();
}

void WorkerRoundTrip(const std::string& yaml, const std::string& source) {
  absl::StatusOr<WorkerConfig> config = LoadWorkerConfigString(yaml, source);
  if (!config.ok()) return;
  const std::string dump = DumpWorkerConfig(*config);
  absl::StatusOr<WorkerConfig> again = LoadWorkerConfigString(dump, source);
  if (!again.ok()) {
    Fail("a dumped worker config does not load back: " + again.status().ToString(),
         yaml + "\n----- dump -----\n" + dump);
  }
  const std::string dump_again = DumpWorkerConfig(*again);
  if (dump_again != dump) {
    Fail("a worker config changes through dump and load",
         yaml + "\n----- dump -----\n" + dump + "\n----- dump of the reload -----\n" + dump_again);
  }
  (void)config->default_model();
  WorkerConfig overridden = *config;
  (void)OverrideModelPath(overridden, config->models.front().name + "=/models/x");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/config-fuzz.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Fail("cannot make a scratch directory", pattern);
  ScratchDir() = pattern;
  std::atexit(RemoveScratchDir);
  for (const char* file : {"services.pb", "tls/server.crt", "tls/server.key", "tls/ca.crt"}) {
    const fs::path path = fs::path(pattern) / file;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << "placeholder\n";
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  ProxyRoundTrip(yaml, ScratchDir() + "/proxy.yaml");
  WorkerRoundTrip(yaml, ScratchDir() + "/worker.yaml");
  return 0;
}
