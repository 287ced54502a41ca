// RFC 9112 message framing of one HTTP/1.x request head: how long its body is, whether the
// connection stays open, what its target really is. Pure functions over a parsed head, so every
// rule is unit-tested without a socket; RequestDecoder applies them before any body byte is read.
//
//   RequestHead head = ...;            // request line + header fields, as parsed
//   RequestFraming framing;
//   if (std::optional<RequestError> error = CheckFraming(limits, head, &framing)) {
//     // answer error->status with error->message, then close the connection
//   }
//
// Every rule, its RFC section and how nginx differs: docs/http-conformance.md.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tipperary::http1 {

// What one request may make a connection hold. Each has a proxy config key (limits.*).
struct RequestLimits {
  uint64_t max_header_bytes = 16 * 1024;      // Request line + header section; 431 (414).
  uint64_t max_body_bytes = 4 << 20;          // Content-Length or the chunked total; 413.
  uint64_t max_chunk_extension_bytes = 1024;  // One chunk-size line's extensions; 400.
  uint64_t max_trailer_bytes = 8 * 1024;      // The trailer section of a chunked body; 431.
  // A streamed body's total (RequestDecoder::set_stream_selector), which is never held whole;
  // 0: unbounded. 413.
  uint64_t max_streamed_body_bytes = 0;
};

// A request the listener answers itself, then closes the connection.
struct RequestError {
  boost::beast::http::status status = boost::beast::http::status::bad_request;
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  std::string message;
};

RequestError MakeRequestError(boost::beast::http::status status, absl::StatusCode code,
                              std::string message);

// 413 for a body of `length` bytes (Content-Length, or the chunked total so far) over `limit`,
// naming the config key that sets it.
RequestError BodyTooLarge(uint64_t length, uint64_t limit, std::string_view key);

// The framing decided from the head; the decoder reads the body accordingly.
struct RequestFraming {
  enum class Body { kNone, kContentLength, kChunked };
  Body body = Body::kNone;
  uint64_t content_length = 0;   // With kContentLength.
  bool keep_alive = true;        // Connection and version, from header fields only.
  bool expect_continue = false;  // "Expect: 100-continue" on HTTP/1.1.
};

using RequestHead = boost::beast::http::request<boost::beast::http::string_body>;

// Checks the head and normalises it in place: an absolute-form target becomes origin-form (the
// path and query) and its authority replaces Host (RFC 9112 §3.2.2). On error the head is to be
// discarded.
std::optional<RequestError> CheckFraming(const RequestLimits& limits, RequestHead& head,
                                         RequestFraming* framing);

// Syntax checks, exposed for tests.
bool IsToken(std::string_view s);
bool IsValidHost(std::string_view host);  // uri-host [ ":" port ], or empty (RFC 9110 §7.2).
bool IsValidOriginTarget(std::string_view target);  // absolute-path [ "?" query ], no '#'.

}  // namespace tipperary::http1
