#include "codec.h"

namespace tipperary::transcoder::internal {

namespace pb = google::protobuf;

// protobuf 3.21's JSON converter has CHECKs that hostile input can fail: an Any of a well-known
// type with a key besides "@type" and "value" ({"@type": ".../google.protobuf.Duration",
// "value": "1s", "x": 1}) ends in CHECK(!done_) in ProtoWriter. Debian builds protobuf with
// PROTOBUF_USE_EXCEPTIONS, so a failed CHECK throws FatalException instead of aborting: it is
// caught here and becomes the request's error, rather than ending the proxy with every request
// in flight. All our calls into the converter go through these two.
pb::util::Status JsonToBinary(pb::util::TypeResolver* resolver, const std::string& type_url,
                              std::string_view json, std::string* out,
                              const pb::util::JsonParseOptions& options) {
  try {
    return pb::util::JsonToBinaryString(resolver, type_url, Piece(json), out, options);
  } catch (const pb::FatalException&) {
    out->clear();
    return pb::util::Status(pb::util::StatusCode::kInvalidArgument,
                            "protobuf's JSON parser cannot take it (an Any of a well-known type "
                            "takes only \"@type\" and \"value\")");
  }
}

pb::util::Status BinaryToJson(pb::util::TypeResolver* resolver, const std::string& type_url,
                              const std::string& binary, std::string* out,
                              const pb::util::JsonPrintOptions& options) {
  try {
    return pb::util::BinaryToJsonString(resolver, type_url, binary, out, options);
  } catch (const pb::FatalException&) {
    out->clear();
    return pb::util::Status(pb::util::StatusCode::kInternal, "protobuf's JSON printer failed");
  }
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendLengthDelimited(std::string* out, int field_number, std::string_view bytes) {
  AppendVarint(out, (static_cast<uint64_t>(field_number) << 3) | 2);
  AppendVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

std::string Reindent(std::string_view json, std::string_view indent) {
  std::string out;
  out.reserve(json.size() + json.size() / 8);
  for (char c : json) {
    out.push_back(c);
    if (c == '\n') out.append(indent.data(), indent.size());
  }
  return out;
}

std::string_view TrimTrailingNewlines(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return s;
}

}  // namespace tipperary::transcoder::internal
