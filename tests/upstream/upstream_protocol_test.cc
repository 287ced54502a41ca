// UpstreamCluster against a scripted HTTP/2 server (fake_h2_server.h) for what a well-behaved
// grpc++ server never does: non-gRPC answers, broken framing, refused streams, GOAWAY before
// processing, unanswered PINGs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_h2_server.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;

using test_support::FakeH2Server;

struct Outcome {
  bool done = false;
  GrpcResult result;
  std::vector<std::string> messages;
  int headers_calls = 0;
};

class UpstreamProtocolTest : public ::testing::Test {
 protected:
  std::shared_ptr<Outcome> Run(const std::string& address, const std::string& message,
                               std::optional<std::chrono::nanoseconds> timeout = std::nullopt,
                               UpstreamOptions* custom = nullptr) {
    UpstreamOptions options;
    if (custom != nullptr) options = *custom;
    options.name = "fake";
    options.endpoints = {*common::ParseEndpoint(address)};
    if (custom == nullptr) options.keepalive_interval = 0s;
    if (!cluster_) cluster_ = std::make_unique<UpstreamCluster>(ioc_, options);
    auto outcome = std::make_shared<Outcome>();
    GrpcRequest request;
    request.path = "/fake.Service/Method";
    request.message = message;
    request.timeout = timeout;
    CallHandlers handlers;
    handlers.on_headers = [outcome](const Metadata&) { ++outcome->headers_calls; };
    handlers.on_message = [outcome](std::string m) { outcome->messages.push_back(std::move(m)); };
    handlers.on_done = [outcome](GrpcResult r) {
      outcome->result = std::move(r);
      outcome->done = true;
    };
    cluster_->Call(std::move(request), std::move(handlers));
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!outcome->done && std::chrono::steady_clock::now() < deadline) ioc_.run_for(2ms);
    EXPECT_TRUE(outcome->done) << "call did not finish";
    return outcome;
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
  std::unique_ptr<UpstreamCluster> cluster_;
};

TEST_F(UpstreamProtocolTest, EchoThroughFakeServer) {
  FakeH2Server server(FakeH2Server::Mode::kEcho);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kOk);
  EXPECT_EQ(outcome->result.grpc_message, "all good");
  ASSERT_EQ(outcome->messages.size(), 1u);
  EXPECT_EQ(outcome->messages[0], "payload");
  ASSERT_EQ(outcome->result.trailers.size(), 1u);
  EXPECT_EQ(outcome->result.trailers[0].first, "x-trailer");
}

TEST_F(UpstreamProtocolTest, NonGrpcAnswerMapsHttpStatus) {
  FakeH2Server server(FakeH2Server::Mode::kHttp503);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(outcome->result.http_status, 503);
  EXPECT_TRUE(outcome->messages.empty());
  EXPECT_EQ(outcome->headers_calls, 0);
}

TEST_F(UpstreamProtocolTest, MissingGrpcStatusIsProtocolError) {
  FakeH2Server server(FakeH2Server::Mode::kNoGrpcStatus);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kProtocolError);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kInternal);
}

TEST_F(UpstreamProtocolTest, CompressedMessageIsProtocolError) {
  FakeH2Server server(FakeH2Server::Mode::kCompressed);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kProtocolError);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kInternal);
  EXPECT_TRUE(outcome->messages.empty());
}

TEST_F(UpstreamProtocolTest, MessagesSplitAcrossFramesAreReassembled) {
  FakeH2Server server(FakeH2Server::Mode::kSplit);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kOk);
  ASSERT_EQ(outcome->messages.size(), 3u);
  EXPECT_EQ(outcome->messages[0], "first");
  EXPECT_EQ(outcome->messages[1], "");
  EXPECT_EQ(outcome->messages[2], std::string(100, 'x'));
}

TEST_F(UpstreamProtocolTest, TrailersOnlyResponse) {
  FakeH2Server server(FakeH2Server::Mode::kTrailersOnly);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kGrpc);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(outcome->result.grpc_message, "denied");
  EXPECT_EQ(outcome->headers_calls, 0);
  ASSERT_EQ(outcome->result.trailers.size(), 1u);
  EXPECT_EQ(outcome->result.trailers[0].second, "only");
}

TEST_F(UpstreamProtocolTest, GoawayBeforeProcessingRetriesOnNewConnection) {
  FakeH2Server server(FakeH2Server::Mode::kGoawayFirst);
  auto outcome = Run(server.address(), "payload", 10s);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kOk) << outcome->result.grpc_message;
  ASSERT_EQ(outcome->messages.size(), 1u);
  EXPECT_EQ(server.connections(), 2);
  auto stats = cluster_->GetStats();
  EXPECT_EQ(stats.goaways_total, 1u);
  EXPECT_EQ(stats.retries_total, 1u);
}

TEST_F(UpstreamProtocolTest, RefusedStreamIsRetried) {
  FakeH2Server server(FakeH2Server::Mode::kRefuseFirst);
  auto outcome = Run(server.address(), "payload");
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kOk) << outcome->result.grpc_message;
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(cluster_->GetStats().retries_total, 1u);
}

TEST_F(UpstreamProtocolTest, UnansweredPingClosesTheConnection) {
  FakeH2Server server(FakeH2Server::Mode::kSilent);
  UpstreamOptions options;
  options.keepalive_interval = 20ms;
  options.keepalive_timeout = 100ms;
  auto outcome = Run(server.address(), "payload", std::nullopt, &options);
  EXPECT_EQ(outcome->result.outcome, CallOutcome::kUnavailable);
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kUnavailable);
  EXPECT_NE(outcome->result.grpc_message.find("PING"), std::string::npos)
      << outcome->result.grpc_message;
  EXPECT_GE(cluster_->GetStats().keepalive_timeouts_total, 1u);
}

TEST_F(UpstreamProtocolTest, TooManyPingsGoawayDoublesTheKeepaliveInterval) {
  FakeH2Server server(FakeH2Server::Mode::kCalmOnPing);
  UpstreamOptions options;
  options.name = "fake";
  options.endpoints = {*common::ParseEndpoint(server.address())};
  options.keepalive_interval = 20ms;
  cluster_ = std::make_unique<UpstreamCluster>(ioc_, options);
  cluster_->Start();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (cluster_->GetStats().goaways_total < 1 && std::chrono::steady_clock::now() < deadline) {
    ioc_.run_for(2ms);
  }
  EXPECT_GE(cluster_->GetStats().goaways_total, 1u);
  EXPECT_GE(cluster_->GetStats().keepalive_interval_ms, 40u);
  // Still usable: a replacement connection carries the next call.
  auto outcome = Run(server.address(), "after");
  EXPECT_EQ(outcome->result.code, absl::StatusCode::kOk) << outcome->result.grpc_message;
}

}  // namespace
}  // namespace tipperary::upstream
