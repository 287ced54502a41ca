#include "metadata_mapping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tipperary::proxy {
namespace {

using ::testing::Contains;
using ::testing::Not;
using ::testing::Pair;

// Header fields as the listener hands them over (names in any case, in order).
boost::beast::http::fields Fields(
    std::initializer_list<std::pair<std::string_view, std::string_view>> list) {
  boost::beast::http::fields out;
  for (const auto& [name, value] : list) out.insert(name, value);
  return out;
}

struct Forwarded {
  std::string request_id;
  upstream::Metadata metadata;
};

// The request id and the metadata, as the request path computes them.
Forwarded Forward(const boost::beast::http::fields& headers, std::string_view peer) {
  Forwarded out;
  out.request_id = RequestIdFor(headers);
  out.metadata = BuildUpstreamMetadata(headers, peer, out.request_id);
  return out;
}

// A response's fields as (name, value) pairs, to match against.
std::vector<std::pair<std::string, std::string>> Pairs(const boost::beast::http::fields& f) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& field : f) out.emplace_back(field.name_string(), field.value());
  return out;
}

TEST(MetadataMappingTest, GrpcMetadataHeadersBecomeLowercaseMetadata) {
  auto info = Forward(Fields({{"Grpc-Metadata-Tenant", "acme"}, {"Accept", "x"}}), "");
  EXPECT_THAT(info.metadata, Contains(Pair("tenant", "acme")));
  for (const auto& [k, v] : info.metadata) EXPECT_NE(k, "accept");
}

TEST(MetadataMappingTest, BinaryMetadataIsBase64Decoded) {
  auto info = Forward(Fields({{"Grpc-Metadata-Blob-Bin", "AAEC"}}), "");
  EXPECT_THAT(info.metadata, Contains(Pair("blob-bin", std::string("\0\1\2", 3))));
}

TEST(MetadataMappingTest, BinaryValuesUnpaddedOrUrlSafeDecodeAndOthersAreDropped) {
  auto info = Forward(Fields({{"Grpc-Metadata-A-Bin", "/w"},
                              {"Grpc-Metadata-B-Bin", "_-8"},
                              {"Grpc-Metadata-C-Bin", "not base64!"}}),
                      "");
  EXPECT_THAT(info.metadata, Contains(Pair("a-bin", "\xff")));
  EXPECT_THAT(info.metadata, Contains(Pair("b-bin", "\xff\xef")));
  EXPECT_THAT(info.metadata, Not(Contains(Pair("c-bin", ::testing::_))));
}

TEST(MetadataMappingTest, GrpcTraceBinIsDecodedLikeEveryBinaryValue) {
  // The upstream client base64-encodes "-bin" values itself: forwarding the header's text would
  // hand the upstream's gRPC library the base64 text instead of the trace context. (Checked
  // here, not end to end: grpc++ 1.51 keeps grpc-trace-bin from a server's client_metadata().)
  auto info = Forward(Fields({{"grpc-trace-bin", "AAEC"}}), "");
  EXPECT_THAT(info.metadata, Contains(Pair("grpc-trace-bin", std::string("\0\1\2", 3))));
  auto bad = Forward(Fields({{"grpc-trace-bin", "%%%"}}), "");
  EXPECT_THAT(bad.metadata, Not(Contains(Pair("grpc-trace-bin", ::testing::_))));
}

TEST(MetadataMappingTest, ReservedKeysAreDropped) {
  auto info = Forward(Fields({{"Grpc-Metadata-Grpc-Timeout", "1S"},
                              {"Grpc-Metadata-Content-Type", "x"},
                              {"Grpc-Metadata-Te", "x"},
                              {"Grpc-Metadata-Bad Key", "x"}}),
                      "");
  for (const auto& [k, v] : info.metadata) {
    EXPECT_TRUE(k == "x-request-id") << k;
  }
}

TEST(MetadataMappingTest, ProxyOwnedKeysCannotBeSetThroughGrpcMetadata) {
  // A second x-forwarded-for ahead of the proxy's would hand an upstream that reads the first
  // value a client-chosen address; the request id is the proxy's too.
  auto info = Forward(Fields({{"Grpc-Metadata-X-Forwarded-For", "6.6.6.6"},
                              {"Grpc-Metadata-X-Request-Id", "forged"},
                              {"X-Request-Id", "req-1"}}),
                      "10.0.0.1");
  EXPECT_THAT(info.metadata, ::testing::UnorderedElementsAre(Pair("x-request-id", "req-1"),
                                                             Pair("x-forwarded-for", "10.0.0.1")));
  // gRPC-Web, where header fields are metadata as they are.
  auto web = BuildUpstreamMetadata(Fields({{"Grpc-Metadata-X-Forwarded-For", "6.6.6.6"},
                                           {"x-request-id", "forged"},
                                           {"tenant", "a"}}),
                                   "10.0.0.1", "req-2", /*headers_are_metadata=*/true);
  EXPECT_THAT(web,
              ::testing::UnorderedElementsAre(Pair("tenant", "a"), Pair("x-request-id", "req-2"),
                                              Pair("x-forwarded-for", "10.0.0.1")));
}

TEST(MetadataMappingTest, ForwardsRfc9218PriorityForTheWorkersLanes) {
  auto info = Forward(Fields({{"Priority", "u=6, i"}}), "");
  EXPECT_THAT(info.metadata, Contains(Pair("priority", "u=6, i")));
}

TEST(MetadataMappingTest, ForwardsAuthorizationTracingAndRequestId) {
  auto info = Forward(Fields({{"Authorization", "Bearer t"},
                              {"traceparent", "00-abc-def-01"},
                              {"tracestate", "k=v"},
                              {"X-Request-Id", "req-1"}}),
                      "10.0.0.1");
  EXPECT_EQ(info.request_id, "req-1");
  EXPECT_THAT(info.metadata, Contains(Pair("authorization", "Bearer t")));
  EXPECT_THAT(info.metadata, Contains(Pair("traceparent", "00-abc-def-01")));
  EXPECT_THAT(info.metadata, Contains(Pair("tracestate", "k=v")));
  EXPECT_THAT(info.metadata, Contains(Pair("x-request-id", "req-1")));
  EXPECT_THAT(info.metadata, Contains(Pair("x-forwarded-for", "10.0.0.1")));
}

TEST(MetadataMappingTest, RequestIdGeneratedWhenAbsent) {
  auto a = Forward(Fields({}), "");
  auto b = Forward(Fields({}), "");
  EXPECT_EQ(a.request_id.size(), 36u);
  EXPECT_NE(a.request_id, b.request_id);
  EXPECT_EQ(a.request_id[14], '4');
}

TEST(MetadataMappingTest, GeneratedRequestIdIsAVersion4Uuid) {
  for (int i = 0; i < 100; ++i) {
    std::string id = GenerateRequestId();
    EXPECT_THAT(id, ::testing::MatchesRegex(
                        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"))
        << id;
  }
}

TEST(MetadataMappingTest, ForwardedForIsAppended) {
  auto info = Forward(Fields({{"X-Forwarded-For", "1.1.1.1, 2.2.2.2"}}), "127.0.0.1");
  EXPECT_THAT(info.metadata, Contains(Pair("x-forwarded-for", "1.1.1.1, 2.2.2.2, 127.0.0.1")));
}

TEST(MetadataMappingTest, ResponseMetadataHeaders) {
  boost::beast::http::fields fields;
  AppendMetadataFields(
      {{"k", "v"}, {"b-bin", std::string("\xff\x00", 2)}, {"x-rate-limit_left", "3"}},
      "Grpc-Trailer-", fields);
  // Names as grpc-gateway's (Go canonicalizes them), compared exactly here.
  EXPECT_THAT(Pairs(fields), Contains(Pair("Grpc-Trailer-K", "v")));
  EXPECT_THAT(Pairs(fields), Contains(Pair("Grpc-Trailer-B-Bin", "/wA=")));
  EXPECT_THAT(Pairs(fields), Contains(Pair("Grpc-Trailer-X-Rate-Limit_left", "3")));
}

TEST(MetadataMappingTest, ListedKeysKeepTheirOwnName) {
  // TEI's timing headers as TEI names them; other keys keep grpc-gateway's prefix.
  boost::beast::http::fields fields;
  AppendMetadataFields({{"x-queue-time", "3"}, {"x-cost", "1"}}, "Grpc-Metadata-", fields,
                       {"x-queue-time", "x-total-time"});
  auto pairs = Pairs(fields);
  EXPECT_THAT(pairs, Contains(Pair("x-queue-time", "3")));
  EXPECT_THAT(pairs, Contains(Pair("Grpc-Metadata-X-Cost", "1")));
  EXPECT_THAT(pairs, Not(Contains(Pair("Grpc-Metadata-X-Queue-Time", "3"))));
  EXPECT_EQ(pairs.size(), 2u);
}

TEST(MetadataMappingTest, HeaderNamesInAnyCase) {
  auto info = Forward(Fields({{"GRPC-METADATA-Tenant", "a"},
                              {"AUTHORIZATION", "t"},
                              {"x-REQUEST-id", "r"},
                              {"TraceParent", "p"}}),
                      "");
  EXPECT_THAT(info.metadata, Contains(Pair("tenant", "a")));
  EXPECT_THAT(info.metadata, Contains(Pair("authorization", "t")));
  EXPECT_THAT(info.metadata, Contains(Pair("traceparent", "p")));
  EXPECT_EQ(info.request_id, "r");
}

TEST(MetadataMappingTest, GrpcTimeoutParsing) {
  std::chrono::nanoseconds d;
  ASSERT_TRUE(ParseGrpcTimeout("100m", &d));
  EXPECT_EQ(d, std::chrono::milliseconds(100));
  ASSERT_TRUE(ParseGrpcTimeout("2S", &d));
  EXPECT_EQ(d, std::chrono::seconds(2));
  ASSERT_TRUE(ParseGrpcTimeout("5n", &d));
  EXPECT_EQ(d, std::chrono::nanoseconds(5));
  ASSERT_TRUE(ParseGrpcTimeout("99999999H", &d));  // Clamped, no overflow.
  EXPECT_GT(d, std::chrono::hours(1));
  EXPECT_FALSE(ParseGrpcTimeout("100", &d));
  EXPECT_FALSE(ParseGrpcTimeout("m", &d));
  EXPECT_FALSE(ParseGrpcTimeout("123456789S", &d));
  EXPECT_FALSE(ParseGrpcTimeout("-1S", &d));
  EXPECT_FALSE(ParseGrpcTimeout("1x", &d));
}

}  // namespace
}  // namespace tipperary::proxy
