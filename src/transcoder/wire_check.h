// Structural validation of serialized messages before protobuf's JSON converter sees them
// (not installed). protobuf 3.21's BinaryToJsonString trusts its input: a truncated packed
// field makes it loop forever allocating. The check is one allocation-free pass guided by the
// descriptors: tags, wire types matching known fields, lengths within bounds, packed runs,
// UTF-8 in strings, Any payloads of known types, nesting at most max_depth.
#pragma once

#include <google/protobuf/descriptor.h>

#include <string_view>

namespace tipperary::transcoder::internal {

bool IsWellFormed(const google::protobuf::Descriptor* type, std::string_view bytes,
                  size_t max_depth);

}  // namespace tipperary::transcoder::internal
