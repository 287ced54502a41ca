// grpc.reflection.v1 (server_reflection.h) against grpc++ 1.51's own v1alpha plugin on the same
// real server: every kind of question gets the same answer from both, byte for byte.
#include "tipperary/worker/server_reflection.h"

#include <gmock/gmock.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "test_service_impl.h"

namespace tipperary::worker {
namespace {

namespace refl = ::grpc::reflection::v1;
using ::testing::Contains;

std::unique_ptr<grpc::Server> StartServer(bool v1, bool v1alpha, testing::TestServiceImpl* service,
                                          int* port) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  AddServerReflection(builder, {.v1 = v1, .v1alpha = v1alpha});
  return builder.BuildAndStart();
}

// One reflection stream: each request in turn, its response read before the next is sent.
// `method` is either version's path: the messages are the same on the wire.
grpc::Status Ask(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                 const std::vector<refl::ServerReflectionRequest>& requests,
                 std::vector<refl::ServerReflectionResponse>* responses) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  std::unique_ptr<
      grpc::ClientReaderWriter<refl::ServerReflectionRequest, refl::ServerReflectionResponse>>
      stream(grpc::internal::ClientReaderWriterFactory<
             refl::ServerReflectionRequest, refl::ServerReflectionResponse>::Create(channel.get(),
                                                                                    rpc, &context));
  for (const refl::ServerReflectionRequest& request : requests) {
    if (!stream->Write(request)) break;
    refl::ServerReflectionResponse response;
    if (!stream->Read(&response)) break;
    responses->push_back(response);
  }
  stream->WritesDone();
  return stream->Finish();
}

// The files of a response by name (in order), or the rest of it; for failure messages.
std::string Summary(const refl::ServerReflectionResponse& response) {
  if (!response.has_file_descriptor_response()) return response.ShortDebugString();
  std::string names;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    file.ParseFromString(bytes);
    names += file.name() + " (" + std::to_string(bytes.size()) + " bytes) ";
  }
  return names;
}

constexpr char kV1[] = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
constexpr char kV1alpha[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

std::vector<refl::ServerReflectionRequest> EveryKindOfQuestion() {
  std::vector<refl::ServerReflectionRequest> requests(12);
  requests[0].set_list_services("*");
  requests[1].set_file_containing_symbol("tipperary.testing.v1.TestService");
  requests[2].set_file_containing_symbol("tipperary.testing.v1.Nested");
  requests[3].set_file_by_filename("tipperary/testing/v1/test_service.proto");
  requests[4].set_file_by_filename("no/such/file.proto");
  requests[5].set_file_containing_symbol("no.such.Symbol");
  requests[6].mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.MethodOptions");
  requests[6].mutable_file_containing_extension()->set_extension_number(72295728);  // api.http
  requests[7].mutable_file_containing_extension()->set_containing_type("no.such.Type");
  requests[8].mutable_file_containing_extension()->set_containing_type(
      "google.protobuf.MethodOptions");
  requests[8].mutable_file_containing_extension()->set_extension_number(1);
  requests[9].set_all_extension_numbers_of_type("google.protobuf.MethodOptions");
  requests[10].set_all_extension_numbers_of_type("no.such.Type");
  requests[11].set_host("example.test");  // No question at all.
  return requests;
}

TEST(ServerReflectionTest, V1OnlyServerAnswersV1AndNotV1alpha) {
  testing::TestServiceImpl service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(true, false, &service, &port);
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  std::vector<refl::ServerReflectionResponse> v1, v1alpha;
  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(Ask(channel, kV1, {list}, &v1).ok());
  ASSERT_EQ(v1.size(), 1u);
  std::vector<std::string> names;
  for (const auto& s : v1[0].list_services_response().service()) names.push_back(s.name());
  EXPECT_THAT(names, Contains("tipperary.testing.v1.TestService"));
  EXPECT_THAT(names, Contains("grpc.reflection.v1.ServerReflection"));
  EXPECT_THAT(names, ::testing::Not(Contains("grpc.reflection.v1alpha.ServerReflection")));
  EXPECT_EQ(Ask(channel, kV1alpha, {list}, &v1alpha).error_code(), grpc::StatusCode::UNIMPLEMENTED);

  // The generated stub works as any client's would.
  auto stub = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  refl::ServerReflectionRequest request;
  request.set_file_containing_symbol("tipperary.testing.v1.TestService");
  ASSERT_TRUE(stream->Write(request));
  refl::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_GE(response.file_descriptor_response().file_descriptor_proto_size(), 1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "tipperary/testing/v1/test_service.proto");
  EXPECT_EQ(response.original_request().file_containing_symbol(),
            "tipperary.testing.v1.TestService");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  server->Shutdown();
}

TEST(ServerReflectionTest, V1alphaOnlyServerIsGrpcsOwn) {
  testing::TestServiceImpl service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(false, true, &service, &port);
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  refl::ServerReflectionRequest list;
  list.set_list_services("");
  std::vector<refl::ServerReflectionResponse> v1, v1alpha;
  EXPECT_EQ(Ask(channel, kV1, {list}, &v1).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  ASSERT_TRUE(Ask(channel, kV1alpha, {list}, &v1alpha).ok());
  ASSERT_EQ(v1alpha.size(), 1u);
  std::vector<std::string> names;
  for (const auto& s : v1alpha[0].list_services_response().service()) names.push_back(s.name());
  EXPECT_THAT(names, Contains("grpc.reflection.v1alpha.ServerReflection"));
  EXPECT_THAT(names, ::testing::Not(Contains("grpc.reflection.v1.ServerReflection")));
  server->Shutdown();
}

TEST(ServerReflectionTest, V1AnswersEveryQuestionAsGrpcsV1alphaDoes) {
  testing::TestServiceImpl service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(true, true, &service, &port);
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  const std::vector<refl::ServerReflectionRequest> requests = EveryKindOfQuestion();
  // One question per stream, as tipperary-proxy asks (grpc++ 1.51's v1alpha repeats an earlier
  // answer's files in later answers on the same stream; v1 does not, see below).
  std::vector<refl::ServerReflectionResponse> v1, v1alpha;
  for (const refl::ServerReflectionRequest& request : requests) {
    ASSERT_TRUE(Ask(channel, kV1, {request}, &v1).ok());
    ASSERT_TRUE(Ask(channel, kV1alpha, {request}, &v1alpha).ok());
  }
  ASSERT_EQ(v1.size(), requests.size());
  ASSERT_EQ(v1alpha.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE(v1[i].SerializeAsString() == v1alpha[i].SerializeAsString())
        << "question " << i << ": " << requests[i].ShortDebugString() << "\nv1: " << Summary(v1[i])
        << "\nv1alpha: " << Summary(v1alpha[i]);
  }
  // All on one stream, v1 answers each question with its own files only.
  std::vector<refl::ServerReflectionResponse> one_stream;
  ASSERT_TRUE(Ask(channel, kV1, requests, &one_stream).ok());
  ASSERT_EQ(one_stream.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE(one_stream[i].SerializeAsString() == v1[i].SerializeAsString())
        << "question " << i << ": " << Summary(one_stream[i]);
  }
  // The answers are real ones, not two identical failures.
  std::vector<std::string> names;
  for (const auto& s : v1[0].list_services_response().service()) names.push_back(s.name());
  EXPECT_THAT(names, Contains("grpc.reflection.v1.ServerReflection"));
  EXPECT_THAT(names, Contains("grpc.reflection.v1alpha.ServerReflection"));
  EXPECT_THAT(names, Contains("tipperary.testing.v1.TestService"));
  EXPECT_TRUE(v1[1].has_file_descriptor_response());
  EXPECT_GE(v1[3].file_descriptor_response().file_descriptor_proto_size(), 2);  // With imports.
  EXPECT_EQ(v1[4].error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(v1[5].error_response().error_message(), "Symbol not found.");
  EXPECT_TRUE(v1[6].has_file_descriptor_response());
  EXPECT_EQ(v1[7].error_response().error_message(), "Type not found.");
  EXPECT_EQ(v1[8].error_response().error_message(), "Extension not found.");
  EXPECT_THAT(v1[9].all_extension_numbers_response().extension_number(), Contains(72295728));
  EXPECT_EQ(v1[11].error_response().error_code(),
            static_cast<int>(grpc::StatusCode::UNIMPLEMENTED));
  EXPECT_EQ(v1[11].valid_host(), "example.test");
  server->Shutdown();
}

}  // namespace
}  // namespace tipperary::worker
