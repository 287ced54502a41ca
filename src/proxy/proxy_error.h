// An error response, typed until it is rendered: the proxy's own (no route, a bad body, a
// limit) or relayed from the upstream (its code, message, details and trailers). Errors travel
// as ProxyError through the request path and become HTTP in one place (ProxiedRequest::Fail).
//
//   ProxyError e = ProxyError::Make(absl::StatusCode::kNotFound, "no route for GET /x");
//   e.HttpStatus();                                   // 404, from status_mapping.h's table
//   ProxyError u = ProxyError::FromUpstream(result);  // the one factory for upstream errors
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/upstream/grpc_call.h"

namespace tipperary::proxy {

struct ProxyError {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  std::string message;
  std::string details_bin;  // A serialized google.rpc.Status: rendered as "details".
  int http_status = 0;      // 0: the code's status in transcoder::GrpcCodeToHttpStatus.
  std::vector<std::pair<std::string, std::string>> headers;  // Allow, Accept-Encoding, ...

  static ProxyError Make(absl::StatusCode code, std::string message, int http_status = 0);
  // A transcoder's (or any component's) error status, as is.
  static ProxyError FromStatus(const absl::Status& status);
  // The upstream's outcome: its status and details; a protocol error of the upstream (an
  // oversized or malformed message, a bad frame) is the upstream's fault, whatever code
  // describes it: 502.
  static ProxyError FromUpstream(const upstream::GrpcResult& result);

  int HttpStatus() const;
};

}  // namespace tipperary::proxy
