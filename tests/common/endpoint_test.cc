#include "tipperary/common/endpoint.h"

#include <gtest/gtest.h>

namespace tipperary::common {
namespace {

TEST(EndpointTest, ParsesHostPort) {
  auto ep = ParseEndpoint("127.0.0.1:8080");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->kind, Endpoint::Kind::kTcp);
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 8080);
  EXPECT_EQ(ep->ToString(), "127.0.0.1:8080");
}

TEST(EndpointTest, ParsesBracketedIpv6) {
  auto ep = ParseEndpoint("[::1]:50051");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->ToString(), "[::1]:50051");
}

TEST(EndpointTest, ParsesUnixPath) {
  auto ep = ParseEndpoint("unix:/run/tipperary/worker.sock");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->kind, Endpoint::Kind::kUnix);
  EXPECT_EQ(ep->path, "/run/tipperary/worker.sock");
}

TEST(EndpointTest, PortZeroOnlyWhenAllowed) {
  EXPECT_FALSE(ParseEndpoint("127.0.0.1:0").ok());
  EXPECT_TRUE(ParseEndpoint("127.0.0.1:0", /*allow_port_zero=*/true).ok());
}

TEST(EndpointTest, RejectsMalformed) {
  EXPECT_FALSE(ParseEndpoint("localhost").ok());
  EXPECT_FALSE(ParseEndpoint(":80").ok());
  EXPECT_FALSE(ParseEndpoint("host:99999").ok());
  EXPECT_FALSE(ParseEndpoint("host:http").ok());
  EXPECT_FALSE(ParseEndpoint("::1:80").ok());
  EXPECT_FALSE(ParseEndpoint("unix:").ok());
}

}  // namespace
TEST(EndpointTest, LocalhostNamesAreRfc6761s) {
  EXPECT_TRUE(IsLocalhostName("localhost"));
  EXPECT_TRUE(IsLocalhostName("LocalHost."));
  EXPECT_TRUE(IsLocalhostName("worker.localhost"));
  EXPECT_FALSE(IsLocalhostName("localhost.example.com"));
  EXPECT_FALSE(IsLocalhostName("mylocalhost"));
  EXPECT_FALSE(IsLocalhostName(""));
  EXPECT_FALSE(IsLocalhostName("127.0.0.1"));
}

}  // namespace tipperary::common
