#include "tipperary/config/proxy_config_loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pem_files.h"
#include "status_macros.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/config/units.h"
#include "tipperary/config/yaml_reader.h"

namespace tipperary::config {
namespace {

namespace fs = std::filesystem;

// Durations that must be strictly positive.
constexpr Duration kPositive = Duration(1);
constexpr int64_t kMaxInt31 = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxUint32 = (int64_t{1} << 32) - 1;

absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }

std::string Quoted(std::string_view text) { return absl::StrCat("\"", AbslView(text), "\""); }

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

bool IsIdentifier(std::string_view text) {
  if (text.empty() || !IsIdentStart(text[0])) return false;
  for (char c : text) {
    if (!IsIdentChar(c)) return false;
  }
  return true;
}

// "pkg.sub.Service", "Service" or, with allow_wildcard, "pkg.sub.*".
bool IsServiceName(std::string_view text, bool allow_wildcard) {
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    std::string_view part = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    bool last = dot == std::string_view::npos;
    if (last && allow_wildcard && part == "*" && start > 0) return true;
    if (!IsIdentifier(part)) return false;
    if (last) return true;
    start = dot + 1;
  }
}

bool IsUpstreamName(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsLowerAlnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// Upper-case HTTP method token: GET, POST, ... or a custom one such as PURGE.
bool IsHttpMethod(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return text[0] >= 'A' && text[0] <= 'Z';
}

// [a-z_][a-z0-9_.]* as in google.api.HttpRule.body, no empty segments.
bool IsFieldPath(std::string_view text) {
  if (text.empty() || !((text[0] >= 'a' && text[0] <= 'z') || text[0] == '_')) return false;
  for (char c : text) {
    if (!IsLowerAlnum(c) && c != '_' && c != '.') return false;
  }
  return text.back() != '.' && text.find("..") == std::string_view::npos;
}

// A light check of a path template; the transcoder parses it fully.
std::optional<std::string> PathTemplateProblem(std::string_view path) {
  if (path.empty() || path[0] != '/') return "must start with '/'";
  bool in_braces = false;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '?' || c == '#') {
      return absl::StrCat("must not contain '", std::string(1, c), "'");
    }
    if (c == '{') {
      if (in_braces) return "nested '{'";
      in_braces = true;
    } else if (c == '}') {
      if (!in_braces) return "unbalanced '}'";
      in_braces = false;
    }
  }
  if (in_braces) return "unbalanced '{'";
  return std::nullopt;
}

bool ServiceMatches(const std::string& pattern, std::string_view service) {
  if (pattern.size() >= 2 && pattern.compare(pattern.size() - 2, 2, ".*") == 0) {
    std::string_view prefix(pattern.data(), pattern.size() - 1);  // Keeps the dot.
    return service.substr(0, prefix.size()) == prefix;
  }
  return service == pattern;
}

// A compression.types entry: "type/subtype", "type/*" or "type/*+suffix", tokens of RFC 6838's
// restricted-name characters.
bool IsMediaTypePattern(std::string_view pattern) {
  auto is_name = [](std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
      if (!IsLowerAlnum(c) && std::string_view("!#$&-^_.+").find(c) == std::string_view::npos) {
        return false;
      }
    }
    return true;
  };
  size_t slash = pattern.find('/');
  if (slash == std::string_view::npos || !is_name(pattern.substr(0, slash))) return false;
  std::string_view sub = pattern.substr(slash + 1);
  if (sub == "*") return true;
  if (sub.substr(0, 2) == "*+") return is_name(sub.substr(2));
  return is_name(sub);
}

std::string Join(const std::vector<std::string>& parts) { return absl::StrJoin(parts, ", "); }

const std::vector<std::string>& UpstreamKeys() {
  static const auto* const keys = new std::vector<std::string>{"name",
                                                               "endpoints",
                                                               "services",
                                                               "connect_timeout",
                                                               "keepalive_interval",
                                                               "keepalive_timeout",
                                                               "reconnect_backoff_initial",
                                                               "reconnect_backoff_max",
                                                               "max_concurrent_streams",
                                                               "connections_per_thread",
                                                               "max_response_bytes",
                                                               "initial_window_size",
                                                               "load_balancing",
                                                               "health_check",
                                                               "outlier_detection",
                                                               "hung_detection",
                                                               "retry_policy",
                                                               "circuit_breakers",
                                                               "tls"};
  return *keys;
}

bool IsIpAddress(const std::string& text) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// A DNS name as a TLS server name: dot-separated labels of letters, digits and '-'.
bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

// A TCP address the proxy serves besides its HTTP listeners (admin, external scaler): host:port,
// and not an address a listener already binds (port 0 excepted). `role` and `key` name it in
// the errors, e.g. "the admin listener" / "admin address".
absl::StatusOr<common::Endpoint> ServerAddress(const YamlValue& at, const std::string& address,
                                               const char* role, const char* key,
                                               const ProxyConfig& config) {
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(address, true);
  if (!endpoint.ok()) return at.Error(std::string(endpoint.status().message()));
  if (endpoint->kind != common::Endpoint::Kind::kTcp) {
    return at.Error(absl::StrCat(role, " needs host:port, got ", Quoted(address)));
  }
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    common::Endpoint listener = *common::ParseEndpoint(config.listeners[i].address, true);
    if (endpoint->port != 0 && listener.ToString() == endpoint->ToString()) {
      return at.Error(
          absl::StrCat(key, " ", Quoted(address), " is also used by listeners[", i, "]"));
    }
  }
  return endpoint;
}

class Loader {
 public:
  explicit Loader(std::string source)
      : source_(std::move(source)), base_dir_(fs::path(source_).parent_path()) {}

  absl::Status Load(const YamlValue& root, ProxyConfig* config);

 private:
  absl::Status LoadListeners(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadListener(const YamlValue& item, ListenerConfig* out);
  absl::Status LoadTls(const YamlValue& value, TlsConfig* out);
  absl::Status LoadAdmin(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadUpstreams(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadUpstream(const YamlValue& item, UpstreamConfig* out);
  absl::Status LoadUpstreamTls(const YamlValue& value, UpstreamTlsConfig* out);
  // load_balancing is read by LoadUpstream; these are its resilience sections.
  absl::Status LoadUpstreamResilience(const YamlMap& map, UpstreamConfig* out);
  // A route's retry_policy (for_route) takes the per-call keys only.
  absl::Status LoadRetryPolicy(const YamlValue& value, RetryPolicyConfig* out,
                               bool for_route = false);
  absl::Status LoadDescriptors(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadRoutes(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadRoute(const YamlValue& item, const ProxyConfig& config, RouteConfig* out);
  absl::Status LoadTranscoding(const YamlMap& root, TranscodingConfig* out);
  absl::Status LoadLimits(const YamlMap& root, LimitsConfig* out);
  absl::Status LoadCompression(const YamlMap& root, ProxyConfig* config);
  absl::Status LoadTimeouts(const YamlMap& root, TimeoutsConfig* out);
  absl::Status LoadMetadata(const YamlMap& root, MetadataConfig* out);
  absl::Status LoadStreaming(const YamlMap& root, StreamingConfig* out);
  absl::Status LoadCors(const YamlMap& root, CorsConfig* out);
  absl::Status LoadOpenApi(const YamlMap& root, OpenApiConfig* out);
  absl::Status LoadLogging(const YamlMap& root, LoggingConfig* out);
  absl::Status LoadAutoscaling(const YamlMap& root, ProxyConfig* config);

  std::string Resolve(const std::string& path) const;
  // The value as a path, resolved, naming a readable regular file.
  absl::StatusOr<std::string> ReadableFile(const YamlValue& value) const;

  std::string source_;
  fs::path base_dir_;
};

std::string Loader::Resolve(const std::string& path) const {
  fs::path p(path);
  if (p.is_absolute() || base_dir_.empty()) return path;
  return (base_dir_ / p).lexically_normal().string();
}

absl::StatusOr<std::string> Loader::ReadableFile(const YamlValue& value) const {
  TIPPERARY_ASSIGN_OR_RETURN(std::string text, value.AsNonEmptyString());
  std::string resolved = Resolve(text);
  std::string shown = Quoted(text);
  if (resolved != text) absl::StrAppend(&shown, " (resolved to ", Quoted(resolved), ")");
  std::error_code error;
  if (fs::is_directory(resolved, error)) {
    return value.Error(absl::StrCat("cannot read ", shown, ": it is a directory"));
  }
  int fd = ::open(resolved.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return value.Error(absl::StrCat("cannot read ", shown, ": ", std::strerror(errno)));
  }
  ::close(fd);
  return resolved;
}

absl::Status Loader::Load(const YamlValue& root, ProxyConfig* config) {
  if (!root.node().IsMap()) {
    return root.Error(
        absl::StrCat("the top level must be a map of keys (listeners, upstreams, "
                     "...), got ",
                     YamlKindName(root.node())));
  }
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      root.AsMap({"listeners", "admin", "descriptors", "schema", "upstreams", "routes",
                  "transcoding", "limits", "compression", "timeouts", "metadata", "streaming",
                  "cors", "grpc_web", "openapi", "logging", "autoscaling", "threads"}));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"listeners", "upstreams"}));
  // Upstreams first: descriptors and routes refer to them.
  TIPPERARY_RETURN_IF_ERROR(LoadListeners(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadAdmin(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadUpstreams(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadDescriptors(map, config));
  if (std::optional<YamlValue> schema = map.Find("schema")) {
    TIPPERARY_ASSIGN_OR_RETURN(YamlMap s,
                               schema->AsMap({"refresh_interval", "refresh_on_reconnect"}));
    TIPPERARY_RETURN_IF_ERROR(s.ReadDuration("refresh_interval", &config->schema.refresh_interval));
    TIPPERARY_RETURN_IF_ERROR(
        s.ReadBool("refresh_on_reconnect", &config->schema.refresh_on_reconnect));
  }
  TIPPERARY_RETURN_IF_ERROR(LoadTranscoding(map, &config->transcoding));
  TIPPERARY_RETURN_IF_ERROR(LoadLimits(map, &config->limits));
  TIPPERARY_RETURN_IF_ERROR(LoadCompression(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadTimeouts(map, &config->timeouts));
  TIPPERARY_RETURN_IF_ERROR(LoadRoutes(map, config));
  TIPPERARY_RETURN_IF_ERROR(LoadMetadata(map, &config->metadata));
  TIPPERARY_RETURN_IF_ERROR(LoadStreaming(map, &config->streaming));
  TIPPERARY_RETURN_IF_ERROR(LoadCors(map, &config->cors));
  if (std::optional<YamlValue> grpc_web = map.Find("grpc_web")) {
    TIPPERARY_ASSIGN_OR_RETURN(YamlMap web, grpc_web->AsMap({"enabled"}));
    TIPPERARY_RETURN_IF_ERROR(web.ReadBool("enabled", &config->grpc_web.enabled));
  }
  TIPPERARY_RETURN_IF_ERROR(LoadOpenApi(map, &config->openapi));
  TIPPERARY_RETURN_IF_ERROR(LoadLogging(map, &config->logging));
  TIPPERARY_RETURN_IF_ERROR(LoadAutoscaling(map, config));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("threads", &config->threads, 0, 1024));
  config->source_path = source_;
  return absl::OkStatus();
}

absl::Status Loader::LoadListeners(const YamlMap& root, ProxyConfig* config) {
  YamlValue value = *root.Find("listeners");
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, value.AsList());
  if (items.empty()) return value.Error("at least one listener is required");
  std::map<std::string, std::string> seen;  // Normalised address -> path of its first use.
  for (const YamlValue& item : items) {
    ListenerConfig listener;
    TIPPERARY_RETURN_IF_ERROR(LoadListener(item, &listener));
    common::Endpoint endpoint = *common::ParseEndpoint(listener.address, true);
    if (endpoint.port != 0) {
      auto [it, inserted] = seen.emplace(endpoint.ToString(), item.path());
      if (!inserted) {
        YamlMap map = *item.AsMap({"address", "tls"});
        return map.Find("address")->Error(absl::StrCat("duplicate listener address ",
                                                       Quoted(listener.address), " (also in ",
                                                       it->second, ")"));
      }
    }
    config->listeners.push_back(std::move(listener));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadListener(const YamlValue& item, ListenerConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, item.AsMap({"address", "tls"}));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"address"}));
  YamlValue address = *map.Find("address");
  TIPPERARY_ASSIGN_OR_RETURN(out->address, address.AsNonEmptyString());
  absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(out->address, true);
  if (!endpoint.ok()) return address.Error(std::string(endpoint.status().message()));
  if (endpoint->kind != common::Endpoint::Kind::kTcp) {
    return address.Error(absl::StrCat("a listener needs host:port, got ", Quoted(out->address)));
  }
  if (std::optional<YamlValue> tls = map.Find("tls")) {
    out->tls.emplace();
    TIPPERARY_RETURN_IF_ERROR(LoadTls(*tls, &*out->tls));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadTls(const YamlValue& value, TlsConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map, value.AsMap({"cert", "key", "client_ca", "require_client_cert", "min_version"}));
  if (map.Has("cert") && !map.Has("key")) {
    return map.Error("\"cert\" is set but \"key\" is missing (both are required)");
  }
  if (map.Has("key") && !map.Has("cert")) {
    return map.Error("\"key\" is set but \"cert\" is missing (both are required)");
  }
  TIPPERARY_RETURN_IF_ERROR(map.Require({"cert", "key"}));
  TIPPERARY_ASSIGN_OR_RETURN(out->cert, ReadableFile(*map.Find("cert")));
  TIPPERARY_ASSIGN_OR_RETURN(out->key, ReadableFile(*map.Find("key")));
  if (std::optional<YamlValue> client_ca = map.Find("client_ca")) {
    TIPPERARY_ASSIGN_OR_RETURN(out->client_ca, ReadableFile(*client_ca));
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("require_client_cert", &out->require_client_cert));
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("min_version", &out->min_version, {"1.2", "1.3"}));
  return absl::OkStatus();
}

absl::Status Loader::LoadAdmin(const YamlMap& root, ProxyConfig* config) {
  std::optional<YamlValue> value = root.Find("admin");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, value->AsMap({"address"}));
  std::optional<YamlValue> address = map.Find("address");
  if (!address) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(config->admin.address, address->AsNonEmptyString());
  return ServerAddress(*address, config->admin.address, "the admin listener", "admin address",
                       *config)
      .status();
}

absl::Status Loader::LoadUpstreams(const YamlMap& root, ProxyConfig* config) {
  YamlValue value = *root.Find("upstreams");
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, value.AsList());
  if (items.empty()) return value.Error("at least one upstream is required");
  std::map<std::string, std::string> names;     // Name -> path of its first use.
  std::map<std::string, std::string> services;  // Service -> upstream serving it.
  for (const YamlValue& item : items) {
    UpstreamConfig upstream;
    TIPPERARY_RETURN_IF_ERROR(LoadUpstream(item, &upstream));
    YamlMap map = *item.AsMap(UpstreamKeys());  // Already read once by LoadUpstream.
    auto [it, inserted] = names.emplace(upstream.name, item.path());
    if (!inserted) {
      return map.Find("name")->Error(absl::StrCat("duplicate upstream name ", Quoted(upstream.name),
                                                  " (also in ", it->second, ")"));
    }
    if (items.size() > 1 && upstream.services.empty()) {
      std::optional<YamlValue> listed = map.Find("services");
      std::string why = "(with more than one upstream, each must list the services it serves)";
      if (listed) return listed->Error(absl::StrCat("must not be empty ", why));
      return map.Error(absl::StrCat("missing required key \"services\" ", why));
    }
    std::vector<YamlValue> service_values;
    if (std::optional<YamlValue> listed = map.Find("services")) service_values = *listed->AsList();
    for (size_t i = 0; i < upstream.services.size(); ++i) {
      auto [other, fresh] = services.emplace(upstream.services[i], upstream.name);
      if (!fresh) {
        return service_values[i].Error(absl::StrCat(Quoted(upstream.services[i]),
                                                    " is already served by upstream ",
                                                    Quoted(other->second)));
      }
    }
    config->upstreams.push_back(std::move(upstream));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadUpstream(const YamlValue& item, UpstreamConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, item.AsMap(UpstreamKeys()));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"name", "endpoints"}));

  YamlValue name = *map.Find("name");
  TIPPERARY_ASSIGN_OR_RETURN(out->name, name.AsNonEmptyString());
  if (!IsUpstreamName(out->name)) {
    return name.Error(absl::StrCat("bad upstream name ", Quoted(out->name),
                                   " (use lower-case letters, digits, '_' and '-')"));
  }

  YamlValue endpoints = *map.Find("endpoints");
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> endpoint_items, endpoints.AsList());
  if (endpoint_items.empty()) return endpoints.Error("at least one endpoint is required");
  for (const YamlValue& endpoint_item : endpoint_items) {
    TIPPERARY_ASSIGN_OR_RETURN(std::string text, endpoint_item.AsNonEmptyString());
    absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(text, false);
    if (!endpoint.ok()) return endpoint_item.Error(std::string(endpoint.status().message()));
    out->endpoints.push_back(std::move(text));
  }

  if (std::optional<YamlValue> services = map.Find("services")) {
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> service_items, services->AsList());
    for (const YamlValue& service_item : service_items) {
      TIPPERARY_ASSIGN_OR_RETURN(std::string service, service_item.AsNonEmptyString());
      if (!IsServiceName(service, true)) {
        return service_item.Error(absl::StrCat("bad service ", Quoted(service),
                                               " (use \"package.Service\" or \"package.*\")"));
      }
      out->services.push_back(std::move(service));
    }
  }

  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("connect_timeout", &out->connect_timeout, kPositive));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("keepalive_interval", &out->keepalive_interval));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("keepalive_timeout", &out->keepalive_timeout, kPositive));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("reconnect_backoff_initial", &out->reconnect_backoff_initial, kPositive));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("reconnect_backoff_max", &out->reconnect_backoff_max, kPositive));
  if (out->reconnect_backoff_max < out->reconnect_backoff_initial) {
    std::string message =
        absl::StrCat("reconnect_backoff_max (", FormatDuration(out->reconnect_backoff_max),
                     ") must be >= reconnect_backoff_initial (",
                     FormatDuration(out->reconnect_backoff_initial), ")");
    std::optional<YamlValue> at = map.Find("reconnect_backoff_max");
    if (!at) at = map.Find("reconnect_backoff_initial");
    return at->Error(message);
  }
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("max_concurrent_streams", &out->max_concurrent_streams, 1, kMaxInt31));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("connections_per_thread", &out->connections_per_thread, 1, 64));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_response_bytes", &out->max_response_bytes, 1, kMaxUint32));
  uint64_t window = out->initial_window_size;
  TIPPERARY_RETURN_IF_ERROR(map.ReadSize("initial_window_size", &window, 65535, kMaxInt31));
  out->initial_window_size = static_cast<uint32_t>(window);
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("load_balancing", &out->load_balancing, {"p2c", "round_robin"}));
  if (std::optional<YamlValue> health = map.Find("health_check")) {
    TIPPERARY_ASSIGN_OR_RETURN(
        YamlMap hc, health->AsMap({"interval", "timeout", "service", "panic_threshold_percent"}));
    TIPPERARY_RETURN_IF_ERROR(hc.ReadDuration("interval", &out->health_check.interval));
    TIPPERARY_RETURN_IF_ERROR(hc.ReadDuration("timeout", &out->health_check.timeout, kPositive));
    TIPPERARY_RETURN_IF_ERROR(hc.ReadString("service", &out->health_check.service));
    TIPPERARY_RETURN_IF_ERROR(hc.ReadUint32("panic_threshold_percent",
                                            &out->health_check.panic_threshold_percent, 0, 100));
  }
  if (std::optional<YamlValue> tls = map.Find("tls")) {
    out->tls.emplace();
    TIPPERARY_RETURN_IF_ERROR(LoadUpstreamTls(*tls, &*out->tls));
    for (const YamlValue& endpoint_item : endpoint_items) {
      const std::string text = *endpoint_item.AsNonEmptyString();
      if (common::ParseEndpoint(text, false)->kind == common::Endpoint::Kind::kUnix) {
        return endpoint_item.Error(absl::StrCat(Quoted(text), " is a unix socket: ", tls->path(),
                                                " needs host:port endpoints"));
      }
    }
  }
  TIPPERARY_RETURN_IF_ERROR(LoadUpstreamResilience(map, out));
  return absl::OkStatus();
}

absl::Status Loader::LoadUpstreamResilience(const YamlMap& map, UpstreamConfig* out) {
  // "a (X) must be >= b (Y)", at a when it is there, else at b.
  auto ordered = [](const YamlMap& m, const char* low_key, Duration low, const char* high_key,
                    Duration high) -> absl::Status {
    if (high >= low) return absl::OkStatus();
    std::optional<YamlValue> at = m.Find(high_key);
    if (!at) at = m.Find(low_key);
    return at->Error(absl::StrCat(high_key, " (", FormatDuration(high), ") must be >= ", low_key,
                                  " (", FormatDuration(low), ")"));
  };
  if (std::optional<YamlValue> value = map.Find("outlier_detection")) {
    OutlierDetectionConfig& od = out->outlier_detection;
    TIPPERARY_ASSIGN_OR_RETURN(
        YamlMap m, value->AsMap({"consecutive_failures", "base_ejection_time", "max_ejection_time",
                                 "max_ejection_percent"}));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadUint32("consecutive_failures", &od.consecutive_failures, 0, 1000000));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadDuration("base_ejection_time", &od.base_ejection_time, kPositive));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadDuration("max_ejection_time", &od.max_ejection_time, kPositive));
    TIPPERARY_RETURN_IF_ERROR(ordered(m, "base_ejection_time", od.base_ejection_time,
                                      "max_ejection_time", od.max_ejection_time));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadUint32("max_ejection_percent", &od.max_ejection_percent, 0, 100));
  }
  if (std::optional<YamlValue> value = map.Find("hung_detection")) {
    TIPPERARY_ASSIGN_OR_RETURN(YamlMap m, value->AsMap({"ping_after", "ping_timeout"}));
    TIPPERARY_RETURN_IF_ERROR(m.ReadDuration("ping_after", &out->hung_detection.ping_after));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadDuration("ping_timeout", &out->hung_detection.ping_timeout, kPositive));
  }
  if (std::optional<YamlValue> value = map.Find("retry_policy")) {
    TIPPERARY_RETURN_IF_ERROR(LoadRetryPolicy(*value, &out->retry_policy));
  }
  if (std::optional<YamlValue> value = map.Find("circuit_breakers")) {
    CircuitBreakersConfig& cb = out->circuit_breakers;
    TIPPERARY_ASSIGN_OR_RETURN(
        YamlMap m, value->AsMap({"max_requests", "max_pending_requests", "retry_after"}));
    TIPPERARY_RETURN_IF_ERROR(m.ReadSize("max_requests", &cb.max_requests, 0, kMaxUint32));
    TIPPERARY_RETURN_IF_ERROR(
        m.ReadSize("max_pending_requests", &cb.max_pending_requests, 0, kMaxUint32));
    TIPPERARY_RETURN_IF_ERROR(m.ReadDuration("retry_after", &cb.retry_after));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadUpstreamTls(const YamlValue& value, UpstreamTlsConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map, value.AsMap({"ca", "cert", "key", "server_name", "verify", "min_version"}));
  if (map.Has("cert") && !map.Has("key")) {
    return map.Error("\"cert\" is set but \"key\" is missing (mTLS needs both)");
  }
  if (map.Has("key") && !map.Has("cert")) {
    return map.Error("\"key\" is set but \"cert\" is missing (mTLS needs both)");
  }
  // The files are loaded as the connections will load them, so that a wrong file is reported
  // here, at its key, rather than as failing connections.
  auto read_pem =
      [&](std::string_view key, std::string* path,
          const std::function<absl::Status(const std::string&)>& check) -> absl::Status {
    std::optional<YamlValue> file = map.Find(key);
    if (!file) return absl::OkStatus();
    TIPPERARY_ASSIGN_OR_RETURN(*path, ReadableFile(*file));
    absl::Status status = check(*path);
    if (status.ok()) return status;
    return file->Error(absl::StrCat("cannot use ", Quoted(*path), ": ", status.message()));
  };
  TIPPERARY_RETURN_IF_ERROR(read_pem("ca", &out->ca, internal::CheckPemCertificates));
  TIPPERARY_RETURN_IF_ERROR(read_pem("cert", &out->cert, internal::CheckPemCertificates));
  TIPPERARY_RETURN_IF_ERROR(read_pem("key", &out->key, [&](const std::string& key) {
    return internal::CheckPemPrivateKey(key, out->cert);
  }));
  if (std::optional<YamlValue> name = map.Find("server_name")) {
    TIPPERARY_ASSIGN_OR_RETURN(out->server_name, name->AsNonEmptyString());
    if (!IsDnsName(out->server_name) && !IsIpAddress(out->server_name)) {
      return name->Error(absl::StrCat("bad server name ", Quoted(out->server_name),
                                      " (use a DNS name such as worker.example.com, or an IP "
                                      "address)"));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("verify", &out->verify));
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("min_version", &out->min_version, {"1.2", "1.3"}));
  return absl::OkStatus();
}

absl::Status Loader::LoadRetryPolicy(const YamlValue& value, RetryPolicyConfig* out,
                                     bool for_route) {
  std::vector<std::string> keys = {"retry_on", "max_attempts", "per_try_timeout", "backoff_initial",
                                   "backoff_max"};
  if (!for_route) {
    keys.insert(keys.begin() + 1, "idempotent_methods");
    keys.insert(keys.end(), {"budget_percent", "min_retry_concurrency"});
  }
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap m, value.AsMap(keys));
  if (std::optional<YamlValue> retry_on = m.Find("retry_on")) {
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, retry_on->AsList());
    out->retry_on.clear();
    for (const YamlValue& item : items) {
      TIPPERARY_ASSIGN_OR_RETURN(
          std::string code,
          item.AsEnum({"cancelled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
                       "already_exists", "permission_denied", "resource_exhausted",
                       "failed_precondition", "aborted", "out_of_range", "unimplemented",
                       "internal", "unavailable", "data_loss", "unauthenticated"}));
      out->retry_on.push_back(std::move(code));
    }
  }
  if (std::optional<YamlValue> methods = m.Find("idempotent_methods")) {
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, methods->AsList());
    out->idempotent_methods.clear();
    for (const YamlValue& item : items) {
      TIPPERARY_ASSIGN_OR_RETURN(std::string pattern, item.AsNonEmptyString());
      const size_t slash = pattern.find('/');
      const bool ok =
          pattern == "*" ||
          (slash != std::string::npos && IsServiceName(pattern.substr(0, slash), false) &&
           (pattern.substr(slash + 1) == "*" || IsIdentifier(pattern.substr(slash + 1))));
      if (!ok) {
        return item.Error(absl::StrCat("bad method ", Quoted(pattern),
                                       " (use \"package.Service/Method\", \"package.Service/*\" "
                                       "or \"*\")"));
      }
      out->idempotent_methods.push_back(std::move(pattern));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(m.ReadUint32("max_attempts", &out->max_attempts, 1, 10));
  TIPPERARY_RETURN_IF_ERROR(m.ReadDuration("per_try_timeout", &out->per_try_timeout));
  TIPPERARY_RETURN_IF_ERROR(m.ReadDuration("backoff_initial", &out->backoff_initial, kPositive));
  TIPPERARY_RETURN_IF_ERROR(m.ReadDuration("backoff_max", &out->backoff_max, kPositive));
  if (out->backoff_max < out->backoff_initial) {
    std::optional<YamlValue> at = m.Find("backoff_max");
    if (!at) at = m.Find("backoff_initial");
    return at->Error(absl::StrCat("backoff_max (", FormatDuration(out->backoff_max),
                                  ") must be >= backoff_initial (",
                                  FormatDuration(out->backoff_initial), ")"));
  }
  TIPPERARY_RETURN_IF_ERROR(m.ReadUint32("budget_percent", &out->budget_percent, 0, 100));
  TIPPERARY_RETURN_IF_ERROR(
      m.ReadUint32("min_retry_concurrency", &out->min_retry_concurrency, 0, 1000000));
  return absl::OkStatus();
}

absl::Status Loader::LoadDescriptors(const YamlMap& root, ProxyConfig* config) {
  std::optional<YamlValue> value = root.Find("descriptors");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, value->AsList());
  for (const YamlValue& item : items) {
    DescriptorSource source;
    source.location = item.Location();
    if (item.node().IsScalar()) {
      TIPPERARY_ASSIGN_OR_RETURN(source.path, ReadableFile(item));
    } else if (item.node().IsMap()) {
      TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, item.AsMap({"reflection"}));
      TIPPERARY_RETURN_IF_ERROR(map.Require({"reflection"}));
      YamlValue upstream = *map.Find("reflection");
      TIPPERARY_ASSIGN_OR_RETURN(source.reflection_upstream, upstream.AsNonEmptyString());
      std::vector<std::string> names;
      bool found = false;
      for (const UpstreamConfig& candidate : config->upstreams) {
        names.push_back(candidate.name);
        found = found || candidate.name == source.reflection_upstream;
      }
      if (!found) {
        return upstream.Error(absl::StrCat("unknown upstream ", Quoted(source.reflection_upstream),
                                           " (upstreams: ", Join(names), ")"));
      }
    } else {
      return item.Error(
          absl::StrCat("expected a descriptor set file path or {reflection: UPSTREAM}, got ",
                       YamlKindName(item.node())));
    }
    config->descriptors.push_back(std::move(source));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadRoutes(const YamlMap& root, ProxyConfig* config) {
  std::optional<YamlValue> value = root.Find("routes");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, value->AsList());
  std::map<std::string, std::string> seen;  // "METHOD path" -> path of its first use.
  for (const YamlValue& item : items) {
    RouteConfig route;
    route.location = item.Location();
    TIPPERARY_RETURN_IF_ERROR(LoadRoute(item, *config, &route));
    auto [it, inserted] = seen.emplace(absl::StrCat(route.method, " ", route.path), item.path());
    if (!inserted) {
      return item.Error(absl::StrCat("duplicate route ", route.method, " ", route.path,
                                     " (also in ", it->second, ")"));
    }
    config->routes.push_back(std::move(route));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadRoute(const YamlValue& item, const ProxyConfig& config, RouteConfig* out) {
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      item.AsMap({"method", "path", "grpc_method", "body", "response_body", "timeout",
                  "error_format", "ignore_unknown_fields", "idempotent", "retry_policy"}));
  TIPPERARY_RETURN_IF_ERROR(map.Require({"method", "path", "grpc_method"}));

  YamlValue method = *map.Find("method");
  TIPPERARY_ASSIGN_OR_RETURN(out->method, method.AsNonEmptyString());
  if (!IsHttpMethod(out->method)) {
    return method.Error(absl::StrCat("bad HTTP method ", Quoted(out->method),
                                     " (use GET, POST, PUT, PATCH, DELETE or an upper-case "
                                     "custom verb)"));
  }

  YamlValue path = *map.Find("path");
  TIPPERARY_ASSIGN_OR_RETURN(out->path, path.AsNonEmptyString());
  if (std::optional<std::string> problem = PathTemplateProblem(out->path)) {
    return path.Error(absl::StrCat("bad path template ", Quoted(out->path), ": ", *problem));
  }

  YamlValue grpc_method = *map.Find("grpc_method");
  TIPPERARY_ASSIGN_OR_RETURN(out->grpc_method, grpc_method.AsNonEmptyString());
  size_t slash = out->grpc_method.find('/');
  std::string_view service =
      std::string_view(out->grpc_method).substr(0, slash == std::string::npos ? 0 : slash);
  if (slash == std::string::npos || !IsServiceName(service, false) ||
      !IsIdentifier(std::string_view(out->grpc_method).substr(slash + 1))) {
    return grpc_method.Error(absl::StrCat("bad gRPC method ", Quoted(out->grpc_method),
                                          " (use \"package.Service/Method\")"));
  }
  bool any_services = false;
  bool served = false;
  for (const UpstreamConfig& upstream : config.upstreams) {
    for (const std::string& pattern : upstream.services) {
      any_services = true;
      served = served || ServiceMatches(pattern, service);
    }
  }
  if (any_services && !served) {
    return grpc_method.Error(
        absl::StrCat("service ", Quoted(service), " is not in any upstream's services"));
  }

  if (std::optional<YamlValue> body = map.Find("body")) {
    TIPPERARY_ASSIGN_OR_RETURN(out->body, body->AsString());
    if (!out->body.empty() && out->body != "*" && !IsFieldPath(out->body)) {
      return body->Error(
          absl::StrCat("bad body ", Quoted(out->body), " (use \"\", \"*\" or a field name)"));
    }
  }
  if (std::optional<YamlValue> response_body = map.Find("response_body")) {
    TIPPERARY_ASSIGN_OR_RETURN(out->response_body, response_body->AsString());
    if (!out->response_body.empty() && !IsFieldPath(out->response_body)) {
      return response_body->Error(absl::StrCat("bad response_body ", Quoted(out->response_body),
                                               " (use \"\" or a field name)"));
    }
  }
  if (std::optional<YamlValue> timeout = map.Find("timeout")) {
    TIPPERARY_ASSIGN_OR_RETURN(out->timeout, timeout->AsDuration(kPositive));
  }
  if (map.Find("error_format")) {
    TIPPERARY_RETURN_IF_ERROR(
        map.ReadEnum("error_format", &out->error_format, {"google_rpc", "openai", "tei"}));
  }
  if (map.Find("ignore_unknown_fields")) {
    bool ignore = false;
    TIPPERARY_RETURN_IF_ERROR(map.ReadBool("ignore_unknown_fields", &ignore));
    out->ignore_unknown_fields = ignore;
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("idempotent", &out->idempotent));
  if (std::optional<YamlValue> retry = map.Find("retry_policy")) {
    out->retry_policy.emplace();
    TIPPERARY_RETURN_IF_ERROR(LoadRetryPolicy(*retry, &*out->retry_policy, /*for_route=*/true));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadTranscoding(const YamlMap& root, TranscodingConfig* out) {
  std::optional<YamlValue> value = root.Find("transcoding");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      value->AsMap({"preserve_proto_field_names", "always_print_primitive_fields", "enums_as_ints",
                    "ignore_unknown_fields", "allow_grpc_method_paths", "annotations", "strict",
                    "unexpected_body", "repeated_path_param_separator", "duplicate_rule_wins",
                    "ignored_query_parameters", "ignore_unknown_query_parameters"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadStringList("ignored_query_parameters", &out->ignored_query_parameters));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadBool("ignore_unknown_query_parameters", &out->ignore_unknown_query_parameters));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadBool("preserve_proto_field_names", &out->preserve_proto_field_names));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadBool("always_print_primitive_fields", &out->always_print_primitive_fields));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("enums_as_ints", &out->enums_as_ints));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("ignore_unknown_fields", &out->ignore_unknown_fields));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("allow_grpc_method_paths", &out->allow_grpc_method_paths));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("annotations", &out->annotations));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("strict", &out->strict));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("unexpected_body", &out->unexpected_body, {"ignore", "reject"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("repeated_path_param_separator",
                                         &out->repeated_path_param_separator,
                                         {"csv", "pipes", "ssv", "tsv"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("duplicate_rule_wins", &out->duplicate_rule_wins, {"last", "first"}));
  return absl::OkStatus();
}

absl::Status Loader::LoadLimits(const YamlMap& root, LimitsConfig* out) {
  std::optional<YamlValue> value = root.Find("limits");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      value->AsMap({"max_header_bytes", "max_request_body_bytes", "max_chunk_extension_bytes",
                    "max_trailer_bytes", "max_connection_buffer_bytes", "max_query_params",
                    "max_pipelined_requests", "max_connections", "max_in_flight_requests",
                    "max_stream_buffer_bytes", "stream_window_bytes",
                    "max_streamed_request_body_bytes"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadSize("max_stream_buffer_bytes", &out->max_stream_buffer_bytes,
                                         64 << 10, uint64_t{1} << 30));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("stream_window_bytes", &out->stream_window_bytes, 16 << 10, 64 << 20));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_streamed_request_body_bytes", &out->max_streamed_request_body_bytes, 0));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_header_bytes", &out->max_header_bytes, 1 << 10, 1 << 20));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_request_body_bytes", &out->max_request_body_bytes, 1));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_chunk_extension_bytes", &out->max_chunk_extension_bytes, 0, 1 << 20));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadSize("max_trailer_bytes", &out->max_trailer_bytes, 64, 1 << 20));
  TIPPERARY_RETURN_IF_ERROR(map.ReadSize("max_connection_buffer_bytes",
                                         &out->max_connection_buffer_bytes, 4 << 10, 64 << 20));
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("max_query_params", &out->max_query_params, 1, 1 << 20));
  // The connection buffer holds a whole head, chunk line or trailer section while it is parsed.
  const uint64_t needed = std::max({out->max_header_bytes + 4, out->max_trailer_bytes + 64,
                                    out->max_chunk_extension_bytes + 64});
  std::optional<YamlValue> buffer_key = map.Find("max_connection_buffer_bytes");
  if (!buffer_key) {
    out->max_connection_buffer_bytes = std::max(out->max_connection_buffer_bytes, needed);
  } else if (out->max_connection_buffer_bytes < needed) {
    return buffer_key->Error(absl::StrCat(
        "max_connection_buffer_bytes (", out->max_connection_buffer_bytes, ") must be at least ",
        needed, " to hold a whole head, chunk line or trailer section"));
  }
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("max_pipelined_requests", &out->max_pipelined_requests, 1, 1024));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("max_connections", &out->max_connections, 1, kMaxUint32));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadUint32("max_in_flight_requests", &out->max_in_flight_requests, 0, kMaxUint32));
  return absl::OkStatus();
}

absl::Status Loader::LoadCompression(const YamlMap& root, ProxyConfig* config) {
  CompressionConfig* out = &config->compression;
  std::optional<YamlValue> value = root.Find("compression");
  std::optional<YamlMap> map;
  if (value) {
    TIPPERARY_ASSIGN_OR_RETURN(
        map, value->AsMap({"enabled", "min_length", "level", "types", "decode_requests",
                           "max_decoded_request_body_bytes", "max_request_decoding_ratio"}));
    TIPPERARY_RETURN_IF_ERROR(map->ReadBool("enabled", &out->enabled));
    TIPPERARY_RETURN_IF_ERROR(map->ReadSize("min_length", &out->min_length, 0, 1ull << 30));
    TIPPERARY_RETURN_IF_ERROR(map->ReadUint32("level", &out->level, 1, 9));
    if (std::optional<YamlValue> types = map->Find("types")) {
      TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, types->AsList());
      out->types.clear();
      for (const YamlValue& item : items) {
        TIPPERARY_ASSIGN_OR_RETURN(std::string type, item.AsNonEmptyString());
        std::string lower = absl::AsciiStrToLower(type);
        if (!IsMediaTypePattern(lower)) {
          return item.Error(absl::StrCat("bad media type ", Quoted(type),
                                         " (use \"type/subtype\", \"type/*\" or "
                                         "\"type/*+suffix\", without parameters)"));
        }
        out->types.push_back(std::move(lower));
      }
    }
    TIPPERARY_RETURN_IF_ERROR(map->ReadBool("decode_requests", &out->decode_requests));
    TIPPERARY_RETURN_IF_ERROR(
        map->ReadSize("max_decoded_request_body_bytes", &out->max_decoded_request_body_bytes, 1));
    TIPPERARY_RETURN_IF_ERROR(map->ReadUint32("max_request_decoding_ratio",
                                              &out->max_request_decoding_ratio, 0, 1u << 20));
  }
  // Unset: a decoded body may be as large as a plain one.
  if (!map || !map->Has("max_decoded_request_body_bytes")) {
    out->max_decoded_request_body_bytes = config->limits.max_request_body_bytes;
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadTimeouts(const YamlMap& root, TimeoutsConfig* out) {
  std::optional<YamlValue> value = root.Find("timeouts");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map, value->AsMap({"idle", "request_read", "response_write", "upstream_default",
                                 "max_upstream", "drain", "retry_after"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("idle", &out->idle, kPositive));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("request_read", &out->request_read, kPositive));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("response_write", &out->response_write, kPositive));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("upstream_default", &out->upstream_default, kPositive));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("max_upstream", &out->max_upstream, kPositive));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("drain", &out->drain));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("retry_after", &out->retry_after, Duration::zero(), std::chrono::hours(1)));
  if (out->upstream_default > out->max_upstream) {
    std::optional<YamlValue> at = map.Find("upstream_default");
    if (!at) at = map.Find("max_upstream");
    return at->Error(absl::StrCat("upstream_default (", FormatDuration(out->upstream_default),
                                  ") must be <= max_upstream (", FormatDuration(out->max_upstream),
                                  ")"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadStreaming(const YamlMap& root, StreamingConfig* out) {
  std::optional<YamlValue> value = root.Find("streaming");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map, value->AsMap({"json_format", "sse_heartbeat_interval"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadEnum("json_format", &out->json_format, {"array", "grpc_gateway"}));
  return map.ReadDuration("sse_heartbeat_interval", &out->sse_heartbeat_interval, Duration::zero(),
                          std::chrono::hours(1));
}

namespace {

// An HTTP token (RFC 9110 §5.6.2): a method or a field name.
bool IsToken(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        kExtra.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return !s.empty();
}

// "*", or scheme://host[:port] where host may start with "*." (any subdomain).
bool IsOriginPattern(std::string_view s) {
  if (s == "*") return true;
  const size_t scheme_end = s.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return false;
  std::string_view host = s.substr(scheme_end + 3);
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.find_first_of("/?#*@ ") != std::string_view::npos) return false;
  for (char c : s.substr(0, scheme_end)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status Loader::LoadOpenApi(const YamlMap& root, OpenApiConfig* out) {
  std::optional<YamlValue> value = root.Find("openapi");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map,
                             value->AsMap({"path", "on_listener", "title", "version", "servers"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadString("path", &out->path));
  if (!out->path.empty() &&
      (out->path[0] != '/' || out->path.find_first_of("?# ") != std::string::npos)) {
    return map.Find("path")->Error(
        "must be \"\" (off) or an absolute path without query, fragment or spaces "
        "(\"/openapi.json\")");
  }
  for (const char* taken :
       {"/", "/healthz", "/readyz", "/metrics", "/config", "/routes", "/autoscaling"}) {
    if (out->path == taken) {
      return map.Find("path")->Error(
          absl::StrCat("\"", taken, "\" is already an admin endpoint of the proxy"));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("on_listener", &out->on_listener));
  if (out->on_listener && out->path.empty()) {
    return map.Find("on_listener")->Error("needs a path (openapi.path is \"\")");
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadNonEmptyString("title", &out->title));
  TIPPERARY_RETURN_IF_ERROR(map.ReadNonEmptyString("version", &out->version));
  return map.ReadStringList("servers", &out->servers);
}

absl::Status Loader::LoadCors(const YamlMap& root, CorsConfig* out) {
  std::optional<YamlValue> value = root.Find("cors");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(YamlMap map,
                             value->AsMap({"allow_origins", "allow_methods", "allow_headers",
                                           "expose_headers", "max_age", "allow_credentials"}));
  struct ListKey {
    std::string_view key;
    std::vector<std::string>* out;
    bool (*valid)(std::string_view);
    std::string_view what;
  };
  const ListKey lists[] = {
      {"allow_origins", &out->allow_origins, IsOriginPattern,
       "is not an origin (\"https://host[:port]\", \"https://*.domain\" or \"*\")"},
      {"allow_methods", &out->allow_methods, IsToken, "is not an HTTP method"},
      {"allow_headers", &out->allow_headers, IsToken, "is not a header name"},
      {"expose_headers", &out->expose_headers, IsToken, "is not a header name"},
  };
  for (const ListKey& list : lists) {
    std::optional<YamlValue> items = map.Find(list.key);
    if (!items) continue;
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> values, items->AsList());
    list.out->clear();
    for (const YamlValue& item : values) {
      TIPPERARY_ASSIGN_OR_RETURN(std::string text, item.AsNonEmptyString());
      if (!list.valid(text)) {
        return item.Error(absl::StrCat(Quoted(text), " ", AbslView(list.what)));
      }
      list.out->push_back(std::move(text));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDuration("max_age", &out->max_age, Duration::zero(), std::chrono::hours(24)));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("allow_credentials", &out->allow_credentials));
  if (out->allow_credentials) {
    for (const std::string& origin : out->allow_origins) {
      if (origin == "*") {
        return map.Find("allow_credentials")
            ->Error(
                "cannot be true with allow_origins \"*\": browsers refuse credentials for "
                "any origin; list the origins");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadMetadata(const YamlMap& root, MetadataConfig* out) {
  std::optional<YamlValue> value = root.Find("metadata");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map, value->AsMap({"forward_request_trailers", "unprefixed_response_metadata"}));
  // Lower-cased metadata keys; framing, routing and gRPC's own fields are refused in both
  // directions (`why` ends the error).
  auto read_keys = [](const YamlMap& m, const char* name, const char* why,
                      std::vector<std::string>* keys) -> absl::Status {
    std::optional<YamlValue> list = m.Find(name);
    if (!list) return absl::OkStatus();
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, list->AsList());
    keys->clear();
    for (const YamlValue& item : items) {
      TIPPERARY_ASSIGN_OR_RETURN(std::string key, item.AsNonEmptyString());
      std::string lower = absl::AsciiStrToLower(key);
      bool valid = true;
      for (char c : lower) {
        valid = valid && (absl::ascii_islower(static_cast<unsigned char>(c)) ||
                          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' ||
                          c == '_' || c == '.');
      }
      if (!valid) {
        return item.Error(absl::StrCat(Quoted(key),
                                       " is not a valid metadata key (letters, "
                                       "digits, '-', '_' and '.')"));
      }
      static constexpr std::string_view kReserved[] = {
          "content-length", "transfer-encoding", "host",
          "content-type",   "content-encoding",  "te",
          "connection",     "trailer",           "user-agent",
          "keep-alive",     "upgrade",           "authorization",
          "x-request-id",   "x-forwarded-for"};
      bool reserved = absl::StartsWith(lower, "grpc-") || absl::EndsWith(lower, "-bin");
      for (std::string_view r : kReserved) reserved = reserved || lower == r;
      if (reserved) return item.Error(absl::StrCat(Quoted(key), " ", why));
      keys->push_back(std::move(lower));
    }
    return absl::OkStatus();
  };
  TIPPERARY_RETURN_IF_ERROR(read_keys(map, "forward_request_trailers",
                                      "cannot be forwarded from a trailer",
                                      &out->forward_request_trailers));
  return read_keys(map, "unprefixed_response_metadata", "cannot be a response header field",
                   &out->unprefixed_response_metadata);
}

absl::Status Loader::LoadLogging(const YamlMap& root, LoggingConfig* out) {
  std::optional<YamlValue> value = root.Find("logging");
  if (!value) return absl::OkStatus();
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map,
      value->AsMap({"level", "access_log", "access_log_sample_rate", "access_log_path"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadEnum("level", &out->level, {"debug", "info", "warn", "error"}));
  TIPPERARY_RETURN_IF_ERROR(map.ReadBool("access_log", &out->access_log));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadDouble("access_log_sample_rate", &out->access_log_sample_rate, 0.0, 1.0));
  TIPPERARY_RETURN_IF_ERROR(map.ReadNonEmptyString("access_log_path", &out->access_log_path));
  if (out->access_log_path != "-") out->access_log_path = Resolve(out->access_log_path);
  return absl::OkStatus();
}

absl::Status Loader::LoadAutoscaling(const YamlMap& root, ProxyConfig* config) {
  std::optional<YamlValue> value = root.Find("autoscaling");
  if (!value) return absl::OkStatus();
  AutoscalingConfig* out = &config->autoscaling;
  TIPPERARY_ASSIGN_OR_RETURN(
      YamlMap map, value->AsMap({"external_scaler_address", "sample_interval", "windows",
                                 "capacity", "worker_admin", "worker_timeout", "stream_interval"}));
  TIPPERARY_RETURN_IF_ERROR(
      map.ReadString("external_scaler_address", &out->external_scaler_address));
  if (std::optional<YamlValue> address = map.Find("external_scaler_address");
      address && !out->external_scaler_address.empty()) {
    TIPPERARY_ASSIGN_OR_RETURN(
        common::Endpoint endpoint,
        ServerAddress(*address, out->external_scaler_address, "the external scaler",
                      "external_scaler_address", *config));
    common::Endpoint admin = *common::ParseEndpoint(config->admin.address, true);
    if (endpoint.port != 0 && admin.ToString() == endpoint.ToString()) {
      return address->Error(absl::StrCat("external_scaler_address ",
                                         Quoted(out->external_scaler_address),
                                         " is also the admin address"));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("sample_interval", &out->sample_interval,
                                             std::chrono::milliseconds(100),
                                             std::chrono::minutes(1)));
  if (std::optional<YamlValue> windows = map.Find("windows")) {
    TIPPERARY_ASSIGN_OR_RETURN(std::vector<YamlValue> items, windows->AsList());
    if (items.empty() || items.size() > 8) {
      return windows->Error("give 1 to 8 rate windows, e.g. [10s, 60s]");
    }
    out->windows.clear();
    for (const YamlValue& item : items) {
      TIPPERARY_ASSIGN_OR_RETURN(Duration window,
                                 item.AsDuration(std::chrono::seconds(1), std::chrono::hours(1)));
      if (window % std::chrono::seconds(1) != Duration::zero()) {
        return item.Error(absl::StrCat("rate window ", FormatDuration(window),
                                       " must be a whole number of seconds"));
      }
      for (Duration earlier : out->windows) {
        if (earlier == window) {
          return item.Error(absl::StrCat("rate window ", FormatDuration(window), " is repeated"));
        }
      }
      out->windows.push_back(window);
    }
  }
  for (size_t i = 0; i < out->windows.size(); ++i) {
    if (out->windows[i] < out->sample_interval ||
        out->windows[i] % out->sample_interval != Duration::zero()) {
      std::optional<YamlValue> at = map.Find("windows");
      if (!at) at = map.Find("sample_interval");
      return at->Error(absl::StrCat("rate window ", FormatDuration(out->windows[i]),
                                    " must be a multiple of sample_interval (",
                                    FormatDuration(out->sample_interval), ")"));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadUint32("capacity", &out->capacity, 1, kMaxUint32));
  TIPPERARY_RETURN_IF_ERROR(map.ReadString("worker_admin", &out->worker_admin));
  if (std::optional<YamlValue> admin = map.Find("worker_admin");
      admin && !out->worker_admin.empty()) {
    absl::StatusOr<common::Endpoint> endpoint = common::ParseEndpoint(out->worker_admin, false);
    if (!endpoint.ok()) return admin->Error(std::string(endpoint.status().message()));
    if (endpoint->kind != common::Endpoint::Kind::kTcp) {
      return admin->Error(
          absl::StrCat("worker_admin needs host:port, got ", Quoted(out->worker_admin)));
    }
  }
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("worker_timeout", &out->worker_timeout,
                                             std::chrono::milliseconds(1),
                                             std::chrono::minutes(1)));
  TIPPERARY_RETURN_IF_ERROR(map.ReadDuration("stream_interval", &out->stream_interval,
                                             std::chrono::milliseconds(100),
                                             std::chrono::minutes(10)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ProxyConfig> LoadProxyConfigString(const std::string& yaml,
                                                  const std::string& source_name) {
  TIPPERARY_ASSIGN_OR_RETURN(YamlValue root, ParseYamlDocument(yaml, source_name));
  ProxyConfig config;
  // yaml-cpp may still throw on malformed input that the parser let through.
  try {
    TIPPERARY_RETURN_IF_ERROR(Loader(source_name).Load(root, &config));
  } catch (const YAML::Exception& e) {
    return YamlError(source_name, e.mark, "", e.msg);
  }
  return config;
}

absl::StatusOr<ProxyConfig> LoadProxyConfigFile(const std::string& path) {
  TIPPERARY_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path));
  return LoadProxyConfigString(text, path);
}

}  // namespace tipperary::config
