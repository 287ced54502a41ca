// HTTP/1.1 headers <-> gRPC metadata, following grpc-gateway's conventions that clients
// already rely on.
//
//   Grpc-Metadata-Tenant: a        -> metadata  tenant: a
//   Authorization, X-Request-Id, traceparent, tracestate -> forwarded as is
//   X-Forwarded-For                -> the client's address appended
//   response metadata k: v         -> Grpc-Metadata-K: v      (initial metadata)
//   trailing metadata k: v         -> Grpc-Trailer-K: v       (HTTP/1.1 trailers)
//
// Pure functions over simple types, so they are tested without sockets.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tipperary/upstream/grpc_call.h"

namespace tipperary::proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ForwardedRequestInfo {
  std::string request_id;  // The X-Request-Id sent upstream (generated when absent).
  upstream::Metadata metadata;
};

// headers: the request's headers as (name, value), names in any case.
ForwardedRequestInfo BuildUpstreamMetadata(const HeaderList& headers,
                                           std::string_view peer_address);

// A fresh random request id (UUID v4 text).
std::string GenerateRequestId();

// Header name for response metadata: "grpc-metadata-" or "grpc-trailer-" prefix + key.
// Values of "-bin" keys are base64-encoded (the upstream client decoded them).
HeaderList MetadataToHeaders(const upstream::Metadata& metadata, std::string_view prefix);

// Parses a Grpc-Timeout header value ("100m", "2S", "1H", at most 8 digits); false if bad.
bool ParseGrpcTimeout(std::string_view value, std::chrono::nanoseconds* out);

}  // namespace tipperary::proxy
