// Checks the test backend itself, so the proxy's integration tests can trust what it reports:
// the service in-process through a real grpc++ channel, and the binary (listening line, SIGTERM).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "test_service_impl.h"

extern char** environ;

namespace tipperary::testing {
namespace {

using v1::TestService;

class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    stub_ = TestService::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  static void WithTimeout(grpc::ClientContext& context, int seconds = 10) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  TestServiceImpl service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TestService::Stub> stub_;
};

TEST_F(BackendTest, EchoReturnsTheRequest) {
  v1::AllTypes request;
  request.set_f_int64(-42);
  request.set_f_string("hi");
  request.add_r_enum(v1::BLUE);
  (*request.mutable_m_string_int64())["a"] = 1;
  v1::AllTypes response;
  grpc::ClientContext context;
  WithTimeout(context);
  ASSERT_TRUE(stub_->Echo(&context, request, &response).ok());
  EXPECT_EQ(response.SerializeAsString(), request.SerializeAsString());
}

TEST_F(BackendTest, GetThingReportsTheRequestAsJson) {
  v1::GetThingRequest request;
  request.set_name("shelves/1/things/2");
  request.set_page_size(7);
  request.mutable_filter()->set_name("f");
  v1::Thing thing;
  grpc::ClientContext context;
  WithTimeout(context);
  ASSERT_TRUE(stub_->GetThing(&context, request, &thing).ok());
  EXPECT_EQ(thing.name(), "shelves/1/things/2");
  EXPECT_EQ(thing.parent(), "shelves/1");
  EXPECT_EQ(thing.received_json(),
            R"({"name":"shelves/1/things/2","filter":{"name":"f"},"page_size":"7"})");
}

TEST_F(BackendTest, UpdateThingEchoesTheMask) {
  v1::UpdateThingRequest request;
  request.mutable_thing()->set_name("shelves/1/things/2");
  request.mutable_update_mask()->add_paths("display_name");
  v1::Thing thing;
  grpc::ClientContext context;
  WithTimeout(context);
  ASSERT_TRUE(stub_->UpdateThing(&context, request, &thing).ok());
  ASSERT_EQ(thing.update_mask().paths_size(), 1);
  EXPECT_EQ(thing.update_mask().paths(0), "display_name");
}

TEST_F(BackendTest, ListThingsReturnsPageSizeThings) {
  v1::ListThingsRequest request;
  request.set_parent("shelves/3");
  request.set_page_size(4);
  v1::ListThingsResponse response;
  grpc::ClientContext context;
  WithTimeout(context);
  ASSERT_TRUE(stub_->ListThings(&context, request, &response).ok());
  ASSERT_EQ(response.things_size(), 4);
  EXPECT_EQ(response.things(3).name(), "shelves/3/things/3");
}

TEST_F(BackendTest, FailCarriesRichDetails) {
  v1::FailRequest request;
  request.set_code(static_cast<int>(grpc::StatusCode::NOT_FOUND));
  request.set_message("nope");
  request.set_with_details(true);
  google::protobuf::Empty response;
  grpc::ClientContext context;
  WithTimeout(context);
  grpc::Status status = stub_->Fail(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "nope");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), 5);
  ASSERT_EQ(details.details_size(), 5);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "TEST_FAILURE");
  EXPECT_EQ(info.metadata().at("k"), "v");
  v1::CustomDetail custom;
  ASSERT_TRUE(details.details(4).UnpackTo(&custom));
  EXPECT_EQ(custom.attempt(), 3);
}

TEST_F(BackendTest, FailWithoutDetailsHasNone) {
  v1::FailRequest request;
  request.set_code(static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  request.set_message("denied");
  google::protobuf::Empty response;
  grpc::ClientContext context;
  WithTimeout(context);
  grpc::Status status = stub_->Fail(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(status.error_details().empty());
}

TEST_F(BackendTest, MetadataReportsClientMetadataAndSendsHeadersAndTrailers) {
  v1::MetadataRequest request;
  (*request.mutable_response_headers())["x-head"] = "h";
  (*request.mutable_response_trailers())["x-trail"] = "t";
  v1::MetadataResponse response;
  grpc::ClientContext context;
  WithTimeout(context);
  context.AddMetadata("x-custom", "c1");
  context.AddMetadata("authorization", "Bearer abc");
  context.AddMetadata("x-binary-bin", "\x01\x02");
  ASSERT_TRUE(stub_->Metadata(&context, request, &response).ok());
  EXPECT_EQ(response.received().at("x-custom"), "c1");
  EXPECT_EQ(response.received().at("authorization"), "Bearer abc");
  // "-bin" values as the bytes the server got, base64 (padded) so a string field holds them.
  EXPECT_EQ(response.received().at("x-binary-bin"), "AQI=");
  EXPECT_EQ(response.received().count("user-agent"), 0u);
  for (const auto& [key, value] : response.received()) {
    EXPECT_FALSE(key.starts_with("grpc-")) << key;
  }
  auto head = context.GetServerInitialMetadata().find("x-head");
  ASSERT_NE(head, context.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(head->second.data(), head->second.size()), "h");
  auto trail = context.GetServerTrailingMetadata().find("x-trail");
  ASSERT_NE(trail, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(trail->second.data(), trail->second.size()), "t");
}

TEST_F(BackendTest, SlowSleeps) {
  v1::SlowRequest request;
  request.set_delay_ms(20);
  v1::SlowResponse response;
  grpc::ClientContext context;
  WithTimeout(context);
  ASSERT_TRUE(stub_->Slow(&context, request, &response).ok());
  EXPECT_GE(response.slept_ms(), 20);
  EXPECT_FALSE(response.cancelled());
}

TEST_F(BackendTest, SlowNoticesTheDeadline) {
  v1::SlowRequest request;
  request.set_delay_ms(60000);
  v1::SlowResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  EXPECT_EQ(stub_->Slow(&context, request, &response).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // Hang guard only: the server notices within a few milliseconds.
  for (int i = 0; i < 2000 && service_.cancelled_calls() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(service_.cancelled_calls(), 1);
}

TEST_F(BackendTest, StreamThingsFailsAfterFailAfter) {
  v1::StreamRequest request;
  request.set_count(5);
  request.set_fail_after(2);
  grpc::ClientContext context;
  WithTimeout(context);
  auto reader = stub_->StreamThings(&context, request);
  v1::Thing thing;
  int received = 0;
  while (reader->Read(&thing)) ++received;
  EXPECT_EQ(received, 2);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(BackendTest, StreamThingsSendsCount) {
  v1::StreamRequest request;
  request.set_count(3);
  grpc::ClientContext context;
  WithTimeout(context);
  auto reader = stub_->StreamThings(&context, request);
  v1::Thing thing;
  int received = 0;
  while (reader->Read(&thing)) EXPECT_EQ(thing.size(), received++);
  EXPECT_EQ(received, 3);
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(BackendTest, UploadDownloadAndBig) {
  google::api::HttpBody body;
  body.set_content_type("image/png");
  body.set_data(std::string("\x89PNG\0\1", 6));
  v1::UploadResponse uploaded;
  {
    grpc::ClientContext context;
    WithTimeout(context);
    ASSERT_TRUE(stub_->Upload(&context, body, &uploaded).ok());
  }
  EXPECT_EQ(uploaded.content_type(), "image/png");
  EXPECT_EQ(uploaded.size(), 6);
  EXPECT_EQ(uploaded.data(), body.data());

  v1::DownloadRequest download;
  download.set_text("hello");
  google::api::HttpBody downloaded;
  {
    grpc::ClientContext context;
    WithTimeout(context);
    ASSERT_TRUE(stub_->Download(&context, download, &downloaded).ok());
  }
  EXPECT_EQ(downloaded.content_type(), "text/plain");
  EXPECT_EQ(downloaded.data(), "hello");
}

TEST_F(BackendTest, BigSendsMoreThanTheDefaultMessageLimit) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = TestService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials(), args));
  v1::BigRequest big;
  big.set_size(5 << 20);
  v1::BigResponse response;
  grpc::ClientContext context;
  WithTimeout(context, 30);
  ASSERT_TRUE(stub->Big(&context, big, &response).ok());
  EXPECT_EQ(response.data().size(), 5u << 20);
  EXPECT_EQ(response.size(), 5 << 20);
}

// Runs the real binary: it must announce its port, serve, and exit 0 on SIGTERM.
TEST(BackendBinaryTest, AnnouncesPortAndExitsCleanlyOnSigterm) {
  int out_pipe[2];
  ASSERT_EQ(::pipe(out_pipe), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
  // A connected client (even idle) holds a graceful shutdown until its deadline: keep it short.
  const char* argv[] = {TIPPERARY_BACKEND_BIN, "--address", "127.0.0.1:0",
                        "--shutdown-grace-ms", "300",       nullptr};
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, TIPPERARY_BACKEND_BIN, &actions, nullptr,
                        const_cast<char* const*>(argv), environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);

  std::string line;
  char c = 0;
  while (::read(out_pipe[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(out_pipe[0]);
  const std::string prefix = R"({"msg":"listening","name":"grpc","address":")";
  ASSERT_TRUE(line.starts_with(prefix)) << line;
  std::string address = line.substr(prefix.size(), line.size() - prefix.size() - 2);
  ASSERT_TRUE(address.starts_with("127.0.0.1:")) << address;
  ASSERT_NE(address, "127.0.0.1:0");

  auto stub =
      TestService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::AllTypes request;
  request.set_f_string("binary");
  v1::AllTypes response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  EXPECT_TRUE(stub->Echo(&context, request, &response).ok());
  EXPECT_EQ(response.f_string(), "binary");

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace tipperary::testing
