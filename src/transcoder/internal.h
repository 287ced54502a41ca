// Helpers shared by the transcoder's .cc files (not installed).
#pragma once

#include <google/protobuf/descriptor.h>

#include <string>
#include <string_view>

namespace tipperary::transcoder::internal {

// Appends s as a quoted JSON string; invalid UTF-8 becomes U+FFFD, so the output is always
// valid JSON whatever an upstream put in a message.
void AppendJsonString(std::string& out, std::string_view s);

bool IsValidUtf8(std::string_view s);

// A field by proto name, else by JSON name; nullptr if neither.
const google::protobuf::FieldDescriptor* FindField(const google::protobuf::Descriptor* type,
                                                   std::string_view name);

// google.protobuf.* well-known types with a special JSON form.
bool IsWellKnownType(const google::protobuf::Descriptor* type);
bool IsWrapperType(const google::protobuf::Descriptor* type);
bool IsHttpBody(const google::protobuf::Descriptor* type);

// Whether a path variable / query parameter may bind this field: scalars, enums, wrappers,
// Timestamp, Duration, FieldMask.
bool IsBindableLeaf(const google::protobuf::FieldDescriptor* field);

// Value shown in error messages: quoted, escaped, truncated.
std::string Quote(std::string_view value);

}  // namespace tipperary::transcoder::internal
