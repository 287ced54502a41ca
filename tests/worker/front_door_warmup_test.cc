// The worker's own Embed through its gRPC port before ready (front_door_warmup.h): the target it
// dials, the call against a real worker, its failures, and that a worker becomes ready with it
// or without it (warmup_request_timeout).
#include "front_door_warmup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "worker_test_util.h"

namespace tipperary::worker {
namespace {

using test_util::HttpGet;
using test_util::kModel;
using test_util::StartServer;
using test_util::TestConfig;

// tipperary_worker_requests_total's value for the model with code OK in a /metrics body, else 0.
double OkRequests(const std::string& metrics) {
  const std::string series =
      std::string("tipperary_worker_requests_total{code=\"OK\",model=\"") + kModel + "\"} ";
  const size_t at = metrics.find(series);
  return at == std::string::npos ? 0 : std::stod(metrics.substr(at + series.size()));
}

common::Endpoint Tcp(std::string host, uint16_t port) {
  common::Endpoint endpoint;
  endpoint.host = std::move(host);
  endpoint.port = port;
  return endpoint;
}

TEST(SelfTargetTest, AWildcardHostIsDialledOnLoopback) {
  EXPECT_EQ(SelfTarget(Tcp("0.0.0.0", 50051)), "127.0.0.1:50051");
  EXPECT_EQ(SelfTarget(Tcp("", 50051)), "127.0.0.1:50051");
  EXPECT_EQ(SelfTarget(Tcp("::", 50051)), "[::1]:50051");
  EXPECT_EQ(SelfTarget(Tcp("10.1.2.3", 7)), "10.1.2.3:7");
  EXPECT_EQ(SelfTarget(Tcp("fd00::5", 7)), "[fd00::5]:7");
  common::Endpoint unix_socket;
  unix_socket.kind = common::Endpoint::Kind::kUnix;
  unix_socket.path = "/run/tipperary/worker.sock";
  EXPECT_EQ(SelfTarget(unix_socket), "unix:/run/tipperary/worker.sock");
}

TEST(FrontDoorWarmupTest, EmbedsThroughTheWorkersPortAndCountsAsARequest) {
  std::unique_ptr<WorkerServer> server = StartServer(TestConfig());  // warmup: minimal
  ASSERT_NE(server, nullptr);
  const double before = OkRequests(HttpGet(server->admin_address(), "/metrics").second);
  EXPECT_EQ(before, 0) << "warmup: minimal sends no front-door request";
  EXPECT_TRUE(WarmFrontDoor(server->grpc_address(), {kModel}, std::chrono::seconds(30)).ok());
  EXPECT_EQ(OkRequests(HttpGet(server->admin_address(), "/metrics").second), before + 1);
  server->Shutdown();
}

TEST(FrontDoorWarmupTest, AFailedCallNamesTheModel) {
  std::unique_ptr<WorkerServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  const absl::Status status =
      WarmFrontDoor(server->grpc_address(), {kModel, "no-such-model"}, std::chrono::seconds(30));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("model no-such-model: "), std::string::npos) << status;
  server->Shutdown();
}

TEST(FrontDoorWarmupTest, NothingListeningFailsWithinTheTimeout) {
  // A listener started and stopped: its port is closed (nothing else binds it this soon).
  std::string address;
  {
    std::unique_ptr<WorkerServer> server = StartServer(TestConfig(), /*load=*/false);
    ASSERT_NE(server, nullptr);
    address = server->grpc_address();
    server->Shutdown();
  }
  const absl::Status status = WarmFrontDoor(address, {kModel}, std::chrono::milliseconds(300));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
}

// warmup: all on a small batching config (14 buckets, as in test_worker_e2e.py), so that the
// front-door request runs at LoadModels; then again with it switched off.
config::WorkerConfig FullWarmupConfig() {
  config::WorkerConfig config = TestConfig();
  config.models[0].warmup = "all";
  config.models[0].max_seq_length = 32;
  config.batching.max_batch_size = 4;
  config.batching.max_batch_tokens = 64;
  return config;
}

TEST(FrontDoorWarmupTest, WarmupAllSendsOneRequestPerModelBeforeReady) {
  std::unique_ptr<WorkerServer> server = StartServer(FullWarmupConfig());
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->ready());
  EXPECT_EQ(OkRequests(HttpGet(server->admin_address(), "/metrics").second), 1);
  server->Shutdown();
}

TEST(FrontDoorWarmupTest, ATimeoutOfZeroSendsNone) {
  config::WorkerConfig config = FullWarmupConfig();
  config.warmup_request_timeout = config::Duration::zero();
  std::unique_ptr<WorkerServer> server = StartServer(std::move(config));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->ready());
  EXPECT_EQ(OkRequests(HttpGet(server->admin_address(), "/metrics").second), 0);
  server->Shutdown();
}

}  // namespace
}  // namespace tipperary::worker
