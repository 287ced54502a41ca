// HTTP/1.1 headers <-> gRPC metadata, following grpc-gateway's conventions that clients
// already rely on.
//
//   Grpc-Metadata-Tenant: a        -> metadata  tenant: a   (-bin values base64-decoded; not
//                                      grpc-*, x-request-id or x-forwarded-for: those are ours)
//   Authorization, X-Request-Id, traceparent, tracestate, baggage -> forwarded as is
//   grpc-trace-bin                 -> forwarded base64-decoded, as every -bin value
//   X-Forwarded-For                -> the client's address appended
//   response metadata k: v         -> Grpc-Metadata-K: v      (initial metadata)
//     ... unless metadata.unprefixed_response_metadata lists k:  k: v  (TEI's x-queue-time...)
//   trailing metadata k: v         -> Grpc-Trailer-K: v       (header fields of a unary
//                                      response; HTTP/1.1 trailers of streams and TE: trailers)
//
// Pure functions over simple types, so they are tested without sockets.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tipperary/upstream/grpc_call.h"

namespace tipperary::proxy {

// The request's X-Request-Id (up to 200 bytes), else a fresh one.
std::string RequestIdFor(const boost::beast::http::fields& headers);

// Upstream metadata from the request's header fields as parsed (names in any case), read in
// place: only what is forwarded is copied. `request_id` goes up as x-request-id; the peer is
// appended to X-Forwarded-For. With headers_are_metadata (gRPC-Web, where a page sends its
// metadata as plain header fields), every other field that is a valid, unreserved metadata key
// goes up too, except the fields of HTTP itself, the browser's (Sec-*, Origin, Cookie...) and
// CORS's.
upstream::Metadata BuildUpstreamMetadata(const boost::beast::http::fields& headers,
                                         std::string_view peer_address, std::string_view request_id,
                                         bool headers_are_metadata = false);

// A fresh random request id (UUID v4 text).
std::string GenerateRequestId();

// Response metadata as fields: prefix ("Grpc-Metadata-" or "Grpc-Trailer-") + key, each word
// of the key capitalized as grpc-gateway's (Go's canonical) names are ("x-cost" -> "X-Cost").
// Values of "-bin" keys are base64-encoded (the upstream client decoded them). Appended to `out`.
// Keys in `unprefixed` (lower-case, never "-bin") keep their own name, as they come (grpc-gateway's
// WithOutgoingHeaderMatcher returning the key itself).
void AppendMetadataFields(const upstream::Metadata& metadata, std::string_view prefix,
                          boost::beast::http::fields& out,
                          const std::vector<std::string>& unprefixed = {});

// Parses a Grpc-Timeout header value ("100m", "2S", "1H", at most 8 digits); false if bad.
bool ParseGrpcTimeout(std::string_view value, std::chrono::nanoseconds* out);

}  // namespace tipperary::proxy
