// Content codings without sockets: Accept-Encoding negotiation, which responses are compressed
// (and with which headers), streamed compression flushed per chunk, and request bodies decoded
// within their limits. zlib itself is the oracle for every round trip.
#include "tipperary/http1/compression.h"

#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::http1 {
namespace {

namespace http = boost::beast::http;
using ::testing::HasSubstr;

// zlib's own one-shot inflate (windowBits as zlib takes them): the independent decoder.
std::string Inflate(std::string_view data, int window_bits) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, window_bits), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[4096];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}
std::string Gunzip(std::string_view data) { return Inflate(data, 15 + 16); }

// zlib's own one-shot deflate: gzip (wrapper 16), zlib (0) or raw (-1 x window).
std::string Deflate(std::string_view data, int window_bits, int level = 6) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}
std::string Gzip(std::string_view data, int level = 6) { return Deflate(data, 15 + 16, level); }
std::string Zlib(std::string_view data) { return Deflate(data, 15); }
std::string RawDeflate(std::string_view data) { return Deflate(data, -15); }

// A typical embedding response: 384 floats as the transcoder prints them.
std::string EmbeddingJson() {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::string json = R"({"embeddings":[{"values":[)";
  for (int i = 0; i < 384; ++i) {
    if (i > 0) json += ',';
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", dist(rng));
    json += buf;
  }
  json += "]}]}";
  return json;
}

HttpRequest Request(std::string_view accept_encoding, http::verb method = http::verb::get,
                    unsigned version = 11) {
  HttpRequest req{method, "/x", version};
  if (accept_encoding != "<none>") req.set(http::field::accept_encoding, accept_encoding);
  return req;
}

HttpResponse Response(std::string body, std::string_view content_type = "application/json",
                      http::status status = http::status::ok) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

ContentCoding Negotiate(std::string_view accept_encoding) {
  return NegotiateContentCoding(Request(accept_encoding));
}

// ---- Accept-Encoding ----

TEST(NegotiateTest, QValuesWildcardsAndAliases) {
  using C = ContentCoding;
  struct Case {
    std::string_view accept;
    C want;
  } cases[] = {
      {"<none>", C::kIdentity},  // As nginx: nothing said, nothing compressed.
      {"", C::kIdentity},        // RFC 9110 §12.5.3: empty = no coding wanted.
      {"gzip", C::kGzip},
      {"GZip", C::kGzip},
      {"x-gzip", C::kGzip},
      {"deflate", C::kDeflate},
      {"gzip, deflate, br", C::kGzip},
      {"br, deflate", C::kDeflate},
      {"br", C::kIdentity},
      {"deflate;q=1, gzip;q=0.5", C::kDeflate},
      {"gzip;q=0.5, deflate;q=0.5", C::kGzip},  // A tie: our preference.
      {"gzip;q=0", C::kIdentity},
      {"gzip;Q=0.000", C::kIdentity},
      {"gzip ; q=0.001", C::kGzip},
      {"*", C::kGzip},
      {"*;q=0", C::kIdentity},
      {"*, gzip;q=0", C::kDeflate},
      {"*;q=0.2, identity", C::kIdentity},  // identity weighed above every coding.
      {"identity, gzip;q=0.5", C::kIdentity},
      {"identity;q=0.5, gzip", C::kGzip},
      {"identity;q=0", C::kIdentity},  // Nothing else acceptable: identity anyway, never 406.
      {"gzip;q=2", C::kIdentity},      // A malformed weight: the element is ignored.
      {"gzip;q=0.5000", C::kIdentity},
      {"gzip;q=abc, deflate", C::kDeflate},
      {" , ,gzip,", C::kGzip},
      {"gzip;level=9", C::kGzip},  // Unknown parameters are ignored.
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Negotiate(c.accept), c.want) << "Accept-Encoding: " << c.accept;
  }
}

TEST(NegotiateTest, SeveralFieldLinesAreOneList) {
  HttpRequest req = Request("br");
  req.insert(http::field::accept_encoding, "gzip;q=0.3");
  EXPECT_EQ(NegotiateContentCoding(req), ContentCoding::kGzip);
}

TEST(CompressibleTypeTest, PatternsAndParameters) {
  const std::vector<std::string> types = CompressionOptions().types;
  EXPECT_TRUE(IsCompressibleType(types, "application/json"));
  EXPECT_TRUE(IsCompressibleType(types, "Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsCompressibleType(types, "application/problem+json"));
  EXPECT_TRUE(IsCompressibleType(types, "application/x-ndjson"));
  EXPECT_TRUE(IsCompressibleType(types, "text/event-stream"));
  EXPECT_TRUE(IsCompressibleType(types, "text/plain; version=0.0.4"));  // Prometheus.
  EXPECT_TRUE(IsCompressibleType(types, "application/openmetrics-text; version=1.0.0"));
  EXPECT_FALSE(IsCompressibleType(types, "application/x-protobuf"));
  EXPECT_FALSE(IsCompressibleType(types, "application/octet-stream"));
  EXPECT_FALSE(IsCompressibleType(types, "application/+json"));
  EXPECT_FALSE(IsCompressibleType(types, ""));
  EXPECT_FALSE(IsCompressibleType(types, "textual/plain"));
}

// ---- Whole responses ----

TEST(CompressResponseTest, GzipRoundTripWithHeaders) {
  const std::string json = EmbeddingJson();
  HttpResponse res = Response(json);
  res.set(http::field::etag, "\"v1\"");
  CompressResponse(CompressionOptions(), Request("gzip, deflate"), res);
  EXPECT_EQ(res[http::field::content_encoding], "gzip");
  EXPECT_EQ(res[http::field::vary], "Accept-Encoding");
  EXPECT_EQ(res[http::field::etag], "W/\"v1\"");
  EXPECT_LT(res.body().size(), json.size());
  EXPECT_EQ(Gunzip(res.body()), json);
}

TEST(CompressResponseTest, DeflateIsTheZlibFormat) {
  const std::string json = EmbeddingJson();
  HttpResponse res = Response(json);
  CompressResponse(CompressionOptions(), Request("deflate"), res);
  EXPECT_EQ(res[http::field::content_encoding], "deflate");
  EXPECT_EQ(Inflate(res.body(), 15), json);  // RFC 1950, not a bare deflate stream.
}

TEST(CompressResponseTest, EveryLevelRoundTrips) {
  const std::string json = EmbeddingJson();
  for (int level = 1; level <= 9; ++level) {
    CompressionOptions options;
    options.level = level;
    HttpResponse res = Response(json);
    CompressResponse(options, Request("gzip"), res);
    ASSERT_EQ(res[http::field::content_encoding], "gzip") << level;
    EXPECT_EQ(Gunzip(res.body()), json) << level;
  }
}

TEST(CompressResponseTest, WhatIsLeftAlone) {
  const std::string json = EmbeddingJson();
  const CompressionOptions options;
  auto compressed = [&](HttpResponse res, const HttpRequest& req) {
    CompressResponse(options, req, res);
    return res.find(http::field::content_encoding) != res.end() && res.body() != json;
  };
  EXPECT_TRUE(compressed(Response(json), Request("gzip")));
  EXPECT_FALSE(compressed(Response(json), Request("<none>")));
  EXPECT_FALSE(compressed(Response(json), Request("gzip", http::verb::get, 10)));  // HTTP/1.0
  EXPECT_FALSE(compressed(Response(json, "application/x-protobuf"), Request("gzip")));
  EXPECT_FALSE(
      compressed(Response(json, "application/json", http::status::no_content), Request("gzip")));
  EXPECT_FALSE(
      compressed(Response(json, "application/json", http::status::not_modified), Request("gzip")));
  EXPECT_FALSE(compressed(Response(json, "application/json", http::status::partial_content),
                          Request("gzip")));
  CompressionOptions off;
  off.enabled = false;
  HttpResponse res = Response(json);
  CompressResponse(off, Request("gzip"), res);
  EXPECT_EQ(res.body(), json);
  EXPECT_EQ(res.find(http::field::vary), res.end());  // Off: nothing varies.
}

TEST(CompressResponseTest, AlreadyEncodedIsNeverEncodedTwice) {
  const std::string gz = Gzip(EmbeddingJson());
  HttpResponse res = Response(gz);
  res.set(http::field::content_encoding, "gzip");
  CompressResponse(CompressionOptions(), Request("gzip"), res);
  EXPECT_EQ(res.body(), gz);
  EXPECT_EQ(res.count(http::field::content_encoding), 1u);
}

TEST(CompressResponseTest, SmallBodiesStayButVary) {
  CompressionOptions options;
  options.min_length_bytes = 1024;
  HttpResponse res = Response(std::string(1023, 'a'));
  CompressResponse(options, Request("gzip"), res);
  EXPECT_EQ(res.body(), std::string(1023, 'a'));
  EXPECT_EQ(res.find(http::field::content_encoding), res.end());
  EXPECT_EQ(res[http::field::vary], "Accept-Encoding");  // A larger one would differ.
  res = Response(std::string(1024, 'a'));
  CompressResponse(options, Request("gzip"), res);
  EXPECT_EQ(res[http::field::content_encoding], "gzip");
  EXPECT_EQ(Gunzip(res.body()), std::string(1024, 'a'));
}

TEST(CompressResponseTest, IncompressibleBodiesStay) {
  std::mt19937 rng(1);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  HttpResponse res = Response(noise, "text/plain");
  CompressResponse(CompressionOptions(), Request("gzip"), res);
  EXPECT_EQ(res.body(), noise);
  EXPECT_EQ(res.find(http::field::content_encoding), res.end());
}

TEST(CompressResponseTest, VaryIsAddedToTheApplicationsOwn) {
  HttpResponse res = Response(EmbeddingJson());
  res.set(http::field::vary, "Accept");
  CompressResponse(CompressionOptions(), Request("gzip"), res);
  std::vector<std::string> vary;
  for (auto [it, end] = res.equal_range(http::field::vary); it != end; ++it) {
    vary.emplace_back(it->value());
  }
  EXPECT_THAT(vary, ::testing::ElementsAre("Accept", "Accept-Encoding"));
  res = Response(EmbeddingJson());
  res.set(http::field::vary, "accept-encoding, Accept");
  CompressResponse(CompressionOptions(), Request("gzip"), res);
  EXPECT_EQ(res.count(http::field::vary), 1u);
}

TEST(CompressResponseTest, HeadGetsTheHeadersOfGet) {
  const std::string json = EmbeddingJson();
  HttpResponse get = Response(json);
  HttpResponse head = Response(json);
  CompressResponse(CompressionOptions(), Request("gzip"), get);
  CompressResponse(CompressionOptions(), Request("gzip", http::verb::head), head);
  EXPECT_EQ(head[http::field::content_encoding], "gzip");
  EXPECT_EQ(head.body().size(), get.body().size());  // The listener sends its length only.
}

// ---- Streams ----

TEST(CompressedStreamTest, EveryChunkDecodesWhenItArrives) {
  HttpResponse header = Response("", "application/x-ndjson");
  std::unique_ptr<Compressor> gzip =
      BeginCompressedStream(CompressionOptions(), Request("gzip"), header);
  ASSERT_NE(gzip, nullptr);
  EXPECT_EQ(header[http::field::content_encoding], "gzip");
  EXPECT_EQ(header[http::field::vary], "Accept-Encoding");
  // A client-side streaming decoder, fed each compressed chunk as it would arrive.
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string all;
  std::string decoded;
  for (int i = 0; i < 5; ++i) {
    const std::string message = "{\"n\":" + std::to_string(i) + ",\"text\":\"message\"}\n";
    std::string chunk;
    gzip->Write(message, Compressor::Flush::kSync, &chunk);
    ASSERT_FALSE(chunk.empty());
    // Z_SYNC_FLUSH ends every chunk with an empty stored block: 00 00 ff ff.
    EXPECT_EQ(chunk.substr(chunk.size() - 4), std::string("\0\0\xff\xff", 4));
    all += chunk;
    z.next_in = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_in = static_cast<uInt>(chunk.size());
    char buf[4096];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    ASSERT_EQ(inflate(&z, Z_SYNC_FLUSH), Z_OK);
    EXPECT_EQ(z.avail_in, 0u);
    // The whole message, nothing held back for the next one.
    EXPECT_EQ(std::string(buf, sizeof(buf) - z.avail_out), message);
    decoded += message;
  }
  std::string tail;
  gzip->Write({}, Compressor::Flush::kFinish, &tail);
  all += tail;
  inflateEnd(&z);
  EXPECT_EQ(Gunzip(all), decoded);
}

TEST(CompressedStreamTest, NotForProtobufOrIdentityClients) {
  HttpResponse header = Response("", "application/x-protobuf");
  EXPECT_EQ(BeginCompressedStream(CompressionOptions(), Request("gzip"), header), nullptr);
  header = Response("", "text/event-stream");
  EXPECT_EQ(BeginCompressedStream(CompressionOptions(), Request("br"), header), nullptr);
  EXPECT_EQ(header.find(http::field::content_encoding), header.end());
  EXPECT_EQ(header[http::field::vary], "Accept-Encoding");
}

// ---- Request bodies ----

struct Decoded {
  std::optional<RequestError> error;
  RequestHead request;
};

Decoded Decode(std::string body, std::string_view content_encoding,
               const CompressionOptions& options = CompressionOptions(),
               uint64_t max_body = 4 << 20) {
  Decoded d;
  d.request = RequestHead{http::verb::post, "/x", 11};
  if (!content_encoding.empty()) d.request.set(http::field::content_encoding, content_encoding);
  d.request.content_length(body.size());
  d.request.body() = std::move(body);
  RequestLimits limits;
  limits.max_body_bytes = max_body;
  d.error = DecodeRequestContent(options, limits, &d.request);
  return d;
}

TEST(DecodeRequestTest, EveryCodingAndItsAliases) {
  const std::string json = EmbeddingJson();
  for (auto [body, coding] : std::vector<std::pair<std::string, std::string>>{
           {Gzip(json), "gzip"},
           {Gzip(json), "X-GZIP"},
           {Zlib(json), "deflate"},
           {RawDeflate(json), "deflate"},  // The historic bare deflate stream.
           {json, "identity"},
           {json, ""},
       }) {
    Decoded d = Decode(body, coding);
    ASSERT_FALSE(d.error) << coding << ": " << d.error->message;
    EXPECT_EQ(d.request.body(), json) << coding;
    EXPECT_EQ(d.request[http::field::content_length], std::to_string(json.size())) << coding;
    if (coding != "identity") {
      EXPECT_EQ(d.request.find(http::field::content_encoding), d.request.end());
    }
  }
}

TEST(DecodeRequestTest, ChainedCodingsAreUndoneInReverse) {
  const std::string json = EmbeddingJson();
  // "gzip, deflate": gzip was applied first, then deflate.
  Decoded d = Decode(Zlib(Gzip(json)), "gzip, deflate");
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.request.body(), json);
  // The same order given as two field lines.
  RequestHead req{http::verb::post, "/x", 11};
  req.insert(http::field::content_encoding, "deflate");
  req.insert(http::field::content_encoding, "gzip");
  req.body() = Gzip(Zlib(json));
  ASSERT_FALSE(DecodeRequestContent(CompressionOptions(), RequestLimits(), &req));
  EXPECT_EQ(req.body(), json);
  // The wrong order is corrupt, never half-decoded.
  d = Decode(Zlib(Gzip(json)), "deflate, gzip");
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::bad_request);
}

TEST(DecodeRequestTest, ConcatenatedGzipMembersAreOneBody) {
  Decoded d = Decode(Gzip("{\"a\":") + Gzip("1}"), "gzip");
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.request.body(), "{\"a\":1}");
}

TEST(DecodeRequestTest, CorruptAndTruncatedAre400) {
  const std::string gz = Gzip(EmbeddingJson());
  std::string flipped = gz;
  flipped[flipped.size() - 6] ^= 0x55;  // The CRC32.
  for (auto [body, coding] : std::vector<std::pair<std::string, std::string>>{
           {gz.substr(0, gz.size() / 2), "gzip"},
           {gz.substr(0, gz.size() - 1), "gzip"},
           {flipped, "gzip"},
           {gz + "junk", "gzip"},
           {"{\"plain\":true}", "gzip"},
           {Zlib("x") + "x", "deflate"},
           {"\x78\x9c", "deflate"},
           {Gzip("x"), "deflate"},
       }) {
    Decoded d = Decode(body, coding);
    ASSERT_TRUE(d.error) << coding << " " << body.size();
    EXPECT_EQ(d.error->status, http::status::bad_request);
    EXPECT_THAT(d.error->message, HasSubstr("not valid " + std::string(coding)));
  }
}

TEST(DecodeRequestTest, UnknownCodingsAre415) {
  for (std::string_view coding : {"br", "compress", "zstd", "gzip, br", "gzip;q=1"}) {
    Decoded d = Decode("{}", coding);
    ASSERT_TRUE(d.error) << coding;
    EXPECT_EQ(d.error->status, http::status::unsupported_media_type) << coding;
    EXPECT_THAT(d.error->message, HasSubstr("is not supported"));
  }
  Decoded d = Decode(Gzip(Gzip(Gzip(Gzip(Gzip("x"))))), "gzip, gzip, gzip, gzip, gzip");
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::unsupported_media_type);
  // No content, nothing to decode: the field is dropped (as the proxy always accepted).
  d = Decode("", "br");
  EXPECT_FALSE(d.error);
  EXPECT_EQ(d.request.find(http::field::content_encoding), d.request.end());
  // Decoding turned off: every real coding is refused, identity still passes.
  CompressionOptions off;
  off.decode_requests = false;
  d = Decode(Gzip("{}"), "gzip", off);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::unsupported_media_type);
  EXPECT_EQ(AcceptedRequestCodings(off), "identity");
  EXPECT_EQ(AcceptedRequestCodings(CompressionOptions()), "gzip, deflate");
  EXPECT_FALSE(Decode("{}", "identity", off).error);
}

TEST(DecodeRequestTest, DecodedSizeLimitIs413NamingTheKey) {
  const std::string zeros(10 << 20, '0');  // 10 MiB deflates to about 10 KiB.
  const std::string gz = Gzip(zeros, 9);
  CompressionOptions no_ratio;
  no_ratio.max_decoding_ratio = 0;
  // The default decoded limit is the body limit.
  Decoded d = Decode(gz, "gzip", no_ratio, /*max_body=*/4 << 20);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::payload_too_large);
  EXPECT_EQ(d.error->code, absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(d.error->message, HasSubstr("4194304 bytes"));
  EXPECT_THAT(d.error->message, HasSubstr("compression.max_decoded_request_body_bytes"));
  no_ratio.max_decoded_body_bytes = zeros.size();
  d = Decode(gz, "gzip", no_ratio);
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.request.body().size(), zeros.size());
  no_ratio.max_decoded_body_bytes = zeros.size() - 1;
  d = Decode(gz, "gzip", no_ratio);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::payload_too_large);
  // The request still holds only what was read: the partial output is gone.
  EXPECT_TRUE(d.request.body().empty());
}

TEST(DecodeRequestTest, RatioLimitCatchesBombsUnderTheSizeLimit) {
  const std::string zeros(2 << 20, '0');
  const std::string gz = Gzip(zeros, 9);  // About 2 KiB: a ratio near 1000.
  CompressionOptions options;             // Ratio 100 by default.
  Decoded d = Decode(gz, "gzip", options);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::payload_too_large);
  EXPECT_THAT(d.error->message, HasSubstr("compression.max_request_decoding_ratio"));
  // A chain multiplies ratios: gzip of gzip of 2 MiB of zeros is a few hundred bytes.
  d = Decode(Gzip(gz, 9), "gzip, gzip", options);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->status, http::status::payload_too_large);
  // Below the floor any ratio is fine: small repetitive bodies are normal.
  const std::string small(kRatioCheckFloorBytes, ' ');
  d = Decode(Gzip(small, 9), "gzip", options);
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.request.body(), small);
  options.max_decoding_ratio = 0;
  EXPECT_FALSE(Decode(gz, "gzip", options).error);
}

TEST(DecodeRequestTest, DecoderStopsAtTheFirstBlockOverTheLimit) {
  // The sink sees blocks of at most 16 KiB; a limit check per block means the decoder never
  // holds more than limit + one block, however large the bomb.
  const std::string gz = Gzip(std::string(64 << 20, 'x'), 9);
  Decompressor gunzip(ContentCoding::kGzip);
  uint64_t seen = 0;
  size_t largest = 0;
  Decompressor::Result r = gunzip.Decode(gz, [&](std::string_view block, uint64_t consumed) {
    EXPECT_LE(consumed, gz.size());
    largest = std::max(largest, block.size());
    seen += block.size();
    return seen < (1 << 20);
  });
  EXPECT_EQ(r, Decompressor::Result::kStopped);
  EXPECT_LE(largest, 16u << 10);
  EXPECT_LT(seen, (1u << 20) + (16u << 10));
}

}  // namespace
}  // namespace tipperary::http1
