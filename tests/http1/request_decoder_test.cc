// RequestDecoder and CheckFraming without sockets: every RFC 9112 framing rule, each limit, and
// the same input fed whole, one byte at a time and split at every position (a connection sees
// any split), which must all decode alike.
#include "tipperary/http1/request_decoder.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::http1 {
namespace {

using ::testing::HasSubstr;
namespace http = boost::beast::http;

struct Outcome {
  std::vector<RequestHead> requests;
  std::vector<http::fields> trailers;
  std::vector<RequestFraming> framings;
  bool error = false;
  RequestError err;
  std::string left;  // Bytes never consumed (an incomplete request).
};

// Feeds `input` in pieces of `step` bytes (0: all at once), as a connection would: keeping what
// was not consumed and appending the next read.
Outcome Decode(const std::string& input, size_t step = 0, RequestLimits limits = {}) {
  Outcome out;
  RequestDecoder decoder(limits);
  std::string pending;
  size_t offset = 0;
  while (true) {
    size_t n = step == 0 ? input.size() - offset : std::min(step, input.size() - offset);
    pending.append(input, offset, n);
    offset += n;
    bool progress = true;
    while (progress) {
      progress = false;
      size_t used = 0;
      RequestDecoder::Event e = decoder.Decode(pending, &used);
      pending.erase(0, used);
      if (e == RequestDecoder::Event::kError) {
        out.error = true;
        out.err = decoder.error();
        return out;
      }
      if (e == RequestDecoder::Event::kHeader) progress = true;
      if (e == RequestDecoder::Event::kComplete) {
        out.framings.push_back(decoder.framing());
        out.requests.push_back(decoder.TakeRequest());
        out.trailers.push_back(decoder.TakeTrailers());
        decoder.Reset();
        progress = !pending.empty();
      }
      if (used > 0 && e == RequestDecoder::Event::kNeedMore) progress = !pending.empty();
    }
    if (offset == input.size()) break;
  }
  out.left = pending;
  return out;
}

// Every split of the input must give the same result as feeding it whole.
Outcome RunAllSplits(const std::string& input, RequestLimits limits = {}) {
  Outcome whole = Decode(input, 0, limits);
  for (size_t step : {1, 2, 3, 7, 64}) {
    Outcome split = Decode(input, step, limits);
    EXPECT_EQ(split.error, whole.error) << "step " << step;
    EXPECT_EQ(split.requests.size(), whole.requests.size()) << "step " << step;
    if (split.error && whole.error) {
      EXPECT_EQ(split.err.status, whole.err.status) << "step " << step;
    }
    for (size_t i = 0; i < std::min(split.requests.size(), whole.requests.size()); ++i) {
      EXPECT_EQ(split.requests[i].body(), whole.requests[i].body()) << "step " << step;
      EXPECT_EQ(split.requests[i].target(), whole.requests[i].target()) << "step " << step;
    }
  }
  return whole;
}

unsigned Status(const Outcome& o) { return static_cast<unsigned>(o.err.status); }

TEST(RequestDecoderTest, SimpleGet) {
  Outcome o = RunAllSplits("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_EQ(o.requests[0].target(), "/a?b=c");
  EXPECT_EQ(o.requests[0].method(), http::verb::get);
  EXPECT_TRUE(o.framings[0].keep_alive);
  EXPECT_EQ(o.framings[0].body, RequestFraming::Body::kNone);
}

TEST(RequestDecoderTest, ContentLengthBody) {
  Outcome o = RunAllSplits("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_FALSE(o.error) << o.err.message;
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_EQ(o.requests[0].body(), "hello");
}

TEST(RequestDecoderTest, ChunkedBodyWithExtensionsAndTrailersKeptApart) {
  Outcome o = RunAllSplits(
      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\n"
      "Authorization: Bearer smuggled\r\nContent-Type: text/evil\r\nX-Check: 1\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  ASSERT_EQ(o.requests.size(), 1u);
  EXPECT_EQ(o.requests[0].body(), "hello world");
  // RFC 9110 §6.5.1: no trailer field reaches the header fields.
  EXPECT_EQ(o.requests[0].count(http::field::authorization), 0u);
  EXPECT_EQ(o.requests[0].count(http::field::content_type), 0u);
  EXPECT_EQ(o.trailers[0][http::field::authorization], "Bearer smuggled");
  EXPECT_EQ(o.trailers[0]["X-Check"], "1");
}

TEST(RequestDecoderTest, PipelinedRequestsAndEmptyLinesBetweenThem) {
  Outcome o = RunAllSplits(
      "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab\r\n"
      "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  ASSERT_EQ(o.requests.size(), 3u);
  EXPECT_EQ(o.requests[0].body(), "ab");
  EXPECT_EQ(o.requests[1].target(), "/2");
  EXPECT_EQ(o.requests[2].target(), "/3");
}

// ---- Transfer-Encoding (RFC 9112 §6.1, §6.3) ----

struct FramingCase {
  const char* name;
  std::string request;
  unsigned status;  // 0: accepted
};

class FramingRuleTest : public ::testing::TestWithParam<FramingCase> {};

TEST_P(FramingRuleTest, DecidesAsTheRfcSays) {
  const FramingCase& c = GetParam();
  Outcome o = RunAllSplits(c.request);
  if (c.status == 0) {
    EXPECT_FALSE(o.error) << o.err.message;
    EXPECT_EQ(o.requests.size(), 1u);
  } else {
    ASSERT_TRUE(o.error) << "accepted: " << c.request;
    EXPECT_EQ(Status(o), c.status) << o.err.message;
    // Nothing after the error may be read as a request.
    EXPECT_TRUE(o.requests.empty());
  }
}

std::string Post(const std::string& fields, const std::string& body = "",
                 const char* version = "HTTP/1.1") {
  return std::string("POST /p ") + version + "\r\n" + fields + "\r\n" + body;
}

const char kSmuggled[] = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

INSTANTIATE_TEST_SUITE_P(
    TransferEncoding, FramingRuleTest,
    ::testing::Values(
        FramingCase{"chunked", Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 0},
        FramingCase{"ChunkedUpperCase",
                    Post("Host: x\r\nTransfer-Encoding: CHUNKED\r\n", "0\r\n\r\n"), 0},
        FramingCase{"identity", Post("Host: x\r\nTransfer-Encoding: identity\r\n", kSmuggled), 400},
        FramingCase{"ChunkedThenIdentity",
                    Post("Host: x\r\nTransfer-Encoding: chunked, identity\r\n", kSmuggled), 400},
        FramingCase{"ChunkedTwice",
                    Post("Host: x\r\nTransfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400},
        FramingCase{"ChunkedOnTwoLines",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                         "0\r\n\r\n"),
                    400},
        FramingCase{"UnknownToken", Post("Host: x\r\nTransfer-Encoding: xchunked\r\n", kSmuggled),
                    400},
        FramingCase{"UnknownBeforeChunked",
                    Post("Host: x\r\nTransfer-Encoding: foo, chunked\r\n", "0\r\n\r\n"), 400},
        FramingCase{"GzipThenChunked",
                    Post("Host: x\r\nTransfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501},
        FramingCase{"GzipOnly", Post("Host: x\r\nTransfer-Encoding: gzip\r\n", kSmuggled), 400},
        FramingCase{"Empty", Post("Host: x\r\nTransfer-Encoding: \r\n", kSmuggled), 400},
        FramingCase{"CommaOnly", Post("Host: x\r\nTransfer-Encoding: ,\r\n", kSmuggled), 400},
        FramingCase{"VerticalTab",
                    Post("Host: x\r\nTransfer-Encoding: \x0b"
                         "chunked\r\n",
                         "0\r\n\r\n"),
                    400},
        FramingCase{"SpaceBeforeColon",
                    Post("Host: x\r\nTransfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400},
        FramingCase{"ObsFoldedValue",
                    Post("Host: x\r\nTransfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n"), 400},
        FramingCase{"QuotedChunked",
                    Post("Host: x\r\nTransfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"), 400},
        FramingCase{"ChunkedWithParameter",
                    Post("Host: x\r\nTransfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), 400},
        FramingCase{
            "TeAndContentLength",
            Post("Host: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            400},
        FramingCase{
            "ContentLengthAndTe",
            Post("Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            400},
        FramingCase{"IdentityAndContentLength",
                    Post("Host: x\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n", "abc"),
                    400},
        FramingCase{"Http10Chunked",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", "HTTP/1.0"),
                    400}),
    [](const ::testing::TestParamInfo<FramingCase>& case_info) { return case_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    ContentLength, FramingRuleTest,
    ::testing::Values(
        FramingCase{"Valid", Post("Host: x\r\nContent-Length: 3\r\n", "abc"), 0},
        FramingCase{"Zero", Post("Host: x\r\nContent-Length: 0\r\n"), 0},
        FramingCase{"IdenticalList", Post("Host: x\r\nContent-Length: 3, 3\r\n", "abc"), 0},
        FramingCase{"IdenticalLines",
                    Post("Host: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n", "abc"), 0},
        FramingCase{"DifferentList", Post("Host: x\r\nContent-Length: 3, 4\r\n", "abcd"), 400},
        FramingCase{"DifferentLines",
                    Post("Host: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n", "abcd"), 400},
        FramingCase{"Plus", Post("Host: x\r\nContent-Length: +3\r\n", "abc"), 400},
        FramingCase{"Minus", Post("Host: x\r\nContent-Length: -1\r\n"), 400},
        FramingCase{"Hex", Post("Host: x\r\nContent-Length: 0x3\r\n", "abc"), 400},
        FramingCase{"InnerSpace", Post("Host: x\r\nContent-Length: 1 2\r\n", "abc"), 400},
        FramingCase{"Empty", Post("Host: x\r\nContent-Length: \r\n", "abc"), 400},
        FramingCase{"TrailingComma", Post("Host: x\r\nContent-Length: 3,\r\n", "abc"), 400},
        FramingCase{"Overflow",
                    Post("Host: x\r\nContent-Length: 99999999999999999999999\r\n", "abc"), 400},
        FramingCase{"OverLimit", Post("Host: x\r\nContent-Length: 4194305\r\n"), 413}),
    [](const ::testing::TestParamInfo<FramingCase>& case_info) { return case_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    HostAndTarget, FramingRuleTest,
    ::testing::Values(
        FramingCase{"NoHostHttp11", "GET / HTTP/1.1\r\n\r\n", 400},
        FramingCase{"NoHostHttp10", "GET / HTTP/1.0\r\n\r\n", 0},
        FramingCase{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        FramingCase{"TwoHostsHttp10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        FramingCase{"EmptyHost", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400},
        FramingCase{"HostWithPort", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 0},
        FramingCase{"HostIpv6", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 0},
        FramingCase{"HostWithSlash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
        FramingCase{"HostWithSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
        FramingCase{"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
        FramingCase{"HostBadPort", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400},
        FramingCase{"AbsoluteForm", "GET http://a.example/x?y HTTP/1.1\r\nHost: b\r\n\r\n", 0},
        FramingCase{"AbsoluteFormHttps", "GET HTTPS://a.example HTTP/1.1\r\nHost: b\r\n\r\n", 0},
        FramingCase{"AbsoluteFormFtp", "GET ftp://a.example/ HTTP/1.1\r\nHost: b\r\n\r\n", 400},
        FramingCase{"AbsoluteFormUserinfo", "GET http://u:p@a.example/ HTTP/1.1\r\nHost: b\r\n\r\n",
                    400},
        FramingCase{"AbsoluteFormEmptyHost", "GET http:///x HTTP/1.1\r\nHost: b\r\n\r\n", 400},
        FramingCase{"AbsoluteFormWithoutHostHeader", "GET http://a.example/ HTTP/1.1\r\n\r\n", 400},
        FramingCase{"AsteriskOptions", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        FramingCase{"AsteriskGet", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"AuthorityForm", "CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        FramingCase{"RelativeTarget", "GET x/y HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"Fragment", "GET /x#f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"NonAsciiTarget", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"UnwiseCharacters", "GET /a|b{c}?q=[1] HTTP/1.1\r\nHost: a\r\n\r\n", 0}),
    [](const ::testing::TestParamInfo<FramingCase>& case_info) { return case_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    RequestLineAndFields, FramingRuleTest,
    ::testing::Values(
        FramingCase{"Http12IsHttp11", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0},
        FramingCase{"Http19IsHttp11", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", 0},
        FramingCase{"Http20", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        FramingCase{"Http09", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
        FramingCase{"H2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        FramingCase{"NoVersion", "GET /\r\n\r\n", 400},
        FramingCase{"LowerCaseVersion", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"TwoDigitMinor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
        FramingCase{"DoubleSpace", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"TabSeparated", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"BareLfLines", "GET / HTTP/1.1\nHost: a\n\n", 400},
        FramingCase{"BareCrInValue", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        FramingCase{"NulInValue",
                    std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a") + '\0' + "b\r\n\r\n", 400},
        FramingCase{"WhitespaceBeforeFirstField", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
        FramingCase{"FieldWithoutColon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
        FramingCase{"EmptyFieldName", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400},
        FramingCase{"ObsTextValueAccepted", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n", 0},
        FramingCase{"CustomMethod", "FOO /x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
        FramingCase{"BadMethod", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        FramingCase{"ExpectOther", Post("Host: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n", "a"),
                    417},
        FramingCase{"ExpectOtherHttp10Ignored",
                    Post("Host: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n", "a", "HTTP/1.0"),
                    0}),
    [](const ::testing::TestParamInfo<FramingCase>& case_info) { return case_info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    ChunkSyntax, FramingRuleTest,
    ::testing::Values(
        FramingCase{
            "UpperHexSize",
            Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "A\r\n0123456789\r\n0\r\n\r\n"), 0},
        FramingCase{"LeadingZeros",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0003\r\nabc\r\n0\r\n\r\n"),
                    0},
        FramingCase{"NegativeSize",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "-3\r\nabc\r\n0\r\n\r\n"),
                    400},
        FramingCase{"SizeWithSpaceBeforeExtension",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "3 ;x\r\nabc\r\n0\r\n\r\n"),
                    0},
        FramingCase{"SizeOverflow",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n",
                         "10000000000000000\r\nabc\r\n0\r\n\r\n"),
                    400},
        FramingCase{"MissingCrlfAfterData",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "3\r\nabcX\r\n0\r\n\r\n"),
                    400},
        FramingCase{"BareLfChunkLine",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n"), 400},
        FramingCase{"ChunkedOverBodyLimit",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "400001\r\n"), 413},
        FramingCase{
            "TrailerContentLength",
            Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0\r\nContent-Length: 5\r\n\r\n"),
            400},
        FramingCase{"TrailerWithBadSyntax",
                    Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0\r\nNoColon\r\n\r\n"),
                    400}),
    [](const ::testing::TestParamInfo<FramingCase>& case_info) { return case_info.param.name; });

TEST(RequestDecoderTest, AbsoluteFormIsRoutedByItsPathAndHostIsItsAuthority) {
  Outcome o = Decode("GET http://a.example:8080/v1/x?y=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  EXPECT_EQ(o.requests[0].target(), "/v1/x?y=1");
  EXPECT_EQ(o.requests[0][http::field::host], "a.example:8080");
  o = Decode("GET http://a.example?q HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_FALSE(o.error) << o.err.message;
  EXPECT_EQ(o.requests[0].target(), "/?q");
}

TEST(RequestDecoderTest, Http12IsHandledAsHttp11) {
  Outcome o = Decode("GET / HTTP/1.2\r\nHost: a\r\n\r\n");
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.requests[0].version(), 11u);
  EXPECT_TRUE(o.framings[0].keep_alive);
}

TEST(RequestDecoderTest, ConnectionPersistenceComesFromTheHeaderOnly) {
  Outcome o = Decode("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n");
  EXPECT_FALSE(o.framings[0].keep_alive);
  o = Decode("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_TRUE(o.framings[0].keep_alive);
  o = Decode("GET / HTTP/1.0\r\n\r\n");
  EXPECT_FALSE(o.framings[0].keep_alive);
  // A trailer "Connection: close" changes nothing.
  o = Decode(Post("Host: x\r\nTransfer-Encoding: chunked\r\n", "0\r\nConnection: close\r\n\r\n"));
  ASSERT_FALSE(o.error) << o.err.message;
  EXPECT_TRUE(o.framings[0].keep_alive);
}

TEST(RequestDecoderTest, ExpectContinueOnlyWithABody) {
  Outcome o = Decode(Post("Host: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n", "a"));
  ASSERT_FALSE(o.error);
  EXPECT_TRUE(o.framings[0].expect_continue);
  o = Decode("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_FALSE(o.framings[0].expect_continue);
}

// ---- Limits: everything the peer can make us hold ----

TEST(RequestDecoderTest, HeadOverTheLimitIs431AndALongRequestLineIs414) {
  RequestLimits limits;
  limits.max_header_bytes = 1024;
  Outcome o =
      Decode("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", 0, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 431u);
  EXPECT_THAT(o.err.message, HasSubstr("limits.max_header_bytes"));
  o = Decode("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 0, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 414u);
  // An unterminated head fails as soon as it is over the limit, without its end.
  o = Decode("GET / HTTP/1.1\r\nX: " + std::string(5000, 'a'), 100, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 431u);
}

TEST(RequestDecoderTest, ChunkExtensionsAreBoundedWithoutTheirEnd) {
  RequestLimits limits;
  limits.max_chunk_extension_bytes = 100;
  std::string head = Post("Host: x\r\nTransfer-Encoding: chunked\r\n");
  // An extension that never ends: failed once it is over the limit, not buffered forever.
  Outcome o = Decode(head + "5;" + std::string(100000, 'x'), 512, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 400u);
  EXPECT_THAT(o.err.message, HasSubstr("limits.max_chunk_extension_bytes"));
  // A complete line over the limit too.
  o = Decode(head + "5;" + std::string(200, 'x') + "\r\nhello\r\n0\r\n\r\n", 0, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 400u);
  // Under the limit, any number of chunks with extensions is fine (nothing accumulates).
  std::string body;
  for (int i = 0; i < 1000; ++i) body += "1;" + std::string(90, 'e') + "\r\nz\r\n";
  o = Decode(head + body + "0\r\n\r\n", 4096, limits);
  ASSERT_FALSE(o.error) << o.err.message;
  EXPECT_EQ(o.requests[0].body(), std::string(1000, 'z'));
  // Leading zeros count against the line too.
  o = Decode(head + std::string(5000, '0') + "1\r\nz\r\n0\r\n\r\n", 64, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 400u);
}

TEST(RequestDecoderTest, TrailerSectionIsBoundedWithoutItsEnd) {
  RequestLimits limits;
  limits.max_trailer_bytes = 1024;
  std::string head = Post("Host: x\r\nTransfer-Encoding: chunked\r\n");
  Outcome o = Decode(head + "0\r\nX: " + std::string(100000, 'x'), 512, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 431u);
  EXPECT_THAT(o.err.message, HasSubstr("limits.max_trailer_bytes"));
  o = Decode(head + "0\r\nX: " + std::string(900, 'x') + "\r\n\r\n", 100, limits);
  ASSERT_FALSE(o.error) << o.err.message;
}

TEST(RequestDecoderTest, BodyLimitCountsChunkedTotal) {
  RequestLimits limits;
  limits.max_body_bytes = 10;
  std::string head = Post("Host: x\r\nTransfer-Encoding: chunked\r\n");
  Outcome o = Decode(head + "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n", 0, limits);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(Status(o), 413u);
  o = Decode(head + "5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n", 3, limits);
  ASSERT_FALSE(o.error) << o.err.message;
  EXPECT_EQ(o.requests[0].body(), "abcdefghij");
}

TEST(RequestDecoderTest, IncompleteInputIsNeitherAnErrorNorARequest) {
  Outcome o = Decode(Post("Host: x\r\nContent-Length: 10\r\n", "abc"));
  EXPECT_FALSE(o.error);
  EXPECT_TRUE(o.requests.empty());
}

}  // namespace
}  // namespace tipperary::http1
