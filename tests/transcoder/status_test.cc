#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "test_schema.h"
#include "tipperary/common/status_json.h"
#include "tipperary/testing/v1/test_service.pb.h"
#include "tipperary/transcoder/status_mapping.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {
namespace {

using ::testing::HasSubstr;

TEST(StatusMapping, AllCodes) {
  const std::pair<int, int> table[] = {{0, 200},  {1, 499},  {2, 500},  {3, 400},  {4, 504},
                                       {5, 404},  {6, 409},  {7, 403},  {8, 429},  {9, 400},
                                       {10, 409}, {11, 400}, {12, 501}, {13, 500}, {14, 503},
                                       {15, 500}, {16, 401}, {17, 500}, {-1, 500}, {999, 500}};
  for (auto [grpc, http] : table) EXPECT_EQ(GrpcCodeToHttpStatus(grpc), http) << grpc;
  EXPECT_EQ(GrpcCodeName(0), "OK");
  EXPECT_EQ(GrpcCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(42), "UNKNOWN");
  EXPECT_EQ(AbslCodeToGrpcCode(absl::StatusCode::kInvalidArgument), 3);
  EXPECT_EQ(AbslCodeToGrpcCode(absl::StatusCode::kUnauthenticated), 16);
  EXPECT_EQ(AbslCodeToGrpcCode(absl::StatusCode::kOk), 0);
  EXPECT_EQ(AbslCodeToGrpcCode(static_cast<absl::StatusCode>(77)), 2);
}

TEST(StatusJson, CommonRenderingHasNoSchema) {
  EXPECT_EQ(common::StatusJson(absl::StatusCode::kNotFound, "no \"route\"\xff"),
            "{\"code\":5,\"message\":\"no \\\"route\\\"\\ufffd\",\"details\":[]}");
}

std::string DetailsBin() {
  google::rpc::Status st;
  st.set_code(9);
  st.set_message("ignored: the given code/message win");
  google::rpc::ErrorInfo info;
  info.set_reason("R");
  info.set_domain("d.example");
  (*info.mutable_metadata())["k"] = "v";
  st.add_details()->PackFrom(info);
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field("page_size");
  v->set_description("too big");
  st.add_details()->PackFrom(bad);
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(2);
  st.add_details()->PackFrom(retry);
  google::rpc::DebugInfo debug;
  debug.add_stack_entries("frame");
  debug.set_detail("dbg");
  st.add_details()->PackFrom(debug);
  tipperary::testing::v1::CustomDetail custom;
  custom.set_note("n");
  custom.set_attempt(3);
  st.add_details()->PackFrom(custom);
  auto* unknown = st.add_details();
  unknown->set_type_url("type.googleapis.com/x.Unknown");
  unknown->set_value("\x01\x02");
  return st.SerializeAsString();
}

TEST(StatusJson, DecodesDetails) {
  Transcoder t(testing::TestSchema(), TranscoderOptions{});
  std::string json = t.StatusJson(absl::StatusCode::kInvalidArgument, "bad", DetailsBin(), false);
  EXPECT_EQ(json.rfind("{\"code\":3,\"message\":\"bad\",\"details\":[", 0), 0u) << json;
  for (
      const char* piece :
      {R"({"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"R","domain":"d.example","metadata":{"k":"v"}})",
       R"({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"page_size","description":"too big"}]})",
       R"({"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"})",
       R"({"@type":"type.googleapis.com/google.rpc.DebugInfo","stackEntries":["frame"],"detail":"dbg"})",
       R"({"@type":"type.googleapis.com/tipperary.testing.v1.CustomDetail","note":"n","attempt":"3"})",
       R"({"@type":"type.googleapis.com/x.Unknown","value":"AQI="})"}) {
    EXPECT_THAT(json, HasSubstr(piece));
  }
  EXPECT_EQ(json.substr(json.size() - 2), "]}");

  std::string pretty = t.StatusJson(absl::StatusCode::kInvalidArgument, "bad", DetailsBin(), true);
  EXPECT_THAT(pretty,
              HasSubstr("{\n \"code\": 3,\n \"message\": \"bad\",\n \"details\": [\n  {\n"));
  EXPECT_THAT(pretty, HasSubstr("\"@type\": \"type.googleapis.com/x.Unknown\""));

  // Garbage details: no details, still valid.
  EXPECT_EQ(t.StatusJson(absl::StatusCode::kInternal, "x", "\xff\xff", false),
            "{\"code\":13,\"message\":\"x\",\"details\":[]}");
  EXPECT_EQ(t.StatusJson(absl::StatusCode::kInternal, "x", "", true),
            "{\n \"code\": 13,\n \"message\": \"x\",\n \"details\": []\n}\n");
}

TEST(StatusJson, CustomDetailNeedsItsDescriptors) {
  // Without the user's descriptor set the custom type falls back to base64.
  auto builtin_only = Schema::Create({});
  ASSERT_TRUE(builtin_only.ok()) << builtin_only.status();
  Transcoder t(*builtin_only, TranscoderOptions{});
  std::string json = t.StatusJson(absl::StatusCode::kInvalidArgument, "bad", DetailsBin(), false);
  EXPECT_THAT(
      json,
      HasSubstr(R"("@type":"type.googleapis.com/tipperary.testing.v1.CustomDetail","value":")"));
  EXPECT_THAT(json,
              HasSubstr(R"("@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"R")"));
}

TEST(Schema, BuiltinsDuplicatesAndErrors) {
  auto set = ReadDescriptorSetFile(TIPPERARY_TEST_DESCRIPTOR_SET);
  ASSERT_TRUE(set.ok());
  // The same set twice: duplicates ignored.
  auto twice = Schema::Create({*set, *set});
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_NE((*twice)->FindMethod("tipperary.testing.v1.TestService/Echo"), nullptr);
  EXPECT_NE((*twice)->FindMethod("/tipperary.testing.v1.TestService/Echo"), nullptr);
  EXPECT_EQ((*twice)->FindMethod("tipperary.testing.v1.TestService/Nope"), nullptr);
  EXPECT_EQ((*twice)->FindMethod("garbage"), nullptr);
  EXPECT_NE((*twice)->FindMessage("google.rpc.ErrorInfo"), nullptr);
  EXPECT_NE((*twice)->FindMessage("google.api.HttpBody"), nullptr);
  EXPECT_EQ((*twice)->services().size(), 2u);  // TestService and ParityService, once each.

  // Only the service file, no imports: the built-ins supply them.
  google::protobuf::FileDescriptorSet only;
  for (const auto& f : set->file()) {
    if (f.name() == "tipperary/testing/v1/test_service.proto") *only.add_file() = f;
  }
  ASSERT_EQ(only.file_size(), 1);
  EXPECT_TRUE(Schema::Create({only}).ok());

  // A missing import.
  google::protobuf::FileDescriptorSet missing;
  auto* f = missing.add_file();
  f->set_name("a.proto");
  f->add_dependency("b.proto");
  auto s = Schema::Create({missing});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("a.proto imports b.proto"));

  // A conflicting symbol.
  google::protobuf::FileDescriptorSet conflict = only;
  auto* copy = conflict.add_file();
  *copy = only.file(0);
  copy->set_name("copy.proto");
  s = Schema::Create({conflict});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("copy.proto"));

  EXPECT_FALSE(ReadDescriptorSetFile("/nonexistent/x.pb").ok());
}

}  // namespace
}  // namespace tipperary::transcoder
