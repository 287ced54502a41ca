// Errors as JSON: a google.rpc.Status with its details decoded (google.protobuf.Any's JSON
// mapping), rendered by common::StatusJson like every error tipperary writes, or, on a route
// whose error format is OpenAI's, common::OpenAiErrorJson with "param" and "code" read from
// those details, or on a TEI route common::TeiErrorJson with TEI's error_type (and status).
#include <google/protobuf/arena.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "codec.h"
#include "fast_json.h"
#include "google/api/httpbody.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "internal.h"
#include "tipperary/common/status_json.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/transcoder.h"
#include "wire_check.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;
using internal::BinaryToJson;
using internal::TrimTrailingNewlines;

}  // namespace

std::string Transcoder::StatusJson(absl::StatusCode code, std::string_view message,
                                   std::string_view status_details_bin, bool pretty) const {
  std::vector<std::string> details;
  if (!status_details_bin.empty() && status_details_bin.size() < static_cast<size_t>(INT32_MAX)) {
    google::rpc::Status st;
    if (st.ParseFromArray(status_details_bin.data(), static_cast<int>(status_details_bin.size()))) {
      pb::util::JsonPrintOptions print;
      print.add_whitespace = pretty;
      print.always_print_primitive_fields = options_.always_print_primitive_fields;
      print.always_print_enums_as_ints = options_.enums_as_ints;
      print.preserve_proto_field_names = options_.preserve_proto_field_names;
      const pb::Descriptor* any_type = schema_->FindMessage("google.protobuf.Any");
      for (const pb::Any& any : st.details()) {
        std::string json;
        std::string any_bin = any.SerializeAsString();
        if (any_type != nullptr && internal::IsWellFormed(any_type, any_bin, options_.max_depth) &&
            BinaryToJson(schema_->type_resolver(), "type.googleapis.com/google.protobuf.Any",
                         any_bin, &json, print)
                .ok()) {
          details.emplace_back(TrimTrailingNewlines(json));
          continue;
        }
        std::string fallback = pretty ? "{\n \"@type\": " : "{\"@type\":";
        internal::AppendJsonString(fallback, any.type_url());
        fallback.append(pretty ? ",\n \"value\": " : ",\"value\":");
        internal::AppendJsonString(fallback, absl::Base64Escape(any.value()));
        fallback.append(pretty ? "\n}" : "}");
        details.push_back(std::move(fallback));
      }
    }
  }
  return common::StatusJson(code, message, details, pretty);
}

Transcoder::TeiError Transcoder::TeiErrorFor(int http_status, std::string_view status_details_bin) {
  struct Kind {
    std::string_view reason;
    std::string_view type;
    int status;
  };
  // TEI's ErrorType and its StatusCode (router/src/http/server.rs, TEI 1.9).
  static constexpr Kind kKinds[] = {
      {"VALIDATION", "Validation", 422}, {"EMPTY", "Empty", 400},
      {"TOKENIZER", "Tokenizer", 422},   {"OVERLOADED", "Overloaded", 429},
      {"BACKEND", "Backend", 424},       {"UNHEALTHY", "Unhealthy", 503},
  };
  google::rpc::Status st;
  if (!status_details_bin.empty() && status_details_bin.size() < static_cast<size_t>(INT32_MAX) &&
      st.ParseFromArray(status_details_bin.data(), static_cast<int>(status_details_bin.size()))) {
    for (const pb::Any& any : st.details()) {
      google::rpc::ErrorInfo info;
      if (!any.UnpackTo(&info)) continue;
      for (const Kind& kind : kKinds) {
        if (info.reason() == kind.reason) return {kind.type, kind.status};
      }
    }
  }
  switch (http_status) {
    case 400:
      return {"Validation", 422};
    case 429:
      return {"Overloaded", 429};
    case 500:
      return {"Backend", 424};
    case 503:
      return {"Unhealthy", 503};
    default:
      return {http_status >= 500 ? "Backend" : "Validation", http_status};
  }
}

int Transcoder::ErrorHttpStatus(const Route* route, int http_status,
                                std::string_view status_details_bin) const {
  if (route == nullptr || route->error_format != ErrorFormat::kTei) return http_status;
  return TeiErrorFor(http_status, status_details_bin).http_status;
}

std::string Transcoder::ErrorBody(const Route* route, absl::StatusCode code, int http_status,
                                  std::string_view message, std::string_view status_details_bin,
                                  bool pretty) const {
  if (route != nullptr && route->error_format == ErrorFormat::kTei) {
    return common::TeiErrorJson(message, TeiErrorFor(http_status, status_details_bin).type, pretty);
  }
  if (route == nullptr || route->error_format != ErrorFormat::kOpenAi) {
    return StatusJson(code, message, status_details_bin, pretty);
  }
  // OpenAI's "param" and "code" travel as google.rpc details (the worker's status_details.h).
  std::string param;
  std::string reason;
  google::rpc::Status st;
  if (!status_details_bin.empty() && status_details_bin.size() < static_cast<size_t>(INT32_MAX) &&
      st.ParseFromArray(status_details_bin.data(), static_cast<int>(status_details_bin.size()))) {
    for (const pb::Any& any : st.details()) {
      google::rpc::BadRequest bad_request;
      google::rpc::ErrorInfo info;
      if (param.empty() && any.UnpackTo(&bad_request) && bad_request.field_violations_size() > 0) {
        param = bad_request.field_violations(0).field();
      } else if (reason.empty() && any.UnpackTo(&info)) {
        reason = absl::AsciiStrToLower(info.reason());
      }
    }
  }
  std::string_view type = "invalid_request_error";
  if (http_status == 429) {
    type = "requests";
    if (reason.empty()) reason = "rate_limit_exceeded";
  } else if (http_status >= 500) {
    type = "server_error";
  }
  return common::OpenAiErrorJson(message, type, param, reason, pretty);
}

}  // namespace tipperary::transcoder
