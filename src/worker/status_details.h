// google.rpc error details riding on an absl::Status (as payloads keyed by their type URL) from
// where an error is found to the one place it becomes a grpc::Status (ToGrpc), which sends them
// as grpc-status-details-bin. The proxy renders them: for OpenAI's error shape, the BadRequest
// field is "param" and the ErrorInfo reason, lower-cased, is "code".
//
//   return WithField(absl::InvalidArgumentError("input must not be empty"), "input");
//   return WithReason(absl::NotFoundError("model \"x\" not found"), "MODEL_NOT_FOUND");
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tipperary::worker {

// Adds a google.rpc.BadRequest naming `field` (the request field at fault) with the message.
absl::Status WithField(absl::Status status, std::string_view field);
// Adds a google.rpc.ErrorInfo{reason, domain "tipperary.embedding.v1"}; reason in UPPER_SNAKE.
absl::Status WithReason(absl::Status status, std::string_view reason);
// Adds a google.rpc.RetryInfo{retry_delay}: when to try again (the proxy's Retry-After).
absl::Status WithRetryDelay(absl::Status status, std::chrono::nanoseconds delay);

// The serialized google.rpc.Status (code, message, the payloads as details); "" when the status
// is OK or carries no payload.
std::string SerializedDetails(const absl::Status& status);

}  // namespace tipperary::worker
