// Internal: JSON objects parsed through protobuf's google.protobuf.Struct (protobuf is already a
// dependency; numbers arrive as doubles, which is exact for every integer we read).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"

namespace tipperary::model::internal {

// Parses `text` whose top level must be an object. `label` (a path) prefixes errors.
absl::StatusOr<google::protobuf::Struct> ParseJsonObject(const std::string& text,
                                                         const std::string& label);

// Reads a whole file; errors name it.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// A non-negative integer that fits in 2^53 (exact as a double), or an error naming `what`.
absl::StatusOr<int64_t> JsonToInt(const google::protobuf::Value& v, const std::string& what);

}  // namespace tipperary::model::internal
