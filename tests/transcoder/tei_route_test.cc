// Routes that imitate Hugging Face text-embeddings-inference's API (tei.proto's
// TextEmbeddingsInference, ERROR_FORMAT_TEI): TEI's paths, its bare-array JSON from response_body
// on Value-typed fields, its error object {"error","error_type"} and its statuses.
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "test_schema.h"
#include "tipperary/transcoder/openapi.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {
namespace {

constexpr char kService[] = "tipperary.embedding.v1.TextEmbeddingsInference";

std::shared_ptr<const Schema> EmbeddingSchema() {
  static const std::shared_ptr<const Schema> schema =
      testing::SchemaFromDescriptorSet(TIPPERARY_EMBEDDING_DESCRIPTOR_SET);
  return schema;
}

std::shared_ptr<const RouteTable> Routes() {
  auto table = RouteTable::Build(EmbeddingSchema(), {}, RouteTableOptions{});
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *table : nullptr;
}

// A message of the schema from text format, serialized.
std::string Binary(const std::string& type, const std::string& text) {
  const google::protobuf::Descriptor* d = EmbeddingSchema()->FindMessage(type);
  EXPECT_NE(d, nullptr) << type;
  if (d == nullptr) return "";
  std::unique_ptr<google::protobuf::Message> m(EmbeddingSchema()->Prototype(d)->New());
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, m.get())) << text;
  return m->SerializeAsString();
}

std::string Reason(const std::string& reason) {
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("tipperary.embedding.v1");
  google::rpc::Status status;
  status.set_code(3);
  status.add_details()->PackFrom(info);
  return status.SerializeAsString();
}

TEST(TeiRoutes, TeisPathsWithTeisErrorFormat) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  for (const auto& [method, path, rpc] :
       {std::tuple{"POST", "/embed", "Embed"}, std::tuple{"POST", "/", "Embed"},
        std::tuple{"POST", "/tokenize", "Tokenize"}, std::tuple{"POST", "/decode", "Decode"},
        std::tuple{"GET", "/info", "Info"}, std::tuple{"GET", "/health", "Health"}}) {
    RouteTable::MatchResult m = table->Match(method, path);
    ASSERT_NE(m.route, nullptr) << method << " " << path;
    EXPECT_EQ(m.route->grpc_path, absl::StrCat("/", kService, "/", rpc));
    EXPECT_EQ(m.route->error_format, ErrorFormat::kTei) << path;
    EXPECT_EQ(m.route->ignore_unknown_fields, std::optional<bool>(true)) << path;
  }
  // The native and OpenAI routes keep theirs.
  EXPECT_EQ(table->Match("POST", "/v1/embed").route->error_format, ErrorFormat::kGoogleRpc);
  EXPECT_EQ(table->Match("POST", "/v1/embeddings").route->error_format, ErrorFormat::kOpenAi);
}

TEST(TeiRoutes, RequestsTakeTeisJsonShapes) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  Transcoder t(EmbeddingSchema(), TranscoderOptions{});
  const Route& embed = *table->Match("POST", "/embed").route;
  // inputs: a string, an array of strings, ids, mixed; huggingface_hub's extra keys and nulls.
  for (const char* body :
       {R"({"inputs":"hi"})", R"({"inputs":["a","b"],"normalize":false,"truncate":true})",
        R"({"inputs":[1,2,3],"truncation_direction":"left","prompt_name":null})",
        R"({"inputs":["a",[7592]],"dimensions":8,"encoding_format":"float"})"}) {
    absl::StatusOr<std::string> bin =
        t.BuildRequestMessage(embed, {}, "", body, BodyFormat::kJson, "application/json");
    EXPECT_TRUE(bin.ok()) << body << ": " << bin.status();
  }
  const Route& decode = *table->Match("POST", "/decode").route;
  EXPECT_TRUE(t.BuildRequestMessage(decode, {}, "", R"({"ids":[[101,102],[7592]]})",
                                    BodyFormat::kJson, "application/json")
                  .ok());
  // A wrong JSON type is the transcoder's INVALID_ARGUMENT, which TEI's format makes a 422.
  EXPECT_FALSE(t.BuildRequestMessage(embed, {}, "", R"({"inputs":"a","normalize":7})",
                                     BodyFormat::kJson, "application/json")
                   .ok());
  EXPECT_FALSE(t.BuildRequestMessage(embed, {}, "", R"({"inputs":"a","truncate":[1]})",
                                     BodyFormat::kJson, "application/json")
                   .ok());
  EXPECT_EQ(t.ErrorHttpStatus(&embed, 400, ""), 422);
}

TEST(TeiRoutes, ResponsesAreTeisBareArrays) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  Transcoder t(EmbeddingSchema(), TranscoderOptions{});
  auto render = [&](const char* method, const char* path, const std::string& type,
                    const std::string& text) {
    absl::StatusOr<HttpBodyOut> out = t.BuildResponseBody(
        *table->Match(method, path).route, Binary(type, text), ResponseFormat::kJson, false);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->body : "";
  };
  EXPECT_EQ(render("POST", "/embed", "tipperary.embedding.v1.TeiEmbedResponse",
                   "embeddings { values { number_value: 0.5 } values { number_value: -0.25 } } "
                   "embeddings { values { number_value: 1 } }"),
            "[[0.5,-0.25],[1]]");
  EXPECT_EQ(render("POST", "/tokenize", "tipperary.embedding.v1.TeiTokenizeResponse",
                   R"pb(tokens {
                          values {
                            struct_value {
                              fields {
                                key: "id"
                                value { number_value: 101 }
                              }
                              fields {
                                key: "text"
                                value { string_value: "[CLS]" }
                              }
                              fields {
                                key: "special"
                                value { bool_value: true }
                              }
                              fields {
                                key: "start"
                                value { null_value: NULL_VALUE }
                              }
                              fields {
                                key: "stop"
                                value { null_value: NULL_VALUE }
                              }
                            }
                          }
                        })pb"),
            R"([[{"id":101,"text":"[CLS]","special":true,"start":null,"stop":null}]])");
  EXPECT_EQ(render("POST", "/decode", "tipperary.embedding.v1.TeiDecodeResponse",
                   R"pb(texts: "hello" texts: "")pb"),
            R"(["hello",""])");
  // /info: TEI's field names and order, zero values and nulls printed.
  EXPECT_EQ(render("GET", "/info", "tipperary.embedding.v1.TeiInfo",
                   R"pb(model_id: "org/m"
                        model_sha { null_value: NULL_VALUE }
                        model_dtype: "float32"
                        served_model_name: "m"
                        model_type { embedding { pooling: "mean" } }
                        max_concurrent_requests: 4096
                        max_input_length: 256
                        max_batch_tokens: 16384
                        max_batch_requests: 32
                        max_client_batch_size: 0
                        auto_truncate: false
                        tokenization_workers: 2
                        version: "1.0"
                        sha { null_value: NULL_VALUE }
                        docker_label { null_value: NULL_VALUE })pb"),
            R"({"model_id":"org/m","model_sha":null,"model_dtype":"float32",)"
            R"("served_model_name":"m","model_type":{"embedding":{"pooling":"mean"}},)"
            R"("max_concurrent_requests":4096,"max_input_length":256,"max_batch_tokens":16384,)"
            R"("max_batch_requests":32,"max_client_batch_size":0,"auto_truncate":false,)"
            R"("tokenization_workers":2,"version":"1.0","sha":null,"docker_label":null})");
  // /health: an empty HttpBody is an empty body.
  absl::StatusOr<HttpBodyOut> health =
      t.BuildResponseBody(*table->Match("GET", "/health").route,
                          Binary("google.api.HttpBody", R"pb(content_type: "text/plain")pb"),
                          ResponseFormat::kJson, false);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(health->body, "");
}

TEST(TeiRoutes, ErrorsHaveTeisBodyTypeAndStatus) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  Transcoder t(EmbeddingSchema(), TranscoderOptions{});
  const Route* embed = table->Match("POST", "/embed").route;
  struct Case {
    int status;           // What the proxy would answer without TEI's format.
    std::string details;  // The worker's ErrorInfo, if any.
    int tei_status;
    const char* type;
  };
  for (const Case& c : std::vector<Case>{
           {400, "", 422, "Validation"},
           {400, Reason("EMPTY"), 400, "Empty"},
           {400, Reason("VALIDATION"), 422, "Validation"},
           {400, Reason("TOKENIZER"), 422, "Tokenizer"},
           {404, "", 404, "Validation"},
           {413, "", 413, "Validation"},
           {415, "", 415, "Validation"},
           {429, "", 429, "Overloaded"},
           {500, "", 424, "Backend"},
           {500, Reason("BACKEND"), 424, "Backend"},
           {502, "", 502, "Backend"},
           {503, "", 503, "Unhealthy"},
           {504, "", 504, "Backend"},
           // A reason that is not TEI's leaves the status to decide.
           {404, Reason("MODEL_NOT_FOUND"), 404, "Validation"},
       }) {
    EXPECT_EQ(t.ErrorHttpStatus(embed, c.status, c.details), c.tei_status) << c.status << c.type;
    EXPECT_EQ(
        t.ErrorBody(embed, absl::StatusCode::kUnknown, c.status, "it \"failed\"", c.details, false),
        absl::StrCat(R"({"error":"it \"failed\"","error_type":")", c.type, R"("})"));
  }
  EXPECT_EQ(t.ErrorBody(embed, absl::StatusCode::kUnavailable, 503, "down", "", true),
            "{\n \"error\": \"down\",\n \"error_type\": \"Unhealthy\"\n}\n");
  // Other routes keep their statuses and shapes.
  const Route* native = table->Match("POST", "/v1/embed").route;
  EXPECT_EQ(t.ErrorHttpStatus(native, 400, Reason("EMPTY")), 400);
  EXPECT_EQ(t.ErrorHttpStatus(nullptr, 500, ""), 500);
  EXPECT_THAT(t.ErrorBody(native, absl::StatusCode::kInvalidArgument, 400, "x", "", false),
              ::testing::StartsWith(R"({"code":3,)"));
}

TEST(TeiRoutes, OpenApiDescribesTeisErrors) {
  auto table = Routes();
  ASSERT_NE(table, nullptr);
  const std::string doc = RenderOpenApi(*table, OpenApiOptions{});
  EXPECT_THAT(doc, ::testing::HasSubstr(R"("$ref":"#/components/responses/TEIError")"));
  EXPECT_THAT(doc, ::testing::HasSubstr(R"("TEIError":{)"));
  EXPECT_THAT(doc, ::testing::HasSubstr(R"("Unhealthy","Backend","Overloaded","Validation",)"));
}

}  // namespace
}  // namespace tipperary::transcoder
