// libFuzzer target: request bodies with a Content-Encoding through DecodeRequestContent, as the
// listener decodes them before any application sees the request (gzip, x-gzip, deflate in
// both its zlib and its bare form, chains, identity, unknown codings), and the same bytes as an
// Accept-Encoding value. Input, readable so that seeds are written by hand (make_seeds.py):
//
//   CONTENT-ENCODING            e.g. "gzip, deflate" (may be empty)
//   MAX_BODY MAX_DECODED RATIO  decimal; the limits (MAX_DECODED 0: MAX_BODY)
//   BODY                        the rest, any bytes
//
// Checks, besides "no crash, no leak, no UB, no hang":
// - the limits hold: a decoded body is never over its limit, and an error is 400, 413 or 415
//   with a message; Content-Encoding is gone from a decoded request;
// - the decoded body round-trips: compressed again by Compressor (whole, and chunk by chunk
//   with Z_SYNC_FLUSH as streams are) it decodes to the same bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tipperary/http1/compression.h"
#include "tipperary/http1/content_coding.h"

namespace {

namespace http = boost::beast::http;
using namespace tipperary::http1;

std::string_view Line(std::string_view* input) {
  size_t eol = input->find('\n');
  std::string_view line = input->substr(0, eol);
  input->remove_prefix(eol == std::string_view::npos ? input->size() : eol + 1);
  return line;
}

// Compresses `body` as `coding`, split into pieces flushed with kSync when `chunked`.
std::string Compress(ContentCoding coding, std::string_view body, int level, bool chunked) {
  Compressor compressor(coding, level);
  FUZZ_CHECK(compressor.ok());
  std::string out;
  if (chunked) {
    for (size_t i = 0; i < body.size(); i += 777) {
      compressor.Write(body.substr(i, 777), Compressor::Flush::kSync, &out);
    }
    compressor.Write({}, Compressor::Flush::kFinish, &out);
  } else {
    compressor.Write(body, Compressor::Flush::kFinish, &out);
  }
  return out;
}

void CheckRoundTrip(const std::string& body, int level) {
  for (ContentCoding coding : {ContentCoding::kGzip, ContentCoding::kDeflate}) {
    for (bool chunked : {false, true}) {
      RequestHead again{http::verb::post, "/", 11};
      again.set(http::field::content_encoding, ContentCodingName(coding));
      again.body() = Compress(coding, body, level, chunked);
      CompressionOptions options;
      options.max_decoding_ratio = 0;
      RequestLimits limits;
      limits.max_body_bytes = body.size() + 1;
      std::optional<RequestError> error = DecodeRequestContent(options, limits, &again);
      FUZZ_CHECK(!error);
      FUZZ_CHECK(again.body() == body);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string coding(Line(&input));
  std::istringstream numbers{std::string(Line(&input))};
  uint64_t max_body = 0, max_decoded = 0;
  uint32_t ratio = 0;
  numbers >> max_body >> max_decoded >> ratio;
  // Bounded so that one input stays fast: the limits, not the fuzzer, decide the sizes.
  max_body = 1 + max_body % (1 << 20);
  max_decoded %= (1 << 20);
  CompressionOptions options;
  options.max_decoded_body_bytes = max_decoded;
  options.max_decoding_ratio = ratio % 2000;
  RequestLimits limits;
  limits.max_body_bytes = max_body;
  const uint64_t decoded_limit = max_decoded > 0 ? max_decoded : max_body;

  RequestHead request{http::verb::post, "/", 11};
  if (!coding.empty()) request.set(http::field::content_encoding, coding);
  request.body().assign(input);
  std::optional<RequestError> error = DecodeRequestContent(options, limits, &request);
  if (error) {
    const unsigned status = static_cast<unsigned>(error->status);
    FUZZ_CHECK(status == 400 || status == 413 || status == 415);
    FUZZ_CHECK(!error->message.empty());
  } else if (request.find(http::field::content_encoding) == request.end()) {
    // Decoded (or nothing to decode): within the limit unless it was never encoded.
    FUZZ_CHECK(request.body() == input || request.body().size() <= decoded_limit);
    if (request.body() != input) CheckRoundTrip(request.body(), 1 + static_cast<int>(size % 9));
  }

  // The first line as an Accept-Encoding value: any answer, but one of ours.
  HttpRequest accept{http::verb::get, "/", 11};
  accept.set(http::field::accept_encoding, coding);
  ContentCoding chosen = NegotiateContentCoding(accept);
  FUZZ_CHECK(chosen == ContentCoding::kIdentity || chosen == ContentCoding::kGzip ||
             chosen == ContentCoding::kDeflate);
  return 0;
}
