#include "tipperary/transcoder/openapi.h"

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "test_schema.h"

namespace tipperary::transcoder {
namespace {

using google::protobuf::Value;
using ::testing::HasSubstr;
using testing::TestRoutes;

// The document parsed back with protobuf's JSON parser: the renderer's output must be JSON.
Value Parse(const std::string& json) {
  Value value;
  auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  EXPECT_TRUE(status.ok()) << status << "\n" << json.substr(0, 2000);
  return value;
}

// value[k1][k2]...; an empty Value (and a test failure) when a key is missing.
Value At(const Value& root, std::initializer_list<std::string_view> keys) {
  Value v = root;
  std::string walked;
  for (std::string_view key : keys) {
    walked.append("/").append(key);
    if (v.has_list_value()) {
      size_t i = std::stoul(std::string(key));
      if (i >= static_cast<size_t>(v.list_value().values_size())) {
        ADD_FAILURE() << "no element " << walked;
        return Value();
      }
      Value next = v.list_value().values(i);
      v = next;
      continue;
    }
    const auto& fields = v.struct_value().fields();
    auto it = fields.find(std::string(key));
    if (it == fields.end()) {
      ADD_FAILURE() << "no key " << walked;
      return Value();
    }
    Value next = it->second;
    v = next;
  }
  return v;
}

bool Has(const Value& v, const std::string& key) {
  return v.struct_value().fields().count(key) != 0;
}

std::string Json(const Value& v) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

const Value& TestDoc() {
  static const Value doc = Parse(RenderOpenApi(*TestRoutes(), OpenApiOptions{}));
  return doc;
}

Value Property(const Value& doc, std::string_view message, std::string_view field) {
  return At(doc, {"components", "schemas", message, "properties", field});
}

Value AllTypesField(std::string_view field) {
  return Property(TestDoc(), "tipperary.testing.v1.AllTypes", field);
}

// A parameter of an operation by name and location.
Value Param(const Value& op, std::string_view name) {
  const Value params = At(op, {"parameters"});
  for (const Value& p : params.list_value().values()) {
    if (At(p, {"name"}).string_value() == name) return p;
  }
  ADD_FAILURE() << "no parameter " << name << " in " << Json(op);
  return Value();
}

std::vector<std::string> ParamNames(const Value& op, std::string_view in) {
  std::vector<std::string> names;
  if (!Has(op, "parameters")) return names;
  const Value params = At(op, {"parameters"});
  for (const Value& p : params.list_value().values()) {
    if (At(p, {"in"}).string_value() == in) names.push_back(At(p, {"name"}).string_value());
  }
  return names;
}

TEST(OpenApi, DocumentHeader) {
  OpenApiOptions options;
  options.title = "Things \"API\"";
  options.version = "2.1";
  options.servers = {"https://api.example.com"};
  Value doc = Parse(RenderOpenApi(*TestRoutes(), options));
  EXPECT_EQ(At(doc, {"openapi"}).string_value(), "3.1.0");
  EXPECT_EQ(At(doc, {"info", "title"}).string_value(), "Things \"API\"");
  EXPECT_EQ(At(doc, {"info", "version"}).string_value(), "2.1");
  EXPECT_EQ(At(doc, {"servers", "0", "url"}).string_value(), "https://api.example.com");
  EXPECT_FALSE(Has(TestDoc(), "servers"));
  EXPECT_EQ(At(TestDoc(), {"info", "title"}).string_value(), "tipperary-proxy");
}

TEST(OpenApi, ScalarsInTheProto3JsonMapping) {
  auto type_format = [](std::string_view field) {
    Value v = AllTypesField(field);
    std::string format = Has(v, "format") ? At(v, {"format"}).string_value() : "";
    return At(v, {"type"}).string_value() + "/" + format;
  };
  EXPECT_EQ(type_format("fDouble"), "number/double");
  EXPECT_EQ(type_format("fFloat"), "number/float");
  EXPECT_EQ(type_format("fInt32"), "integer/int32");
  EXPECT_EQ(type_format("fSint32"), "integer/int32");
  EXPECT_EQ(type_format("fSfixed32"), "integer/int32");
  EXPECT_EQ(type_format("fUint32"), "integer/int64");
  EXPECT_EQ(At(AllTypesField("fFixed32"), {"maximum"}).number_value(), 4294967295.0);
  EXPECT_EQ(type_format("fInt64"), "string/int64");
  EXPECT_EQ(type_format("fSint64"), "string/int64");
  EXPECT_EQ(type_format("fSfixed64"), "string/int64");
  EXPECT_EQ(type_format("fUint64"), "string/uint64");
  EXPECT_EQ(type_format("fFixed64"), "string/uint64");
  EXPECT_EQ(type_format("fBool"), "boolean/");
  EXPECT_EQ(type_format("fString"), "string/");
  EXPECT_EQ(type_format("fBytes"), "string/byte");
  EXPECT_EQ(At(AllTypesField("fBytes"), {"contentEncoding"}).string_value(), "base64");
}

TEST(OpenApi, JsonNamesAndProtoNames) {
  EXPECT_TRUE(
      Has(At(TestDoc(), {"components", "schemas", "tipperary.testing.v1.AllTypes", "properties"}),
          "camelCaseName"));
  EXPECT_TRUE(
      Has(At(TestDoc(), {"components", "schemas", "tipperary.testing.v1.AllTypes", "properties"}),
          "customJSON"));
  OpenApiOptions options;
  options.preserve_proto_field_names = true;
  Value doc = Parse(RenderOpenApi(*TestRoutes(), options));
  Value props = At(doc, {"components", "schemas", "tipperary.testing.v1.AllTypes", "properties"});
  EXPECT_TRUE(Has(props, "camel_case_name"));
  EXPECT_TRUE(Has(props, "custom_json"));
  EXPECT_FALSE(Has(props, "camelCaseName"));
  // Query parameters follow the same names.
  Value op = At(doc, {"paths", "/v1/shelves/{name.shelves}/things/{name.things}", "get"});
  Param(op, "page_size");
  Param(op, "filter.name");
}

TEST(OpenApi, EnumsAsStringsOrNumbers) {
  Value color = At(TestDoc(), {"components", "schemas", "tipperary.testing.v1.Color"});
  EXPECT_EQ(At(color, {"type"}).string_value(), "string");
  EXPECT_EQ(Json(At(color, {"enum"})), "[\"COLOR_UNSPECIFIED\",\"RED\",\"GREEN\",\"BLUE\"]");
  EXPECT_THAT(At(color, {"description"}).string_value(), HasSubstr("the name or the number"));
  EXPECT_EQ(At(AllTypesField("fEnum"), {"$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Color");
  OpenApiOptions options;
  options.enums_as_ints = true;
  Value doc = Parse(RenderOpenApi(*TestRoutes(), options));
  Value ints = At(doc, {"components", "schemas", "tipperary.testing.v1.Color"});
  EXPECT_EQ(At(ints, {"type"}).string_value(), "integer");
  EXPECT_EQ(Json(At(ints, {"enum"})), "[0,1,2,3]");
}

TEST(OpenApi, RepeatedMapsAndRecursion) {
  EXPECT_EQ(At(AllTypesField("rInt64"), {"type"}).string_value(), "array");
  // (Keys of a parsed object come in no fixed order: compare members, not text.)
  EXPECT_EQ(At(AllTypesField("rInt64"), {"items", "type"}).string_value(), "string");
  EXPECT_EQ(At(AllTypesField("rInt64"), {"items", "format"}).string_value(), "int64");
  EXPECT_EQ(At(AllTypesField("rNested"), {"items", "$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Nested");
  Value m = AllTypesField("mStringInt64");
  EXPECT_EQ(At(m, {"type"}).string_value(), "object");
  EXPECT_EQ(At(m, {"additionalProperties", "format"}).string_value(), "int64");
  EXPECT_EQ(At(AllTypesField("mInt32Nested"), {"propertyNames", "pattern"}).string_value(),
            "^-?[0-9]+$");
  EXPECT_EQ(At(AllTypesField("mInt32Nested"), {"additionalProperties", "$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Nested");
  EXPECT_EQ(Json(At(AllTypesField("mBoolString"), {"propertyNames", "enum"})),
            "[\"true\",\"false\"]");
  // Nested.child is a Nested: a $ref to its own component.
  EXPECT_EQ(
      At(Property(TestDoc(), "tipperary.testing.v1.Nested", "child"), {"$ref"}).string_value(),
      "#/components/schemas/tipperary.testing.v1.Nested");
}

TEST(OpenApi, OneofsAreDescribed) {
  Value s = AllTypesField("oString");
  EXPECT_EQ(At(s, {"x-oneof"}).string_value(), "choice");
  EXPECT_THAT(At(s, {"description"}).string_value(), HasSubstr("at most one of oString, oNested"));
  EXPECT_EQ(At(AllTypesField("oNested"), {"x-oneof"}).string_value(), "choice");
  // proto3 optional is a synthetic oneof: not a choice.
  EXPECT_FALSE(Has(AllTypesField("optInt32"), "x-oneof"));
}

TEST(OpenApi, WellKnownTypes) {
  EXPECT_EQ(Json(At(AllTypesField("tTimestamp"), {"format"})), "\"date-time\"");
  EXPECT_EQ(At(AllTypesField("tDuration"), {"type"}).string_value(), "string");
  EXPECT_EQ(At(AllTypesField("tDuration"), {"pattern"}).string_value(),
            "^-?[0-9]+(\\.[0-9]{1,9})?s$");
  EXPECT_EQ(At(AllTypesField("tFieldMask"), {"type"}).string_value(), "string");
  EXPECT_EQ(At(AllTypesField("tStruct"), {"type"}).string_value(), "object");
  EXPECT_FALSE(Has(AllTypesField("tValue"), "type"));  // Any JSON value.
  EXPECT_EQ(At(AllTypesField("tList"), {"type"}).string_value(), "array");
  EXPECT_EQ(At(AllTypesField("tEmpty"), {"type"}).string_value(), "object");
  EXPECT_EQ(At(AllTypesField("tNull"), {"type"}).string_value(), "null");
  EXPECT_EQ(Json(At(AllTypesField("tAny"), {"required"})), "[\"@type\"]");
  EXPECT_EQ(Json(At(AllTypesField("wInt64"), {"type"})), "[\"string\",\"null\"]");
  EXPECT_EQ(At(AllTypesField("wInt64"), {"format"}).string_value(), "int64");
  EXPECT_EQ(Json(At(AllTypesField("wInt32"), {"type"})), "[\"integer\",\"null\"]");
  EXPECT_EQ(Json(At(AllTypesField("wBool"), {"type"})), "[\"boolean\",\"null\"]");
  EXPECT_EQ(Json(At(AllTypesField("wDouble"), {"type"})), "[\"number\",\"null\"]");
  EXPECT_EQ(Json(At(AllTypesField("wString"), {"type"})), "[\"string\",\"null\"]");
  EXPECT_EQ(At(AllTypesField("wBytes"), {"format"}).string_value(), "byte");
  // Well-known types are inline, never components.
  Value schemas = At(TestDoc(), {"components", "schemas"});
  EXPECT_FALSE(Has(schemas, "google.protobuf.Timestamp"));
  EXPECT_FALSE(Has(schemas, "google.protobuf.Int64Value"));
}

TEST(OpenApi, CommentsFromSourceInfo) {
  EXPECT_THAT(
      At(TestDoc(), {"components", "schemas", "tipperary.testing.v1.AllTypes", "description"})
          .string_value(),
      HasSubstr("Every scalar, container and well-known type"));
  EXPECT_THAT(At(Property(TestDoc(), "tipperary.testing.v1.Thing", "receivedJson"), {"description"})
                  .string_value(),
              HasSubstr("What the server received"));
  EXPECT_THAT(At(TestDoc(),
                 {"paths", "/tipperary.testing.v1.TestService/Unannotated", "post", "description"})
                  .string_value(),
              HasSubstr("No annotation"));
}

TEST(OpenApi, MultiSegmentVariablesBecomeOneParameterPerWildcard) {
  Value paths = At(TestDoc(), {"paths"});
  Value op = At(paths, {"/v1/shelves/{name.shelves}/things/{name.things}", "get"});
  EXPECT_EQ(At(op, {"x-grpc-method"}).string_value(), "tipperary.testing.v1.TestService/GetThing");
  Value p = Param(op, "name.shelves");
  EXPECT_EQ(At(p, {"in"}).string_value(), "path");
  EXPECT_TRUE(At(p, {"required"}).bool_value());
  EXPECT_EQ(At(p, {"x-tipperary-variable"}).string_value(), "name=shelves/*/things/*");
  // Same template shape, other field: the PATCH shares the path (and its parameter names).
  Value patch = At(paths, {"/v1/shelves/{name.shelves}/things/{name.things}", "patch"});
  EXPECT_EQ(At(Param(patch, "name.things"), {"x-tipperary-variable"}).string_value(),
            "thing.name=shelves/*/things/*");
  EXPECT_TRUE(Has(paths, "/v1/shelves/{name.shelves}/things/{name.things}:run"));
  EXPECT_TRUE(Has(paths, "/v1/shelves/{parent.shelves}/things"));
  // A lone "**" keeps the field's name and says it spans segments.
  Value file = At(paths, {"/v1/files/{path}", "get"});
  EXPECT_TRUE(At(Param(file, "path"), {"x-tipperary-multi-segment"}).bool_value());
  // Single-segment variables: the field's schema, nested paths as written.
  Value put = At(paths, {"/v1/echo/{f_nested.name}/{f_int64}", "put"});
  EXPECT_EQ(At(Param(put, "f_int64"), {"schema", "format"}).string_value(), "int64");
}

TEST(OpenApi, QueryParametersAsGrpcGatewayListsThem) {
  Value op = At(TestDoc(), {"paths", "/v1/shelves/{name.shelves}/things/{name.things}", "get"});
  std::vector<std::string> query = ParamNames(op, "query");
  EXPECT_THAT(query,
              ::testing::ElementsAre("filter.name", "filter.count", "filter.tags", "filter.color",
                                     "view", "color", "pageSize", "since", "within", "limit",
                                     "verbose", "token", "colors", "bigNumber", "ratio"));
  Value view = Param(op, "view");
  EXPECT_EQ(At(view, {"style"}).string_value(), "form");
  EXPECT_TRUE(At(view, {"explode"}).bool_value());
  EXPECT_EQ(At(view, {"schema", "type"}).string_value(), "array");
  EXPECT_EQ(Json(At(Param(op, "limit"), {"schema", "type"})), "[\"integer\",\"null\"]");
  // A body field's subtree and path-bound fields are not query parameters.
  Value patch =
      At(TestDoc(), {"paths", "/v1/shelves/{name.shelves}/things/{name.things}", "patch"});
  for (const std::string& name : ParamNames(patch, "query")) {
    EXPECT_FALSE(name.rfind("thing", 0) == 0) << name;
  }
  // body "*": no query parameters at all.
  Value run =
      At(TestDoc(), {"paths", "/v1/shelves/{name.shelves}/things/{name.things}:run", "post"});
  EXPECT_TRUE(ParamNames(run, "query").empty());
}

TEST(OpenApi, RequestBodies) {
  Value paths = At(TestDoc(), {"paths"});
  // body "*" without path variables: the request message itself.
  EXPECT_EQ(At(paths,
               {"/v1/echo", "post", "requestBody", "content", "application/json", "schema", "$ref"})
                .string_value(),
            "#/components/schemas/tipperary.testing.v1.AllTypes");
  // body "*" with a path variable: the message minus the bound field.
  Value run = At(paths, {"/v1/shelves/{name.shelves}/things/{name.things}:run", "post",
                         "requestBody", "content", "application/json", "schema"});
  EXPECT_EQ(At(run, {"type"}).string_value(), "object");
  EXPECT_FALSE(Has(At(run, {"properties"}), "name"));
  // body "field": that field's schema.
  EXPECT_EQ(At(paths, {"/v1/shelves/{parent.shelves}/things", "post", "requestBody", "content",
                       "application/json", "schema", "$ref"})
                .string_value(),
            "#/components/schemas/tipperary.testing.v1.Thing");
  EXPECT_TRUE(
      Has(At(paths, {"/v1/echo", "post", "requestBody", "content"}), "application/x-protobuf"));
  // google.api.HttpBody: any content type.
  EXPECT_TRUE(Has(At(paths, {"/v1/upload", "post", "requestBody", "content"}), "*/*"));
  // A client stream: an array of messages, or NDJSON.
  Value collect = At(paths, {"/v1/things:collect", "post"});
  EXPECT_EQ(At(collect, {"x-stream"}).string_value(), "client");
  Value stream_body = At(collect, {"requestBody", "content"});
  EXPECT_EQ(At(stream_body, {"application/json", "schema", "type"}).string_value(), "array");
  EXPECT_EQ(At(stream_body, {"application/json", "schema", "items", "$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Thing");
  EXPECT_EQ(
      At(stream_body, {"application/x-ndjson", "schema", "allOf", "0", "$ref"}).string_value(),
      "#/components/schemas/tipperary.testing.v1.Thing");
  EXPECT_EQ(At(paths, {"/v1/things:echo", "post", "x-stream"}).string_value(), "bidi");
  // No body rule: no requestBody.
  EXPECT_FALSE(
      Has(At(paths, {"/v1/shelves/{name.shelves}/things/{name.things}", "get"}), "requestBody"));
}

TEST(OpenApi, ResponsesErrorsAndStreams) {
  Value paths = At(TestDoc(), {"paths"});
  Value get = At(paths, {"/v1/shelves/{name.shelves}/things/{name.things}", "get", "responses"});
  EXPECT_EQ(At(get, {"200", "content", "application/json", "schema", "$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Thing");
  EXPECT_EQ(At(get, {"default", "$ref"}).string_value(), "#/components/responses/Error");
  EXPECT_EQ(At(TestDoc(), {"components", "responses", "Error", "content", "application/json",
                           "schema", "$ref"})
                .string_value(),
            "#/components/schemas/google.rpc.Status");
  EXPECT_TRUE(
      Has(At(TestDoc(), {"components", "schemas", "google.rpc.Status", "properties"}), "details"));
  // response_body: the field's schema.
  EXPECT_EQ(At(paths, {"/v1/names/{name}", "get", "responses", "200", "content", "application/json",
                       "schema", "type"})
                .string_value(),
            "string");
  EXPECT_TRUE(Has(At(paths, {"/v1/download", "get", "responses", "200", "content"}), "*/*"));
  Value stream = At(paths, {"/v1/stream", "get"});
  EXPECT_EQ(At(stream, {"x-stream"}).string_value(), "server");
  Value content = At(stream, {"responses", "200", "content"});
  EXPECT_EQ(At(content, {"application/json", "schema", "type"}).string_value(), "array");
  EXPECT_EQ(At(content, {"application/json", "schema", "items", "$ref"}).string_value(),
            "#/components/schemas/tipperary.testing.v1.Thing");
  for (const char* type : {"application/x-ndjson", "text/event-stream", "application/x-protobuf"}) {
    EXPECT_TRUE(Has(content, type)) << type;
  }
  EXPECT_FALSE(Has(At(paths, {"/v1/echo", "post"}), "x-stream"));
  OpenApiOptions options;
  options.stream_json_format = "grpc_gateway";
  Value envelope = Parse(RenderOpenApi(*TestRoutes(), options));
  EXPECT_EQ(At(envelope, {"paths", "/v1/stream", "get", "responses", "200", "content",
                          "application/json", "schema", "properties", "result", "$ref"})
                .string_value(),
            "#/components/schemas/tipperary.testing.v1.Thing");
}

TEST(OpenApi, MethodsOpenApiCannotExpressAreListedApart) {
  Value unlisted = At(TestDoc(), {"x-tipperary-unlisted-routes"});
  ASSERT_EQ(unlisted.list_value().values_size(), 1);
  EXPECT_EQ(At(unlisted, {"0", "method"}).string_value(), "LOCK");
  EXPECT_EQ(At(unlisted, {"0", "grpc_method"}).string_value(),
            "tipperary.testing.v1.TestService/Lock");
}

TEST(OpenApi, OperationIdsAreUniqueAndTagsNameServices) {
  std::set<std::string> ids;
  size_t count = 0;
  const Value paths = At(TestDoc(), {"paths"});
  for (const auto& [path, item] : paths.struct_value().fields()) {
    for (const auto& [method, op] : item.struct_value().fields()) {
      ++count;
      ids.insert(At(op, {"operationId"}).string_value());
      std::string grpc_method = At(op, {"x-grpc-method"}).string_value();
      EXPECT_EQ(At(op, {"tags", "0"}).string_value(), grpc_method.substr(0, grpc_method.find('/')));
    }
  }
  EXPECT_EQ(ids.size(), count);
  EXPECT_TRUE(ids.count("TestService_Echo") != 0 && ids.count("TestService_Echo2") != 0);
}

TEST(OpenApi, EmbeddingServiceWithOpenAiErrors) {
  auto schema = testing::SchemaFromDescriptorSet(TIPPERARY_EMBEDDING_DESCRIPTOR_SET);
  auto routes = RouteTable::Build(schema, {}, RouteTableOptions{});
  ASSERT_TRUE(routes.ok()) << routes.status();
  Value doc = Parse(RenderOpenApi(**routes, OpenApiOptions{}));
  Value paths = At(doc, {"paths"});
  EXPECT_EQ(At(paths, {"/v1/embeddings", "post", "responses", "default", "$ref"}).string_value(),
            "#/components/responses/OpenAIError");
  EXPECT_EQ(At(paths, {"/v1/embed", "post", "responses", "default", "$ref"}).string_value(),
            "#/components/responses/Error");
  EXPECT_EQ(At(paths, {"/v1/embed:stream", "post", "x-stream"}).string_value(), "server");
  EXPECT_TRUE(Has(At(doc, {"components", "schemas"}), "OpenAIError"));
}

}  // namespace
}  // namespace tipperary::transcoder
