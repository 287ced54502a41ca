// A fast JSON <-> protobuf binary path for plain proto3 messages (not installed).
//
// protobuf's util converter (JsonToBinaryString / BinaryToJsonString) copies a
// google.protobuf.Type per call and streams through several object writers; for small
// messages that is most of the proxy's CPU time. These functions handle the common shape
// directly from descriptors: proto3 messages whose fields are strings, integers, bools, enums
// and nested messages (singular or repeated), with plain ASCII text; from binary to JSON also
// floats, doubles, proto3 `optional` fields, google.protobuf.Duration, Value and ListValue (the
// embedding responses). Anything else (maps, other well-known types, these in JSON, bytes,
// oneofs, escapes, non-ASCII, null, duplicate keys, unknown fields...) makes them return false
// without output, and the caller falls back to protobuf's converter, which also produces every
// error. When they return true the output is byte for byte what protobuf's converter produces
// (tests/transcoder/fast_json_test.cc checks this).
//
//   std::string bin;
//   if (!FastJsonToBinary(type, json, max_depth, &bin)) { /* JsonToBinaryString(...) */ }
#pragma once

#include <google/protobuf/descriptor.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace tipperary::transcoder::internal {

// JSON object text -> serialized message, as JsonToBinaryString with default parse options
// (ignore_unknown_fields does not matter: an unknown key makes this return false).
bool FastJsonToBinary(const google::protobuf::Descriptor* type, std::string_view json,
                      size_t max_depth, std::string* out);

struct FastPrintOptions {
  bool preserve_proto_field_names = false;
  bool enums_as_ints = false;
};

// Serialized message -> compact JSON, as BinaryToJsonString without add_whitespace and
// without always_print_primitive_fields. Appends to *out.
bool FastBinaryToJson(const google::protobuf::Descriptor* type, std::string_view binary,
                      const FastPrintOptions& options, size_t max_depth, std::string* out);

}  // namespace tipperary::transcoder::internal
