// The one JSON rendering of an error: google.rpc.Status in its proto3 JSON mapping,
//   {"code":3,"message":"...","details":[...]}
// Every error body tipperary writes comes from here: the proxy's request path (through the
// transcoder, which renders the details), the listener's own framing errors, and both admin
// ports. `details_json` are JSON objects already rendered (google.protobuf.Any mapping).
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

}  // namespace tipperary::common
