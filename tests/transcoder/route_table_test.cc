#include "tipperary/transcoder/route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_schema.h"

namespace tipperary::transcoder {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using testing::TestRoutes;
using testing::TestSchema;
using Status = RouteTable::MatchStatus;

std::string MethodOf(const RouteTable::MatchResult& m) {
  return m.route == nullptr ? "" : m.route->method->name();
}

TEST(RouteTable, AnnotationRuleShapes) {
  const RouteTable& t = *TestRoutes();
  auto m = t.Match("POST", "/v1/echo");
  ASSERT_EQ(m.status, Status::kOk);
  EXPECT_EQ(MethodOf(m), "Echo");
  EXPECT_EQ(m.route->body, "*");
  EXPECT_EQ(m.route->grpc_path, "/tipperary.testing.v1.TestService/Echo");
  EXPECT_EQ(m.route->label, "POST /v1/echo");
  EXPECT_EQ(m.route->source, RouteSource::kAnnotation);

  // additional_bindings.
  m = t.Match("GET", "/v1/echo/hello");
  EXPECT_EQ(MethodOf(m), "Echo");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("f_string", "hello")));
  m = t.Match("PUT", "/v1/echo/n1/42");
  EXPECT_EQ(MethodOf(m), "Echo");
  EXPECT_EQ(m.route->body, "f_nested");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("f_nested.name", "n1"), Pair("f_int64", "42")));

  m = t.Match("GET", "/v1/shelves/s1/things/t1");
  EXPECT_EQ(MethodOf(m), "GetThing");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("name", "shelves/s1/things/t1")));
  EXPECT_EQ(m.route->label, "GET /v1/{name=shelves/*/things/*}");

  m = t.Match("GET", "/v1/names/x");
  EXPECT_EQ(MethodOf(m), "GetThingName");
  EXPECT_EQ(m.route->response_body, "name");
  ASSERT_NE(m.route->response_body_field, nullptr);

  EXPECT_EQ(MethodOf(t.Match("GET", "/v1/shelves/s1/things")), "ListThings");
  EXPECT_EQ(MethodOf(t.Match("POST", "/v1/shelves/s1/things")), "CreateThing");
  EXPECT_EQ(MethodOf(t.Match("PATCH", "/v1/shelves/s1/things/t1")), "UpdateThing");
  EXPECT_EQ(MethodOf(t.Match("DELETE", "/v1/shelves/s1/things/t1")), "DeleteThing");

  m = t.Match("POST", "/v1/shelves/s1/things/t1:run");
  EXPECT_EQ(MethodOf(m), "RunThing");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("name", "shelves/s1/things/t1")));

  m = t.Match("LOCK", "/v1/locks/l1");
  EXPECT_EQ(MethodOf(m), "Lock");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("name", "locks/l1")));

  m = t.Match("GET", "/v1/files/a/b/c.txt");
  EXPECT_EQ(MethodOf(m), "GetFile");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("path", "a/b/c.txt")));

  m = t.Match("GET", "/v1/stream");
  EXPECT_EQ(MethodOf(m), "StreamThings");
  EXPECT_TRUE(m.route->server_streaming);
  EXPECT_FALSE(t.Match("POST", "/v1/upload").route->server_streaming);
}

TEST(RouteTable, NotFoundAndMethodNotAllowed) {
  const RouteTable& t = *TestRoutes();
  auto m = t.Match("GET", "/v2/nothing");
  EXPECT_EQ(m.status, Status::kNotFound);
  EXPECT_EQ(m.route, nullptr);
  EXPECT_THAT(m.allowed_methods, IsEmpty());

  m = t.Match("DELETE", "/v1/echo");
  EXPECT_EQ(m.status, Status::kMethodNotAllowed);
  EXPECT_THAT(m.allowed_methods, ElementsAre("POST"));

  m = t.Match("POST", "/v1/shelves/s1/things/t1");
  EXPECT_EQ(m.status, Status::kMethodNotAllowed);
  EXPECT_THAT(m.allowed_methods, ElementsAre("DELETE", "GET", "PATCH"));

  // A verb no route has is part of the last segment.
  EXPECT_EQ(t.Match("POST", "/v1/shelves/s1/things/t1:fly").status, Status::kMethodNotAllowed);
  EXPECT_THAT(t.Match("GET", "/v1/shelves/s1/things/t1:fly").bindings,
              ElementsAre(Pair("name", "shelves/s1/things/t1:fly")));
  EXPECT_EQ(t.Match("POST", "/v1/nothing/l:fly").status, Status::kNotFound);
  // A ':' at the very end is no verb (found by tests/fuzz/transcoder_json: it was a 405 with
  // Allow: GET for a GET).
  m = t.Match("GET", "/v1/names/abc:");
  EXPECT_EQ(m.status, Status::kOk);
  EXPECT_THAT(m.bindings, ElementsAre(Pair("name", "abc:")));
  EXPECT_EQ(t.Match("PUT", "/v1/echo/7/repeated:").status, Status::kOk);
  EXPECT_EQ(t.Match("POST", "/v1/shelves/s/things/t:").status, Status::kMethodNotAllowed);
  EXPECT_EQ(t.Match("GET", "").status, Status::kNotFound);
  EXPECT_EQ(t.Match("GET", "relative").status, Status::kNotFound);
  EXPECT_EQ(t.Match("get", "/v1/stream").status, Status::kMethodNotAllowed);
}

TEST(RouteTable, GrpcMethodPaths) {
  const RouteTable& t = *TestRoutes();
  auto m = t.Match("POST", "/tipperary.testing.v1.TestService/Unannotated");
  ASSERT_EQ(m.status, Status::kOk);
  EXPECT_EQ(m.route->source, RouteSource::kGrpc);
  EXPECT_EQ(m.route->body, "*");
  EXPECT_EQ(m.route->label, "POST /tipperary.testing.v1.TestService/Unannotated");

  auto off = RouteTable::Build(TestSchema(), {}, RouteTableOptions{});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ((*off)->Match("POST", "/tipperary.testing.v1.TestService/Echo").status,
            Status::kNotFound);
}

TEST(RouteTable, ServiceFiltersAndAnnotationsOff) {
  RouteTableOptions options;
  options.service_filters = {"other.pkg.*"};
  auto t = RouteTable::Build(TestSchema(), {}, options);
  ASSERT_TRUE(t.ok());
  EXPECT_THAT((*t)->routes(), IsEmpty());
  options.service_filters = {"tipperary.testing.*"};
  t = RouteTable::Build(TestSchema(), {}, options);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE((*t)->routes().empty());
  options.service_filters = {"tipperary.testing.v1.TestService"};
  t = RouteTable::Build(TestSchema(), {}, options);
  EXPECT_FALSE((*t)->routes().empty());
  options = RouteTableOptions{};
  options.annotations = false;
  t = RouteTable::Build(TestSchema(), {}, options);
  EXPECT_THAT((*t)->routes(), IsEmpty());
}

TEST(RouteTable, PrecedenceLiteralBeatsWildcard) {
  std::vector<RouteSpec> specs = {
      {"GET", "/x/{name}", "tipperary.testing.v1.TestService/GetThing", "", "", std::nullopt,
       std::nullopt, std::nullopt},
      {"GET", "/x/special", "tipperary.testing.v1.TestService/Lock", "", "", std::nullopt,
       std::nullopt, std::nullopt},
      {"GET", "/x/{path=**}", "tipperary.testing.v1.TestService/GetFile", "", "", std::nullopt,
       std::nullopt, std::nullopt},
      {"GET", "/x/{name}:go", "tipperary.testing.v1.TestService/RunThing", "", "", std::nullopt,
       std::nullopt, std::nullopt},
  };
  RouteTableOptions options;
  options.annotations = false;
  auto t = RouteTable::Build(TestSchema(), specs, options);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x/special")), "Lock");
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x/other")), "GetThing");
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x/a/b")), "GetFile");
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x")), "GetFile");
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x/a:go")), "RunThing");
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/x/a:stop")), "GetThing");
}

TEST(RouteTable, ConfigRoutesOverrideAndAdd) {
  std::vector<RouteSpec> specs = {
      {"get", "/v1/unannotated/{f_string}", "tipperary.testing.v1.TestService/Unannotated", "",
       "f_nested", std::chrono::milliseconds(1500), std::nullopt, std::nullopt},
      // Same method and shape as Echo's POST /v1/echo annotation: replaces it.
      {"POST", "/v1/echo", "tipperary.testing.v1.TestService/Unannotated", "*", "", std::nullopt,
       std::nullopt, std::nullopt},
  };
  auto t = RouteTable::Build(TestSchema(), specs, RouteTableOptions{});
  ASSERT_TRUE(t.ok()) << t.status();
  auto m = (*t)->Match("GET", "/v1/unannotated/abc");
  ASSERT_EQ(m.status, Status::kOk);
  EXPECT_EQ(MethodOf(m), "Unannotated");
  EXPECT_EQ(m.route->source, RouteSource::kConfig);
  EXPECT_EQ(m.route->http_method, "GET");
  EXPECT_EQ(m.route->timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(MethodOf((*t)->Match("POST", "/v1/echo")), "Unannotated");
  // The other bindings of Echo remain.
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/v1/echo/x")), "Echo");

  std::string json = (*t)->DescribeJson();
  EXPECT_THAT(json, HasSubstr("{\"method\":\"GET\",\"path\":\"/v1/unannotated/{f_string}\","
                              "\"grpc_method\":\"tipperary.testing.v1.TestService/Unannotated\","
                              "\"body\":\"\",\"response_body\":\"f_nested\",\"timeout\":\"1.500s\","
                              "\"source\":\"config\""));
  EXPECT_THAT(json, HasSubstr("\"source\":\"annotation\""));
  EXPECT_EQ(json.front(), '[');
  EXPECT_EQ(json.back(), ']');
}

TEST(RouteTable, BadConfigRoutes) {
  const std::string svc = "tipperary.testing.v1.TestService/";
  struct Case {
    RouteSpec spec;
    std::string error;
  } cases[] = {
      {{"GET", "/x", "tipperary.testing.v1.TestService/Nope", "", "", {}, {}, {}},
       "unknown gRPC method"},
      {{"GET", "/x", "no.Such/Method", "", "", {}, {}, {}}, "unknown gRPC method"},
      {{"GET", "x", svc + "Echo", "", "", {}, {}, {}}, "invalid path template"},
      {{"GET", "/x/{nope}", svc + "Echo", "", "", {}, {}, {}}, "has no field \"nope\""},
      {{"GET", "/x/{r_string}", svc + "Echo", "", "", {}, {}, {}}, "repeated"},
      {{"GET", "/x/{f_nested}", svc + "Echo", "", "", {}, {}, {}}, "must name a scalar"},
      {{"GET", "/x/{f_string.x}", svc + "Echo", "", "", {}, {}, {}}, "is not a message"},
      {{"POST", "/x", svc + "Echo", "nope", "", {}, {}, {}}, "body \"nope\""},
      {{"POST", "/x", svc + "Echo", "*", "nope", {}, {}, {}}, "response_body \"nope\""},
      {{"BAD METHOD", "/x", svc + "Echo", "", "", {}, {}, {}}, "invalid HTTP method"},
  };
  for (const Case& c : cases) {
    auto t = RouteTable::Build(TestSchema(), {c.spec}, RouteTableOptions{});
    ASSERT_FALSE(t.ok()) << c.spec.path_template;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.error));
  }
  // Two config routes with the same shape conflict.
  auto t = RouteTable::Build(TestSchema(),
                             {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
                              {"GET", "/y/{f_bytes}", svc + "Unannotated", "", "", {}, {}, {}}},
                             RouteTableOptions{});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("conflicts with"));
}

}  // namespace
}  // namespace tipperary::transcoder
