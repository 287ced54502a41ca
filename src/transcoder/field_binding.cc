#include "field_binding.h"

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "codec.h"
#include "internal.h"

namespace tipperary::transcoder::internal {
namespace {

namespace pb = google::protobuf;

std::string TypeName(const pb::FieldDescriptor* f) {
  switch (f->type()) {
    case pb::FieldDescriptor::TYPE_ENUM:
      return f->enum_type()->full_name();
    case pb::FieldDescriptor::TYPE_MESSAGE:
    case pb::FieldDescriptor::TYPE_GROUP:
      return f->message_type()->full_name();
    default:
      return f->type_name();
  }
}

absl::Status BadValue(const pb::FieldDescriptor* f, std::string_view text, const Origin& origin,
                      std::string_view why = {}) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value ", Quote(text), " for field \"", f->name(), "\" (", TypeName(f),
                   ") in ", origin.Describe(), why.empty() ? "" : ": ", S(why)));
}

bool ParseFloating(const std::string& text, double* out) {
  if (!absl::SimpleAtod(text, out)) return false;
  if (std::isinf(*out)) {
    std::string lower = absl::AsciiStrToLower(text);
    absl::string_view v = lower;
    if (!absl::ConsumePrefix(&v, "-")) absl::ConsumePrefix(&v, "+");
    return v == "inf" || v == "infinity";
  }
  return true;
}

bool ParseBytes(const std::string& text, std::string* out) {
  return absl::Base64Unescape(text, out) || absl::WebSafeBase64Unescape(text, out);
}

// Sets (or, for repeated fields, adds) a scalar or enum field from text.
absl::Status SetScalar(pb::Message* msg, const pb::FieldDescriptor* f, const std::string& text,
                       const Origin& origin) {
  const pb::Reflection* r = msg->GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(text, &v)) return BadValue(f, text, origin);
      rep ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) return BadValue(f, text, origin);
      rep ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (absl::StartsWith(text, "-") || !absl::SimpleAtoi(text, &v)) {
        return BadValue(f, text, origin);
      }
      rep ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (absl::StartsWith(text, "-") || !absl::SimpleAtoi(text, &v)) {
        return BadValue(f, text, origin);
      }
      rep ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: {
      double v;
      if (!ParseFloating(text, &v)) return BadValue(f, text, origin);
      rep ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!ParseFloating(text, &v)) return BadValue(f, text, origin);
      if (std::isfinite(v) && std::fabs(v) > 3.4028234663852886e38) {
        return BadValue(f, text, origin, "out of range");
      }
      float fv = static_cast<float>(v);
      rep ? r->AddFloat(msg, f, fv) : r->SetFloat(msg, f, fv);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(text, &v)) return BadValue(f, text, origin);
      rep ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* ev = f->enum_type()->FindValueByName(text);
      int number;
      if (ev != nullptr) {
        number = ev->number();
      } else if (absl::SimpleAtoi(text, &number)) {
        // Proto3 enums are open; proto2 ones only take declared numbers.
        if (f->file()->syntax() != pb::FileDescriptor::SYNTAX_PROTO3 &&
            f->enum_type()->FindValueByNumber(number) == nullptr) {
          return BadValue(f, text, origin, "unknown enum number");
        }
      } else {
        return BadValue(f, text, origin, "unknown enum value");
      }
      rep ? r->AddEnumValue(msg, f, number) : r->SetEnumValue(msg, f, number);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string v;
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES) {
        if (!ParseBytes(text, &v)) return BadValue(f, text, origin, "expected base64");
      } else {
        if (!internal::IsValidUtf8(text)) return BadValue(f, text, origin, "invalid UTF-8");
        v = text;
      }
      rep ? r->AddString(msg, f, std::move(v)) : r->SetString(msg, f, std::move(v));
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return BadValue(f, text, origin, "not a scalar field");
}

// FieldMask paths arrive in JSON's lowerCamelCase ("displayName") or as proto names.
std::string CamelToSnake(const std::string& p) {
  if (p.find('_') != std::string::npos) return p;
  std::string out;
  for (char c : p) {
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) {
      out.push_back('_');
      out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Sets a scalar, enum, wrapper, Timestamp, Duration or FieldMask field from text.
absl::Status SetLeaf(pb::Message* msg, const pb::FieldDescriptor* f, const std::string& text,
                     const Origin& origin) {
  if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    return SetScalar(msg, f, text, origin);
  }
  const pb::Descriptor* t = f->message_type();
  const pb::Reflection* r = msg->GetReflection();
  const std::string& name = t->full_name();
  auto target = [&]() {
    return f->is_repeated() ? r->AddMessage(msg, f) : r->MutableMessage(msg, f);
  };
  if (internal::IsWrapperType(t)) {
    const pb::FieldDescriptor* value = t->FindFieldByName("value");
    if (value == nullptr) return BadValue(f, text, origin);
    // Validate before creating the wrapper so a bad value leaves nothing behind.
    pb::Message* scratch = msg->GetReflection()->GetMessageFactory()->GetPrototype(t)->New();
    std::unique_ptr<pb::Message> owned(scratch);
    absl::Status s = SetScalar(scratch, value, text, origin);
    if (!s.ok()) return BadValue(f, text, origin);
    target()->MergeFrom(*scratch);
    return absl::OkStatus();
  }
  if (name == "google.protobuf.Timestamp" || name == "google.protobuf.Duration") {
    int64_t seconds;
    int32_t nanos;
    if (name == "google.protobuf.Timestamp") {
      pb::Timestamp ts;
      if (!pb::util::TimeUtil::FromString(text, &ts) || ts.seconds() < -62135596800 ||
          ts.seconds() > 253402300799) {
        return BadValue(f, text, origin, "expected RFC 3339 time");
      }
      seconds = ts.seconds();
      nanos = ts.nanos();
    } else {
      pb::Duration d;
      if (!pb::util::TimeUtil::FromString(text, &d) || d.seconds() < -315576000000 ||
          d.seconds() > 315576000000) {
        return BadValue(f, text, origin, "expected a duration such as \"1.5s\"");
      }
      seconds = d.seconds();
      nanos = d.nanos();
    }
    pb::Message* m = target();
    const pb::Reflection* mr = m->GetReflection();
    mr->SetInt64(m, t->FindFieldByName("seconds"), seconds);
    mr->SetInt32(m, t->FindFieldByName("nanos"), nanos);
    return absl::OkStatus();
  }
  if (name == "google.protobuf.FieldMask") {
    if (!internal::IsValidUtf8(text)) return BadValue(f, text, origin, "invalid UTF-8");
    pb::Message* m = target();
    const pb::FieldDescriptor* paths = t->FindFieldByName("paths");
    for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
      std::string p(absl::StripAsciiWhitespace(part));
      p = CamelToSnake(p);
      m->GetReflection()->AddString(m, paths, p);
    }
    return absl::OkStatus();
  }
  return BadValue(f, text, origin, "a message cannot be set from text");
}

// A query parameter or path variable name resolved against the request type.

}  // namespace

absl::Status Resolve(const pb::Descriptor* type, std::string_view name, size_t max_depth,
                     ResolvedPath* out) {
  std::string_view path = name;
  size_t bracket = name.find('[');
  if (bracket != std::string_view::npos) {
    if (name.back() != ']') {
      return absl::InvalidArgumentError(absl::StrCat("malformed query parameter ", Quote(name)));
    }
    out->has_map_key = true;
    out->map_key = S(name.substr(bracket + 1, name.size() - bracket - 2));
    path = name.substr(0, bracket);
  }
  const pb::Descriptor* cur = type;
  size_t start = 0;
  while (true) {
    if (out->chain.size() >= max_depth) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", Quote(name), " nests too deep"));
    }
    size_t dot = path.find('.', start);
    std::string_view part =
        path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    const pb::FieldDescriptor* f = internal::FindField(cur, part);
    if (f == nullptr) return absl::NotFoundError(absl::StrCat("unknown field ", Quote(name)));
    out->chain.push_back(f);
    if (!out->canonical.empty()) out->canonical.push_back('.');
    out->canonical.append(f->name());
    if (dot == std::string_view::npos) {
      if (out->has_map_key) {
        if (!f->is_map()) {
          return absl::InvalidArgumentError(
              absl::StrCat("parameter ", Quote(name), ": \"", f->name(), "\" is not a map"));
        }
      } else if (!internal::IsBindableLeaf(f)) {
        return absl::InvalidArgumentError(absl::StrCat("parameter ", Quote(name), ": field \"",
                                                       f->name(), "\" (", TypeName(f),
                                                       ") cannot be set from a query parameter"));
      }
      return absl::OkStatus();
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated() ||
        internal::IsWellKnownType(f->message_type())) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", Quote(name), ": \"", f->name(),
                                                     "\" is not a singular message field"));
    }
    cur = f->message_type();
    start = dot + 1;
  }
}

absl::Status Apply(pb::Message* root, const ResolvedPath& path, const std::string& value,
                   const Origin& origin) {
  pb::Message* cur = root;
  for (size_t i = 0; i + 1 < path.chain.size(); ++i) {
    cur = cur->GetReflection()->MutableMessage(cur, path.chain[i]);
  }
  const pb::FieldDescriptor* f = path.chain.back();
  if (!path.has_map_key) return SetLeaf(cur, f, value, origin);
  const pb::Descriptor* entry_type = f->message_type();
  const pb::FieldDescriptor* key = entry_type->map_key();
  const pb::FieldDescriptor* val = entry_type->map_value();
  // Build the entry aside so a bad value leaves no half-made entry.
  std::unique_ptr<pb::Message> entry(
      cur->GetReflection()->GetMessageFactory()->GetPrototype(entry_type)->New());
  absl::Status s = SetLeaf(entry.get(), key, path.map_key, origin);
  if (s.ok()) {
    if (val->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !internal::IsBindableLeaf(val)) {
      s = BadValue(val, value, origin, "map values of this type cannot be set from text");
    } else {
      s = SetLeaf(entry.get(), val, value, origin);
    }
  }
  if (!s.ok()) return s;
  cur->GetReflection()->AddMessage(cur, f)->CopyFrom(*entry);
  return absl::OkStatus();
}

std::vector<QueryParam> ParseQuery(std::string_view query) {
  std::vector<QueryParam> out;
  size_t start = 0;
  // Every parameter: the caller bounds their number (limits.max_query_params, a 414).
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string_view piece =
        query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!piece.empty()) {
      size_t eq = piece.find('=');
      std::string_view k = piece.substr(0, eq);
      std::string_view v = eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
      out.push_back({PercentDecode(k, false, true), PercentDecode(v, false, true)});
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

// Returns NotFound for unknown names, InvalidArgument for unusable ones.
// Deepest array/object nesting of a JSON text (strings skipped), stopping early past `limit`.
// protobuf 3.21's JSON parser is super-linear in nesting and each JSON level of a Struct or
// ListValue is two message levels, beyond protobuf's binary recursion limit of 100; so deep
// bodies are refused before they reach it.
bool JsonNestingExceeds(std::string_view json, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

}  // namespace tipperary::transcoder::internal
