#include "tipperary/transcoder/transcoder.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fast_json.h"
#include "google/api/httpbody.pb.h"
#include "google/rpc/status.pb.h"
#include "internal.h"
#include "tipperary/transcoder/path_template.h"
#include "wire_check.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;
using internal::Quote;

std::string S(std::string_view v) { return std::string(v); }

template <typename StatusT>
std::string Msg(const StatusT& s) {
  return std::string(s.message());
}

pb::StringPiece Piece(std::string_view v) { return pb::StringPiece(v.data(), v.size()); }

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

// Where a text value came from, for error messages: `query parameter "x"`.
struct Origin {
  std::string_view kind;  // "query parameter" / "path variable"
  std::string_view name;
  std::string Describe() const { return absl::StrCat(S(kind), " ", Quote(name)); }
};

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
struct ResolvedPath {
  std::vector<const pb::FieldDescriptor*> chain;
  std::string canonical;  // Proto field names joined by '.'.
  bool has_map_key = false;
  std::string map_key;
};

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

struct QueryParam {
  std::string name;
  std::string value;
};

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

// The FieldMask field a PATCH fills: "update_mask", else the only top-level FieldMask.
const pb::FieldDescriptor* PatchMaskField(const pb::Descriptor* type) {
  auto is_mask = [](const pb::FieldDescriptor* f) {
    return f != nullptr && !f->is_repeated() &&
           f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
           f->message_type()->full_name() == "google.protobuf.FieldMask";
  };
  const pb::FieldDescriptor* named = type->FindFieldByName("update_mask");
  if (is_mask(named)) return named;
  const pb::FieldDescriptor* only = nullptr;
  for (int i = 0; i < type->field_count(); ++i) {
    if (is_mask(type->field(i))) {
      if (only != nullptr) return nullptr;
      only = type->field(i);
    }
  }
  return only;
}

void CollectMaskPaths(const pb::Struct& object, const pb::Descriptor* type,
                      const std::string& prefix, size_t depth, size_t max_depth,
                      std::vector<std::string>* out) {
  for (const auto& [key, value] : object.fields()) {
    const pb::FieldDescriptor* f = internal::FindField(type, key);
    if (f == nullptr) continue;  // Unknown (ignored) keys are not part of the mask.
    std::string path = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (value.kind_case() == pb::Value::kStructValue && !f->is_repeated() &&
        f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
        !internal::IsWellKnownType(f->message_type()) && depth + 1 < max_depth &&
        !value.struct_value().fields().empty()) {
      CollectMaskPaths(value.struct_value(), f->message_type(), path, depth + 1, max_depth, out);
    } else {
      out->push_back(std::move(path));
    }
  }
}

absl::Status JsonError(std::string_view what, const pb::util::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(S(what), ": ", Msg(s)));
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

}  // namespace

bool IsHttpBodyRequest(const Route& route) {
  if (route.body == "*") return internal::IsHttpBody(route.request_type);
  return route.body_field != nullptr &&
         route.body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
         !route.body_field->is_repeated() && internal::IsHttpBody(route.body_field->message_type());
}

bool IsHttpBodyResponse(const Route& route) {
  if (route.response_body_field == nullptr) return internal::IsHttpBody(route.response_type);
  return route.response_body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
         !route.response_body_field->is_repeated() &&
         internal::IsHttpBody(route.response_body_field->message_type());
}

BodyFormat BodyFormatFor(const Route& route, std::string_view content_type) {
  if (IsHttpBodyRequest(route)) return BodyFormat::kRaw;
  size_t semicolon = content_type.find(';');
  // Compared in place, case-insensitively: this runs on every request with a body.
  const absl::string_view text(content_type.data(), content_type.size());
  absl::string_view media = absl::StripAsciiWhitespace(text.substr(0, semicolon));
  auto is = [media](absl::string_view type) { return absl::EqualsIgnoreCase(media, type); };
  if (is("application/x-protobuf") || is("application/protobuf") ||
      is("application/vnd.google.protobuf")) {
    return BodyFormat::kProtobuf;
  }
  const bool json = media.empty() || is("application/json") || is("text/json") ||
                    absl::EndsWithIgnoreCase(media, "+json") || is("text/plain") ||
                    is("application/x-www-form-urlencoded");
  if (!json) return BodyFormat::kUnsupported;
  // Parameters: only a UTF-8 charset (JSON is UTF-8) or none.
  if (semicolon != std::string_view::npos) {
    for (absl::string_view param :
         absl::StrSplit(text.substr(semicolon + 1), ';', absl::SkipWhitespace())) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(param, '=');
      absl::string_view name = absl::StripAsciiWhitespace(kv.first);
      absl::string_view value = absl::StripAsciiWhitespace(kv.second);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (absl::EqualsIgnoreCase(name, "charset") && !absl::EqualsIgnoreCase(value, "utf-8") &&
          !absl::EqualsIgnoreCase(value, "utf8")) {
        return BodyFormat::kUnsupported;
      }
    }
  }
  return BodyFormat::kJson;
}

std::string AcceptedMediaTypes(const Route& route) {
  if (IsHttpBodyRequest(route)) return "any";
  return "application/json (UTF-8) or application/x-protobuf";
}

size_t CountQueryParams(std::string_view query_string) {
  size_t count = 0;
  for (absl::string_view piece : absl::StrSplit(S(query_string), '&')) {
    if (!piece.empty()) ++count;
  }
  return count;
}

Transcoder::Transcoder(std::shared_ptr<const Schema> schema, TranscoderOptions options)
    : schema_(std::move(schema)), options_(options) {
  if (options_.max_depth == 0) options_.max_depth = 1;
}

bool Transcoder::WantsPretty(std::string_view query_string) {
  for (const QueryParam& p : ParseQuery(query_string)) {
    if (p.name == "pretty") {
      return p.value.empty() || p.value == "true" || p.value == "1";
    }
  }
  return false;
}

absl::StatusOr<std::string> Transcoder::BuildRequestMessage(
    const Route& route, const std::vector<std::pair<std::string, std::string>>& bindings,
    std::string_view query_string, std::string_view body, BodyFormat fmt,
    std::string_view content_type) const {
  if (route.request_type == nullptr) return absl::InternalError("route without request type");
  pb::util::TypeResolver* resolver = schema_->type_resolver();
  pb::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = options_.ignore_unknown_fields;

  // 1. The body, as serialized request-message bytes (a request fragment).
  std::string out;
  const bool http_body = IsHttpBodyRequest(route);
  const pb::FieldDescriptor* body_field = route.body_field;
  if (route.body.empty()) {
    if (!body.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("route ", route.label, " does not take a request body"));
    }
  } else if (http_body) {
    // HttpBody.content_type is a proto3 string: a header value with obs-text bytes would make
    // the upstream reject the whole message (invalid UTF-8), so it is the client's error here.
    if (!internal::IsValidUtf8(content_type)) {
      return absl::InvalidArgumentError("the Content-Type header is not valid UTF-8");
    }
    google::api::HttpBody hb;
    hb.set_content_type(S(content_type));
    hb.set_data(S(body));
    if (body_field == nullptr) {
      out = hb.SerializeAsString();
    } else {
      AppendLengthDelimited(&out, body_field->number(), hb.SerializeAsString());
    }
  } else if (fmt == BodyFormat::kRaw) {
    return absl::InvalidArgumentError(
        absl::StrCat("route ", route.label, " takes no raw (google.api.HttpBody) body"));
  } else if (fmt == BodyFormat::kUnsupported) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported Content-Type; route ", route.label,
                                                   " accepts ", AcceptedMediaTypes(route)));
  } else {
    const size_t json_depth_limit = std::max<size_t>(1, options_.max_depth / 2);
    if (fmt == BodyFormat::kJson && JsonNestingExceeds(body, json_depth_limit)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid JSON body: nested deeper than ", json_depth_limit, " levels"));
    }
    const bool message_body =
        body_field == nullptr || (body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
                                  !body_field->is_repeated());
    const pb::Descriptor* body_type = body_field == nullptr
                                          ? route.request_type
                                          : (message_body ? body_field->message_type() : nullptr);
    std::string body_bin;
    if (fmt == BodyFormat::kProtobuf) {
      if (!message_body) {
        return absl::InvalidArgumentError(absl::StrCat(
            "route ", route.label, ": a binary protobuf body needs a message-typed body field"));
      }
      // A structural check (no allocation, no protobuf error logs on hostile input).
      if (!internal::IsWellFormed(body_type, body, options_.max_depth)) {
        return absl::InvalidArgumentError(
            absl::StrCat("request body is not a valid serialized ", body_type->full_name()));
      }
      body_bin = S(body);
    } else if (message_body) {
      if (!IsBlank(body)) {
        if (!internal::FastJsonToBinary(body_type, body, options_.max_depth, &body_bin)) {
          const std::string url =
              body_field == nullptr ? route.request_type_url : TypeUrl(body_type->full_name());
          pb::util::Status s = JsonToBinary(resolver, url, body, &body_bin, parse_options);
          if (!s.ok()) return JsonError("invalid JSON body", s);
        }
      }
    } else if (!IsBlank(body)) {
      // A scalar, repeated or map body field: parse {"field": <body>} and keep only that field,
      // so that a body like `1, "other": 2` cannot reach other fields.
      std::string wrapped = "{";
      internal::AppendJsonString(wrapped, body_field->json_name());
      wrapped.push_back(':');
      wrapped.append(body.data(), body.size());
      wrapped.push_back('}');
      std::string bin;
      pb::util::Status s =
          JsonToBinary(resolver, route.request_type_url, wrapped, &bin, parse_options);
      if (!s.ok()) return JsonError("invalid JSON body", s);
      pb::Arena arena;
      pb::Message* tmp = schema_->Prototype(route.request_type)->New(&arena);
      if (!tmp->ParseFromString(bin)) return absl::InvalidArgumentError("invalid JSON body");
      std::vector<const pb::FieldDescriptor*> set;
      tmp->GetReflection()->ListFields(*tmp, &set);
      for (const pb::FieldDescriptor* f : set) {
        if (f != body_field) tmp->GetReflection()->ClearField(tmp, f);
      }
      out = tmp->SerializeAsString();
    }
    if (message_body && body_field != nullptr) {
      AppendLengthDelimited(&out, body_field->number(), body_bin);
    } else if (message_body) {
      out = std::move(body_bin);
    }
  }

  // 2. Path bindings, query parameters and the PATCH mask go into a second fragment that
  // follows the body: protobuf merges concatenated messages, and later singular fields win,
  // so bindings override body fields without parsing the body into a message.
  std::vector<QueryParam> params;
  if (route.body != "*") params = ParseQuery(query_string);
  const pb::FieldDescriptor* mask_field = nullptr;
  if (route.http_method == "PATCH" && body_field != nullptr && fmt == BodyFormat::kJson &&
      !http_body && body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
      !body_field->is_repeated() && !IsBlank(body)) {
    mask_field = PatchMaskField(route.request_type);
  }
  bool any_param = false;
  for (const QueryParam& p : params) {
    if (p.name != "pretty") any_param = true;
  }
  if (bindings.empty() && !any_param && mask_field == nullptr) return out;

  pb::Arena arena;
  pb::Message* extra = schema_->Prototype(route.request_type)->New(&arena);
  std::vector<std::string> bound;
  for (const auto& [field_path, value] : bindings) {
    ResolvedPath rp;
    absl::Status s = Resolve(route.request_type, field_path, options_.max_depth, &rp);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("path variable \"", field_path, "\": ", Msg(s)));
    }
    s = Apply(extra, rp, value, Origin{"path variable", field_path});
    if (!s.ok()) return s;
    bound.push_back(std::move(rp.canonical));
  }
  absl::flat_hash_set<std::string> seen;
  for (const QueryParam& p : params) {
    if (p.name == "pretty") continue;
    ResolvedPath rp;
    absl::Status s = Resolve(route.request_type, p.name, options_.max_depth, &rp);
    if (absl::IsNotFound(s)) {
      if (options_.ignore_unknown_fields) continue;
      return absl::InvalidArgumentError(absl::StrCat("unknown query parameter ", Quote(p.name)));
    }
    if (!s.ok()) return s;
    if (body_field != nullptr && rp.chain.front() == body_field) continue;  // The body's.
    bool path_bound = false;
    for (const std::string& b : bound) {
      if (rp.canonical == b || absl::StartsWith(rp.canonical, b + ".")) path_bound = true;
    }
    if (path_bound) continue;
    if (!rp.has_map_key && !rp.chain.back()->is_repeated() && !seen.insert(rp.canonical).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", Quote(p.name), " given more than once"));
    }
    s = Apply(extra, rp, p.value, Origin{"query parameter", p.name});
    if (!s.ok()) return s;
  }
  if (mask_field != nullptr && !seen.contains(mask_field->name()) &&
      std::find(bound.begin(), bound.end(), mask_field->name()) == bound.end()) {
    std::string struct_bin;
    pb::Struct object;
    pb::util::JsonParseOptions lenient;
    lenient.ignore_unknown_fields = true;
    if (JsonToBinary(resolver, "type.googleapis.com/google.protobuf.Struct", body, &struct_bin,
                     lenient)
            .ok() &&
        object.ParseFromString(struct_bin)) {
      std::vector<std::string> paths;
      CollectMaskPaths(object, body_field->message_type(), "", 0, options_.max_depth, &paths);
      std::sort(paths.begin(), paths.end());
      pb::Message* mask = extra->GetReflection()->MutableMessage(extra, mask_field);
      const pb::FieldDescriptor* paths_field = mask_field->message_type()->FindFieldByName("paths");
      for (std::string& p : paths)
        mask->GetReflection()->AddString(mask, paths_field, std::move(p));
    }
  }
  if (!extra->AppendToString(&out)) return absl::InternalError("cannot serialize request");
  return out;
}

absl::StatusOr<HttpBodyOut> Transcoder::BuildResponseBody(const Route& route,
                                                          std::string_view message,
                                                          ResponseFormat fmt, bool pretty) const {
  if (route.response_type == nullptr) return absl::InternalError("route without response type");
  pb::util::JsonPrintOptions print;
  print.add_whitespace = pretty;
  print.always_print_primitive_fields = options_.always_print_primitive_fields;
  print.always_print_enums_as_ints = options_.enums_as_ints;
  print.preserve_proto_field_names = options_.preserve_proto_field_names;
  pb::util::TypeResolver* resolver = schema_->type_resolver();
  internal::FastPrintOptions fast_print;
  fast_print.preserve_proto_field_names = options_.preserve_proto_field_names;
  fast_print.enums_as_ints = options_.enums_as_ints;

  auto http_body_out = [](std::string_view bytes) -> absl::StatusOr<HttpBodyOut> {
    google::api::HttpBody hb;
    if (!hb.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::InternalError("response is not a valid google.api.HttpBody");
    }
    HttpBodyOut out;
    out.content_type =
        hb.content_type().empty() ? std::string("application/octet-stream") : hb.content_type();
    out.body = std::move(*hb.mutable_data());
    return out;
  };
  auto to_json = [&](const pb::Descriptor* type, const std::string& url,
                     std::string_view bytes) -> absl::StatusOr<HttpBodyOut> {
    if (!internal::IsWellFormed(type, bytes, options_.max_depth)) {
      return absl::InternalError(absl::StrCat("response is not a valid ", type->full_name()));
    }
    HttpBodyOut out;
    out.content_type = S(kJsonContentType);
    if (!print.add_whitespace && !print.always_print_primitive_fields &&
        internal::FastBinaryToJson(type, bytes, fast_print, options_.max_depth, &out.body)) {
      return out;
    }
    pb::util::Status s = BinaryToJson(resolver, url, S(bytes), &out.body, print);
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("cannot convert the response to JSON: ", Msg(s)));
    }
    return out;
  };

  if (message.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::ResourceExhaustedError("response message too large");
  }
  const pb::FieldDescriptor* f = route.response_body_field;
  if (f == nullptr) {
    if (internal::IsHttpBody(route.response_type)) return http_body_out(message);
    if (fmt == ResponseFormat::kProtobuf) return HttpBodyOut{S(kProtobufContentType), S(message)};
    return to_json(route.response_type, route.response_type_url, message);
  }

  pb::Arena arena;
  pb::Message* msg = schema_->Prototype(route.response_type)->New(&arena);
  if (!internal::IsWellFormed(route.response_type, message, options_.max_depth) ||
      !msg->ParseFromArray(message.data(), static_cast<int>(message.size()))) {
    return absl::InternalError(
        absl::StrCat("response is not a valid ", route.response_type->full_name()));
  }
  const pb::Reflection* r = msg->GetReflection();
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
    std::string sub = r->GetMessage(*msg, f).SerializeAsString();
    if (internal::IsHttpBody(f->message_type())) return http_body_out(sub);
    if (fmt == ResponseFormat::kProtobuf) return HttpBodyOut{S(kProtobufContentType), sub};
    return to_json(f->message_type(), TypeUrl(f->message_type()->full_name()), sub);
  }
  // Scalar, repeated or map: render a message holding only that field, then cut the value out.
  std::vector<const pb::FieldDescriptor*> set;
  r->ListFields(*msg, &set);
  for (const pb::FieldDescriptor* other : set) {
    if (other != f) r->ClearField(msg, other);
  }
  std::string only = msg->SerializeAsString();
  if (fmt == ResponseFormat::kProtobuf) return HttpBodyOut{S(kProtobufContentType), only};
  pb::util::JsonPrintOptions compact = print;
  compact.add_whitespace = false;
  compact.always_print_primitive_fields = false;
  HttpBodyOut out;
  out.content_type = S(kJsonContentType);
  std::string json;
  if (!internal::IsWellFormed(route.response_type, only, options_.max_depth)) {
    return absl::InternalError(
        absl::StrCat("response is not a valid ", route.response_type->full_name()));
  }
  pb::util::Status s = BinaryToJson(resolver, route.response_type_url, only, &json, compact);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("cannot convert the response to JSON: ", Msg(s)));
  }
  std::string prefix = "{";
  internal::AppendJsonString(prefix,
                             options_.preserve_proto_field_names ? f->name() : f->json_name());
  prefix.push_back(':');
  if (absl::StartsWith(json, prefix) && absl::EndsWith(json, "}")) {
    out.body = json.substr(prefix.size(), json.size() - prefix.size() - 1);
    return out;
  }
  // Absent: the field holds its default value.
  if (f->is_map()) {
    out.body = "{}";
  } else if (f->is_repeated()) {
    out.body = "[]";
  } else {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        out.body = "\"\"";
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        out.body = "false";
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        out.body = "\"0\"";
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM: {
        const pb::EnumValueDescriptor* zero = f->enum_type()->FindValueByNumber(0);
        if (options_.enums_as_ints || zero == nullptr) {
          out.body = "0";
        } else {
          internal::AppendJsonString(out.body, zero->name());
        }
        break;
      }
      default:
        out.body = "0";
    }
  }
  return out;
}

absl::StatusOr<std::string> Transcoder::BuildStreamChunk(const Route& route,
                                                         std::string_view message,
                                                         ResponseFormat fmt, bool pretty) const {
  absl::StatusOr<HttpBodyOut> body = BuildResponseBody(route, message, fmt, pretty);
  if (!body.ok()) return body.status();
  if (IsHttpBodyResponse(route)) return std::move(body->body);
  if (fmt == ResponseFormat::kProtobuf) {
    // varint(len(frame)) + StreamFrame{message = body}.
    std::string frame;
    AppendLengthDelimited(&frame, 1, body->body);
    std::string out;
    AppendVarint(&out, frame.size());
    out.append(frame);
    return out;
  }
  std::string_view json = TrimTrailingNewlines(body->body);
  if (!pretty) return absl::StrCat("{\"result\":", S(json), "}\n");
  return absl::StrCat("{\n \"result\": ", Reindent(json, " "), "\n}\n");
}

std::string Transcoder::StreamContentType(const Route& route, ResponseFormat fmt,
                                          std::string_view first_message) const {
  if (IsHttpBodyResponse(route)) {
    absl::StatusOr<HttpBodyOut> out =
        BuildResponseBody(route, first_message, ResponseFormat::kProtobuf, false);
    return out.ok() ? out->content_type : std::string("application/octet-stream");
  }
  return fmt == ResponseFormat::kProtobuf ? S(kProtobufStreamContentType) : S(kJsonContentType);
}

std::string Transcoder::BuildStreamEnd(const Route& route, ResponseFormat fmt, int grpc_code,
                                       std::string_view message,
                                       std::string_view status_details_bin) const {
  if (IsHttpBodyResponse(route)) return "";
  if (fmt == ResponseFormat::kJson) {
    return grpc_code == 0 ? std::string()
                          : BuildStreamError(grpc_code, message, status_details_bin);
  }
  google::rpc::Status status;
  if (!status_details_bin.empty() && status_details_bin.size() < static_cast<size_t>(INT32_MAX) &&
      !status.ParseFromArray(status_details_bin.data(),
                             static_cast<int>(status_details_bin.size()))) {
    status.Clear();
  }
  status.set_code(grpc_code);
  status.set_message(S(message));
  std::string frame;
  AppendLengthDelimited(&frame, 2, status.SerializeAsString());
  std::string out;
  AppendVarint(&out, frame.size());
  out.append(frame);
  return out;
}

std::string Transcoder::StatusJson(int grpc_code, std::string_view message,
                                   std::string_view status_details_bin, bool pretty) const {
  std::vector<std::string> details;
  if (!status_details_bin.empty() && status_details_bin.size() < static_cast<size_t>(INT32_MAX)) {
    google::rpc::Status st;
    if (st.ParseFromArray(status_details_bin.data(), static_cast<int>(status_details_bin.size()))) {
      pb::util::JsonPrintOptions print;
      print.add_whitespace = pretty;
      print.always_print_primitive_fields = options_.always_print_primitive_fields;
      print.always_print_enums_as_ints = options_.enums_as_ints;
      print.preserve_proto_field_names = options_.preserve_proto_field_names;
      const pb::Descriptor* any_type = schema_->FindMessage("google.protobuf.Any");
      for (const pb::Any& any : st.details()) {
        std::string json;
        std::string any_bin = any.SerializeAsString();
        if (any_type != nullptr && internal::IsWellFormed(any_type, any_bin, options_.max_depth) &&
            BinaryToJson(schema_->type_resolver(), "type.googleapis.com/google.protobuf.Any",
                         any_bin, &json, print)
                .ok()) {
          details.emplace_back(TrimTrailingNewlines(json));
          continue;
        }
        std::string fallback = pretty ? "{\n \"@type\": " : "{\"@type\":";
        internal::AppendJsonString(fallback, any.type_url());
        fallback.append(pretty ? ",\n \"value\": " : ",\"value\":");
        internal::AppendJsonString(fallback, absl::Base64Escape(any.value()));
        fallback.append(pretty ? "\n}" : "}");
        details.push_back(std::move(fallback));
      }
    }
  }
  std::string out;
  if (!pretty) {
    absl::StrAppend(&out, "{\"code\":", grpc_code, ",\"message\":");
    internal::AppendJsonString(out, message);
    out.append(",\"details\":[");
    for (size_t i = 0; i < details.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append(details[i]);
    }
    out.append("]}");
    return out;
  }
  absl::StrAppend(&out, "{\n \"code\": ", grpc_code, ",\n \"message\": ");
  internal::AppendJsonString(out, message);
  out.append(",\n \"details\": [");
  for (size_t i = 0; i < details.size(); ++i) {
    out.append(i > 0 ? ",\n  " : "\n  ");
    out.append(Reindent(details[i], "  "));
  }
  out.append(details.empty() ? "]\n}\n" : "\n ]\n}\n");
  return out;
}

std::string Transcoder::BuildStreamError(int grpc_code, std::string_view message,
                                         std::string_view status_details_bin) const {
  std::string out = "{\"error\":";
  out.append(StatusJson(grpc_code, message, status_details_bin, false));
  out.append("}\n");
  return out;
}

std::string MinimalStatusJson(int grpc_code, std::string_view message) {
  std::string out = absl::StrCat("{\"code\":", grpc_code, ",\"message\":");
  internal::AppendJsonString(out, message);
  out.append(",\"details\":[]}");
  return out;
}

}  // namespace tipperary::transcoder
