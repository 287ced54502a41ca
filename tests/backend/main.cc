// tipperary-test-backend: the gRPC server the proxy's integration tests, the quick start and the
// benchmarks talk to. Prints one "listening" JSON line (stdout and stderr) with the real address,
// and shuts down gracefully (GOAWAY, in-flight calls finish) on SIGTERM or SIGINT.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include "parity_service_impl.h"
#include "test_service_impl.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/common/log.h"
#include "tipperary/worker/server_reflection.h"

namespace {

constexpr int kMaxMessageBytes = 64 << 20;

constexpr std::string_view kUsage =
    "usage: tipperary-test-backend [--address HOST:PORT|unix:/PATH] [--max-concurrent-streams N]\n"
    "                              [--shutdown-grace-ms MS] [--drain-delay-ms MS]\n"
    "                              [--not-serving-ms MS]\n"
    "                              [--without-parity] [--reflection VERSIONS]\n"
    "                              [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]\n"
    "Serves tipperary.testing.v1.TestService and ParityService, gRPC health and server "
    "reflection (v1 and v1alpha).\n"
    "  --address                 where to listen (default 127.0.0.1:0: a free port)\n"
    "  --max-concurrent-streams  HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS to advertise\n"
    "  --shutdown-grace-ms       on SIGTERM/SIGINT, how long in-flight calls get (default 5000)\n"
    "  --drain-delay-ms          on SIGTERM/SIGINT, first answer health NOT_SERVING and go on\n"
    "                            serving for this long, then GOAWAY (default 0: GOAWAY at once)\n"
    "  --not-serving-ms          gRPC health answers NOT_SERVING for this long after start (a\n"
    "                            worker loading its model), then SERVING (default 0)\n"
    "  --without-parity          serve TestService alone (a worker restarted with another\n"
    "                            service set)\n"
    "  --tls-cert, --tls-key     serve gRPC over TLS with this certificate chain and key\n"
    "  --tls-client-ca           with TLS: require client certificates issued by this CA (mTLS)\n"
    "  --reflection VERSIONS     server reflection versions to serve, comma-separated: v1,\n"
    "                            v1alpha (grpc++ 1.51's own), or none (default v1,v1alpha)\n";

struct Options {
  std::string address = "127.0.0.1:0";
  int max_concurrent_streams = 0;
  int shutdown_grace_ms = 5000;
  int drain_delay_ms = 0;
  int not_serving_ms = 0;
  bool parity = true;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  bool reflection_v1 = true;
  bool reflection_v1alpha = true;
};

// The whole file, or nullopt when it cannot be read.
std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Insecure (h2c), or TLS from the --tls-* files; nullptr (after a message) when one is unusable.
std::shared_ptr<grpc::ServerCredentials> Credentials(const Options& options) {
  if (options.tls_cert.empty()) return grpc::InsecureServerCredentials();
  std::optional<std::string> cert = ReadFile(options.tls_cert);
  std::optional<std::string> key = ReadFile(options.tls_key);
  std::optional<std::string> ca;
  if (!options.tls_client_ca.empty()) ca = ReadFile(options.tls_client_ca);
  if (!cert || !key || (!options.tls_client_ca.empty() && !ca)) {
    std::cerr << "tipperary-test-backend: cannot read the --tls-* files\n";
    return nullptr;
  }
  grpc::SslServerCredentialsOptions ssl(
      ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
         : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (ca) ssl.pem_root_certs = *ca;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(ssl);
}

// "v1,v1alpha", "v1alpha", "none"...
bool ParseReflection(std::string_view text, Options& options) {
  options.reflection_v1 = options.reflection_v1alpha = false;
  if (text == "none") return true;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view version = text.substr(0, comma);
    if (version == "v1") {
      options.reflection_v1 = true;
    } else if (version == "v1alpha") {
      options.reflection_v1alpha = true;
    } else {
      return false;
    }
    text = comma == std::string_view::npos ? "" : text.substr(comma + 1);
  }
  return options.reflection_v1 || options.reflection_v1alpha;
}

bool ParseInt(const char* text, int& out) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0 || value > (1l << 30)) return false;
  out = static_cast<int>(value);
  return true;
}

// Returns the exit code to use now, or -1 to go on serving.
int ParseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    const char* value = nullptr;
    bool ok = false;
    if (arg == "--without-parity") {
      options.parity = false;
      ok = true;
    } else if (arg == "--address") {
      value = next();
      if (value != nullptr) {
        options.address = value;
        ok = true;
      }
    } else if (arg == "--max-concurrent-streams") {
      value = next();
      ok = value != nullptr && ParseInt(value, options.max_concurrent_streams);
    } else if (arg == "--shutdown-grace-ms") {
      value = next();
      ok = value != nullptr && ParseInt(value, options.shutdown_grace_ms);
    } else if (arg == "--drain-delay-ms") {
      value = next();
      ok = value != nullptr && ParseInt(value, options.drain_delay_ms);
    } else if (arg == "--reflection") {
      value = next();
      ok = value != nullptr && ParseReflection(value, options);
    } else if (arg == "--not-serving-ms") {
      value = next();
      ok = value != nullptr && ParseInt(value, options.not_serving_ms);
    } else if (arg == "--tls-cert" || arg == "--tls-key" || arg == "--tls-client-ca") {
      value = next();
      std::string& target = arg == "--tls-cert"  ? options.tls_cert
                            : arg == "--tls-key" ? options.tls_key
                                                 : options.tls_client_ca;
      ok = value != nullptr && *value != '\0';
      if (ok) target = value;
    }
    if (!ok) {
      std::cerr << "tipperary-test-backend: bad argument '" << arg << "'\n" << kUsage;
      return 2;
    }
  }
  if (options.tls_cert.empty() != options.tls_key.empty() ||
      (!options.tls_client_ca.empty() && options.tls_cert.empty())) {
    std::cerr << "tipperary-test-backend: --tls-cert and --tls-key go together (and "
                 "--tls-client-ca needs them)\n"
              << kUsage;
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (int rc = ParseArgs(argc, argv, options); rc >= 0) return rc;

  auto endpoint = tipperary::common::ParseEndpoint(options.address, /*allow_port_zero=*/true);
  if (!endpoint.ok()) {
    std::cerr << "tipperary-test-backend: " << endpoint.status() << "\n";
    return 2;
  }
  if (endpoint->kind == tipperary::common::Endpoint::Kind::kUnix) {
    // A socket file left by a killed run would make bind fail.
    struct stat st {};
    if (::lstat(endpoint->path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(endpoint->path.c_str());
    }
  }

  // Block the shutdown signals before gRPC starts its threads so that only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // v1alpha; taken out if not asked

  tipperary::testing::TestServiceImpl service;
  tipperary::testing::ParityServiceImpl parity;
  grpc::ServerBuilder builder;
  int selected_port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = Credentials(options);
  if (credentials == nullptr) return 2;
  builder.AddListeningPort(endpoint->ToString(), credentials, &selected_port);
  builder.RegisterService(&service);
  if (options.parity) builder.RegisterService(&parity);
  tipperary::worker::AddServerReflection(
      builder, {.v1 = options.reflection_v1, .v1alpha = options.reflection_v1alpha});
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    std::cerr << "{\"msg\":\"cannot listen\",\"address\":\"" << options.address << "\"}"
              << std::endl;
    return 1;
  }

  tipperary::common::Endpoint actual = *endpoint;
  if (actual.kind == tipperary::common::Endpoint::Kind::kTcp) {
    actual.port = static_cast<uint16_t>(selected_port);
  }
  std::string address;
  tipperary::common::AppendJsonEscaped(address, actual.ToString());
  std::string line = R"({"msg":"listening","name":"grpc","address":")" + address + "\"}\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);

  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  std::atomic<bool> stopping{false};
  std::thread serving;
  if (options.not_serving_ms > 0) {
    health->SetServingStatus(false);
    serving = std::thread([health, &stopping, ms = options.not_serving_ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      if (stopping.load()) return;  // A shutdown's NOT_SERVING stays.
      health->SetServingStatus(true);
      std::fputs("{\"msg\":\"serving\"}\n", stderr);
      std::fflush(stderr);
    });
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  TIPPERARY_LOG(kInfo, "shutting down", {{"signal", signal_number == SIGTERM ? "TERM" : "INT"}});
  stopping.store(true);
  if (options.drain_delay_ms > 0) {
    // How a gRPC server leaves clients that health-check it without losing a call: they stop
    // sending on NOT_SERVING while it still serves. A synchronous grpc++ server that GOAWAYs at
    // once cancels the calls still waiting for a handler thread (CANCELLED), which no client
    // can retry safely unless the method is idempotent.
    health->SetServingStatus(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(options.drain_delay_ms));
  }
  // Sends GOAWAY, lets in-flight calls finish until the deadline, then cancels the rest.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(options.shutdown_grace_ms));
  server->Wait();
  if (serving.joinable()) serving.join();
  TIPPERARY_LOG(kInfo, "stopped");
  return 0;
}
