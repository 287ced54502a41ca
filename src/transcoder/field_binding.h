// Text into protobuf fields (not installed): the path variables and query parameters of a
// request, resolved against its type (`a.b`, json names, `map[key]`) and set as protobuf's JSON
// mapping reads their text.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tipperary/transcoder/path_template.h"

namespace tipperary::transcoder::internal {

std::string Quote(std::string_view value);

// Where a text value came from, for error messages: `query parameter "x"`.
struct Origin {
  std::string_view kind;  // "query parameter" / "path variable"
  std::string_view name;
  std::string Describe() const { return absl::StrCat(std::string(kind), " ", Quote(name)); }
};

// A field path resolved against a message type.
struct ResolvedPath {
  std::vector<const google::protobuf::FieldDescriptor*> chain;
  std::string canonical;  // Proto field names joined by '.'.
  bool has_map_key = false;
  std::string map_key;
};

struct QueryParam {
  std::string name;
  std::string value;
};

// Returns NotFound for unknown names, InvalidArgument for unusable ones.
absl::Status Resolve(const google::protobuf::Descriptor* type, std::string_view name,
                     size_t max_depth, ResolvedPath* out);
// Sets the resolved field of `root` from text; repeated fields get one more element.
absl::Status Apply(google::protobuf::Message* root, const ResolvedPath& path,
                   const std::string& value, const Origin& origin);
// Every `name=value` of a query string, percent-decoded ('+' is a space). None is dropped: the
// caller bounds their number.
std::vector<QueryParam> ParseQuery(std::string_view query);
// Deepest array/object nesting of a JSON text (strings skipped), stopping early past `limit`.
bool JsonNestingExceeds(std::string_view json, size_t limit);

}  // namespace tipperary::transcoder::internal
