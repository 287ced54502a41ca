#include "internal.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tipperary::transcoder::internal {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
size_t Utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = Utf8Length(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = Utf8Length(s, i);
      if (len == 0) {
        out.append("\\ufffd");
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

const google::protobuf::FieldDescriptor* FindField(const google::protobuf::Descriptor* type,
                                                   std::string_view name) {
  const google::protobuf::FieldDescriptor* f = type->FindFieldByName(std::string(name));
  if (f != nullptr) return f;
  for (int i = 0; i < type->field_count(); ++i) {
    if (type->field(i)->json_name() == name) return type->field(i);
  }
  return nullptr;
}

bool IsWellKnownType(const google::protobuf::Descriptor* type) {
  const std::string& n = type->full_name();
  return absl::StartsWith(n, "google.protobuf.") &&
         (IsWrapperType(type) || n == "google.protobuf.Timestamp" ||
          n == "google.protobuf.Duration" || n == "google.protobuf.FieldMask" ||
          n == "google.protobuf.Struct" || n == "google.protobuf.Value" ||
          n == "google.protobuf.ListValue" || n == "google.protobuf.Any" ||
          n == "google.protobuf.Empty");
}

bool IsWrapperType(const google::protobuf::Descriptor* type) {
  const std::string& n = type->full_name();
  return n == "google.protobuf.DoubleValue" || n == "google.protobuf.FloatValue" ||
         n == "google.protobuf.Int64Value" || n == "google.protobuf.UInt64Value" ||
         n == "google.protobuf.Int32Value" || n == "google.protobuf.UInt32Value" ||
         n == "google.protobuf.BoolValue" || n == "google.protobuf.StringValue" ||
         n == "google.protobuf.BytesValue";
}

bool IsHttpBody(const google::protobuf::Descriptor* type) {
  return type != nullptr && type->full_name() == "google.api.HttpBody";
}

bool IsBindableLeaf(const google::protobuf::FieldDescriptor* field) {
  if (field->is_map()) return false;
  if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) return true;
  const google::protobuf::Descriptor* t = field->message_type();
  const std::string& n = t->full_name();
  return IsWrapperType(t) || n == "google.protobuf.Timestamp" || n == "google.protobuf.Duration" ||
         n == "google.protobuf.FieldMask";
}

std::string Quote(std::string_view value) {
  constexpr size_t kMax = 64;
  std::string v(value.substr(0, kMax));
  std::string out = absl::StrCat("\"", absl::CHexEscape(v), "\"");
  if (value.size() > kMax) out.append("...");
  return out;
}

}  // namespace tipperary::transcoder::internal
