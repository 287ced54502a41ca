// gRPC-Web framing (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md) for requests
// that arrive on the HTTP/1.1 listener: the request body's length-prefixed messages in, the
// response's data frames and trailer frame out, base64 for the -text variants. Pure functions,
// so they are fuzzed and tested without sockets.
//
//   std::optional<GrpcWebMode> mode = GrpcWebModeFor(content_type);   // nullopt: not gRPC-Web
//   absl::StatusOr<std::string> message = DecodeGrpcWebRequest(body, *mode, max_bytes);
//   chunk = EncodeGrpcWebMessage(reply, *mode);                     // one per response message
//   chunk = EncodeGrpcWebTrailers(code, grpc_message, details_bin, trailing_metadata, *mode);
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/upstream/grpc_call.h"

namespace tipperary::proxy {

struct GrpcWebMode {
  bool text = false;  // application/grpc-web-text: the body is base64.
};

// gRPC-Web by Content-Type: application/grpc-web, application/grpc-web+proto and the -text
// variants (case-insensitive, parameters ignored). Other codecs (+json, +thrift) are not
// gRPC-Web calls we can serve: nullopt, and the request is treated as plain HTTP.
std::optional<GrpcWebMode> GrpcWebModeFor(std::string_view content_type);

// The Content-Type of the response, mirroring the request's variant.
std::string_view GrpcWebContentType(GrpcWebMode mode);

// The one request message of a unary or server-streaming call: exactly one uncompressed data
// frame (the flag byte 0), whose length fits the body, nothing after it. -text bodies are base64,
// possibly several padded segments one after the other, as clients send them. InvalidArgument
// for anything else, naming what was wrong; a compressed frame is Unimplemented (we announce no
// grpc-accept-encoding).
absl::StatusOr<std::string> DecodeGrpcWebRequest(std::string_view body, GrpcWebMode mode);

// One data frame: flag 0, the 4-byte big-endian length, the message (base64 in -text mode).
std::string EncodeGrpcWebMessage(std::string_view message, GrpcWebMode mode);

// The trailer frame: flag 0x80, then "grpc-status: N\r\n", "grpc-message: <percent-encoded>\r\n"
// when there is a message, grpc-status-details-bin (base64) when given, and the trailing
// metadata ("-bin" values base64), names lower-case, as HTTP/1.1 header lines.
std::string EncodeGrpcWebTrailers(absl::StatusCode code, std::string_view message,
                                  std::string_view status_details_bin,
                                  const upstream::Metadata& trailing_metadata, GrpcWebMode mode);

}  // namespace tipperary::proxy
