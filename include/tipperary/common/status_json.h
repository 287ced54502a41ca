// The JSON renderings of an error: google.rpc.Status in its proto3 JSON mapping,
//   {"code":3,"message":"...","details":[...]}
// Every error body tipperary writes comes from here: the proxy's request path (through the
// transcoder, which renders the details), the listener's own framing errors, and both admin
// ports. `details_json` are JSON objects already rendered (google.protobuf.Any mapping). Routes
// that imitate OpenAI's or TEI's API render its error object instead (OpenAiErrorJson,
// TeiErrorJson), here too.
//
//   std::string body = common::StatusJson(absl::StatusCode::kNotFound, "no route for GET /x");
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace tipperary::common {

std::string StatusJson(absl::StatusCode code, std::string_view message,
                       const std::vector<std::string>& details_json = {}, bool pretty = false);

// OpenAI's error object, for the routes that imitate its API (transcoder::ErrorFormat::kOpenAi):
//   {"error":{"message":"...","type":"invalid_request_error","param":null,"code":null}}
// An empty param or code is null, as OpenAI sends them.
std::string OpenAiErrorJson(std::string_view message, std::string_view type, std::string_view param,
                            std::string_view code, bool pretty = false);

// Hugging Face text-embeddings-inference's error object, for the routes that imitate its API
// (transcoder::ErrorFormat::kTei):
//   {"error":"...","error_type":"Validation"}
std::string TeiErrorJson(std::string_view message, std::string_view error_type,
                         bool pretty = false);

}  // namespace tipperary::common
