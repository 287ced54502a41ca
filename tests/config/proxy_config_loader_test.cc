#include "tipperary/config/proxy_config_loader.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_certificates.h"

namespace tipperary::config {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using testing::HasSubstr;

// Enough of a config to load: tests append top-level sections after it (from line 6).
constexpr char kMinimal[] =
    "listeners:\n"
    "  - address: 127.0.0.1:8080\n"
    "upstreams:\n"
    "  - name: worker\n"
    "    endpoints: [\"127.0.0.1:50051\"]\n";

class ProxyConfigLoaderTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(testing::TempDir()) / "config_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    source_ = dir_ + "/proxy.yaml";
    for (const char* name : {"services.pb", "cert.pem", "key.pem", "ca.pem"}) {
      std::ofstream(dir_ + "/" + name) << "test\n";
    }
    fs::create_directory(dir_ + "/sub");
    // Real PEM files for upstreams[].tls, whose files are loaded, not only opened.
    fs::create_directory(dir_ + "/pki");
    absl::StatusOr<test_pki::TestCertificates> certs =
        test_pki::TestCertificates::Create(dir_ + "/pki");
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *certs;
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::StatusOr<ProxyConfig> Load(const std::string& yaml) {
    return LoadProxyConfigString(yaml, source_);
  }

  ProxyConfig LoadOk(const std::string& yaml) {
    absl::StatusOr<ProxyConfig> config = Load(yaml);
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : ProxyConfig{};
  }

  // The error for `yaml`, without the "<source>:" prefix that every message has.
  std::string Error(const std::string& yaml) {
    absl::StatusOr<ProxyConfig> config = Load(yaml);
    if (config.ok()) return "(loaded fine)";
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    std::string message(config.status().message());
    std::string prefix = source_ + ":";
    EXPECT_EQ(message.substr(0, prefix.size()), prefix) << message;
    return message.substr(std::min(prefix.size(), message.size()));
  }

  std::string dir_;
  std::string source_;
  test_pki::TestCertificates certs_;
};

// ---------------------------------------------------------------------------------------------
// Happy paths.

TEST_F(ProxyConfigLoaderTest, MinimalFileFromTheIssueLoads) {
  ProxyConfig config =
      LoadOk(absl::StrCat("listeners:\n"
                          "  - address: 127.0.0.1:8080\n"
                          "admin:\n"
                          "  address: 127.0.0.1:9901\n"
                          "descriptors:\n"
                          "  - ",
                          dir_,
                          "/services.pb\n"
                          "upstreams:\n"
                          "  - name: worker\n"
                          "    endpoints: [\"unix:/run/tipperary/worker.sock\"]\n"
                          "    services: [\"tipperary.*\"]\n"
                          "transcoding:\n"
                          "  preserve_proto_field_names: false\n"));
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].address, "127.0.0.1:8080");
  EXPECT_FALSE(config.listeners[0].tls.has_value());
  EXPECT_EQ(config.admin.address, "127.0.0.1:9901");
  ASSERT_EQ(config.descriptors.size(), 1u);
  EXPECT_EQ(config.descriptors[0].path, dir_ + "/services.pb");
  EXPECT_EQ(config.descriptors[0].reflection_upstream, "");
  ASSERT_EQ(config.upstreams.size(), 1u);
  EXPECT_EQ(config.upstreams[0].name, "worker");
  EXPECT_THAT(config.upstreams[0].endpoints,
              testing::ElementsAre("unix:/run/tipperary/worker.sock"));
  EXPECT_THAT(config.upstreams[0].services, testing::ElementsAre("tipperary.*"));
  EXPECT_FALSE(config.transcoding.preserve_proto_field_names);
  EXPECT_EQ(config.source_path, source_);
}

TEST_F(ProxyConfigLoaderTest, DefaultsAreFilled) {
  ProxyConfig config = LoadOk(kMinimal);
  const ProxyConfig defaults;
  const UpstreamConfig upstream_defaults;
  const UpstreamConfig& upstream = config.upstreams[0];
  EXPECT_EQ(config.admin.address, "127.0.0.1:9901");
  EXPECT_TRUE(config.descriptors.empty());
  EXPECT_TRUE(config.routes.empty());
  EXPECT_TRUE(upstream.services.empty());
  EXPECT_EQ(upstream.connect_timeout, seconds(2));
  EXPECT_EQ(upstream.keepalive_interval, upstream_defaults.keepalive_interval);
  EXPECT_EQ(upstream.reconnect_backoff_max, upstream_defaults.reconnect_backoff_max);
  EXPECT_EQ(upstream.max_concurrent_streams, 1000u);
  EXPECT_EQ(upstream.max_response_bytes, 64u << 20);
  EXPECT_EQ(upstream.initial_window_size, 1u << 20);
  EXPECT_EQ(config.limits.max_header_bytes, defaults.limits.max_header_bytes);
  EXPECT_EQ(config.limits.max_request_body_bytes, defaults.limits.max_request_body_bytes);
  EXPECT_EQ(config.limits.max_in_flight_requests, 0u);
  EXPECT_EQ(config.timeouts.idle, seconds(60));
  EXPECT_EQ(config.timeouts.max_upstream, minutes(5));
  EXPECT_EQ(config.timeouts.drain, seconds(15));
  EXPECT_EQ(config.logging.level, "info");
  EXPECT_EQ(config.logging.access_log_path, "-");
  EXPECT_TRUE(config.transcoding.annotations);
  EXPECT_FALSE(config.transcoding.strict);
  EXPECT_EQ(config.transcoding.unexpected_body, "ignore");
  EXPECT_EQ(config.transcoding.repeated_path_param_separator, "csv");
  EXPECT_EQ(config.transcoding.duplicate_rule_wins, "last");
  EXPECT_EQ(config.threads, 0u);
  // Empty sections are allowed and keep every default.
  ProxyConfig empty_sections =
      LoadOk(absl::StrCat(kMinimal, "admin:\ntranscoding:\nlimits: {}\ntimeouts:\nlogging:\n"));
  EXPECT_EQ(DumpProxyConfig(empty_sections), DumpProxyConfig(config));
}

TEST_F(ProxyConfigLoaderTest, RelativePathsResolveAgainstTheConfigDirectory) {
  ProxyConfig config = LoadOk(
      "listeners:\n"
      "  - address: 127.0.0.1:8443\n"
      "    tls: {cert: cert.pem, key: ./key.pem, client_ca: sub/../ca.pem}\n"
      "descriptors: [services.pb, {reflection: worker}]\n"
      "upstreams:\n"
      "  - name: worker\n"
      "    endpoints: [\"127.0.0.1:50051\"]\n"
      "logging: {access_log_path: logs/access.log}\n");
  EXPECT_EQ(config.descriptors[0].path, dir_ + "/services.pb");
  EXPECT_EQ(config.descriptors[1].reflection_upstream, "worker");
  EXPECT_EQ(config.descriptors[1].path, "");
  ASSERT_TRUE(config.listeners[0].tls.has_value());
  EXPECT_EQ(config.listeners[0].tls->cert, dir_ + "/cert.pem");
  EXPECT_EQ(config.listeners[0].tls->key, dir_ + "/key.pem");
  EXPECT_EQ(config.listeners[0].tls->client_ca, dir_ + "/ca.pem");
  EXPECT_TRUE(config.listeners[0].tls->require_client_cert);
  EXPECT_EQ(config.listeners[0].tls->min_version, "1.2");
  EXPECT_EQ(config.logging.access_log_path, dir_ + "/logs/access.log");
}

// Every key, none at its default.
std::string FullConfig(const std::string& dir) {
  return absl::StrCat(R"(listeners:
  - address: 127.0.0.1:8080
  - address: "[::1]:0"
    tls:
      cert: cert.pem
      key: key.pem
      client_ca: ca.pem
      require_client_cert: false
      min_version: "1.3"
admin: {address: 0.0.0.0:9999}
descriptors:
  - )",
                      dir, R"(/services.pb
  - {reflection: billing-2}
upstreams:
  - name: worker
    endpoints: ["unix:/run/w.sock", "10.0.0.1:50051"]
    services: [tipperary.testing.v1.TestService, "other.*"]
    connect_timeout: 250ms
    keepalive_interval: 0
    keepalive_timeout: 1.5s
    reconnect_backoff_initial: 10ms
    reconnect_backoff_max: 1m30s
    max_concurrent_streams: 2147483647
    connections_per_thread: 64
    max_response_bytes: 100KB
    initial_window_size: 65535
    load_balancing: round_robin
    health_check: {interval: 2s, timeout: 300ms, service: pkg.Svc, panic_threshold_percent: 0}
    outlier_detection:
      consecutive_failures: 7
      base_ejection_time: 5s
      max_ejection_time: 1m
      max_ejection_percent: 100
    hung_detection: {ping_after: 250ms, ping_timeout: 2s}
    retry_policy:
      retry_on: [unavailable, internal, resource_exhausted]
      idempotent_methods: ["tipperary.testing.v1.TestService/Echo", "other.Cache/*", "*"]
      max_attempts: 10
      per_try_timeout: 1.5s
      backoff_initial: 10ms
      backoff_max: 1s
      budget_percent: 50
      min_retry_concurrency: 0
    circuit_breakers: {max_requests: 100, max_pending_requests: 0, retry_after: 7s}
  - name: billing-2
    endpoints: ["[::1]:7000"]
    services: [billing.v1.*]
    tls:
      ca: pki/ca.pem
      cert: pki/client.pem
      key: pki/client.key
      server_name: billing.internal
      verify: false
      min_version: "1.3"
routes:
  - method: POST
    path: /v1/things/{name=things/*}:run
    grpc_method: tipperary.testing.v1.TestService/Echo
    body: "*"
    response_body: result.items
    timeout: 750ms
    error_format: openai
    ignore_unknown_fields: true
    idempotent: true
    retry_policy: {retry_on: [internal], max_attempts: 4, per_try_timeout: 200ms}
  - method: PURGE
    path: /cache
    grpc_method: other.Cache/Purge
transcoding:
  preserve_proto_field_names: true
  always_print_primitive_fields: true
  enums_as_ints: true
  ignore_unknown_fields: true
  allow_grpc_method_paths: true
  annotations: false
  strict: true
  unexpected_body: reject
  repeated_path_param_separator: pipes
  duplicate_rule_wins: first
limits:
  max_header_bytes: 1KiB
  max_request_body_bytes: 1.5MiB
  max_pipelined_requests: 1024
  max_connections: 1
  max_in_flight_requests: 500
timeouts:
  idle: 1h
  request_read: 1s
  response_write: 2s
  upstream_default: 3s
  max_upstream: 4s
  drain: 0
openapi:
  path: /api/openapi.json
  on_listener: true
  title: Things API
  version: 2.0.1
  servers: ["https://api.example.com", "http://127.0.0.1:8080"]
logging:
  level: debug
  access_log: true
  access_log_sample_rate: 0.125
  access_log_path: /var/log/tipperary/access.log
threads: 1024
)");
}

TEST_F(ProxyConfigLoaderTest, EveryKeyIsRead) {
  ProxyConfig config = LoadOk(FullConfig(dir_));
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[1].address, "[::1]:0");
  ASSERT_TRUE(config.listeners[1].tls.has_value());
  EXPECT_FALSE(config.listeners[1].tls->require_client_cert);
  EXPECT_EQ(config.listeners[1].tls->min_version, "1.3");
  EXPECT_EQ(config.admin.address, "0.0.0.0:9999");
  ASSERT_EQ(config.upstreams.size(), 2u);
  const UpstreamConfig& worker = config.upstreams[0];
  EXPECT_EQ(worker.connect_timeout, milliseconds(250));
  EXPECT_EQ(worker.keepalive_interval, Duration::zero());
  EXPECT_EQ(worker.keepalive_timeout, milliseconds(1500));
  EXPECT_EQ(worker.reconnect_backoff_initial, milliseconds(10));
  EXPECT_EQ(worker.reconnect_backoff_max, seconds(90));
  EXPECT_EQ(worker.max_concurrent_streams, 2147483647u);
  EXPECT_EQ(worker.connections_per_thread, 64u);
  EXPECT_EQ(worker.max_response_bytes, 100000u);
  EXPECT_EQ(worker.initial_window_size, 65535u);
  EXPECT_FALSE(worker.tls.has_value());
  EXPECT_EQ(worker.load_balancing, "round_robin");
  EXPECT_EQ(worker.health_check.panic_threshold_percent, 0u);
  EXPECT_EQ(worker.outlier_detection.consecutive_failures, 7u);
  EXPECT_EQ(worker.outlier_detection.base_ejection_time, seconds(5));
  EXPECT_EQ(worker.outlier_detection.max_ejection_time, seconds(60));
  EXPECT_EQ(worker.outlier_detection.max_ejection_percent, 100u);
  EXPECT_EQ(worker.hung_detection.ping_after, milliseconds(250));
  EXPECT_EQ(worker.hung_detection.ping_timeout, seconds(2));
  EXPECT_EQ(worker.retry_policy.retry_on,
            (std::vector<std::string>{"unavailable", "internal", "resource_exhausted"}));
  EXPECT_EQ(
      worker.retry_policy.idempotent_methods,
      (std::vector<std::string>{"tipperary.testing.v1.TestService/Echo", "other.Cache/*", "*"}));
  EXPECT_EQ(worker.retry_policy.max_attempts, 10u);
  EXPECT_EQ(worker.retry_policy.per_try_timeout, milliseconds(1500));
  EXPECT_EQ(worker.retry_policy.backoff_initial, milliseconds(10));
  EXPECT_EQ(worker.retry_policy.backoff_max, seconds(1));
  EXPECT_EQ(worker.retry_policy.budget_percent, 50u);
  EXPECT_EQ(worker.retry_policy.min_retry_concurrency, 0u);
  EXPECT_EQ(worker.circuit_breakers.max_requests, 100u);
  EXPECT_EQ(worker.circuit_breakers.max_pending_requests, 0u);
  EXPECT_EQ(worker.circuit_breakers.retry_after, seconds(7));
  EXPECT_EQ(config.upstreams[1].name, "billing-2");
  ASSERT_TRUE(config.upstreams[1].tls.has_value());
  const UpstreamTlsConfig& tls = *config.upstreams[1].tls;
  EXPECT_EQ(tls.ca, dir_ + "/pki/ca.pem");
  EXPECT_EQ(tls.cert, dir_ + "/pki/client.pem");
  EXPECT_EQ(tls.key, dir_ + "/pki/client.key");
  EXPECT_EQ(tls.server_name, "billing.internal");
  EXPECT_FALSE(tls.verify);
  EXPECT_EQ(tls.min_version, "1.3");
  ASSERT_EQ(config.routes.size(), 2u);
  EXPECT_EQ(config.routes[0].body, "*");
  EXPECT_EQ(config.routes[0].response_body, "result.items");
  EXPECT_EQ(config.routes[0].timeout, milliseconds(750));
  EXPECT_EQ(config.routes[1].method, "PURGE");
  EXPECT_FALSE(config.routes[1].timeout.has_value());
  EXPECT_EQ(config.routes[0].error_format, "openai");
  EXPECT_EQ(config.routes[0].ignore_unknown_fields, std::optional<bool>(true));
  EXPECT_EQ(config.routes[1].error_format, "");  // The method's option decides.
  EXPECT_FALSE(config.routes[1].ignore_unknown_fields.has_value());
  EXPECT_TRUE(config.routes[0].idempotent);
  ASSERT_TRUE(config.routes[0].retry_policy.has_value());
  EXPECT_EQ(config.routes[0].retry_policy->retry_on, (std::vector<std::string>{"internal"}));
  EXPECT_EQ(config.routes[0].retry_policy->max_attempts, 4u);
  EXPECT_EQ(config.routes[0].retry_policy->per_try_timeout, milliseconds(200));
  EXPECT_EQ(config.routes[0].retry_policy->backoff_initial, milliseconds(25));  // Default.
  EXPECT_FALSE(config.routes[1].idempotent);
  EXPECT_FALSE(config.routes[1].retry_policy.has_value());
  EXPECT_TRUE(config.transcoding.enums_as_ints);
  EXPECT_FALSE(config.transcoding.annotations);
  EXPECT_TRUE(config.transcoding.strict);
  EXPECT_EQ(config.transcoding.unexpected_body, "reject");
  EXPECT_EQ(config.transcoding.repeated_path_param_separator, "pipes");
  EXPECT_EQ(config.transcoding.duplicate_rule_wins, "first");
  EXPECT_EQ(config.limits.max_header_bytes, 1024u);
  EXPECT_EQ(config.limits.max_request_body_bytes, 1536u * 1024);
  EXPECT_EQ(config.limits.max_in_flight_requests, 500u);
  EXPECT_EQ(config.timeouts.idle, std::chrono::hours(1));
  EXPECT_EQ(config.timeouts.drain, Duration::zero());
  EXPECT_EQ(config.logging.level, "debug");
  EXPECT_EQ(config.logging.access_log_sample_rate, 0.125);
  EXPECT_EQ(config.threads, 1024u);
}

TEST_F(ProxyConfigLoaderTest, DumpRoundTrips) {
  for (const std::string& yaml : {FullConfig(dir_), std::string(kMinimal)}) {
    ProxyConfig config = LoadOk(yaml);
    std::string dump = DumpProxyConfig(config, /*redact_secrets=*/false);
    ProxyConfig reloaded = LoadOk(dump);
    EXPECT_EQ(DumpProxyConfig(reloaded, false), dump);
    // Spot checks that the dump is not merely self-consistent.
    EXPECT_EQ(reloaded.upstreams[0].reconnect_backoff_max,
              config.upstreams[0].reconnect_backoff_max);
    EXPECT_EQ(reloaded.limits.max_request_body_bytes, config.limits.max_request_body_bytes);
    EXPECT_EQ(reloaded.logging.access_log_sample_rate, config.logging.access_log_sample_rate);
    EXPECT_EQ(reloaded.routes.size(), config.routes.size());
    EXPECT_EQ(reloaded.descriptors.size(), config.descriptors.size());
  }
}

TEST_F(ProxyConfigLoaderTest, DumpShowsEveryKeyAndRedactsTheKey) {
  ProxyConfig config = LoadOk(FullConfig(dir_));
  std::string dump = DumpProxyConfig(config);
  EXPECT_THAT(dump, HasSubstr("key: \"<redacted>\""));
  EXPECT_THAT(dump, testing::Not(HasSubstr(dir_ + "/key.pem")));
  EXPECT_THAT(dump, HasSubstr(dir_ + "/cert.pem"));
  EXPECT_THAT(DumpProxyConfig(config, false), HasSubstr(dir_ + "/key.pem"));
  // The upstream's client key as the listener's key.
  EXPECT_THAT(dump, testing::Not(HasSubstr(dir_ + "/pki/client.key")));
  EXPECT_THAT(dump, HasSubstr(dir_ + "/pki/client.pem"));
  EXPECT_THAT(DumpProxyConfig(config, false), HasSubstr(dir_ + "/pki/client.key"));
  std::string defaults = DumpProxyConfig(LoadOk(kMinimal));
  for (const char* key : {"admin:",
                          "descriptors:",
                          "connect_timeout: 2s",
                          "keepalive_interval: 30s",
                          "keepalive_timeout: 10s",
                          "reconnect_backoff_initial: 100ms",
                          "reconnect_backoff_max: 5s",
                          "max_concurrent_streams: 1000",
                          "connections_per_thread: 1",
                          "max_response_bytes: 64MiB",
                          "initial_window_size: 1MiB",
                          "load_balancing: \"p2c\"",
                          "panic_threshold_percent: 50",
                          "consecutive_failures: 5",
                          "base_ejection_time: 30s",
                          "max_ejection_time: 5m",
                          "max_ejection_percent: 50",
                          "ping_after: 500ms",
                          "ping_timeout: 1s",
                          "retry_on: [\"unavailable\", \"deadline_exceeded\"]",
                          "idempotent_methods: []",
                          "max_attempts: 3",
                          "per_try_timeout: 0",
                          "backoff_initial: 25ms",
                          "backoff_max: 250ms",
                          "budget_percent: 20",
                          "min_retry_concurrency: 3",
                          "max_requests: 0",
                          "max_pending_requests: 10000",
                          "routes:",
                          "preserve_proto_field_names: false",
                          "annotations: true",
                          "max_header_bytes: 16KiB",
                          "max_request_body_bytes: 4MiB",
                          "max_pipelined_requests: 16",
                          "max_connections: 10000",
                          "max_in_flight_requests: 0",
                          "idle: 1m",
                          "request_read: 30s",
                          "response_write: 30s",
                          "upstream_default: 30s",
                          "max_upstream: 5m",
                          "drain: 15s",
                          "level: \"info\"",
                          "access_log: false",
                          "access_log_sample_rate: 1",
                          "access_log_path: \"-\"",
                          "external_scaler_address: \"127.0.0.1:9903\"",
                          "sample_interval: 1s",
                          "windows: [10s, 1m]",
                          "capacity: 64",
                          "worker_admin: \"\"",
                          "worker_timeout: 500ms",
                          "stream_interval: 1s",
                          "threads: 0"}) {
    EXPECT_THAT(defaults, HasSubstr(key));
  }
}

TEST_F(ProxyConfigLoaderTest, ExampleConfigFileLoads) {
  absl::StatusOr<ProxyConfig> config =
      LoadProxyConfigFile(TIPPERARY_SOURCE_DIR "/config/proxy.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->listeners.size(), 1u);
  EXPECT_EQ(config->listeners[0].address, "127.0.0.1:8080");
  EXPECT_EQ(config->admin.address, "127.0.0.1:9901");
  ASSERT_EQ(config->upstreams.size(), 1u);
  EXPECT_EQ(config->upstreams[0].name, "worker");
  EXPECT_THAT(config->upstreams[0].endpoints, testing::ElementsAre("127.0.0.1:50051"));
  EXPECT_THAT(config->upstreams[0].services, testing::ElementsAre("tipperary.*"));
  ASSERT_EQ(config->descriptors.size(), 1u);
  EXPECT_EQ(config->descriptors[0].reflection_upstream, "worker");
  // The example documents the defaults: it must say exactly what an empty section says.
  ProxyConfig bare = LoadOk(
      "listeners: [{address: 127.0.0.1:8080}]\n"
      "descriptors: [{reflection: worker}]\n"
      "upstreams: [{name: worker, endpoints: [127.0.0.1:50051], services: [tipperary.*]}]\n"
      "autoscaling: {worker_admin: 127.0.0.1:9902}\n");
  bare.source_path = config->source_path;
  EXPECT_EQ(DumpProxyConfig(*config), DumpProxyConfig(bare));
}

TEST_F(ProxyConfigLoaderTest, LoadsFromAFile) {
  std::ofstream(source_) << kMinimal;
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFile(source_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->source_path, source_);
}

TEST_F(ProxyConfigLoaderTest, MissingConfigFile) {
  absl::StatusOr<ProxyConfig> config = LoadProxyConfigFile(dir_ + "/nope.yaml");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(config.status().message(),
            dir_ + "/nope.yaml: cannot read the config file: No such file or directory");
  config = LoadProxyConfigFile(dir_);
  EXPECT_EQ(config.status().message(), dir_ + ": cannot read the config file: it is a directory");
}

// ---------------------------------------------------------------------------------------------
// One test per error message. Each names file:line:col (1-based) and the key's path.

TEST_F(ProxyConfigLoaderTest, ErrorYamlSyntax) {
  EXPECT_EQ(Error("listeners:\n  - address: [127.0.0.1:8080\nupstreams: []\n"),
            "3:10: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(Error("listeners:\n\t- address: x\n"), "2:2: YAML syntax error: illegal block entry");
}

TEST_F(ProxyConfigLoaderTest, ErrorEmptyFileAndNonMapRoot) {
  EXPECT_EQ(Error(""), "1:1: the file is empty");
  EXPECT_EQ(Error("- a\n- b\n"),
            "1:1: the top level must be a map of keys (listeners, upstreams, ...), got a list");
  EXPECT_EQ(Error("hello\n"),
            "1:1: the top level must be a map of keys (listeners, upstreams, ...), got the scalar "
            "\"hello\"");
}

TEST_F(ProxyConfigLoaderTest, ErrorMissingTopLevelKeys) {
  EXPECT_EQ(Error("listeners:\n  - address: 127.0.0.1:8080\n"),
            "1:1: missing required key \"upstreams\"");
  EXPECT_EQ(Error("upstreams: []\n"), "1:1: missing required key \"listeners\"");
  EXPECT_EQ(Error("listeners: []\nupstreams: []\n"),
            "1:12: listeners: at least one listener is required");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"),
            "2:1: upstreams: at least one upstream is required");
}

TEST_F(ProxyConfigLoaderTest, ErrorUnknownKeyAtEachLevel) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "treads: 4\n")),
            "6:1: unknown key \"treads\" at the top level (known: listeners, admin, descriptors, "
            "schema, upstreams, routes, transcoding, limits, compression, timeouts, metadata, "
            "streaming, "
            "cors, grpc_web, openapi, logging, autoscaling, threads); did you mean \"threads\"?");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts:\n  idle: 1s\n  tiemout: 2s\n")),
            "8:3: unknown key \"tiemout\" in timeouts (known: idle, request_read, response_write, "
            "upstream_default, max_upstream, drain, retry_after)");
  EXPECT_EQ(Error("listeners:\n  - adress: 127.0.0.1:8080\nupstreams: []\n"),
            "2:5: unknown key \"adress\" in listeners[0] (known: address, tls); did you mean "
            "\"address\"?");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "admin: {address: 127.0.0.1:1, port: 2}\n")),
            "6:31: unknown key \"port\" in admin (known: address)");
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8080\n"
                  "    tls: {cert: cert.pem, key: key.pem, ca: ca.pem}\n"
                  "upstreams: []\n"),
            "3:41: unknown key \"ca\" in listeners[0].tls (known: cert, key, client_ca, "
            "require_client_cert, min_version)");
  EXPECT_EQ(
      Error(absl::StrCat(kMinimal, "    conect_timeout: 1s\n")),
      "6:5: unknown key \"conect_timeout\" in upstreams[0] (known: name, endpoints, services, "
      "connect_timeout, keepalive_interval, keepalive_timeout, reconnect_backoff_initial, "
      "reconnect_backoff_max, max_concurrent_streams, connections_per_thread, "
      "max_response_bytes, initial_window_size, load_balancing, health_check, outlier_detection, "
      "hung_detection, retry_policy, circuit_breakers, tls); did you mean \"connect_timeout\"?");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    tls: {verfy: false}\n")),
            "6:11: unknown key \"verfy\" in upstreams[0].tls (known: ca, cert, key, server_name, "
            "verify, min_version); did you mean \"verify\"?");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    retry_policy: {retries: 2}\n")),
            "6:20: unknown key \"retries\" in upstreams[0].retry_policy (known: retry_on, "
            "idempotent_methods, max_attempts, per_try_timeout, backoff_initial, backoff_max, "
            "budget_percent, min_retry_concurrency)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors: [{reflect: worker}]\n")),
            "6:16: unknown key \"reflect\" in descriptors[0] (known: reflection); did you mean "
            "\"reflection\"?");
  EXPECT_EQ(Error(absl::StrCat(
                kMinimal, "routes:\n  - {method: GET, path: /a, grpc_method: a.B/C, verb: x}\n")),
            "7:49: unknown key \"verb\" in routes[0] (known: method, path, grpc_method, body, "
            "response_body, timeout, error_format, ignore_unknown_fields, idempotent, "
            "retry_policy)");
  // A route's retry policy has no budget of its own, and names no methods: it has `idempotent`.
  EXPECT_EQ(Error(absl::StrCat(kMinimal,
                               "routes:\n  - {method: GET, path: /a, grpc_method: a.B/C, "
                               "retry_policy: {budget_percent: 5}}\n")),
            "7:64: unknown key \"budget_percent\" in routes[0].retry_policy (known: retry_on, "
            "max_attempts, per_try_timeout, backoff_initial, backoff_max)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "transcoding: {enum_as_ints: true}\n")),
            "6:15: unknown key \"enum_as_ints\" in transcoding (known: preserve_proto_field_names, "
            "always_print_primitive_fields, enums_as_ints, ignore_unknown_fields, "
            "allow_grpc_method_paths, annotations, strict, unexpected_body, "
            "repeated_path_param_separator, duplicate_rule_wins, ignored_query_parameters, "
            "ignore_unknown_query_parameters); did you mean "
            "\"enums_as_ints\"?");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: {max_body: 1MiB}\n")),
            "6:10: unknown key \"max_body\" in limits (known: max_header_bytes, "
            "max_request_body_bytes, max_chunk_extension_bytes, max_trailer_bytes, "
            "max_connection_buffer_bytes, max_query_params, max_pipelined_requests, "
            "max_connections, max_in_flight_requests, max_stream_buffer_bytes, "
            "stream_window_bytes, max_streamed_request_body_bytes)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "logging: {levle: info}\n")),
            "6:11: unknown key \"levle\" in logging (known: level, access_log, "
            "access_log_sample_rate, access_log_path); did you mean \"level\"?");
}

TEST_F(ProxyConfigLoaderTest, FramingLimitsAndTheConnectionBuffer) {
  ProxyConfig config =
      LoadOk(absl::StrCat(kMinimal,
                          "limits: {max_chunk_extension_bytes: 2KiB, max_trailer_bytes: 4KiB, "
                          "max_query_params: 10}\n"));
  EXPECT_EQ(config.limits.max_chunk_extension_bytes, 2048u);
  EXPECT_EQ(config.limits.max_trailer_bytes, 4096u);
  EXPECT_EQ(config.limits.max_query_params, 10u);
  EXPECT_EQ(config.limits.max_connection_buffer_bytes, 64u * 1024);
  // Unset, the connection buffer grows to hold the largest head allowed.
  config = LoadOk(absl::StrCat(kMinimal, "limits: {max_header_bytes: 1MiB}\n"));
  EXPECT_EQ(config.limits.max_connection_buffer_bytes, (1u << 20) + 4);
  // Set, it must hold it.
  EXPECT_EQ(Error(absl::StrCat(kMinimal,
                               "limits: {max_header_bytes: 128KiB, "
                               "max_connection_buffer_bytes: 64KiB}\n")),
            "6:65: limits.max_connection_buffer_bytes: max_connection_buffer_bytes (65536) must "
            "be at least 131076 to hold a whole head, chunk line or trailer section");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts: {retry_after: 2h}\n")),
            "6:25: timeouts.retry_after: 2h is out of range (must be at most 1h)");
}

TEST_F(ProxyConfigLoaderTest, CompressionDefaultsAndKeys) {
  ProxyConfig config = LoadOk(absl::StrCat(kMinimal, "limits: {max_request_body_bytes: 1MiB}\n"));
  EXPECT_TRUE(config.compression.enabled);
  EXPECT_EQ(config.compression.min_length, 1024u);
  EXPECT_EQ(config.compression.level, 1u);
  EXPECT_THAT(config.compression.types,
              testing::ElementsAre("application/json", "application/*+json", "application/x-ndjson",
                                   "application/openmetrics-text", "text/*"));
  EXPECT_TRUE(config.compression.decode_requests);
  // Unset, a decoded body may be as large as the body limit.
  EXPECT_EQ(config.compression.max_decoded_request_body_bytes, 1u << 20);
  EXPECT_EQ(config.compression.max_request_decoding_ratio, 100u);

  config = LoadOk(absl::StrCat(kMinimal,
                               "compression:\n"
                               "  enabled: false\n"
                               "  min_length: 2KiB\n"
                               "  level: 6\n"
                               "  types: [Application/JSON, text/event-stream, application/*+xml]\n"
                               "  decode_requests: false\n"
                               "  max_decoded_request_body_bytes: 16MiB\n"
                               "  max_request_decoding_ratio: 0\n"));
  EXPECT_FALSE(config.compression.enabled);
  EXPECT_EQ(config.compression.min_length, 2048u);
  EXPECT_EQ(config.compression.level, 6u);
  EXPECT_THAT(config.compression.types,
              testing::ElementsAre("application/json", "text/event-stream", "application/*+xml"));
  EXPECT_FALSE(config.compression.decode_requests);
  EXPECT_EQ(config.compression.max_decoded_request_body_bytes, 16u << 20);
  EXPECT_EQ(config.compression.max_request_decoding_ratio, 0u);
  // An empty list: nothing is compressed.
  EXPECT_TRUE(
      LoadOk(absl::StrCat(kMinimal, "compression: {types: []}\n")).compression.types.empty());
}

TEST_F(ProxyConfigLoaderTest, CompressionErrorsNameTheKey) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {level: 10}\n")),
            "6:22: compression.level: 10 is out of range (1..9)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {level: 0}\n")),
            "6:22: compression.level: 0 is out of range (1..9)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {types: [json]}\n")),
            "6:23: compression.types[0]: bad media type \"json\" (use \"type/subtype\", "
            "\"type/*\" or \"type/*+suffix\", without parameters)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {types: [\"*/*\"]}\n")),
            "6:23: compression.types[0]: bad media type \"*/*\" (use \"type/subtype\", "
            "\"type/*\" or \"type/*+suffix\", without parameters)");
  EXPECT_EQ(
      Error(absl::StrCat(kMinimal, "compression: {types: [\"text/plain; charset=utf-8\"]}\n")),
      "6:23: compression.types[0]: bad media type \"text/plain; charset=utf-8\" (use "
      "\"type/subtype\", \"type/*\" or \"type/*+suffix\", without parameters)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {max_decoded_request_body_bytes: 0}\n")),
            "6:47: compression.max_decoded_request_body_bytes: 0 is out of range (must be > 0)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {min_length: -1}\n")),
            "6:27: compression.min_length: bad size \"-1\": must not be negative");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "compression: {gzip: true}\n")),
            "6:15: unknown key \"gzip\" in compression (known: enabled, min_length, level, "
            "types, decode_requests, max_decoded_request_body_bytes, "
            "max_request_decoding_ratio)");
}

TEST_F(ProxyConfigLoaderTest, UpstreamHealthCheck) {
  ProxyConfig config = LoadOk(kMinimal);
  EXPECT_EQ(config.upstreams[0].health_check.interval, std::chrono::seconds(1));
  EXPECT_EQ(config.upstreams[0].health_check.service, "");
  config = LoadOk(absl::StrCat(
      kMinimal, "    health_check: {interval: 0, timeout: 250ms, service: pkg.Svc}\n"));
  EXPECT_EQ(config.upstreams[0].health_check.interval, std::chrono::seconds(0));
  EXPECT_EQ(config.upstreams[0].health_check.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(config.upstreams[0].health_check.service, "pkg.Svc");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    health_check: {timeout: 0}\n")),
            "6:29: upstreams[0].health_check.timeout: 0 is out of range (must be > 0)");
}

TEST_F(ProxyConfigLoaderTest, UpstreamResilienceDefaultsAndErrors) {
  const ProxyConfig config = LoadOk(kMinimal);
  const UpstreamConfig& upstream = config.upstreams[0];
  EXPECT_EQ(upstream.load_balancing, "p2c");
  EXPECT_EQ(upstream.health_check.panic_threshold_percent, 50u);
  EXPECT_EQ(upstream.outlier_detection.consecutive_failures, 5u);
  EXPECT_EQ(upstream.hung_detection.ping_after, std::chrono::milliseconds(500));
  EXPECT_EQ(upstream.retry_policy.max_attempts, 3u);
  EXPECT_TRUE(upstream.retry_policy.idempotent_methods.empty());
  EXPECT_EQ(upstream.circuit_breakers.max_requests, 0u);

  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    load_balancing: least_request\n")),
            "6:21: upstreams[0].load_balancing: bad value \"least_request\" (use one of: p2c, "
            "round_robin)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    retry_policy: {retry_on: [UNAVAILABLE]}\n")),
            "6:31: upstreams[0].retry_policy.retry_on[0]: bad value \"UNAVAILABLE\" (use one of: "
            "cancelled, unknown, invalid_argument, deadline_exceeded, not_found, already_exists, "
            "permission_denied, resource_exhausted, failed_precondition, aborted, out_of_range, "
            "unimplemented, internal, unavailable, data_loss, unauthenticated)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    retry_policy: {idempotent_methods: [pkg.Svc]}\n")),
            "6:41: upstreams[0].retry_policy.idempotent_methods[0]: bad method \"pkg.Svc\" (use "
            "\"package.Service/Method\", \"package.Service/*\" or \"*\")");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    retry_policy: {max_attempts: 0}\n")),
            "6:34: upstreams[0].retry_policy.max_attempts: 0 is out of range (1..10)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal,
                               "    retry_policy: {backoff_initial: 1s, backoff_max: 100ms}\n")),
            "6:54: upstreams[0].retry_policy.backoff_max: backoff_max (100ms) must be >= "
            "backoff_initial (1s)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    outlier_detection: {max_ejection_time: 1s}\n")),
            "6:44: upstreams[0].outlier_detection.max_ejection_time: max_ejection_time (1s) must "
            "be >= base_ejection_time (30s)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    outlier_detection: {max_ejection_percent: 101}\n")),
            "6:47: upstreams[0].outlier_detection.max_ejection_percent: 101 is out of range "
            "(0..100)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    hung_detection: {ping_timeout: 0}\n")),
            "6:36: upstreams[0].hung_detection.ping_timeout: 0 is out of range (must be > 0)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    health_check: {panic_threshold_percent: 150}\n")),
            "6:45: upstreams[0].health_check.panic_threshold_percent: 150 is out of range "
            "(0..100)");
}

TEST_F(ProxyConfigLoaderTest, ForwardedRequestTrailers) {
  ProxyConfig config =
      LoadOk(absl::StrCat(kMinimal, "metadata: {forward_request_trailers: [X-Trace, checksum]}\n"));
  EXPECT_EQ(config.metadata.forward_request_trailers,
            (std::vector<std::string>{"x-trace", "checksum"}));
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "metadata: {forward_request_trailers: [a b]}\n")),
            "6:39: metadata.forward_request_trailers[0]: \"a b\" is not a valid metadata key "
            "(letters, digits, '-', '_' and '.')");
  EXPECT_EQ(
      Error(absl::StrCat(kMinimal, "metadata: {forward_request_trailers: [Content-Length]}\n")),
      "6:39: metadata.forward_request_trailers[0]: \"Content-Length\" cannot be forwarded from "
      "a trailer");
  EXPECT_EQ(
      Error(absl::StrCat(kMinimal, "metadata: {forward_request_trailers: [grpc-timeout]}\n")),
      "6:39: metadata.forward_request_trailers[0]: \"grpc-timeout\" cannot be forwarded from a "
      "trailer");
}

TEST_F(ProxyConfigLoaderTest, UnprefixedResponseMetadata) {
  // Default: TEI's timing headers; a list replaces it (lower-cased), [] turns it off.
  ProxyConfig defaults = LoadOk(kMinimal);
  EXPECT_EQ(defaults.metadata.unprefixed_response_metadata.size(), 9u);
  EXPECT_EQ(defaults.metadata.unprefixed_response_metadata[0], "x-compute-type");
  EXPECT_THAT(DumpProxyConfig(defaults), HasSubstr("x-tokenization-time"));
  ProxyConfig config =
      LoadOk(absl::StrCat(kMinimal, "metadata: {unprefixed_response_metadata: [X-Cost]}\n"));
  EXPECT_EQ(config.metadata.unprefixed_response_metadata, (std::vector<std::string>{"x-cost"}));
  EXPECT_TRUE(LoadOk(absl::StrCat(kMinimal, "metadata: {unprefixed_response_metadata: []}\n"))
                  .metadata.unprefixed_response_metadata.empty());
  EXPECT_EQ(
      Error(absl::StrCat(kMinimal, "metadata: {unprefixed_response_metadata: [Content-Type]}\n")),
      "6:43: metadata.unprefixed_response_metadata[0]: \"Content-Type\" cannot be a response "
      "header field");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "metadata: {unprefixed_response_metadata: [a-bin]}\n")),
            "6:43: metadata.unprefixed_response_metadata[0]: \"a-bin\" cannot be a response "
            "header field");
}

TEST_F(ProxyConfigLoaderTest, Streaming) {
  ProxyConfig defaults = LoadOk(kMinimal);
  EXPECT_EQ(defaults.streaming.json_format, "array");
  EXPECT_EQ(defaults.streaming.sse_heartbeat_interval, std::chrono::seconds(15));
  ProxyConfig config = LoadOk(absl::StrCat(
      kMinimal, "streaming: {json_format: grpc_gateway, sse_heartbeat_interval: 0}\n"));
  EXPECT_EQ(config.streaming.json_format, "grpc_gateway");
  EXPECT_EQ(config.streaming.sse_heartbeat_interval, std::chrono::seconds(0));
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "streaming: {json_format: ndjson}\n")),
              testing::StartsWith("6:26: streaming.json_format: bad value"));
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "streaming: {sse_heartbeat_interval: 2h}\n")),
            "6:37: streaming.sse_heartbeat_interval: 2h is out of range (must be at most 1h)");
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "streaming: {heartbeat: 1s}\n")),
              HasSubstr("unknown key \"heartbeat\" in streaming"));
}

TEST_F(ProxyConfigLoaderTest, StreamBufferLimit) {
  EXPECT_EQ(LoadOk(kMinimal).limits.max_stream_buffer_bytes, uint64_t{4} << 20);
  EXPECT_EQ(LoadOk(absl::StrCat(kMinimal, "limits: {max_stream_buffer_bytes: 256KiB}\n"))
                .limits.max_stream_buffer_bytes,
            uint64_t{256} << 10);
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "limits: {max_stream_buffer_bytes: 1KiB}\n")),
              HasSubstr("limits.max_stream_buffer_bytes: 1KiB is out of range"));
}

TEST_F(ProxyConfigLoaderTest, StreamFlowControl) {
  ProxyConfig defaults = LoadOk(kMinimal);
  EXPECT_EQ(defaults.limits.stream_window_bytes, uint64_t{256} << 10);
  EXPECT_EQ(defaults.limits.max_streamed_request_body_bytes, uint64_t{1} << 30);
  ProxyConfig set = LoadOk(absl::StrCat(
      kMinimal, "limits: {stream_window_bytes: 1MiB, max_streamed_request_body_bytes: 0}\n"));
  EXPECT_EQ(set.limits.stream_window_bytes, uint64_t{1} << 20);
  EXPECT_EQ(set.limits.max_streamed_request_body_bytes, 0u);
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "limits: {stream_window_bytes: 1KiB}\n")),
              HasSubstr("limits.stream_window_bytes: 1KiB is out of range"));
}

TEST_F(ProxyConfigLoaderTest, SchemaRefresh) {
  EXPECT_EQ(LoadOk(kMinimal).schema.refresh_interval, std::chrono::seconds(30));
  EXPECT_TRUE(LoadOk(kMinimal).schema.refresh_on_reconnect);
  ProxyConfig set = LoadOk(
      absl::StrCat(kMinimal, "schema: {refresh_interval: 0s, refresh_on_reconnect: false}\n"));
  EXPECT_EQ(set.schema.refresh_interval, Duration::zero());
  EXPECT_FALSE(set.schema.refresh_on_reconnect);
}

TEST_F(ProxyConfigLoaderTest, RoutesAndDescriptorsKnowWhereTheyWereWritten) {
  ProxyConfig config = LoadOk(
      absl::StrCat(kMinimal, "routes:\n  - {method: GET, path: /v1/a, grpc_method: pkg.Svc/M}\n"));
  ASSERT_EQ(config.routes.size(), 1u);
  EXPECT_THAT(config.routes[0].location, testing::EndsWith(":7:5: routes[0]"));
}

TEST_F(ProxyConfigLoaderTest, IgnoredQueryParameters) {
  ProxyConfig config = LoadOk(absl::StrCat(
      kMinimal,
      "transcoding: {ignored_query_parameters: [api_key, v], ignore_unknown_query_parameters: "
      "true}\n"));
  EXPECT_EQ(config.transcoding.ignored_query_parameters,
            (std::vector<std::string>{"api_key", "v"}));
  EXPECT_TRUE(config.transcoding.ignore_unknown_query_parameters);
  EXPECT_FALSE(LoadOk(kMinimal).transcoding.ignore_unknown_query_parameters);
}

TEST_F(ProxyConfigLoaderTest, OpenApi) {
  ProxyConfig defaults = LoadOk(kMinimal);
  EXPECT_EQ(defaults.openapi.path, "/openapi.json");
  EXPECT_FALSE(defaults.openapi.on_listener);
  EXPECT_EQ(defaults.openapi.title, "tipperary-proxy");
  EXPECT_EQ(defaults.openapi.version, "1.0.0");
  EXPECT_TRUE(defaults.openapi.servers.empty());
  ProxyConfig full = LoadOk(FullConfig(dir_));
  EXPECT_EQ(full.openapi.path, "/api/openapi.json");
  EXPECT_TRUE(full.openapi.on_listener);
  EXPECT_EQ(full.openapi.title, "Things API");
  EXPECT_EQ(full.openapi.version, "2.0.1");
  EXPECT_EQ(full.openapi.servers,
            (std::vector<std::string>{"https://api.example.com", "http://127.0.0.1:8080"}));
  EXPECT_EQ(LoadOk(absl::StrCat(kMinimal, "openapi: {path: \"\"}\n")).openapi.path, "");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "openapi: {path: openapi.json}\n")),
            "6:17: openapi.path: must be \"\" (off) or an absolute path without query, fragment "
            "or spaces (\"/openapi.json\")");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "openapi: {path: /metrics}\n")),
            "6:17: openapi.path: \"/metrics\" is already an admin endpoint of the proxy");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "openapi: {path: \"\", on_listener: true}\n")),
            "6:34: openapi.on_listener: needs a path (openapi.path is \"\")");
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "openapi: {title: \"\"}\n")),
              HasSubstr("openapi.title"));
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "openapi: {servers: https://x}\n")),
              HasSubstr("openapi.servers"));
  EXPECT_THAT(Error(absl::StrCat(kMinimal, "openapi: {pth: /x}\n")),
              HasSubstr("unknown key \"pth\" in openapi"));
}

TEST_F(ProxyConfigLoaderTest, CorsAndGrpcWeb) {
  ProxyConfig defaults = LoadOk(kMinimal);
  EXPECT_TRUE(defaults.cors.allow_origins.empty());
  EXPECT_TRUE(defaults.grpc_web.enabled);
  EXPECT_EQ(defaults.cors.max_age, std::chrono::minutes(10));
  ProxyConfig config = LoadOk(absl::StrCat(
      kMinimal,
      "cors:\n  allow_origins: [\"https://app.example.com\", \"https://*.corp.example:8443\"]\n"
      "  allow_methods: [GET, POST]\n  allow_headers: [\"*\"]\n  expose_headers: [grpc-status]\n"
      "  max_age: 1h\n  allow_credentials: true\ngrpc_web: {enabled: false}\n"));
  EXPECT_EQ(config.cors.allow_origins,
            (std::vector<std::string>{"https://app.example.com", "https://*.corp.example:8443"}));
  EXPECT_EQ(config.cors.allow_methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(config.cors.allow_headers, (std::vector<std::string>{"*"}));
  EXPECT_EQ(config.cors.expose_headers, (std::vector<std::string>{"grpc-status"}));
  EXPECT_EQ(config.cors.max_age, std::chrono::hours(1));
  EXPECT_TRUE(config.cors.allow_credentials);
  EXPECT_FALSE(config.grpc_web.enabled);
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "cors: {allow_origins: [app.example.com]}\n")),
            "6:24: cors.allow_origins[0]: \"app.example.com\" is not an origin "
            "(\"https://host[:port]\", \"https://*.domain\" or \"*\")");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "cors: {allow_methods: [\"GE T\"]}\n")),
            "6:24: cors.allow_methods[0]: \"GE T\" is not an HTTP method");
  EXPECT_THAT(
      Error(absl::StrCat(kMinimal, "cors: {allow_origins: [\"*\"], allow_credentials: true}\n")),
      HasSubstr("cors.allow_credentials: cannot be true with allow_origins \"*\""));
}

TEST_F(ProxyConfigLoaderTest, ErrorDuplicateKey) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "threads: 1\nthreads: 2\n")),
            "7:1: threads: duplicate key");
}

TEST_F(ProxyConfigLoaderTest, ErrorWrongType) {
  EXPECT_EQ(Error("listeners: 127.0.0.1:8080\nupstreams: []\n"),
            "1:12: listeners: expected a list, got the scalar \"127.0.0.1:8080\"");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: [1]\n")),
            "6:9: limits: expected a map, got a list");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "transcoding: {annotations: yes}\n")),
            "6:28: transcoding.annotations: bad boolean \"yes\" (use true or false)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "threads: four\n")),
            "6:10: threads: bad integer \"four\"");
}

TEST_F(ProxyConfigLoaderTest, ErrorBadDuration) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    connect_timeout: 2 parsecs\n")),
            "6:22: upstreams[0].connect_timeout: bad duration \"2 parsecs\" (use e.g. 250ms, 2s, "
            "1m)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts: {idle: 30}\n")),
            "6:18: timeouts.idle: bad duration \"30\": missing unit (use e.g. 250ms, 2s, 1m)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts: {drain: -1s}\n")),
            "6:19: timeouts.drain: bad duration \"-1s\": must not be negative");
}

TEST_F(ProxyConfigLoaderTest, ErrorBadSize) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    max_response_bytes: 64 megs\n")),
            "6:25: upstreams[0].max_response_bytes: bad size \"64 megs\" (use e.g. 4096, 512KiB, "
            "8MiB, 1GB)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: {max_request_body_bytes: -5}\n")),
            "6:34: limits.max_request_body_bytes: bad size \"-5\": must not be negative");
}

TEST_F(ProxyConfigLoaderTest, ErrorOutOfRange) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "threads: 2000\n")),
            "6:10: threads: 2000 is out of range (0..1024)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    connections_per_thread: 65\n")),
            "6:29: upstreams[0].connections_per_thread: 65 is out of range (1..64)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    max_concurrent_streams: 0\n")),
            "6:29: upstreams[0].max_concurrent_streams: 0 is out of range (1..2147483647)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    initial_window_size: 1KiB\n")),
            "6:26: upstreams[0].initial_window_size: 1KiB is out of range (65535..2147483647)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    connect_timeout: 0s\n")),
            "6:22: upstreams[0].connect_timeout: 0s is out of range (must be > 0)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: {max_header_bytes: 512}\n")),
            "6:28: limits.max_header_bytes: 512 is out of range (1KiB..1MiB)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: {max_request_body_bytes: 0}\n")),
            "6:34: limits.max_request_body_bytes: 0 is out of range (must be > 0)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "limits: {max_pipelined_requests: 0}\n")),
            "6:34: limits.max_pipelined_requests: 0 is out of range (1..1024)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "logging: {access_log_sample_rate: 1.5}\n")),
            "6:35: logging.access_log_sample_rate: 1.5 is out of range (0..1)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts: {idle: 0}\n")),
            "6:18: timeouts.idle: 0 is out of range (must be > 0)");
}

TEST_F(ProxyConfigLoaderTest, ErrorBadEnum) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "logging: {level: verbose}\n")),
            "6:18: logging.level: bad value \"verbose\" (use one of: debug, info, warn, error)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "transcoding: {unexpected_body: drop}\n")),
            "6:32: transcoding.unexpected_body: bad value \"drop\" (use one of: ignore, reject)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "transcoding: {repeated_path_param_separator: ;}\n")),
            "6:46: transcoding.repeated_path_param_separator: bad value \";\" (use one of: csv, "
            "pipes, ssv, tsv)");
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8080\n"
                  "    tls: {cert: cert.pem, key: key.pem, min_version: 1.1}\n"
                  "upstreams: []\n"),
            "3:54: listeners[0].tls.min_version: bad value \"1.1\" (use one of: 1.2, 1.3)");
}

TEST_F(ProxyConfigLoaderTest, ErrorMissingRequiredUpstreamKeys) {
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n  - endpoints: [a:1]\n"),
            "3:5: upstreams[0]: missing required key \"name\"");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n  - name: w\n"),
            "3:5: upstreams[0]: missing required key \"endpoints\"");
  EXPECT_EQ(
      Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n  - {name: w, endpoints: []}\n"),
      "3:26: upstreams[0].endpoints: at least one endpoint is required");
  EXPECT_EQ(Error("listeners:\n  - tls: {}\nupstreams: []\n"),
            "2:5: listeners[0]: missing required key \"address\"");
}

TEST_F(ProxyConfigLoaderTest, ErrorBadEndpoint) {
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: w, endpoints: [\"127.0.0.1:1\", localhost]}\n"),
            "3:42: upstreams[0].endpoints[1]: expected host:port or unix:/path, got \"localhost\"");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: w, endpoints: [\"127.0.0.1:0\"]}\n"),
            "3:27: upstreams[0].endpoints[0]: bad port in \"127.0.0.1:0\"");
  EXPECT_EQ(
      Error("listeners: [{address: \"::1:80\"}]\nupstreams: []\n"),
      "1:23: listeners[0].address: an IPv6 address needs brackets: [addr]:port, got \"::1:80\"");
  EXPECT_EQ(Error("listeners: [{address: \"unix:/tmp/l.sock\"}]\nupstreams: []\n"),
            "1:23: listeners[0].address: a listener needs host:port, got \"unix:/tmp/l.sock\"");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "admin: {address: \"localhost:99999\"}\n")),
            "6:18: admin.address: bad port in \"localhost:99999\"");
}

TEST_F(ProxyConfigLoaderTest, ErrorDuplicateAddresses) {
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8080\n"
                  "  - address: 127.0.0.1:8080\n"
                  "upstreams: []\n"),
            "3:14: listeners[1].address: duplicate listener address \"127.0.0.1:8080\" (also in "
            "listeners[0])");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "admin: {address: 127.0.0.1:8080}\n")),
            "6:18: admin.address: admin address \"127.0.0.1:8080\" is also used by listeners[0]");
  // Port 0 picks a fresh port each time, so it may repeat.
  LoadOk(
      "listeners: [{address: 127.0.0.1:0}, {address: 127.0.0.1:0}]\n"
      "admin: {address: 127.0.0.1:0}\n"
      "upstreams: [{name: w, endpoints: [a:1]}]\n");
}

TEST_F(ProxyConfigLoaderTest, ErrorUpstreamNamesAndServices) {
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: w, endpoints: [a:1], services: [a.*]}\n"
                  "  - {name: w, endpoints: [b:1], services: [b.*]}\n"),
            "4:12: upstreams[1].name: duplicate upstream name \"w\" (also in upstreams[0])");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: Worker, endpoints: [a:1]}\n"),
            "3:12: upstreams[0].name: bad upstream name \"Worker\" (use lower-case letters, "
            "digits, '_' and '-')");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: a, endpoints: [a:1], services: [a.*]}\n"
                  "  - name: b\n"
                  "    endpoints: [b:1]\n"),
            "4:5: upstreams[1]: missing required key \"services\" (with more than one upstream, "
            "each must list the services it serves)");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: a, endpoints: [a:1], services: []}\n"
                  "  - {name: b, endpoints: [b:1], services: [b.*]}\n"),
            "3:43: upstreams[0].services: must not be empty (with more than one upstream, each "
            "must list the services it serves)");
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:1}]\nupstreams:\n"
                  "  - {name: a, endpoints: [a:1], services: [a.*]}\n"
                  "  - {name: b, endpoints: [b:1], services: [b.S, a.*]}\n"),
            "4:49: upstreams[1].services[1]: \"a.*\" is already served by upstream \"a\"");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    services: [\"pkg.*.Svc\"]\n")),
            "6:16: upstreams[0].services[0]: bad service \"pkg.*.Svc\" (use \"package.Service\" or "
            "\"package.*\")");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    services: [\"*\"]\n")),
            "6:16: upstreams[0].services[0]: bad service \"*\" (use \"package.Service\" or "
            "\"package.*\")");
}

TEST_F(ProxyConfigLoaderTest, ErrorBackoffMaxBelowInitial) {
  EXPECT_EQ(Error(absl::StrCat(
                kMinimal, "    reconnect_backoff_initial: 2s\n    reconnect_backoff_max: 1s\n")),
            "7:28: upstreams[0].reconnect_backoff_max: reconnect_backoff_max (1s) must be >= "
            "reconnect_backoff_initial (2s)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    reconnect_backoff_initial: 10s\n")),
            "6:32: upstreams[0].reconnect_backoff_initial: reconnect_backoff_max (5s) must be >= "
            "reconnect_backoff_initial (10s)");
}

TEST_F(ProxyConfigLoaderTest, ErrorUpstreamDefaultAboveMax) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "timeouts: {max_upstream: 10s}\n")),
            "6:26: timeouts.max_upstream: upstream_default (30s) must be <= max_upstream (10s)");
}

TEST_F(ProxyConfigLoaderTest, ErrorDescriptors) {
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors: [{reflection: billing}]\n")),
            "6:28: descriptors[0].reflection: unknown upstream \"billing\" (upstreams: worker)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors:\n  - services.pb\n  - missing.pb\n")),
            absl::StrCat("8:5: descriptors[1]: cannot read \"missing.pb\" (resolved to \"", dir_,
                         "/missing.pb\"): No such file or directory"));
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors: [", dir_, "/nope.pb]\n")),
            absl::StrCat("6:15: descriptors[0]: cannot read \"", dir_,
                         "/nope.pb\": No such file or directory"));
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors: [sub]\n")),
            absl::StrCat("6:15: descriptors[0]: cannot read \"sub\" (resolved to \"", dir_,
                         "/sub\"): it is a directory"));
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "descriptors: [[a.pb]]\n")),
            "6:15: descriptors[0]: expected a descriptor set file path or {reflection: UPSTREAM}, "
            "got a list");
}

TEST_F(ProxyConfigLoaderTest, ErrorTls) {
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls:\n"
                  "      cert: cert.pem\n"
                  "upstreams: []\n"),
            "4:7: listeners[0].tls: \"cert\" is set but \"key\" is missing (both are required)");
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls: {key: key.pem}\n"
                  "upstreams: []\n"),
            "3:10: listeners[0].tls: \"key\" is set but \"cert\" is missing (both are required)");
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls: {client_ca: ca.pem}\n"
                  "upstreams: []\n"),
            "3:10: listeners[0].tls: missing required key \"cert\"");
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls: {cert: cert.pem, key: nokey.pem}\n"
                  "upstreams: []\n"),
            absl::StrCat("3:32: listeners[0].tls.key: cannot read \"nokey.pem\" (resolved to \"",
                         dir_, "/nokey.pem\"): No such file or directory"));
  EXPECT_EQ(Error("listeners:\n"
                  "  - address: 127.0.0.1:8443\n"
                  "    tls: {cert: cert.pem, key: key.pem, client_ca: \"\"}\n"
                  "upstreams: []\n"),
            "3:52: listeners[0].tls.client_ca: must not be empty");
}

TEST_F(ProxyConfigLoaderTest, UpstreamTls) {
  // An empty section: TLS with every default (the system's CA store, no client certificate).
  ProxyConfig config = LoadOk(absl::StrCat(kMinimal, "    tls: {}\n"));
  ASSERT_TRUE(config.upstreams[0].tls.has_value());
  const UpstreamTlsConfig& defaults = *config.upstreams[0].tls;
  EXPECT_EQ(defaults.ca, "");
  EXPECT_EQ(defaults.cert, "");
  EXPECT_EQ(defaults.key, "");
  EXPECT_EQ(defaults.server_name, "");
  EXPECT_TRUE(defaults.verify);
  EXPECT_EQ(defaults.min_version, "1.2");
  EXPECT_FALSE(LoadOk(kMinimal).upstreams[0].tls.has_value());
  EXPECT_TRUE(LoadOk(absl::StrCat(kMinimal, "    tls:\n")).upstreams[0].tls.has_value());

  // Relative paths resolve against the config's directory; an IP address is a server name.
  config =
      LoadOk(absl::StrCat(kMinimal, "    tls: {ca: pki/../pki/ca.pem, server_name: 10.1.2.3}\n"));
  EXPECT_EQ(config.upstreams[0].tls->ca, dir_ + "/pki/ca.pem");
  EXPECT_EQ(config.upstreams[0].tls->server_name, "10.1.2.3");
  config = LoadOk(absl::StrCat(kMinimal, "    tls: {cert: ", certs_.client_cert,
                               ", key: ", certs_.client_key, ", server_name: w-1.example}\n"));
  EXPECT_EQ(config.upstreams[0].tls->cert, certs_.client_cert);
  EXPECT_EQ(config.upstreams[0].tls->key, certs_.client_key);

  // The dump shows the set keys and leaves out the unset ones (which it cannot express).
  std::string dump = DumpProxyConfig(LoadOk(absl::StrCat(kMinimal, "    tls: {}\n")));
  EXPECT_THAT(dump, HasSubstr("  tls:\n      verify: true\n      min_version: \"1.2\"\n"));
  EXPECT_THAT(dump, testing::Not(HasSubstr("ca:")));
}

TEST_F(ProxyConfigLoaderTest, ErrorUpstreamTls) {
  auto tls = [&](const std::string& fields) {
    return Error(absl::StrCat(kMinimal, "    tls: {", fields, "}\n"));
  };
  // The section starts at 6:10, its first key at 6:11.
  EXPECT_EQ(tls("cert: pki/client.pem"),
            "6:10: upstreams[0].tls: \"cert\" is set but \"key\" is missing (mTLS needs both)");
  EXPECT_EQ(tls("key: pki/client.key"),
            "6:10: upstreams[0].tls: \"key\" is set but \"cert\" is missing (mTLS needs both)");
  EXPECT_EQ(tls("ca: pki/nope.pem"),
            absl::StrCat("6:15: upstreams[0].tls.ca: cannot read \"pki/nope.pem\" (resolved to \"",
                         dir_, "/pki/nope.pem\"): No such file or directory"));
  // Files that exist but are not what the key needs: the file, and what is wrong with it.
  EXPECT_EQ(tls("ca: ca.pem"), absl::StrCat("6:15: upstreams[0].tls.ca: cannot use \"", dir_,
                                            "/ca.pem\": no PEM certificate in it"));
  EXPECT_EQ(tls("ca: pki/client.key"),
            absl::StrCat("6:15: upstreams[0].tls.ca: cannot use \"", dir_,
                         "/pki/client.key\": no PEM certificate in it"));
  EXPECT_EQ(tls("cert: pki/client.key, key: pki/client.key"),
            absl::StrCat("6:17: upstreams[0].tls.cert: cannot use \"", dir_,
                         "/pki/client.key\": no PEM certificate in it"));
  EXPECT_EQ(tls("cert: pki/client.pem, key: pki/client.pem"),
            absl::StrCat("6:38: upstreams[0].tls.key: cannot use \"", dir_,
                         "/pki/client.pem\": no PEM private key in it"));
  EXPECT_EQ(tls("cert: pki/client.pem, key: pki/server.key"),
            absl::StrCat("6:38: upstreams[0].tls.key: cannot use \"", dir_,
                         "/pki/server.key\": the private key does not belong to the "
                         "certificate in \"",
                         dir_, "/pki/client.pem\""));
  EXPECT_EQ(tls("cert: pki/client.pem, key: pki/client-encrypted.key"),
            absl::StrCat("6:38: upstreams[0].tls.key: cannot use \"", dir_,
                         "/pki/client-encrypted.key\": the private key is encrypted "
                         "(passphrase-protected keys are not supported)"));
  EXPECT_EQ(tls("ca: /dev/null"),
            "6:15: upstreams[0].tls.ca: cannot use \"/dev/null\": it is not a regular file");
  EXPECT_EQ(tls("server_name: \"bad name\""),
            "6:24: upstreams[0].tls.server_name: bad server name \"bad name\" (use a DNS name "
            "such as worker.example.com, or an IP address)");
  EXPECT_EQ(tls("server_name: -w.example"),
            "6:24: upstreams[0].tls.server_name: bad server name \"-w.example\" (use a DNS name "
            "such as worker.example.com, or an IP address)");
  EXPECT_EQ(tls("server_name: \"\""), "6:24: upstreams[0].tls.server_name: must not be empty");
  EXPECT_EQ(tls("verify: no"),
            "6:19: upstreams[0].tls.verify: bad boolean \"no\" (use true or false)");
  EXPECT_EQ(tls("min_version: \"1.1\""),
            "6:24: upstreams[0].tls.min_version: bad value \"1.1\" (use one of: 1.2, 1.3)");
  EXPECT_EQ(Error(absl::StrCat(kMinimal, "    tls: [ca.pem]\n")),
            "6:10: upstreams[0].tls: expected a map, got a list");
  // TLS needs host:port endpoints: the unix one is named.
  EXPECT_EQ(Error("listeners: [{address: 127.0.0.1:8080}]\n"
                  "upstreams:\n"
                  "  - name: worker\n"
                  "    endpoints: [\"127.0.0.1:50051\", \"unix:/run/w.sock\"]\n"
                  "    tls: {}\n"),
            "4:36: upstreams[0].endpoints[1]: \"unix:/run/w.sock\" is a unix socket: "
            "upstreams[0].tls needs host:port endpoints");
}

TEST_F(ProxyConfigLoaderTest, ErrorRoutes) {
  auto route = [](const std::string& fields) {
    return absl::StrCat(kMinimal, "routes:\n  - {", fields, "}\n");
  };
  // The fields start at column 6 of line 7.
  EXPECT_EQ(Error(route("method: get, path: /a, grpc_method: a.B/C")),
            "7:14: routes[0].method: bad HTTP method \"get\" (use GET, POST, PUT, PATCH, DELETE or "
            "an upper-case custom verb)");
  EXPECT_EQ(Error(route("method: GET, path: a, grpc_method: a.B/C")),
            "7:25: routes[0].path: bad path template \"a\": must start with '/'");
  EXPECT_EQ(Error(route("method: GET, path: \"/a/{b\", grpc_method: a.B/C")),
            "7:25: routes[0].path: bad path template \"/a/{b\": unbalanced '{'");
  EXPECT_EQ(
      Error(route("method: GET, path: /a, grpc_method: a.B.C")),
      "7:42: routes[0].grpc_method: bad gRPC method \"a.B.C\" (use \"package.Service/Method\")");
  EXPECT_EQ(Error(route("method: GET, path: /a, grpc_method: a.B/C, body: \"Foo\"")),
            "7:55: routes[0].body: bad body \"Foo\" (use \"\", \"*\" or a field name)");
  EXPECT_EQ(Error(route("method: GET, path: /a, grpc_method: a.B/C, response_body: \"*\"")),
            "7:64: routes[0].response_body: bad response_body \"*\" (use \"\" or a field name)");
  EXPECT_EQ(Error(route("method: GET, path: /a, grpc_method: a.B/C, timeout: 0s")),
            "7:58: routes[0].timeout: 0s is out of range (must be > 0)");
  EXPECT_EQ(Error(route("method: GET, path: /a, grpc_method: a.B/C, error_format: json")),
            "7:63: routes[0].error_format: bad value \"json\" (use one of: google_rpc, openai, "
            "tei)");
  absl::StatusOr<ProxyConfig> tei =
      Load(route("method: POST, path: /embed, grpc_method: a.B/C, error_format: tei"));
  ASSERT_TRUE(tei.ok()) << tei.status();
  EXPECT_EQ(tei->routes[0].error_format, "tei");
  EXPECT_THAT(Error(route("method: GET, path: /a, grpc_method: a.B/C, ignore_unknown_fields: 1")),
              HasSubstr("routes[0].ignore_unknown_fields"));
  EXPECT_EQ(Error(route("path: /a, grpc_method: a.B/C")),
            "7:5: routes[0]: missing required key \"method\"");
  EXPECT_EQ(Error(absl::StrCat(kMinimal,
                               "routes:\n"
                               "  - {method: GET, path: /a, grpc_method: a.B/C}\n"
                               "  - {method: POST, path: /a, grpc_method: a.B/C}\n"
                               "  - {method: GET, path: /a, grpc_method: a.B/D}\n")),
            "9:5: routes[2]: duplicate route GET /a (also in routes[0])");
  EXPECT_EQ(Error(absl::StrCat(kMinimal,
                               "    services: [tipperary.*]\n"
                               "routes:\n"
                               "  - {method: GET, path: /a, grpc_method: tipperary.v1.S/M}\n"
                               "  - {method: GET, path: /b, grpc_method: tipperaryx.S/M}\n")),
            "9:42: routes[1].grpc_method: service \"tipperaryx.S\" is not in any upstream's "
            "services");
}

TEST_F(ProxyConfigLoaderTest, AutoscalingSectionLoads) {
  ProxyConfig config = LoadOk(absl::StrCat(kMinimal,
                                           "autoscaling:\n"
                                           "  external_scaler_address: \"\"\n"
                                           "  sample_interval: 500ms\n"
                                           "  windows: [5s, 30s, 2m]\n"
                                           "  capacity: 8\n"
                                           "  worker_admin: 127.0.0.1:9902\n"
                                           "  worker_timeout: 200ms\n"
                                           "  stream_interval: 2s\n"));
  EXPECT_EQ(config.autoscaling.external_scaler_address, "");
  EXPECT_EQ(config.autoscaling.sample_interval, std::chrono::milliseconds(500));
  EXPECT_THAT(config.autoscaling.windows,
              testing::ElementsAre(seconds(5), seconds(30), std::chrono::minutes(2)));
  EXPECT_EQ(config.autoscaling.capacity, 8u);
  EXPECT_EQ(config.autoscaling.worker_admin, "127.0.0.1:9902");
  EXPECT_EQ(config.autoscaling.worker_timeout, std::chrono::milliseconds(200));
  EXPECT_EQ(config.autoscaling.stream_interval, seconds(2));
  EXPECT_EQ(LoadProxyConfigString(DumpProxyConfig(config), "dump").value().autoscaling.windows,
            config.autoscaling.windows);
}

TEST_F(ProxyConfigLoaderTest, ErrorAutoscaling) {
  auto section = [](const std::string& fields) {
    return absl::StrCat(kMinimal, "autoscaling:\n  ", fields, "\n");
  };
  EXPECT_EQ(Error(section("windows: []")),
            "7:12: autoscaling.windows: give 1 to 8 rate windows, e.g. [10s, 60s]");
  EXPECT_EQ(Error(section("windows: [10s, 1500ms]")),
            "7:18: autoscaling.windows[1]: rate window 1500ms must be a whole number of seconds");
  EXPECT_EQ(Error(section("windows: [10s, 10s]")),
            "7:18: autoscaling.windows[1]: rate window 10s is repeated");
  EXPECT_EQ(
      Error(section("{sample_interval: 3s, windows: [10s]}")),
      "7:34: autoscaling.windows: rate window 10s must be a multiple of sample_interval (3s)");
  EXPECT_EQ(Error(section("capacity: 0")),
            "7:13: autoscaling.capacity: 0 is out of range (1..4294967295)");
  EXPECT_EQ(Error(section("worker_admin: unix:/tmp/w.sock")),
            "7:17: autoscaling.worker_admin: worker_admin needs host:port, got "
            "\"unix:/tmp/w.sock\"");
  EXPECT_EQ(Error(section("external_scaler_address: 127.0.0.1:8080")),
            "7:28: autoscaling.external_scaler_address: external_scaler_address "
            "\"127.0.0.1:8080\" is also used by listeners[0]");
  EXPECT_EQ(Error(section("sample_interval: 10ms")),
            "7:20: autoscaling.sample_interval: 10ms is out of range (must be at least 100ms)");
  EXPECT_THAT(Error(section("scrape: 1s")), HasSubstr("unknown key \"scrape\""));
}

}  // namespace
}  // namespace tipperary::config
