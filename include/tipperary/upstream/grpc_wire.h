// gRPC-over-HTTP/2 wire details shared by the upstream client and its tests: binary metadata
// (base64), grpc-message percent-encoding, grpc-timeout and the HTTP-to-gRPC status mapping.
//
//   std::string v = Base64Encode(bytes, /*pad=*/false);     // "-bin" header value
//   std::optional<std::string> raw = Base64Decode(v);      // padded or not
//   std::string t = EncodeGrpcTimeout(1500ms);             // "1500m"
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tipperary::upstream {

std::string Base64Encode(std::string_view data, bool pad);
// Standard alphabet, with or without '=' padding; nullopt on anything else.
std::optional<std::string> Base64Decode(std::string_view text);

// %XX sequences decoded; a malformed sequence is kept as it is (the gRPC spec says so).
std::string PercentDecode(std::string_view text);
// Encodes everything outside 0x20-0x7E and '%' (the inverse of PercentDecode).
std::string PercentEncode(std::string_view text);

// At most 8 digits and a unit (H M S m u n); the coarsest exact unit, else rounded up.
// A zero or negative timeout encodes as "1n".
// Appends one gRPC length-prefixed message (gRPC over HTTP/2 and gRPC-Web alike): the flags
// byte (0 = an uncompressed message; gRPC-Web's trailer frame sets 0x80), the 4-byte
// big-endian length, the bytes.
void AppendGrpcFrame(uint8_t flags, std::string_view payload, std::string* out);

std::string EncodeGrpcTimeout(std::chrono::nanoseconds timeout);

// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
absl::StatusCode HttpStatusToGrpcCode(int http_status);

// An HTTP/2 RST_STREAM error code as the gRPC code of the call it ended.
absl::StatusCode Http2ErrorToGrpcCode(uint32_t http2_error_code);

// A grpc-status value from the wire: 0..16, anything else UNKNOWN.
absl::StatusCode GrpcCodeFromWire(int value);

// Lower-case [0-9a-z_.-]+ and not one the client sets itself (pseudo-headers, content-type, te,
// grpc-timeout, connection-specific headers, ...).
bool IsAllowedCustomMetadataKey(std::string_view key);
// Headers that never reach on_headers / GrpcResult::trailers.
bool IsReservedResponseHeader(std::string_view key);

inline bool IsBinaryHeader(std::string_view key) {
  return key.size() > 4 && key.substr(key.size() - 4) == "-bin";
}

}  // namespace tipperary::upstream
