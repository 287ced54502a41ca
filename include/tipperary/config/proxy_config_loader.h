// Loads, validates and dumps the proxy's YAML configuration (see docs/configuration.md).
//
// Loading is strict: an unknown key, a value of the wrong type or out of range, a missing file
// or an inconsistency between sections is an InvalidArgument error that names the file, the
// 1-based line and column, and the key's path:
//   proxy.yaml:12:5: upstreams[0].connect_timeout: bad duration "2 parsecs" (use e.g. 250ms, 2s,
//   1m)
// Relative paths in the file (descriptors, tls files, logging.access_log_path) resolve against
// the directory of the file, and the loaded config holds them resolved.
//
//   absl::StatusOr<ProxyConfig> config = LoadProxyConfigFile(argv[1]);
//   if (!config.ok()) { std::cerr << config.status().message() << "\n"; return 2; }
//   std::cout << DumpProxyConfig(*config);  // The effective config, every default filled in.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tipperary/config/proxy_config.h"

namespace tipperary::config {

// Reads and validates `path`. A file that cannot be read is NotFound/PermissionDenied (message
// names the path); everything else is InvalidArgument. source_path is set to `path`.
absl::StatusOr<ProxyConfig> LoadProxyConfigFile(const std::string& path);

// As LoadProxyConfigFile, from text; `source_name` is used in messages and as source_path, and
// relative paths resolve against its directory (the current directory when it has none).
absl::StatusOr<ProxyConfig> LoadProxyConfigString(const std::string& yaml,
                                                  const std::string& source_name);

// The effective configuration as YAML: every key, defaults filled, in the order of
// docs/configuration.md. With redact_secrets, tls.key values read "<redacted>". Without it,
// LoadProxyConfigString(DumpProxyConfig(c, false), ...) gives back an equal config.
std::string DumpProxyConfig(const ProxyConfig& config, bool redact_secrets = true);

}  // namespace tipperary::config
