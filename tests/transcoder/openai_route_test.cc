// Routes that imitate OpenAI's API, as tipperary-worker's schema declares them with the
// tipperary.api.v1.http_api method option: their error format and unknown-field handling come
// from the schema (a config route overrides them), and their error bodies are OpenAI's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "test_schema.h"
#include "tipperary/common/status_json.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {
namespace {

using ::testing::HasSubstr;

// tipperary-worker's schema, from the descriptor set the build makes of embedding.proto.
std::shared_ptr<const Schema> EmbeddingSchema() {
  static const std::shared_ptr<const Schema> schema =
      testing::SchemaFromDescriptorSet(TIPPERARY_EMBEDDING_DESCRIPTOR_SET);
  return schema;
}

std::shared_ptr<const RouteTable> Routes(const std::vector<RouteSpec>& config_routes = {}) {
  auto table = RouteTable::Build(EmbeddingSchema(), config_routes, RouteTableOptions{});
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *table : nullptr;
}

const Route* Find(const RouteTable& table, const std::string& method, const std::string& path) {
  return table.Match(method, path).route;
}

std::string Details(const google::protobuf::Message& detail) {
  google::rpc::Status status;
  status.set_code(3);
  status.add_details()->PackFrom(detail);
  return status.SerializeAsString();
}

TEST(OpenAiRoutes, TheSchemaSaysWhichRoutesImitateOpenAi) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  for (const auto& [method, path] : {std::pair{"POST", "/v1/embeddings"},
                                     {"GET", "/v1/models"},
                                     {"GET", "/v1/models/org/name"},
                                     {"GET", "/v1/models/org%2Fname"}}) {
    const Route* route = Find(*table, method, path);
    ASSERT_NE(route, nullptr) << path;
    EXPECT_EQ(route->error_format, ErrorFormat::kOpenAi) << path;
    EXPECT_EQ(route->ignore_unknown_fields, std::optional<bool>(true)) << path;
  }
  const Route* native = Find(*table, "POST", "/v1/embed");
  ASSERT_NE(native, nullptr);
  EXPECT_EQ(native->error_format, ErrorFormat::kGoogleRpc);
  EXPECT_EQ(native->ignore_unknown_fields, std::nullopt);
}

TEST(OpenAiRoutes, AHuggingFaceIdReachesGetModelEscapedOrNot) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  for (const char* path : {"/v1/models/org%2Fname", "/v1/models/org/name"}) {
    RouteTable::MatchResult m = table->Match("GET", path);
    ASSERT_NE(m.route, nullptr) << path;
    EXPECT_EQ(m.route->method->name(), "GetModel");
    ASSERT_EQ(m.bindings.size(), 1u);
    EXPECT_EQ(m.bindings[0].second, "org/name") << path;
  }
}

TEST(OpenAiRoutes, AConfigRouteOverridesTheSchema) {
  RouteSpec spec;
  spec.http_method = "POST";
  spec.path_template = "/v1/embeddings";
  spec.grpc_method = "tipperary.embedding.v1.EmbeddingService/CreateEmbeddings";
  spec.body = "*";
  spec.error_format = ErrorFormat::kGoogleRpc;
  spec.ignore_unknown_fields = false;
  RouteSpec native = spec;
  native.path_template = "/v1/embed";
  native.grpc_method = "tipperary.embedding.v1.EmbeddingService/Embed";
  native.error_format = ErrorFormat::kOpenAi;
  native.ignore_unknown_fields.reset();
  auto table = Routes({spec, native});
  ASSERT_NE(table, nullptr);
  const Route* route = Find(*table, "POST", "/v1/embeddings");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->error_format, ErrorFormat::kGoogleRpc);
  EXPECT_EQ(route->ignore_unknown_fields, std::optional<bool>(false));
  route = Find(*table, "POST", "/v1/embed");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->error_format, ErrorFormat::kOpenAi);
  EXPECT_EQ(route->ignore_unknown_fields, std::nullopt);
}

TEST(OpenAiRoutes, UnknownFieldsAreIgnoredOnlyWhereTheRouteSaysSo) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  Transcoder strict(EmbeddingSchema(), TranscoderOptions{});
  const Route& openai = *Find(*table, "POST", "/v1/embeddings");
  const Route& native = *Find(*table, "POST", "/v1/embed");
  auto openai_message = strict.BuildRequestMessage(
      openai, {}, "", R"({"input":"hi","model":"m","user":"u","new_field":{"a":[1]}})",
      BodyFormat::kJson, "application/json");
  EXPECT_TRUE(openai_message.ok()) << openai_message.status();
  auto native_message = strict.BuildRequestMessage(native, {}, "", R"({"inputs":["hi"],"x":1})",
                                                   BodyFormat::kJson, "application/json");
  EXPECT_FALSE(native_message.ok());
  // GET /v1/models ignores unknown query parameters too.
  EXPECT_TRUE(strict
                  .BuildRequestMessage(*Find(*table, "GET", "/v1/models"), {}, "limit=3", "",
                                       BodyFormat::kJson, "")
                  .ok());
}

TEST(OpenAiRoutes, ErrorBodiesAreOpenAisOnOpenAiRoutes) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  Transcoder t(EmbeddingSchema(), TranscoderOptions{});
  const Route* openai = Find(*table, "POST", "/v1/embeddings");

  google::rpc::BadRequest bad_request;
  bad_request.add_field_violations()->set_field("input");
  EXPECT_EQ(t.ErrorBody(openai, absl::StatusCode::kInvalidArgument, 400, "no \"input\"",
                        Details(bad_request), false),
            R"({"error":{"message":"no \"input\"","type":"invalid_request_error",)"
            R"("param":"input","code":null}})");

  google::rpc::ErrorInfo info;
  info.set_reason("MODEL_NOT_FOUND");
  EXPECT_EQ(t.ErrorBody(openai, absl::StatusCode::kNotFound, 404, "no model", Details(info), false),
            R"({"error":{"message":"no model","type":"invalid_request_error",)"
            R"("param":null,"code":"model_not_found"}})");

  EXPECT_EQ(t.ErrorBody(openai, absl::StatusCode::kResourceExhausted, 429, "full", "", false),
            R"({"error":{"message":"full","type":"requests","param":null,)"
            R"("code":"rate_limit_exceeded"}})");
  EXPECT_EQ(t.ErrorBody(openai, absl::StatusCode::kUnavailable, 503, "down", "", false),
            R"({"error":{"message":"down","type":"server_error","param":null,"code":null}})");
  // Details it cannot read leave param and code null.
  EXPECT_EQ(t.ErrorBody(openai, absl::StatusCode::kInternal, 500, "x", "\xff\xff", false),
            R"({"error":{"message":"x","type":"server_error","param":null,"code":null}})");

  // Native routes and no route at all: google.rpc.Status.
  const Route* native = Find(*table, "POST", "/v1/embed");
  EXPECT_EQ(t.ErrorBody(native, absl::StatusCode::kNotFound, 404, "no model", "", false),
            common::StatusJson(absl::StatusCode::kNotFound, "no model"));
  EXPECT_EQ(t.ErrorBody(nullptr, absl::StatusCode::kNotFound, 404, "no route", "", false),
            common::StatusJson(absl::StatusCode::kNotFound, "no route"));
}

TEST(OpenAiErrorJson, EscapesAndPrettyPrints) {
  EXPECT_EQ(common::OpenAiErrorJson("a\"b\n", "t", "", "c"),
            R"({"error":{"message":"a\"b\n","type":"t","param":null,"code":"c"}})");
  EXPECT_EQ(common::OpenAiErrorJson("m", "t", "p", "", true),
            "{\n \"error\": {\n  \"message\": \"m\",\n  \"type\": \"t\",\n  \"param\": \"p\",\n"
            "  \"code\": null\n }\n}\n");
}

}  // namespace
}  // namespace tipperary::transcoder
