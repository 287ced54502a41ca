#include "tipperary/upstream/grpc_wire.h"

#include <gtest/gtest.h>

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;

TEST(GrpcWireTest, Base64RoundTripsWithAndWithoutPadding) {
  const std::string inputs[] = {"", "a", "ab", "abc", "abcd", std::string("\x00\x01\xfe\xff", 4)};
  for (const std::string& input : inputs) {
    std::string unpadded = Base64Encode(input, false);
    std::string padded = Base64Encode(input, true);
    EXPECT_EQ(unpadded.find('='), std::string::npos);
    EXPECT_EQ(padded.size() % 4, 0u);
    EXPECT_EQ(Base64Decode(unpadded), input);
    EXPECT_EQ(Base64Decode(padded), input);
  }
  EXPECT_EQ(Base64Encode("hello", false), "aGVsbG8");
  EXPECT_EQ(Base64Encode("hello", true), "aGVsbG8=");
  EXPECT_FALSE(Base64Decode("a").has_value());
  EXPECT_FALSE(Base64Decode("a*bc").has_value());
}

TEST(GrpcWireTest, PercentDecoding) {
  EXPECT_EQ(PercentDecode("100%25 done%0Aok"), "100% done\nok");
  EXPECT_EQ(PercentDecode("caf%C3%A9"), "caf\xC3\xA9");
  EXPECT_EQ(PercentDecode("bad %zz and %4"), "bad %zz and %4");
  const std::string text = "snowman \xE2\x98\x83 100%\r\n";
  EXPECT_EQ(PercentDecode(PercentEncode(text)), text);
}

TEST(GrpcWireTest, TimeoutEncoding) {
  EXPECT_EQ(EncodeGrpcTimeout(1500ms), "1500m");
  EXPECT_EQ(EncodeGrpcTimeout(2s), "2S");
  EXPECT_EQ(EncodeGrpcTimeout(100ms), "100m");
  EXPECT_EQ(EncodeGrpcTimeout(1h), "1H");
  EXPECT_EQ(EncodeGrpcTimeout(90min), "90M");
  EXPECT_EQ(EncodeGrpcTimeout(0ns), "1n");
  EXPECT_EQ(EncodeGrpcTimeout(1500000001ns), "1500001u");
  EXPECT_EQ(EncodeGrpcTimeout(std::chrono::hours(200000)), "200000H");
  // The largest duration rounds up to whole hours without overflowing on the way (UBSan).
  EXPECT_EQ(EncodeGrpcTimeout(std::chrono::nanoseconds::max()), "2562048H");
  for (auto t :
       {1ns, 123456789ns, 987654321012ns, std::chrono::nanoseconds(1) * 3600'000'000'007}) {
    std::string encoded = EncodeGrpcTimeout(t);
    EXPECT_LE(encoded.size(), 9u) << encoded;
  }
}

TEST(GrpcWireTest, HttpStatusMapping) {
  EXPECT_EQ(HttpStatusToGrpcCode(400), absl::StatusCode::kInternal);
  EXPECT_EQ(HttpStatusToGrpcCode(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(HttpStatusToGrpcCode(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpStatusToGrpcCode(404), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(HttpStatusToGrpcCode(429), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusToGrpcCode(502), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusToGrpcCode(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusToGrpcCode(504), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusToGrpcCode(500), absl::StatusCode::kUnknown);
  EXPECT_EQ(HttpStatusToGrpcCode(200), absl::StatusCode::kUnknown);
}

TEST(GrpcWireTest, MetadataKeys) {
  EXPECT_TRUE(IsAllowedCustomMetadataKey("x-request-id"));
  EXPECT_TRUE(IsAllowedCustomMetadataKey("trace.bin-bin"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey(":path"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey("content-type"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey("te"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey("connection"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey("grpc-timeout"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey("X-Upper"));
  EXPECT_FALSE(IsAllowedCustomMetadataKey(""));
  EXPECT_TRUE(IsReservedResponseHeader(":status"));
  EXPECT_TRUE(IsReservedResponseHeader("grpc-status"));
  EXPECT_FALSE(IsReservedResponseHeader("x-custom"));
  EXPECT_TRUE(IsBinaryHeader("x-bin"));
  EXPECT_FALSE(IsBinaryHeader("-bin"));
  EXPECT_FALSE(IsBinaryHeader("binary"));
}

}  // namespace
}  // namespace tipperary::upstream
