#include "status_details.h"

#include <algorithm>
#include <utility>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tipperary::worker {
namespace {

constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com/";

absl::Status WithDetail(absl::Status status, const google::protobuf::Message& detail) {
  if (status.ok()) return status;
  status.SetPayload(std::string(kTypeUrlPrefix) + detail.GetDescriptor()->full_name(),
                    absl::Cord(detail.SerializeAsString()));
  return status;
}

}  // namespace

absl::Status WithField(absl::Status status, std::string_view field) {
  google::rpc::BadRequest bad_request;
  google::rpc::BadRequest::FieldViolation* violation = bad_request.add_field_violations();
  violation->set_field(std::string(field));
  violation->set_description(std::string(status.message()));
  return WithDetail(std::move(status), bad_request);
}

absl::Status WithReason(absl::Status status, std::string_view reason) {
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain("tipperary.embedding.v1");
  return WithDetail(std::move(status), info);
}

absl::Status WithRetryDelay(absl::Status status, std::chrono::nanoseconds delay) {
  google::rpc::RetryInfo info;
  const int64_t ns = std::max<int64_t>(0, delay.count());
  info.mutable_retry_delay()->set_seconds(ns / 1000000000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  return WithDetail(std::move(status), info);
}

std::string SerializedDetails(const absl::Status& status) {
  if (status.ok()) return "";
  google::rpc::Status out;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    google::protobuf::Any* any = out.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
  });
  if (out.details().empty()) return "";
  out.set_code(static_cast<int>(status.code()));
  out.set_message(std::string(status.message()));
  return out.SerializeAsString();
}

}  // namespace tipperary::worker
