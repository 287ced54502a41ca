#include "proxy_error.h"

#include "tipperary/transcoder/status_mapping.h"

namespace tipperary::proxy {

ProxyError ProxyError::Make(absl::StatusCode code, std::string message, int http_status) {
  ProxyError error;
  error.code = code;
  error.message = std::move(message);
  error.http_status = http_status;
  return error;
}

ProxyError ProxyError::FromStatus(const absl::Status& status) {
  return Make(status.code(), std::string(status.message()));
}

ProxyError ProxyError::FromUpstream(const upstream::GrpcResult& result) {
  ProxyError error = Make(result.code, result.grpc_message);
  if (result.outcome == upstream::CallOutcome::kProtocolError) {
    error.http_status = 502;
  } else {
    error.details_bin = result.status_details;
  }
  return error;
}

int ProxyError::HttpStatus() const {
  return http_status != 0 ? http_status : transcoder::GrpcCodeToHttpStatus(static_cast<int>(code));
}

}  // namespace tipperary::proxy
