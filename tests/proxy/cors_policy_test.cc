#include "cors_policy.h"

#include <gtest/gtest.h>

namespace tipperary::proxy {
namespace {

namespace http = boost::beast::http;

config::CorsConfig Config(std::vector<std::string> origins) {
  config::CorsConfig c;
  c.allow_origins = std::move(origins);
  return c;
}

TEST(CorsPolicyTest, OffWithoutOrigins) {
  CorsPolicy cors(config::CorsConfig{});
  EXPECT_FALSE(cors.enabled());
  EXPECT_FALSE(cors.AllowsOrigin("https://a.example"));
}

TEST(CorsPolicyTest, Origins) {
  CorsPolicy cors(
      Config({"https://app.example.com", "http://localhost:8080", "https://*.corp.example"}));
  EXPECT_TRUE(cors.AllowsOrigin("https://app.example.com"));
  EXPECT_TRUE(cors.AllowsOrigin("HTTPS://App.Example.com"));
  EXPECT_FALSE(cors.AllowsOrigin("http://app.example.com"));
  EXPECT_FALSE(cors.AllowsOrigin("https://app.example.com:8443"));
  EXPECT_FALSE(cors.AllowsOrigin("https://app.example.com.evil"));
  EXPECT_TRUE(cors.AllowsOrigin("http://localhost:8080"));
  EXPECT_FALSE(cors.AllowsOrigin("http://localhost"));
  EXPECT_TRUE(cors.AllowsOrigin("https://a.corp.example"));
  EXPECT_TRUE(cors.AllowsOrigin("https://a.b.corp.example"));
  EXPECT_FALSE(cors.AllowsOrigin("https://corp.example"));
  EXPECT_FALSE(cors.AllowsOrigin("https://evilcorp.example"));
  EXPECT_FALSE(cors.AllowsOrigin("null"));
  EXPECT_FALSE(cors.AllowsOrigin(""));
  EXPECT_TRUE(CorsPolicy(Config({"*"})).AllowsOrigin("null"));
}

TEST(CorsPolicyTest, MethodsAndHeaders) {
  config::CorsConfig c = Config({"*"});
  c.allow_methods = {"PUT"};
  c.allow_headers = {"Content-Type", "X-Grpc-Web"};
  CorsPolicy cors(c);
  EXPECT_TRUE(cors.AllowsMethod("POST"));  // CORS-safelisted.
  EXPECT_TRUE(cors.AllowsMethod("PUT"));
  EXPECT_FALSE(cors.AllowsMethod("DELETE"));
  EXPECT_FALSE(cors.AllowsMethod("put"));
  EXPECT_TRUE(cors.AllowsHeaders("content-type, x-grpc-web"));
  EXPECT_TRUE(cors.AllowsHeaders(""));
  EXPECT_FALSE(cors.AllowsHeaders("content-type,x-secret"));
  c.allow_headers = {"*"};
  EXPECT_TRUE(CorsPolicy(c).AllowsHeaders("x-anything"));
}

TEST(CorsPolicyTest, ResponseHeaders) {
  http::fields any;
  CorsPolicy(Config({"*"})).AddResponseHeaders("https://a.example", any);
  EXPECT_EQ(any[http::field::access_control_allow_origin], "*");
  EXPECT_EQ(any.count(http::field::vary), 0u);
  EXPECT_EQ(any[http::field::access_control_expose_headers],
            "*, grpc-status, grpc-message, grpc-status-details-bin, x-request-id");

  config::CorsConfig c = Config({"https://a.example"});
  c.allow_credentials = true;
  http::fields echoed;
  CorsPolicy(c).AddResponseHeaders("https://a.example", echoed);
  EXPECT_EQ(echoed[http::field::access_control_allow_origin], "https://a.example");
  EXPECT_EQ(echoed[http::field::access_control_allow_credentials], "true");
  EXPECT_EQ(echoed[http::field::vary], "Origin");
}

TEST(CorsPolicyTest, PreflightHeaders) {
  config::CorsConfig c = Config({"https://a.example"});
  c.max_age = std::chrono::minutes(2);
  http::fields f;
  CorsPolicy(c).AddPreflightHeaders("https://a.example", "x-grpc-web", f);
  EXPECT_EQ(f[http::field::access_control_allow_origin], "https://a.example");
  EXPECT_EQ(f[http::field::access_control_allow_methods], "GET, POST, PUT, PATCH, DELETE");
  EXPECT_EQ(f[http::field::access_control_allow_headers],
            "content-type, authorization, x-grpc-web, x-user-agent, grpc-timeout, x-request-id");
  EXPECT_EQ(f[http::field::access_control_max_age], "120");
  EXPECT_EQ(f.count(http::field::access_control_expose_headers), 0u);
  c.allow_headers = {"*"};
  http::fields reflected;
  CorsPolicy(c).AddPreflightHeaders("https://a.example", "x-one, x-two", reflected);
  EXPECT_EQ(reflected[http::field::access_control_allow_headers], "x-one, x-two");
}

}  // namespace
}  // namespace tipperary::proxy
