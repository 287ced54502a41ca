#include "tipperary/transcoder/status_mapping.h"

#include <array>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tipperary::transcoder {
namespace {

constexpr std::array<std::string_view, 17> kNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

constexpr std::array<int, 17> kHttp = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                                       400, 409, 400, 501, 500, 503, 500, 401};

}  // namespace

int GrpcCodeToHttpStatus(int grpc_code) {
  if (grpc_code < 0 || grpc_code >= static_cast<int>(kHttp.size())) return 500;
  return kHttp[static_cast<size_t>(grpc_code)];
}

int AbslCodeToGrpcCode(absl::StatusCode code) {
  int c = static_cast<int>(code);
  return (c >= 0 && c <= 16) ? c : 2;
}

std::string_view GrpcCodeName(int grpc_code) {
  if (grpc_code < 0 || grpc_code >= static_cast<int>(kNames.size())) return "UNKNOWN";
  return kNames[static_cast<size_t>(grpc_code)];
}

std::optional<std::chrono::seconds> RetryDelayFromStatusDetails(std::string_view details_bin) {
  if (details_bin.empty() || details_bin.size() > (1u << 20)) return std::nullopt;
  google::rpc::Status status;
  if (!status.ParseFromArray(details_bin.data(), static_cast<int>(details_bin.size()))) {
    return std::nullopt;
  }
  for (const google::protobuf::Any& any : status.details()) {
    google::rpc::RetryInfo info;
    if (!any.UnpackTo(&info) || !info.has_retry_delay()) continue;
    int64_t seconds = info.retry_delay().seconds();
    int32_t nanos = info.retry_delay().nanos();
    if (seconds < 0 || nanos < 0 || seconds > 86400 * 365) return std::nullopt;
    return std::chrono::seconds(seconds + (nanos > 0 ? 1 : 0));
  }
  return std::nullopt;
}

}  // namespace tipperary::transcoder
