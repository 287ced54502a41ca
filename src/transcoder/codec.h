// Helpers the transcoder's request, response and status code share (not installed): text
// conversions, protobuf's JSON converter behind a guard, wire-format appends.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace tipperary::transcoder::internal {

inline std::string S(std::string_view v) { return std::string(v); }

template <typename StatusT>
std::string Msg(const StatusT& s) {
  return std::string(s.message());
}

inline google::protobuf::StringPiece Piece(std::string_view v) {
  return google::protobuf::StringPiece(v.data(), v.size());
}

// protobuf's JSON converter, with its CHECK failures (thrown as FatalException by Debian's
// build) turned into an error status: hostile input never ends the process.
google::protobuf::util::Status JsonToBinary(
    google::protobuf::util::TypeResolver* resolver, const std::string& type_url,
    std::string_view json, std::string* out,
    const google::protobuf::util::JsonParseOptions& options);
google::protobuf::util::Status BinaryToJson(
    google::protobuf::util::TypeResolver* resolver, const std::string& type_url,
    const std::string& binary, std::string* out,
    const google::protobuf::util::JsonPrintOptions& options);

void AppendVarint(std::string* out, uint64_t v);
// Field `field_number` as a length-delimited record: tag, length, bytes.
void AppendLengthDelimited(std::string* out, int field_number, std::string_view bytes);

bool IsBlank(std::string_view s);  // Only JSON whitespace (or nothing).
// Each line after the first indented by `indent`.
std::string Reindent(std::string_view json, std::string_view indent);
std::string_view TrimTrailingNewlines(std::string_view s);

}  // namespace tipperary::transcoder::internal
