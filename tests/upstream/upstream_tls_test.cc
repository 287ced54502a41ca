// UpstreamCluster over TLS: against a real grpc++ server with SslServerCredentials (TLS and
// mTLS), and against a bare OpenSSL server for what grpc++ would never do (no ALPN h2, old
// protocol versions, no TLS at all). Certificates are made at test time (test_certificates.h).
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "test_certificates.h"
#include "tipperary/testing/v1/test_service.grpc.pb.h"
#include "tipperary/upstream/upstream_cluster.h"
#include "tls_client_stream.h"

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace v1 = ::tipperary::testing::v1;

constexpr char kEchoPath[] = "/tipperary.testing.v1.TestService/Echo";
constexpr char kStreamPath[] = "/tipperary.testing.v1.TestService/StreamThings";

// Echo answers with the request and records what the server knew of the connection.
class TlsTestService final : public v1::TestService::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const v1::AllTypes* request,
                    v1::AllTypes* response) override {
    Record(*context);
    *response = *request;
    return grpc::Status::OK;
  }

  grpc::Status StreamThings(grpc::ServerContext* context, const v1::StreamRequest* request,
                            grpc::ServerWriter<v1::Thing>* writer) override {
    Record(*context);
    for (int i = 0; i < request->count(); ++i) {
      v1::Thing thing;
      thing.set_name("thing-" + std::to_string(i));
      if (!writer->Write(thing)) return {grpc::StatusCode::CANCELLED, "gone"};
    }
    return grpc::Status::OK;
  }

  std::string security_type() {
    std::lock_guard lock(mu_);
    return security_type_;
  }
  std::string client_common_name() {
    std::lock_guard lock(mu_);
    return client_common_name_;
  }

 private:
  void Record(const grpc::ServerContext& context) {
    auto first = [&](const char* property) -> std::string {
      std::vector<grpc::string_ref> values = context.auth_context()->FindPropertyValues(property);
      return values.empty() ? "" : std::string(values[0].data(), values[0].size());
    };
    std::lock_guard lock(mu_);
    security_type_ = first(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    client_common_name_ = first(GRPC_X509_CN_PROPERTY_NAME);
  }

  std::mutex mu_;
  std::string security_type_;
  std::string client_common_name_;
};

class GrpcTlsServer {
 public:
  GrpcTlsServer(const test_pki::TestCertificates& certs, bool require_client_cert) {
    grpc::SslServerCredentialsOptions options(
        require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    if (require_client_cert) options.pem_root_certs = test_pki::ReadTextFile(certs.ca_cert);
    options.pem_key_cert_pairs.push_back(
        {test_pki::ReadTextFile(certs.server_key), test_pki::ReadTextFile(certs.server_cert)});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &port_);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.SetMaxSendMessageSize(64 << 20);
    server_ = builder.BuildAndStart();
  }
  ~GrpcTlsServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  bool ok() const { return server_ != nullptr && port_ != 0; }
  int port() const { return port_; }
  TlsTestService& service() { return service_; }

 private:
  TlsTestService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A bare server on 127.0.0.1: TLS with OpenSSL (optionally selecting ALPN h2, optionally capped
// at a protocol version), or plain TCP that never answers. It records the SNI of each
// handshake, reads until the client goes away, and never speaks HTTP/2.
class RawTlsServer {
 public:
  struct Options {
    bool tls = true;
    bool select_h2 = false;
    int max_version = 0;  // TLS1_2_VERSION, ...; 0 = OpenSSL's.
  };

  RawTlsServer(const test_pki::TestCertificates& certs, Options options)
      : options_(options), context_(ssl::context::tls_server), acceptor_(ioc_) {
    context_.use_certificate_chain_file(certs.server_cert);
    context_.use_private_key_file(certs.server_key, ssl::context::pem);
    SSL_CTX* native = context_.native_handle();
    if (options.max_version != 0) SSL_CTX_set_max_proto_version(native, options.max_version);
    SSL_CTX_set_tlsext_servername_callback(native, OnServerName);
    SSL_CTX_set_tlsext_servername_arg(native, this);
    if (options.select_h2) SSL_CTX_set_alpn_select_cb(native, SelectH2, nullptr);
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }

  ~RawTlsServer() {
    stopping_ = true;
    // Wakes the blocking accept and read (closing from another thread would race with them).
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (int fd = current_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
  }

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // The SNI of each handshake, "" for none.
  std::vector<std::string> server_names() {
    std::lock_guard lock(mu_);
    return server_names_;
  }

 private:
  static int OnServerName(SSL* ssl, int* /*alert*/, void* arg) {
    auto* self = static_cast<RawTlsServer*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    std::lock_guard lock(self->mu_);
    self->server_names_.push_back(name != nullptr ? name : "");
    return SSL_TLSEXT_ERR_OK;
  }

  static int SelectH2(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void* /*arg*/) {
    for (unsigned int i = 0; i < inlen; i += 1 + in[i]) {
      if (in[i] == 2 && i + 2 < inlen && in[i + 1] == 'h' && in[i + 2] == '2') {
        *out = in + i + 1;
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
      }
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void Serve() {
    std::vector<asio::ip::tcp::socket> held;  // Plain TCP connections, never answered.
    while (!stopping_) {
      asio::ip::tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) return;
      ++accepted_;
      if (!options_.tls) {
        held.push_back(std::move(socket));
        continue;
      }
      current_fd_ = socket.native_handle();
      ssl::stream<asio::ip::tcp::socket> stream(std::move(socket), context_);
      stream.handshake(ssl::stream_base::server, ec);
      char buffer[4096];
      while (!ec && !stopping_) stream.read_some(asio::buffer(buffer), ec);
      current_fd_ = -1;
    }
  }

  Options options_;
  asio::io_context ioc_;
  ssl::context context_;
  asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> current_fd_{-1};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<std::string> server_names_;
};

struct CallRecord {
  bool done = false;
  GrpcResult result;
  std::vector<std::string> messages;
};

class UpstreamTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string pattern =
        (std::filesystem::path(::testing::TempDir()) / "upstream_tls_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = new std::string(pattern);
    absl::StatusOr<test_pki::TestCertificates> certs = test_pki::TestCertificates::Create(*dir_);
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new test_pki::TestCertificates(*certs);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    delete certs_;
  }

  static const test_pki::TestCertificates& certs() { return *certs_; }

  // TLS verified against the test CA, no client certificate.
  static UpstreamOptions Options(const std::string& endpoint) {
    UpstreamOptions options;
    options.name = "tls-test";
    absl::StatusOr<common::Endpoint> parsed = common::ParseEndpoint(endpoint);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (parsed.ok()) options.endpoints.push_back(*parsed);
    options.keepalive_interval = 0s;
    options.reconnect_backoff_initial = 10ms;
    options.reconnect_backoff_max = 100ms;
    options.tls.emplace();
    options.tls->ca_file = certs().ca_cert;
    return options;
  }
  static UpstreamOptions Options(int port) { return Options("127.0.0.1:" + std::to_string(port)); }

  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds guard = 10s) {
    auto deadline = std::chrono::steady_clock::now() + guard;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      ioc_.run_for(2ms);
    }
    return true;
  }

  std::shared_ptr<CallRecord> Run(UpstreamCluster& cluster, const std::string& path,
                                  const google::protobuf::Message& message) {
    auto record = std::make_shared<CallRecord>();
    GrpcRequest request;
    request.path = path;
    request.message = message.SerializeAsString();
    request.timeout = 10s;
    CallHandlers handlers;
    handlers.on_message = [record](std::string m) { record->messages.push_back(std::move(m)); };
    handlers.on_done = [record](GrpcResult result) {
      record->result = std::move(result);
      record->done = true;
    };
    cluster.Call(std::move(request), std::move(handlers));
    EXPECT_TRUE(RunUntil([&] { return record->done; })) << "call did not finish";
    return record;
  }

  std::shared_ptr<CallRecord> Echo(UpstreamCluster& cluster, const std::string& text = "hi") {
    v1::AllTypes message;
    message.set_f_string(text);
    return Run(cluster, kEchoPath, message);
  }

  // A call that must fail because no connection comes up: UNAVAILABLE, with the reason.
  std::string FailedCallMessage(UpstreamCluster& cluster) {
    auto record = Echo(cluster);
    EXPECT_EQ(record->result.code, absl::StatusCode::kUnavailable) << record->result.grpc_message;
    EXPECT_EQ(record->result.outcome, CallOutcome::kUnavailable);
    EXPECT_FALSE(cluster.HasReadyConnection());
    EXPECT_GE(cluster.GetStats().connect_failures_total, 1u);
    EXPECT_EQ(cluster.GetStats().connects_total, 0u);
    return record->result.grpc_message;
  }

  static inline std::string* dir_ = nullptr;
  static inline test_pki::TestCertificates* certs_ = nullptr;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{ioc_.get_executor()};
};

TEST_F(UpstreamTlsTest, UnaryAndStreamingCallsOverTls) {
  GrpcTlsServer server(certs(), /*require_client_cert=*/false);
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.port()));
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));

  auto echo = Echo(cluster, "over tls");
  ASSERT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
  ASSERT_EQ(echo->messages.size(), 1u);
  v1::AllTypes answer;
  ASSERT_TRUE(answer.ParseFromString(echo->messages[0]));
  EXPECT_EQ(answer.f_string(), "over tls");
  EXPECT_EQ(server.service().security_type(), "ssl");
  EXPECT_EQ(server.service().client_common_name(), "");

  // Messages larger than a TLS record and than the HTTP/2 windows, both ways.
  v1::AllTypes big;
  big.set_f_bytes(std::string(3 << 20, 'x'));
  auto big_echo = Run(cluster, kEchoPath, big);
  ASSERT_EQ(big_echo->result.code, absl::StatusCode::kOk) << big_echo->result.grpc_message;
  ASSERT_EQ(big_echo->messages.size(), 1u);
  ASSERT_TRUE(answer.ParseFromString(big_echo->messages[0]));
  EXPECT_EQ(answer.f_bytes().size(), size_t{3} << 20);

  v1::StreamRequest stream;
  stream.set_count(50);
  auto things = Run(cluster, kStreamPath, stream);
  EXPECT_EQ(things->result.code, absl::StatusCode::kOk) << things->result.grpc_message;
  EXPECT_EQ(things->messages.size(), 50u);

  UpstreamCluster::Stats stats = cluster.GetStats();
  EXPECT_EQ(stats.connects_total, 1u);
  EXPECT_EQ(stats.connect_failures_total, 0u);
}

TEST_F(UpstreamTlsTest, HostNameEndpointIsVerifiedAndSentAsSni) {
  GrpcTlsServer server(certs(), false);
  ASSERT_TRUE(server.ok());
  // "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
  UpstreamCluster cluster(ioc_, Options("localhost:" + std::to_string(server.port())));
  auto echo = Echo(cluster);
  EXPECT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;

  // SNI as a bare server sees it: the host name, none for an IP address, or server_name.
  RawTlsServer raw(certs(), {.select_h2 = true});
  {
    UpstreamCluster by_name(ioc_, Options("localhost:" + std::to_string(raw.port())));
    by_name.Start();
    ASSERT_TRUE(RunUntil([&] { return raw.server_names().size() >= 1; }));
  }
  {
    UpstreamCluster by_ip(ioc_, Options(raw.port()));
    by_ip.Start();
    ASSERT_TRUE(RunUntil([&] { return raw.server_names().size() >= 2; }));
  }
  {
    UpstreamOptions options = Options(raw.port());
    options.tls->server_name = "localhost";
    UpstreamCluster overridden(ioc_, options);
    overridden.Start();
    ASSERT_TRUE(RunUntil([&] { return raw.server_names().size() >= 3; }));
  }
  std::vector<std::string> names = raw.server_names();
  EXPECT_EQ(names[0], "localhost");
  EXPECT_EQ(names[1], "");
  EXPECT_EQ(names[2], "localhost");
}

TEST_F(UpstreamTlsTest, WrongCaFailsWithTheReason) {
  GrpcTlsServer server(certs(), false);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.port());
  options.tls->ca_file = certs().other_ca_cert;
  UpstreamCluster cluster(ioc_, options);
  std::string message = FailedCallMessage(cluster);
  EXPECT_THAT(message, HasSubstr("TLS handshake: certificate verify failed: unable to get local "
                                 "issuer certificate"));
  EXPECT_THAT(message, HasSubstr("127.0.0.1:" + std::to_string(server.port())));
}

TEST_F(UpstreamTlsTest, NameMismatchFails) {
  GrpcTlsServer server(certs(), false);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.port());
  options.tls->server_name = "worker.example.com";
  UpstreamCluster cluster(ioc_, options);
  EXPECT_THAT(FailedCallMessage(cluster),
              HasSubstr("certificate verify failed: hostname mismatch (the certificate is not "
                        "for \"worker.example.com\")"));

  options.tls->server_name = "127.0.0.2";  // An IP address the certificate does not carry.
  UpstreamCluster by_ip(ioc_, options);
  EXPECT_THAT(FailedCallMessage(by_ip),
              HasSubstr("certificate verify failed: IP address mismatch (the certificate is not "
                        "for \"127.0.0.2\")"));
}

TEST_F(UpstreamTlsTest, VerifyFalseAcceptsAnyCertificate) {
  GrpcTlsServer server(certs(), false);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.port());
  options.tls->ca_file = certs().other_ca_cert;
  options.tls->server_name = "worker.example.com";
  options.tls->verify = false;
  UpstreamCluster cluster(ioc_, options);
  auto echo = Echo(cluster);
  EXPECT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
}

TEST_F(UpstreamTlsTest, MutualTls) {
  GrpcTlsServer server(certs(), /*require_client_cert=*/true);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.port());
  options.tls->cert_file = certs().client_cert;
  options.tls->key_file = certs().client_key;
  {
    UpstreamCluster cluster(ioc_, options);
    auto echo = Echo(cluster);
    EXPECT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
    EXPECT_EQ(server.service().client_common_name(), "test-client");
  }
  // Without a client certificate the server refuses the connection (in TLS 1.3 with an alert
  // after the client's side of the handshake is done).
  UpstreamCluster without(ioc_, Options(server.port()));
  std::string message = FailedCallMessage(without);
  EXPECT_THAT(message, HasSubstr("failed: TLS"));
  EXPECT_THAT(message, HasSubstr("client certificate"));
}

TEST_F(UpstreamTlsTest, ServerWithoutAlpnH2IsRefused) {
  RawTlsServer raw(certs(), {.select_h2 = false});
  UpstreamCluster cluster(ioc_, Options(raw.port()));
  EXPECT_THAT(FailedCallMessage(cluster),
              HasSubstr("failed: TLS: the server did not select ALPN protocol \"h2\""));
}

TEST_F(UpstreamTlsTest, MinimumVersionIsEnforced) {
  RawTlsServer raw(certs(), {.select_h2 = true, .max_version = TLS1_2_VERSION});
  UpstreamOptions options = Options(raw.port());
  options.tls->min_version = "1.3";
  UpstreamCluster cluster(ioc_, options);
  EXPECT_THAT(FailedCallMessage(cluster), HasSubstr("failed: TLS handshake: "));

  // TLS 1.2 itself is accepted: the handshake completes, and the connection then waits for
  // the server's SETTINGS, which this server never sends.
  RawTlsServer tls12(certs(), {.select_h2 = true, .max_version = TLS1_2_VERSION});
  UpstreamOptions tls12_options = Options(tls12.port());
  tls12_options.connect_timeout = 300ms;
  UpstreamCluster waits(ioc_, tls12_options);
  std::string message = FailedCallMessage(waits);
  EXPECT_THAT(message, HasSubstr("failed: timed out after 300 ms"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("TLS")));
}

TEST_F(UpstreamTlsTest, HandshakeCountsAgainstTheConnectTimeout) {
  RawTlsServer silent(certs(), {.tls = false});
  UpstreamOptions options = Options(silent.port());
  options.connect_timeout = 200ms;
  UpstreamCluster cluster(ioc_, options);
  EXPECT_THAT(FailedCallMessage(cluster),
              HasSubstr("failed: timed out after 200 ms (in the TLS handshake)"));
}

TEST_F(UpstreamTlsTest, RenewedFilesAreUsedByTheNextConnection) {
  namespace fs = std::filesystem;
  const std::string ca = *dir_ + "/renewed-ca.pem";
  fs::copy_file(certs().other_ca_cert, ca, fs::copy_options::overwrite_existing);
  UpstreamTlsOptions tls;
  tls.ca_file = ca;
  auto first = SharedClientTlsContext(tls);
  auto again = SharedClientTlsContext(tls);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->get(), again->get());  // Loaded once.

  GrpcTlsServer server(certs(), false);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.port());
  options.tls->ca_file = ca;
  UpstreamCluster cluster(ioc_, options);
  EXPECT_THAT(FailedCallMessage(cluster), HasSubstr("certificate verify failed"));

  // The operator puts the right CA in place: the next connection attempt uses it.
  fs::copy_file(certs().ca_cert, ca, fs::copy_options::overwrite_existing);
  fs::last_write_time(ca, fs::last_write_time(ca) + 1s);
  auto renewed = SharedClientTlsContext(tls);
  ASSERT_TRUE(renewed.ok());
  EXPECT_NE(renewed->get(), first->get());
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  auto echo = Echo(cluster);
  EXPECT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
}

TEST_F(UpstreamTlsTest, ContextErrorsNameTheFile) {
  UpstreamTlsOptions options;
  options.ca_file = *dir_ + "/missing.pem";
  absl::StatusOr<ssl::context> context = MakeClientTlsContext(options);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(std::string(context.status().message()), HasSubstr("tls ca \"" + *dir_));

  options = {};
  options.cert_file = certs().client_cert;
  options.key_file = certs().server_key;
  context = MakeClientTlsContext(options);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(std::string(context.status().message()),
              HasSubstr("tls key \"" + certs().server_key + "\": "));

  // An encrypted key fails (OpenSSL would otherwise prompt on the terminal).
  options.key_file = certs().client_key_encrypted;
  context = MakeClientTlsContext(options);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(std::string(context.status().message()), HasSubstr("tls key \""));

  options.key_file = certs().client_key;
  EXPECT_TRUE(MakeClientTlsContext(options).ok());
  options.min_version = "1.1";
  EXPECT_FALSE(MakeClientTlsContext(options).ok());

  // A connection whose files vanished fails to connect, with the reason.
  RawTlsServer raw(certs(), {.select_h2 = true});
  UpstreamOptions gone = Options(raw.port());
  gone.tls->ca_file = *dir_ + "/gone.pem";
  UpstreamCluster cluster(ioc_, gone);
  EXPECT_THAT(FailedCallMessage(cluster), HasSubstr("tls ca \"" + *dir_ + "/gone.pem\""));
}

}  // namespace
}  // namespace tipperary::upstream
