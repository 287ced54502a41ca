// gRPC status codes (google/rpc/code.proto) to HTTP statuses and names.
//
//   int http = GrpcCodeToHttpStatus(5);          // 404
//   std::string_view n = GrpcCodeName(5);        // "NOT_FOUND"
//   int code = AbslCodeToGrpcCode(status.code());
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace tipperary::transcoder {

// OK 200, CANCELLED 499, UNKNOWN 500, INVALID_ARGUMENT 400, DEADLINE_EXCEEDED 504,
// NOT_FOUND 404, ALREADY_EXISTS 409, PERMISSION_DENIED 403, UNAUTHENTICATED 401,
// RESOURCE_EXHAUSTED 429, FAILED_PRECONDITION 400, ABORTED 409, OUT_OF_RANGE 400,
// UNIMPLEMENTED 501, INTERNAL 500, UNAVAILABLE 503, DATA_LOSS 500; anything else 500.
int GrpcCodeToHttpStatus(int grpc_code);

// absl::StatusCode uses gRPC's numbering; codes outside 0..16 map to 2 (UNKNOWN).
int AbslCodeToGrpcCode(absl::StatusCode code);

// "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" outside 0..16.
std::string_view GrpcCodeName(int grpc_code);

// The retry_delay of a google.rpc.RetryInfo detail in a serialized google.rpc.Status
// (grpc-status-details-bin), rounded up to whole seconds for Retry-After; nullopt when there
// is none (or it is malformed or negative).
std::optional<std::chrono::seconds> RetryDelayFromStatusDetails(std::string_view details_bin);

}  // namespace tipperary::transcoder
