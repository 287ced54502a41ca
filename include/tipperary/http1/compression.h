// HTTP content codings on a listener (RFC 9110 §8.4, §12.5.3): which responses are compressed
// and how, and the decoding of compressed request bodies, as pure functions over messages so
// every rule is unit-tested without a socket. The zlib work itself is content_coding.h.
//
//   // A whole response, just before it is serialized:
//   CompressResponse(options, request, response);  // may set Content-Encoding, Vary, the body
//   // A streamed response's header; then every chunk through the returned compressor:
//   std::unique_ptr<Compressor> gzip = BeginCompressedStream(options, request, header);
//   // A request, once its body is complete:
//   if (std::optional<RequestError> e = DecodeRequestContent(options, limits, &request)) ...
//
// The rules, their RFC sections and how nginx differs: docs/http-conformance.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tipperary/http1/content_coding.h"
#include "tipperary/http1/http_exchange.h"
#include "tipperary/http1/request_framing.h"

namespace tipperary::http1 {

// Each has a proxy config key (compression.*); the worker's admin port uses the defaults.
struct CompressionOptions {
  bool enabled = true;               // Compress responses the client accepts compressed.
  uint64_t min_length_bytes = 1024;  // Whole responses below this go out as they are.
  int level = 1;                     // zlib level, 1 (fastest) to 9.
  // Media types worth compressing: "type/subtype", "type/*" or "type/*+suffix"; lower case,
  // parameters ignored. Binary protobuf is left out: its packed numbers barely compress.
  std::vector<std::string> types = {"application/json", "application/*+json",
                                    "application/x-ndjson", "application/openmetrics-text",
                                    "text/*"};
  bool decode_requests = true;  // Else any Content-Encoding but identity on a body is a 415.
  // The decoded size of a request body; 0 = RequestLimits::max_body_bytes.
  uint64_t max_decoded_body_bytes = 0;
  // Decoded size over compressed size, checked once the decoded body passes
  // kRatioCheckFloorBytes; 0 = off. A deflate stream expands at most about 1032:1, a chain of
  // codings much more.
  uint32_t max_decoding_ratio = 100;
};

// Below this a decoded body is never judged by its ratio: repetitive JSON legitimately
// compresses 100:1 and more, and a body this small costs nothing to hold.
inline constexpr uint64_t kRatioCheckFloorBytes = 64 * 1024;

// The coding for a response to `request`, from its Accept-Encoding fields (RFC 9110 §12.5.3):
// q-values, "*", "x-gzip", case-insensitive. kIdentity when the field is absent (as nginx: a
// client that says nothing gets what it surely understands), empty, or when no coding we have
// is acceptable; "identity;q=0" alone still gets identity (a MAY in §12.5.3: never 406).
ContentCoding NegotiateContentCoding(const HttpFields& request_fields);

// Whether `content_type` (a Content-Type value) matches one of the patterns.
bool IsCompressibleType(const std::vector<std::string>& types, std::string_view content_type);

// Compresses a whole response in place when the options, the request and the response allow:
// the request is HTTP/1.1 and accepts gzip or deflate; the response has a body (not 1xx, 204,
// 304 or 206), no Content-Encoding yet, a compressible Content-Type and at least
// min_length_bytes of body; compressing makes it smaller. Responses of compressible types get
// `Vary: Accept-Encoding` whether or not they were compressed. A response to HEAD is compressed
// too (its body is then dropped), so that it carries the headers a GET would.
void CompressResponse(const CompressionOptions& options, const HttpRequest& request,
                      HttpResponse& response);

// The same decision for a streamed response's header (size unknown, so min_length_bytes does
// not apply): sets Content-Encoding and Vary and returns the compressor each chunk goes through
// (with Compressor::Flush::kSync, so every chunk is decodable as soon as it arrives), or
// nullptr. The compressor uses a 4 KiB window to stay small per open stream.
std::unique_ptr<Compressor> BeginCompressedStream(const CompressionOptions& options,
                                                  const HttpRequest& request, HttpResponse& header);

// The Accept-Encoding a 415 for an unsupported request coding carries (RFC 9110 §12.5.3).
std::string_view AcceptedRequestCodings(const CompressionOptions& options);

// Decodes a request body sent with Content-Encoding (a list, applied in order, decoded in
// reverse: RFC 9110 §8.4), then removes Content-Encoding and fixes Content-Length. An empty
// body, or "identity" alone, is left as it is. Errors, for the listener to answer:
// 415 an unknown coding (or decode_requests off, or more than 4 codings); 400 a corrupt or
// truncated stream; 413 a decoded size over the limit or a ratio over max_decoding_ratio. The
// output grows a block at a time with the limits checked per block: nothing over the limit is
// ever held.
std::optional<RequestError> DecodeRequestContent(const CompressionOptions& options,
                                                 const RequestLimits& limits, RequestHead* request);

}  // namespace tipperary::http1
