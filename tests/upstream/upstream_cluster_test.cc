// UpstreamCluster against real in-process grpc++ servers (TCP on port 0 and unix sockets).
#include "tipperary/upstream/upstream_cluster.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tipperary/common/log.h"
#include "tipperary/testing/v1/test_service.grpc.pb.h"
#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;
namespace v1 = ::tipperary::testing::v1;

const std::string kRawBytes("\x00\x01\x7f\x80\xfe\xff", 6);
constexpr char kServicePrefix[] = "/tipperary.testing.v1.TestService/";

std::string ToString(grpc::string_ref ref) { return std::string(ref.data(), ref.size()); }

class TestServiceImpl final : public v1::TestService::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const v1::AllTypes* request,
                    v1::AllTypes* response) override {
    Record(context);
    *response = *request;
    return grpc::Status::OK;
  }

  grpc::Status Metadata(grpc::ServerContext* context, const v1::MetadataRequest* request,
                        v1::MetadataResponse* response) override {
    Record(context);
    for (const auto& [key, value] : request->response_headers()) {
      context->AddInitialMetadata(key, value);
    }
    for (const auto& [key, value] : request->response_trailers()) {
      context->AddTrailingMetadata(key, value);
    }
    context->AddInitialMetadata("x-raw-bin", kRawBytes);
    context->AddTrailingMetadata("x-raw-trailer-bin", kRawBytes);
    response->set_peer(context->peer());
    return grpc::Status::OK;
  }

  grpc::Status Fail(grpc::ServerContext*, const v1::FailRequest* request,
                    google::protobuf::Empty*) override {
    std::string details;
    if (request->with_details()) {
      google::rpc::Status status;
      status.set_code(request->code());
      status.set_message(request->message());
      google::rpc::ErrorInfo info;
      info.set_reason("TEST_REASON");
      info.set_domain("tipperary.test");
      status.add_details()->PackFrom(info);
      details = status.SerializeAsString();
    }
    return grpc::Status(static_cast<grpc::StatusCode>(request->code()), request->message(),
                        details);
  }

  grpc::Status Slow(grpc::ServerContext* context, const v1::SlowRequest* request,
                    v1::SlowResponse* response) override {
    ++slow_started;
    auto start = std::chrono::steady_clock::now();
    auto until = start + std::chrono::milliseconds(request->delay_ms());
    while (std::chrono::steady_clock::now() < until) {
      if (context->IsCancelled()) {
        ++slow_cancelled;
        response->set_cancelled(true);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      std::this_thread::sleep_for(2ms);
    }
    response->set_slept_ms(request->delay_ms());
    return grpc::Status::OK;
  }

  grpc::Status StreamThings(grpc::ServerContext* context, const v1::StreamRequest* request,
                            grpc::ServerWriter<v1::Thing>* writer) override {
    for (int i = 0; i < request->count(); ++i) {
      if (request->fail_after() > 0 && i == request->fail_after()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "failing after " + std::to_string(i));
      }
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      v1::Thing thing;
      thing.set_name("thing-" + std::to_string(i));
      if (!writer->Write(thing)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      if (request->interval_ms() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(request->interval_ms()));
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Big(grpc::ServerContext*, const v1::BigRequest* request,
                   v1::BigResponse* response) override {
    response->set_data(std::string(static_cast<size_t>(request->size()), 'b'));
    response->set_size(request->size());
    return grpc::Status::OK;
  }

  std::multimap<std::string, std::string> LastMetadata() {
    std::lock_guard lock(mu_);
    return last_metadata_;
  }
  bool LastHadDeadline() {
    std::lock_guard lock(mu_);
    return last_had_deadline_;
  }

  // Client streams. CollectThings reads nothing until collect_gate opens, so a test can see
  // the client held back by the server's window.
  grpc::Status CollectThings(grpc::ServerContext*, grpc::ServerReader<v1::Thing>* reader,
                             v1::ListThingsResponse* response) override {
    while (!collect_gate.load()) std::this_thread::sleep_for(1ms);
    v1::Thing thing;
    int64_t bytes = 0;
    while (reader->Read(&thing)) {
      bytes += static_cast<int64_t>(thing.name().size());
      response->add_things()->set_name(thing.name().substr(0, 16));
    }
    response->set_next_page_token(std::to_string(bytes));
    return grpc::Status::OK;
  }

  grpc::Status EchoThings(grpc::ServerContext*,
                          grpc::ServerReaderWriter<v1::Thing, v1::Thing>* stream) override {
    v1::Thing thing;
    while (stream->Read(&thing)) {
      if (!stream->Write(thing)) return {grpc::StatusCode::CANCELLED, "client gone"};
    }
    return grpc::Status::OK;
  }

  std::atomic<int> slow_started{0};
  std::atomic<int> slow_cancelled{0};
  std::atomic<bool> collect_gate{true};

 private:
  void Record(grpc::ServerContext* context) {
    std::lock_guard lock(mu_);
    last_metadata_.clear();
    for (const auto& [key, value] : context->client_metadata()) {
      last_metadata_.emplace(ToString(key), ToString(value));
    }
    last_had_deadline_ = context->deadline() != std::chrono::system_clock::time_point::max();
  }

  std::mutex mu_;
  std::multimap<std::string, std::string> last_metadata_;
  bool last_had_deadline_ = false;
};

class TestServer {
 public:
  explicit TestServer(const std::string& address, int max_concurrent_streams = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.SetMaxSendMessageSize(64 << 20);
    if (max_concurrent_streams > 0) {
      builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_concurrent_streams);
    }
    // Keepalive tests ping often; a default server would answer with GOAWAY(too_many_pings).
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { Stop(std::chrono::system_clock::now()); }

  bool ok() const { return server_ != nullptr && port_ != 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  TestServiceImpl& service() { return service_; }

  void Stop(std::chrono::system_clock::time_point deadline) {
    if (!server_) return;
    server_->Shutdown(deadline);
    server_->Wait();
    server_.reset();
  }

 private:
  TestServiceImpl service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

struct CallRecord {
  bool done = false;
  int done_calls = 0;
  int headers_calls = 0;
  GrpcResult result;
  std::optional<Metadata> headers;
  std::vector<std::string> messages;
};

GrpcRequest Request(const std::string& method, const google::protobuf::Message& message,
                    std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  GrpcRequest request;
  request.path = kServicePrefix + method;
  request.message = message.SerializeAsString();
  request.timeout = timeout;
  return request;
}

std::optional<std::string> Find(const Metadata& metadata, const std::string& key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

class UpstreamClusterTest : public ::testing::Test {
 protected:
  UpstreamOptions Options(const std::string& endpoint) {
    UpstreamOptions options;
    options.name = "test";
    auto parsed = common::ParseEndpoint(endpoint);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (parsed.ok()) options.endpoints.push_back(*parsed);
    options.keepalive_interval = 0s;
    options.reconnect_backoff_initial = 10ms;
    options.reconnect_backoff_max = 100ms;
    return options;
  }

  // Runs the event loop until done() holds; the timeout is a hang guard only.
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds guard = 10s) {
    auto deadline = std::chrono::steady_clock::now() + guard;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      ioc_.run_for(2ms);
    }
    return true;
  }

  std::shared_ptr<CallRecord> Start(UpstreamCluster& cluster, GrpcRequest request,
                                    CallId* id = nullptr) {
    auto record = std::make_shared<CallRecord>();
    CallHandlers handlers;
    handlers.on_headers = [record](const Metadata& headers) {
      record->headers = headers;
      ++record->headers_calls;
    };
    handlers.on_message = [record](std::string message) {
      record->messages.push_back(std::move(message));
    };
    handlers.on_done = [record](GrpcResult result) {
      record->result = std::move(result);
      record->done = true;
      ++record->done_calls;
    };
    CallId call_id = cluster.Call(std::move(request), std::move(handlers));
    if (id != nullptr) *id = call_id;
    return record;
  }

  std::shared_ptr<CallRecord> Run(UpstreamCluster& cluster, GrpcRequest request) {
    auto record = Start(cluster, std::move(request));
    EXPECT_TRUE(RunUntil([&] { return record->done; })) << "call did not finish";
    return record;
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
};

v1::AllTypes SampleAllTypes() {
  v1::AllTypes message;
  message.set_f_double(3.5);
  message.set_f_int64(-1234567890123);
  message.set_f_uint64(18446744073709551615ull);
  message.set_f_string("h\xC3\xA9llo");
  message.set_f_bytes(kRawBytes);
  message.set_f_enum(v1::BLUE);
  message.mutable_f_nested()->set_name("nested");
  message.add_r_string("a");
  message.add_r_string("b");
  (*message.mutable_m_string_int64())["k"] = 7;
  message.mutable_t_timestamp()->set_seconds(1700000000);
  message.mutable_w_string()->set_value("wrapped");
  return message;
}

TEST_F(UpstreamClusterTest, UnaryEchoRoundTrip) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));

  v1::AllTypes sent = SampleAllTypes();
  auto record = Run(cluster, Request("Echo", sent, 10s));
  ASSERT_TRUE(record->done);
  EXPECT_EQ(record->done_calls, 1);
  EXPECT_EQ(record->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  EXPECT_EQ(record->result.http_status, 200);
  EXPECT_EQ(record->headers_calls, 1);
  ASSERT_EQ(record->messages.size(), 1u);
  v1::AllTypes received;
  ASSERT_TRUE(received.ParseFromString(record->messages[0]));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(sent, received));
  EXPECT_TRUE(server.service().LastHadDeadline());

  // An empty message is a valid request and response too.
  auto empty = Run(cluster, Request("Echo", v1::AllTypes()));
  EXPECT_EQ(empty->result.code, absl::StatusCode::kOk);
  ASSERT_EQ(empty->messages.size(), 1u);
  EXPECT_TRUE(empty->messages[0].empty());
  EXPECT_FALSE(server.service().LastHadDeadline());

  auto stats = cluster.GetStats();
  EXPECT_EQ(stats.ready, 1u);
  EXPECT_EQ(stats.connects_total, 1u);
  EXPECT_EQ(stats.streams_active, 0u);
}

TEST_F(UpstreamClusterTest, CustomMetadataReachesServer) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  GrpcRequest request = Request("Metadata", v1::MetadataRequest(), 5s);
  request.metadata = {{"x-custom", "hello world"},    {"X-Upper", "Value"},
                      {"x-data-bin", kRawBytes},      {"te", "gzip"},
                      {"content-type", "text/plain"}, {":path", "/evil"},
                      {"grpc-timeout", "1n"},         {"x-bad-value", "line\nbreak"}};
  auto record = Run(cluster, std::move(request));
  ASSERT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;

  auto metadata = server.service().LastMetadata();
  auto one = [&](const std::string& key) -> std::optional<std::string> {
    EXPECT_LE(metadata.count(key), 1u) << key;
    auto it = metadata.find(key);
    if (it == metadata.end()) return std::nullopt;
    return it->second;
  };
  EXPECT_EQ(one("x-custom"), "hello world");
  EXPECT_EQ(one("x-upper"), "Value");
  EXPECT_EQ(one("x-data-bin"), kRawBytes);
  EXPECT_EQ(one("x-bad-value"), std::nullopt);
  ASSERT_TRUE(one("user-agent").has_value());
  EXPECT_NE(one("user-agent")->find("tipperary-proxy/0.1"), std::string::npos);
  // The reserved ones are ours: gRPC would have rejected the call otherwise.
  EXPECT_TRUE(server.service().LastHadDeadline());
}

TEST_F(UpstreamClusterTest, ServerMetadataReachesHandlers) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::MetadataRequest message;
  (*message.mutable_response_headers())["x-header"] = "header value";
  (*message.mutable_response_trailers())["x-trailer"] = "trailer value";
  auto record = Run(cluster, Request("Metadata", message));
  ASSERT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  ASSERT_TRUE(record->headers.has_value());
  EXPECT_EQ(Find(*record->headers, "x-header"), "header value");
  EXPECT_EQ(Find(*record->headers, "x-raw-bin"), kRawBytes);
  EXPECT_EQ(Find(*record->headers, "content-type"), std::nullopt);
  EXPECT_EQ(Find(*record->headers, ":status"), std::nullopt);
  EXPECT_EQ(Find(record->result.trailers, "x-trailer"), "trailer value");
  EXPECT_EQ(Find(record->result.trailers, "x-raw-trailer-bin"), kRawBytes);
  EXPECT_EQ(Find(record->result.trailers, "grpc-status"), std::nullopt);
  EXPECT_EQ(Find(record->result.trailers, "grpc-message"), std::nullopt);
  v1::MetadataResponse response;
  ASSERT_EQ(record->messages.size(), 1u);
  ASSERT_TRUE(response.ParseFromString(record->messages[0]));
  EXPECT_FALSE(response.peer().empty());
}

TEST_F(UpstreamClusterTest, ErrorStatusWithDetails) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::FailRequest message;
  message.set_code(5);
  message.set_message("thing not found");
  message.set_with_details(true);
  auto record = Run(cluster, Request("Fail", message));
  EXPECT_EQ(record->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(record->result.code, absl::StatusCode::kNotFound);
  EXPECT_EQ(record->result.grpc_message, "thing not found");
  EXPECT_TRUE(record->messages.empty());
  google::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(record->result.status_details));
  EXPECT_EQ(status.code(), 5);
  EXPECT_EQ(status.message(), "thing not found");
  ASSERT_EQ(status.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(status.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "TEST_REASON");
  EXPECT_EQ(Find(record->result.trailers, "grpc-status-details-bin"), std::nullopt);
}

TEST_F(UpstreamClusterTest, GrpcMessageIsPercentDecoded) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::FailRequest message;
  message.set_code(9);
  message.set_message("caf\xC3\xA9: 100% \xE2\x98\x83\nnext line");
  auto record = Run(cluster, Request("Fail", message));
  EXPECT_EQ(record->result.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record->result.grpc_message, message.message());
  EXPECT_TRUE(record->result.status_details.empty());
}

TEST_F(UpstreamClusterTest, DeadlineExceededCancelsOnServer) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::SlowRequest message;
  message.set_delay_ms(10000);
  auto record = Run(cluster, Request("Slow", message, 200ms));
  EXPECT_EQ(record->result.outcome, CallOutcome::kDeadline) << record->result.grpc_message;
  EXPECT_EQ(record->result.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(record->done_calls, 1);
  EXPECT_TRUE(RunUntil([&] { return server.service().slow_cancelled.load() >= 1; }));
  // The connection stays usable.
  auto next = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(next->result.code, absl::StatusCode::kOk);
  EXPECT_EQ(cluster.GetStats().connects_total, 1u);
}

TEST_F(UpstreamClusterTest, CancelResetsTheStream) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::SlowRequest message;
  message.set_delay_ms(10000);
  CallId id = 0;
  auto record = Start(cluster, Request("Slow", message), &id);
  EXPECT_NE(id, 0u);
  ASSERT_TRUE(RunUntil([&] { return server.service().slow_started.load() >= 1; }));
  cluster.Cancel(id);
  EXPECT_FALSE(record->done);  // Posted, never from inside Cancel().
  ASSERT_TRUE(RunUntil([&] { return record->done; }));
  EXPECT_EQ(record->result.outcome, CallOutcome::kCancelled);
  EXPECT_EQ(record->result.code, absl::StatusCode::kCancelled);
  EXPECT_TRUE(RunUntil([&] { return server.service().slow_cancelled.load() >= 1; }));
  cluster.Cancel(id);  // Finished: ignored.
  ioc_.run_for(20ms);
  EXPECT_EQ(record->done_calls, 1);
  EXPECT_EQ(cluster.GetStats().streams_active, 0u);
}

TEST_F(UpstreamClusterTest, CancelFromInsideOnMessage) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::StreamRequest message;
  message.set_count(1000);
  message.set_interval_ms(1);
  auto messages = std::make_shared<int>(0);
  auto result = std::make_shared<std::optional<GrpcResult>>();
  CallId id = 0;
  CallHandlers handlers;
  handlers.on_message = [&, messages](std::string) {
    if (++*messages == 2) cluster.Cancel(id);
  };
  handlers.on_done = [result](GrpcResult r) { *result = std::move(r); };
  id = cluster.Call(Request("StreamThings", message), std::move(handlers));
  ASSERT_TRUE(RunUntil([&] { return result->has_value(); }));
  EXPECT_EQ((*result)->outcome, CallOutcome::kCancelled);
  ioc_.run_for(50ms);
  EXPECT_EQ(*messages, 2);
  auto next = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(next->result.code, absl::StatusCode::kOk);
}

TEST_F(UpstreamClusterTest, ManyConcurrentCallsRespectServerStreamLimit) {
  TestServer server("127.0.0.1:0", /*max_concurrent_streams=*/10);
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  std::vector<std::shared_ptr<CallRecord>> records;
  v1::SlowRequest message;
  message.set_delay_ms(2);
  for (int i = 0; i < 200; ++i) records.push_back(Start(cluster, Request("Slow", message, 30s)));
  EXPECT_GT(cluster.GetStats().calls_pending, 0u);
  uint64_t max_streams = 0;
  ASSERT_TRUE(RunUntil([&] {
    max_streams = std::max(max_streams, cluster.GetStats().streams_active);
    return std::all_of(records.begin(), records.end(), [](const auto& r) { return r->done; });
  }));
  EXPECT_LE(max_streams, 10u);
  for (const auto& record : records) {
    EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
    EXPECT_EQ(record->messages.size(), 1u);
  }
  auto stats = cluster.GetStats();
  EXPECT_EQ(stats.calls_pending, 0u);
  EXPECT_EQ(stats.connects_total, 1u);  // One connection per endpoint by default.
}

TEST_F(UpstreamClusterTest, SecondConnectionWhenStreamsExhausted) {
  TestServer server("127.0.0.1:0", /*max_concurrent_streams=*/4);
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.address());
  options.connections_per_endpoint = 2;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  std::vector<std::shared_ptr<CallRecord>> records;
  v1::SlowRequest message;
  message.set_delay_ms(50);
  for (int i = 0; i < 40; ++i) records.push_back(Start(cluster, Request("Slow", message)));
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(records.begin(), records.end(), [](const auto& r) { return r->done; });
  }));
  for (const auto& record : records) EXPECT_EQ(record->result.code, absl::StatusCode::kOk);
  EXPECT_EQ(cluster.GetStats().connects_total, 2u);
  EXPECT_EQ(cluster.GetStats().ready, 2u);
}

TEST_F(UpstreamClusterTest, LargeRequestAndResponse) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::AllTypes big;
  std::string payload(16 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 % 251);
  big.set_f_bytes(payload);
  auto echo = Run(cluster, Request("Echo", big, 60s));
  ASSERT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
  ASSERT_EQ(echo->messages.size(), 1u);
  v1::AllTypes received;
  ASSERT_TRUE(received.ParseFromString(echo->messages[0]));
  EXPECT_TRUE(received.f_bytes() == payload);

  v1::BigRequest request;
  request.set_size(16 << 20);
  auto download = Run(cluster, Request("Big", request, 60s));
  ASSERT_EQ(download->result.code, absl::StatusCode::kOk) << download->result.grpc_message;
  ASSERT_EQ(download->messages.size(), 1u);
  v1::BigResponse response;
  ASSERT_TRUE(response.ParseFromString(download->messages[0]));
  EXPECT_EQ(response.data().size(), size_t{16} << 20);
}

TEST_F(UpstreamClusterTest, OversizedResponseIsResourceExhausted) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.address());
  options.max_response_bytes = 1 << 20;
  UpstreamCluster cluster(ioc_, options);
  v1::BigRequest request;
  request.set_size(2 << 20);
  auto record = Run(cluster, Request("Big", request));
  EXPECT_EQ(record->result.outcome, CallOutcome::kProtocolError);
  EXPECT_EQ(record->result.code, absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(record->messages.empty());
  request.set_size(1000);
  auto small = Run(cluster, Request("Big", request));
  EXPECT_EQ(small->result.code, absl::StatusCode::kOk);
}

TEST_F(UpstreamClusterTest, UnknownMethodIsUnimplemented) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  GrpcRequest request = Request("Echo", v1::AllTypes());
  request.path = "/tipperary.testing.v1.TestService/NoSuchMethod";
  auto record = Run(cluster, std::move(request));
  EXPECT_EQ(record->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(record->result.code, absl::StatusCode::kUnimplemented);
}

TEST_F(UpstreamClusterTest, ServerNotRunningFailsFastWithUnavailable) {
  int port = 0;
  {
    boost::asio::ip::tcp::acceptor acceptor(
        ioc_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  const std::string address = "127.0.0.1:" + std::to_string(port);
  UpstreamCluster cluster(ioc_, Options(address));
  cluster.Start();
  auto record = Start(cluster, Request("Echo", v1::AllTypes(), 10s));
  EXPECT_FALSE(record->done);
  ASSERT_TRUE(RunUntil([&] { return record->done; }));
  EXPECT_EQ(record->result.outcome, CallOutcome::kUnavailable);
  EXPECT_EQ(record->result.code, absl::StatusCode::kUnavailable);
  EXPECT_NE(record->result.grpc_message.find(address), std::string::npos)
      << record->result.grpc_message;
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().backoff == 1; }));
  // While backing off, calls fail at once (posted, not from inside Call()).
  auto fast = Start(cluster, Request("Echo", v1::AllTypes()));
  EXPECT_FALSE(fast->done);
  ASSERT_TRUE(RunUntil([&] { return fast->done; }));
  EXPECT_EQ(fast->result.outcome, CallOutcome::kUnavailable);
  EXPECT_GE(cluster.GetStats().connect_failures_total, 1u);
  EXPECT_FALSE(cluster.HasReadyConnection());
}

TEST_F(UpstreamClusterTest, ReconnectsAfterServerRestart) {
  auto first = std::make_unique<TestServer>("127.0.0.1:0");
  ASSERT_TRUE(first->ok());
  const std::string address = first->address();
  UpstreamCluster cluster(ioc_, Options(address));
  auto before = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(before->result.code, absl::StatusCode::kOk);

  first->Stop(std::chrono::system_clock::now());
  first.reset();
  ASSERT_TRUE(RunUntil([&] { return !cluster.HasReadyConnection(); }));

  TestServer second(address);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  auto after = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(after->result.code, absl::StatusCode::kOk) << after->result.grpc_message;
  EXPECT_GE(cluster.GetStats().connects_total, 2u);
}

TEST_F(UpstreamClusterTest, GoawayLetsInFlightCallFinish) {
  auto first = std::make_unique<TestServer>("127.0.0.1:0");
  ASSERT_TRUE(first->ok());
  const std::string address = first->address();
  UpstreamCluster cluster(ioc_, Options(address));
  v1::SlowRequest message;
  message.set_delay_ms(500);
  auto slow = Start(cluster, Request("Slow", message, 20s));
  ASSERT_TRUE(RunUntil([&] { return first->service().slow_started.load() >= 1; }));

  // Shutdown sends GOAWAY and waits for the in-flight call.
  std::thread stopper(
      [&] { first->Stop(std::chrono::system_clock::now() + std::chrono::seconds(5)); });
  bool finished = RunUntil([&] { return slow->done; });
  stopper.join();
  ASSERT_TRUE(finished);
  EXPECT_EQ(slow->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(slow->result.code, absl::StatusCode::kOk) << slow->result.grpc_message;
  ASSERT_EQ(slow->messages.size(), 1u);
  EXPECT_GE(cluster.GetStats().goaways_total, 1u);
  first.reset();

  TestServer second(address);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  auto next = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(next->result.code, absl::StatusCode::kOk) << next->result.grpc_message;
  EXPECT_GE(cluster.GetStats().connects_total, 2u);
}

TEST_F(UpstreamClusterTest, UnixSocketEndpoint) {
  static std::atomic<int> counter{0};
  const std::string path = "/tmp/tipperary-upstream-test-" + std::to_string(getpid()) + "-" +
                           std::to_string(counter++) + ".sock";
  std::remove(path.c_str());
  {
    TestServer server("unix:" + path);
    ASSERT_TRUE(server.ok());
    UpstreamCluster cluster(ioc_, Options("unix:" + path));
    v1::AllTypes sent = SampleAllTypes();
    auto record = Run(cluster, Request("Echo", sent, 5s));
    EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
    ASSERT_EQ(record->messages.size(), 1u);
    v1::AllTypes received;
    ASSERT_TRUE(received.ParseFromString(record->messages[0]));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(sent, received));
  }
  std::remove(path.c_str());
}

TEST_F(UpstreamClusterTest, KeepalivePingsAreAnswered) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.address());
  options.keepalive_interval = 20ms;
  options.keepalive_timeout = 5s;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().pings_sent_total >= 5; }));
  auto record = Run(cluster, Request("Echo", SampleAllTypes()));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  auto stats = cluster.GetStats();
  EXPECT_EQ(stats.keepalive_timeouts_total, 0u);
  EXPECT_EQ(stats.connects_total, 1u);
  EXPECT_EQ(stats.connect_failures_total, 0u);
  EXPECT_EQ(stats.goaways_total, 0u);
}

TEST_F(UpstreamClusterTest, ServerStreamingDeliversEveryMessage) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::StreamRequest message;
  message.set_count(25);
  auto record = Run(cluster, Request("StreamThings", message));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  ASSERT_EQ(record->messages.size(), 25u);
  for (size_t i = 0; i < record->messages.size(); ++i) {
    v1::Thing thing;
    ASSERT_TRUE(thing.ParseFromString(record->messages[i]));
    EXPECT_EQ(thing.name(), "thing-" + std::to_string(i));
  }

  message.set_count(10);
  message.set_fail_after(3);
  auto failing = Run(cluster, Request("StreamThings", message));
  EXPECT_EQ(failing->result.code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(failing->messages.size(), 3u);
}

TEST_F(UpstreamClusterTest, ShutdownFinishesInFlightAndRefusesNewCalls) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  v1::SlowRequest message;
  message.set_delay_ms(200);
  auto slow = Start(cluster, Request("Slow", message));
  ASSERT_TRUE(RunUntil([&] { return server.service().slow_started.load() >= 1; }));
  cluster.Shutdown();
  auto refused = Start(cluster, Request("Echo", v1::AllTypes()));
  EXPECT_FALSE(refused->done);
  ASSERT_TRUE(RunUntil([&] { return slow->done && refused->done; }));
  EXPECT_EQ(slow->result.code, absl::StatusCode::kOk) << slow->result.grpc_message;
  EXPECT_EQ(refused->result.outcome, CallOutcome::kUnavailable);
  ASSERT_TRUE(RunUntil([&] {
    auto stats = cluster.GetStats();
    return stats.ready + stats.draining + stats.connecting == 0;
  })) << cluster.GetStats().ready
      << " " << cluster.GetStats().draining << " " << cluster.GetStats().connecting << " "
      << cluster.GetStats().streams_active;
}

TEST_F(UpstreamClusterTest, DestroyingTheClusterWithCallsInFlightIsSafe) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  auto record = std::make_shared<CallRecord>();
  {
    UpstreamCluster cluster(ioc_, Options(server.address()));
    v1::SlowRequest message;
    message.set_delay_ms(5000);
    record = Start(cluster, Request("Slow", message, 10s));
    ASSERT_TRUE(RunUntil([&] { return server.service().slow_started.load() >= 1; }));
  }
  ioc_.run_for(50ms);
  EXPECT_FALSE(record->done);
}

}  // namespace
}  // namespace tipperary::upstream

namespace tipperary::upstream {
namespace {

std::string FramedThing(const std::string& name) {
  v1::Thing thing;
  thing.set_name(name);
  std::string framed;
  AppendGrpcFrame(0, thing.SerializeAsString(), &framed);
  return framed;
}

GrpcRequest StreamingRequest(const std::string& method) {
  GrpcRequest request;
  request.path = kServicePrefix + method;
  request.streaming = true;
  return request;
}

TEST_F(UpstreamClusterTest, AStreamingRequestSendsEachMessageAsItIsQueued) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamCluster cluster(ioc_, Options(server.address()));
  CallId id = 0;
  auto record = Start(cluster, StreamingRequest("EchoThings"), &id);
  // Each reply comes back before the next message is even queued: nothing waits for the end.
  for (int i = 0; i < 3; ++i) {
    std::string name = "m";
    name += std::to_string(i);
    ASSERT_TRUE(cluster.Send(id, FramedThing(name)));
    ASSERT_TRUE(RunUntil([&] { return record->messages.size() == static_cast<size_t>(i + 1); }));
  }
  EXPECT_FALSE(record->done);
  cluster.CloseSend(id);
  ASSERT_TRUE(RunUntil([&] { return record->done; }));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  v1::Thing last;
  ASSERT_TRUE(last.ParseFromString(record->messages[2]));
  EXPECT_EQ(last.name(), "m2");
  EXPECT_FALSE(cluster.Send(id, FramedThing("late"))) << "a finished call took more";
}

TEST_F(UpstreamClusterTest, ASlowServerHoldsTheSenderBackThroughItsWindow) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  server.service().collect_gate = false;
  UpstreamOptions options = Options(server.address());
  // Hang guards only: 32 MiB through grpc++ is slow under a sanitizer on a loaded machine.
  options.connect_timeout = 30s;
  UpstreamCluster cluster(ioc_, options);
  CallId id = 0;
  int drained = 0;
  auto record = std::make_shared<CallRecord>();
  CallHandlers handlers;
  handlers.on_message = [record](std::string m) { record->messages.push_back(std::move(m)); };
  handlers.on_done = [record](GrpcResult r) {
    record->result = std::move(r);
    record->done = true;
  };
  handlers.on_send_drained = [&drained] { ++drained; };
  id = cluster.Call(StreamingRequest("CollectThings"), std::move(handlers));
  const std::string name(256 * 1024 - 16, 'n');
  constexpr int kMessages = 128;  // 32 MiB: more than any window the server opens unread.
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(cluster.Send(id, FramedThing(name)));
  cluster.CloseSend(id);
  RunUntil([] { return false; }, 1s);
  const size_t held = cluster.send_buffered(id);
  EXPECT_GT(held, size_t{8} << 20) << "the server took what it never read";
  EXPECT_EQ(drained, 0);
  server.service().collect_gate = true;
  ASSERT_TRUE(RunUntil([&] { return record->done; }, 300s));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  EXPECT_EQ(drained, 1);
  v1::ListThingsResponse response;
  ASSERT_EQ(record->messages.size(), 1u);
  ASSERT_TRUE(response.ParseFromString(record->messages[0]));
  EXPECT_EQ(response.things_size(), kMessages);
  EXPECT_EQ(response.next_page_token(), std::to_string(int64_t{kMessages} * name.size()));
}

TEST_F(UpstreamClusterTest, APausedCallHoldsTheServerBackUntilResumed) {
  TestServer server("127.0.0.1:0");
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options(server.address());
  options.initial_window_size = 65535;
  UpstreamCluster cluster(ioc_, options);
  v1::StreamRequest message;
  constexpr int kCount = 20000;  // About 400 KB: several windows.
  message.set_count(kCount);
  CallId id = 0;
  auto record = std::make_shared<CallRecord>();
  CallHandlers handlers;
  handlers.on_message = [&, record](std::string m) {
    if (record->messages.empty()) cluster.PauseReceive(id, true);  // From inside, as the proxy.
    record->messages.push_back(std::move(m));
  };
  handlers.on_done = [record](GrpcResult r) {
    record->result = std::move(r);
    record->done = true;
  };
  id = cluster.Call(Request("StreamThings", message), std::move(handlers));
  ASSERT_TRUE(RunUntil([&] { return !record->messages.empty(); }));
  RunUntil([] { return false; }, 1s);
  const size_t while_paused = record->messages.size();
  EXPECT_LT(while_paused, size_t{kCount} / 2) << "the server sent on past a window";
  EXPECT_FALSE(record->done);
  // Other calls on the same connection are not held back by the paused one.
  auto echo = Run(cluster, Request("Echo", SampleAllTypes(), 5s));
  EXPECT_EQ(echo->result.code, absl::StatusCode::kOk) << echo->result.grpc_message;
  cluster.PauseReceive(id, false);
  ASSERT_TRUE(RunUntil([&] { return record->done; }));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  EXPECT_EQ(record->messages.size(), size_t{kCount});
}

}  // namespace
}  // namespace tipperary::upstream
