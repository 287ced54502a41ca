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

TEST(RouteTable, BadConfigRoutesAreSkippedWithTheirReason) {
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
      {{"GET", "/x/{m_string_int64}", svc + "Echo", "", "", {}, {}, {}}, "map field"},
      {{"GET", "/x/{r_nested}", svc + "Echo", "", "", {}, {}, {}}, "must name a scalar"},
      {{"GET", "/x/{f_nested}", svc + "Echo", "", "", {}, {}, {}}, "must name a scalar"},
      {{"GET", "/x/{r_nested.name}", svc + "Echo", "", "", {}, {}, {}}, "is a repeated message"},
      {{"GET", "/x/{f_string.x}", svc + "Echo", "", "", {}, {}, {}}, "is not a message"},
      {{"POST", "/x", svc + "Echo", "nope", "", {}, {}, {}}, "body \"nope\""},
      {{"POST", "/x", svc + "Echo", "r_nested.name", "", {}, {}, {}},
       "not a singular message field"},
      {{"POST", "/x", svc + "Echo", "*", "nope", {}, {}, {}}, "response_body \"nope\""},
      {{"POST", "/x", svc + "Echo", "*", "f_nested.nope", {}, {}, {}},
       "response_body \"f_nested.nope\""},
      {{"BAD METHOD", "/x", svc + "Echo", "", "", {}, {}, {}}, "invalid HTTP method"},
  };
  RouteTableOptions options;
  options.annotations = false;
  for (const Case& c : cases) {
    // The bad route is skipped and the good one beside it is served.
    std::vector<RouteSpec> specs = {c.spec, {"GET", "/good", svc + "Echo", "", "", {}, {}, {}}};
    auto t = RouteTable::Build(TestSchema(), specs, options);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(MethodOf((*t)->Match("GET", "/good")), "Echo");
    ASSERT_EQ((*t)->issues().size(), 1u) << c.spec.path_template;
    const RouteIssue& issue = (*t)->issues()[0];
    EXPECT_EQ(issue.kind, RouteIssue::Kind::kSkipped);
    EXPECT_TRUE(issue.problem);
    EXPECT_EQ(issue.source, RouteSource::kConfig);
    EXPECT_EQ(issue.path, c.spec.path_template);
    EXPECT_THAT(issue.reason, HasSubstr(c.error)) << c.spec.path_template;
    EXPECT_THAT(issue.Describe(), HasSubstr(c.spec.grpc_method));
    EXPECT_THAT((*t)->DescribeJson(), HasSubstr("\"state\":\"skipped\""));

    // Strict: no table, and the error names the method, the rule and the reason.
    RouteTableOptions strict = options;
    strict.strict = true;
    auto refused = RouteTable::Build(TestSchema(), specs, strict);
    ASSERT_FALSE(refused.ok()) << c.spec.path_template;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(c.error));
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(c.spec.grpc_method));
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(c.spec.path_template));
  }
}

TEST(RouteTable, SameShapeTheLaterRuleWinsAndTheEarlierIsShadowed) {
  const std::string svc = "tipperary.testing.v1.TestService/";
  const std::string parity = "tipperary.testing.v1.ParityService/";
  RouteTableOptions options;
  options.annotations = false;
  auto t = RouteTable::Build(TestSchema(),
                             {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
                              {"GET", "/y/{f_bytes}", svc + "Unannotated", "", "", {}, {}, {}}},
                             options);
  ASSERT_TRUE(t.ok()) << t.status();
  auto m = (*t)->Match("GET", "/y/abc");
  EXPECT_EQ(MethodOf(m), "Unannotated");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("f_bytes", "abc")));
  ASSERT_EQ((*t)->issues().size(), 1u);
  const RouteIssue& issue = (*t)->issues()[0];
  EXPECT_EQ(issue.kind, RouteIssue::Kind::kShadowed);
  EXPECT_TRUE(issue.problem);
  EXPECT_EQ(issue.grpc_method, svc + "Echo");
  EXPECT_EQ(issue.shadowed_by_method, svc + "Unannotated");
  EXPECT_EQ(issue.shadowed_by_rule, "GET /y/{f_bytes}");
  EXPECT_THAT(issue.Describe(), HasSubstr("Echo: GET /y/{f_string} (config): shadowed by GET "
                                          "/y/{f_bytes} (" +
                                          svc + "Unannotated, config)"));
  EXPECT_THAT(
      (*t)->DescribeJson(),
      HasSubstr("{\"method\":\"GET\",\"path\":\"/y/{f_string}\",\"grpc_method\":\"" + svc +
                "Echo\",\"body\":\"\",\"response_body\":\"\",\"source\":\"config\","
                "\"state\":\"shadowed\",\"shadowed_by\":{\"grpc_method\":\"" +
                svc + "Unannotated\",\"rule\":\"GET /y/{f_bytes}\",\"source\":\"config\"}"));

  // Three in a row: each loser names the final winner.
  t = RouteTable::Build(
      TestSchema(),
      {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
       {"GET", "/y/{f_bytes}", svc + "Unannotated", "", "", {}, {}, {}},
       {"GET", "/y/{camel_case_name}", parity + "EchoParity", "", "", {}, {}, {}}},
      options);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/y/abc")), "EchoParity");
  ASSERT_EQ((*t)->issues().size(), 2u);
  EXPECT_EQ((*t)->issues()[0].shadowed_by_method, parity + "EchoParity");
  EXPECT_EQ((*t)->issues()[1].shadowed_by_method, parity + "EchoParity");

  // A repeated identical rule is no conflict.
  t = RouteTable::Build(TestSchema(),
                        {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
                         {"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}}},
                        options);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE((*t)->issues().empty());

  // grpc-gateway v1's default mux: the first registered wins.
  options.first_wins = true;
  t = RouteTable::Build(TestSchema(),
                        {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
                         {"GET", "/y/{f_bytes}", svc + "Unannotated", "", "", {}, {}, {}}},
                        options);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(MethodOf((*t)->Match("GET", "/y/abc")), "Echo");
  ASSERT_EQ((*t)->issues().size(), 1u);
  EXPECT_EQ((*t)->issues()[0].grpc_method, svc + "Unannotated");
  EXPECT_EQ((*t)->issues()[0].shadowed_by_method, svc + "Echo");
  options.first_wins = false;

  options.strict = true;
  auto refused =
      RouteTable::Build(TestSchema(),
                        {{"GET", "/y/{f_string}", svc + "Echo", "", "", {}, {}, {}},
                         {"GET", "/y/{f_bytes}", svc + "Unannotated", "", "", {}, {}, {}}},
                        options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("shadowed by"));
}

TEST(RouteTable, AnnotationsOfTheParityService) {
  // EchoParity's rule forms (protoc-gen-grpc-gateway accepts them all).
  const RouteTable& t = *TestRoutes();
  auto m = t.Match("GET", "/v1/parity/ids/a,b,c");
  EXPECT_EQ(MethodOf(m), "EchoParity");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("r_string", "a,b,c")));
  m = t.Match("GET", "/v1/parity/numbers/1,2/n");
  EXPECT_THAT(m.bindings, ElementsAre(Pair("r_int64", "1,2"), Pair("f_nested.name", "n")));
  m = t.Match("POST", "/v1/parity/child/s");
  ASSERT_EQ(m.status, Status::kOk);
  ASSERT_EQ(m.route->body_path.size(), 2u);
  EXPECT_EQ(m.route->body_field->name(), "child");
  ASSERT_EQ(m.route->response_body_path.size(), 2u);
  EXPECT_EQ(m.route->response_body_field->name(), "child");

  // EchoShadow's: a duplicate of EchoParity's GET /v1/parity/dup/* wins, being later; its two
  // invalid rules are skipped.
  m = t.Match("GET", "/v1/parity/dup/x");
  EXPECT_EQ(MethodOf(m), "EchoShadow");
  EXPECT_EQ(t.Match("GET", "/v1/parity/bad/x").status, Status::kNotFound);
  EXPECT_EQ(t.Match("GET", "/v1/parity/message/x").status, Status::kNotFound);
  std::vector<std::string> problems;
  for (const RouteIssue& issue : t.issues()) {
    if (issue.problem) problems.push_back(issue.Describe());
  }
  const std::string svc = "tipperary.testing.v1.ParityService/";
  EXPECT_THAT(
      problems,
      ElementsAre(svc +
                      "EchoParity: GET /v1/parity/dup/{f_string} (annotation): shadowed by GET "
                      "/v1/parity/dup/{camel_case_name} (" +
                      svc + "EchoShadow, annotation)",
                  HasSubstr(svc + "EchoShadow: GET /v1/parity/bad/{no_such_field} (annotation): "
                                  "skipped: path variable \"no_such_field\""),
                  HasSubstr(svc + "EchoShadow: GET /v1/parity/message/{f_nested} (annotation): "
                                  "skipped: path variable \"f_nested\" must name a scalar")));

  RouteTableOptions strict;
  strict.strict = true;
  auto refused = RouteTable::Build(TestSchema(), {}, strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("3 route problem(s)"));
  for (const std::string& p : problems) {
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(p));
  }
}

TEST(RouteTable, ConfigOverrideIsShadowingButNoProblem) {
  std::vector<RouteSpec> specs = {
      {"POST",
       "/v1/echo",
       "tipperary.testing.v1.TestService/Unannotated",
       "*",
       "",
       std::nullopt,
       {},
       {}},
  };
  RouteTableOptions options;
  options.strict = false;
  auto t = RouteTable::Build(TestSchema(), specs, options);
  ASSERT_TRUE(t.ok()) << t.status();
  const RouteIssue* found = nullptr;
  for (const RouteIssue& issue : (*t)->issues()) {
    if (issue.path == "/v1/echo") found = &issue;
  }
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->kind, RouteIssue::Kind::kShadowed);
  EXPECT_FALSE(found->problem);
  EXPECT_EQ(found->grpc_method, "tipperary.testing.v1.TestService/Echo");
  EXPECT_EQ(found->shadowed_by_source, RouteSource::kConfig);
}

}  // namespace
}  // namespace tipperary::transcoder
