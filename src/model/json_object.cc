#include "json_object.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace tipperary::model::internal {

absl::StatusOr<google::protobuf::Struct> ParseJsonObject(const std::string& text,
                                                         const std::string& label) {
  // Struct's JSON mapping accepts any object; anything else (array, scalar) is an error there.
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    return absl::InvalidArgumentError(absl::StrCat(label, ": expected a JSON object"));
  }
  google::protobuf::Struct out;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(text, &out, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": invalid JSON: ", std::string(status.message())));
  }
  return out;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ss.str();
}

absl::StatusOr<int64_t> JsonToInt(const google::protobuf::Value& v, const std::string& what) {
  if (v.kind_case() != google::protobuf::Value::kNumberValue) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be a number"));
  }
  double d = v.number_value();
  if (!std::isfinite(d) || d < 0 || d > 9007199254740992.0 || d != std::floor(d)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a non-negative integer below 2^53, got ", d));
  }
  return static_cast<int64_t>(d);
}

}  // namespace tipperary::model::internal
