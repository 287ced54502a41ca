#include "wire_check.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "internal.h"

namespace tipperary::transcoder::internal {
namespace {

namespace pb = google::protobuf;
using WFL = pb::internal::WireFormatLite;

WFL::WireType ExpectedWireType(const pb::FieldDescriptor* f) {
  switch (f->type()) {
    case pb::FieldDescriptor::TYPE_DOUBLE:
    case pb::FieldDescriptor::TYPE_FIXED64:
    case pb::FieldDescriptor::TYPE_SFIXED64:
      return WFL::WIRETYPE_FIXED64;
    case pb::FieldDescriptor::TYPE_FLOAT:
    case pb::FieldDescriptor::TYPE_FIXED32:
    case pb::FieldDescriptor::TYPE_SFIXED32:
      return WFL::WIRETYPE_FIXED32;
    case pb::FieldDescriptor::TYPE_STRING:
    case pb::FieldDescriptor::TYPE_BYTES:
    case pb::FieldDescriptor::TYPE_MESSAGE:
      return WFL::WIRETYPE_LENGTH_DELIMITED;
    case pb::FieldDescriptor::TYPE_GROUP:
      return WFL::WIRETYPE_START_GROUP;
    default:
      return WFL::WIRETYPE_VARINT;
  }
}

bool PackedRunOk(WFL::WireType element, std::string_view run) {
  if (element == WFL::WIRETYPE_FIXED64) return run.size() % 8 == 0;
  if (element == WFL::WIRETYPE_FIXED32) return run.size() % 4 == 0;
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(run.data()),
                              static_cast<int>(run.size()));
  uint64_t v;
  while (in.CurrentPosition() < static_cast<int>(run.size())) {
    if (!in.ReadVarint64(&v)) return false;
  }
  return true;
}

bool Check(const pb::Descriptor* type, std::string_view bytes, size_t depth, size_t max_depth);

bool CheckAny(const pb::Descriptor* any_type, std::string_view bytes, size_t depth,
              size_t max_depth) {
  // Fields: 1 type_url, 2 value. Validate the frame first, then the payload of a known type.
  if (!Check(any_type, bytes, depth, max_depth)) return false;
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                              static_cast<int>(bytes.size()));
  std::string type_url;
  std::string_view value;
  while (uint32_t tag = in.ReadTag()) {
    uint32_t len = 0;
    if (WFL::GetTagWireType(tag) == WFL::WIRETYPE_LENGTH_DELIMITED && in.ReadVarint32(&len)) {
      std::string_view piece = bytes.substr(static_cast<size_t>(in.CurrentPosition()), len);
      if (WFL::GetTagFieldNumber(tag) == 1) type_url = std::string(piece);
      if (WFL::GetTagFieldNumber(tag) == 2) value = piece;
      in.Skip(static_cast<int>(len));
    } else if (!WFL::SkipField(&in, tag)) {
      return false;
    }
  }
  if (type_url.empty()) return value.empty();
  const pb::Descriptor* payload =
      any_type->file()->pool()->FindMessageTypeByName(type_url.substr(type_url.rfind('/') + 1));
  // Unknown types are reported by the converter itself, without reading the payload.
  return payload == nullptr || Check(payload, value, depth + 1, max_depth);
}

bool Check(const pb::Descriptor* type, std::string_view bytes, size_t depth, size_t max_depth) {
  if (depth > max_depth) return false;
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) return false;
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                              static_cast<int>(bytes.size()));
  in.SetRecursionLimit(static_cast<int>(max_depth));
  const int size = static_cast<int>(bytes.size());
  while (in.CurrentPosition() < size) {
    const int tag_start = in.CurrentPosition();
    uint32_t tag = in.ReadTag();
    if (tag == 0 || WFL::GetTagFieldNumber(tag) == 0) return false;
    // CodedInputStream reads a tag of up to 10 bytes (truncating it to 32 bits); protobuf's
    // message parser takes at most 5 and rejects the message, so must we.
    if (in.CurrentPosition() - tag_start > 5) return false;
    const WFL::WireType wt = WFL::GetTagWireType(tag);
    const pb::FieldDescriptor* f = type->FindFieldByNumber(WFL::GetTagFieldNumber(tag));
    if (f == nullptr) {
      if (wt == WFL::WIRETYPE_END_GROUP || !WFL::SkipField(&in, tag)) return false;
      continue;
    }
    const WFL::WireType expected = ExpectedWireType(f);
    const bool packed = wt == WFL::WIRETYPE_LENGTH_DELIMITED && f->is_repeated() &&
                        expected != WFL::WIRETYPE_LENGTH_DELIMITED &&
                        expected != WFL::WIRETYPE_START_GROUP;
    if (wt != expected && !packed) return false;
    switch (wt) {
      case WFL::WIRETYPE_VARINT: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        break;
      }
      case WFL::WIRETYPE_FIXED64: {
        uint64_t v;
        if (!in.ReadLittleEndian64(&v)) return false;
        break;
      }
      case WFL::WIRETYPE_FIXED32: {
        uint32_t v;
        if (!in.ReadLittleEndian32(&v)) return false;
        break;
      }
      case WFL::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t len;
        if (!in.ReadVarint32(&len)) return false;
        const int pos = in.CurrentPosition();
        if (len > static_cast<uint32_t>(size - pos)) return false;
        std::string_view piece = bytes.substr(static_cast<size_t>(pos), len);
        if (packed) {
          if (!PackedRunOk(expected, piece)) return false;
        } else if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
          const pb::Descriptor* sub = f->message_type();
          const bool ok = sub->full_name() == "google.protobuf.Any"
                              ? CheckAny(sub, piece, depth + 1, max_depth)
                              : Check(sub, piece, depth + 1, max_depth);
          if (!ok) return false;
        } else if (f->type() == pb::FieldDescriptor::TYPE_STRING) {
          if (!IsValidUtf8(piece)) return false;
        }
        if (!in.Skip(static_cast<int>(len))) return false;
        break;
      }
      default:
        return false;  // Groups: not rendered by the JSON converter either.
    }
  }
  return true;
}

}  // namespace

bool IsWellFormed(const pb::Descriptor* type, std::string_view bytes, size_t max_depth) {
  if (type->full_name() == "google.protobuf.Any") return CheckAny(type, bytes, 0, max_depth);
  return Check(type, bytes, 0, max_depth);
}

}  // namespace tipperary::transcoder::internal
