#include "tipperary/transcoder/openapi.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "internal.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;

// Debian's Abseil has its own string_view.
absl::string_view S(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// An ordered JSON value: OpenAPI readers do not care about key order, people reading the
// document do (openapi, info, paths, components). Strings are written by AppendJsonString.
class Json {
 public:
  enum class Kind { kNull, kRaw, kString, kArray, kObject };

  Json() = default;
  static Json Str(std::string_view s) { return Json(Kind::kString, std::string(s)); }
  static Json Raw(std::string_view literal) { return Json(Kind::kRaw, std::string(literal)); }
  static Json Bool(bool b) { return Raw(b ? "true" : "false"); }
  static Json Int(int64_t n) { return Raw(absl::StrCat(n)); }
  static Json Object() { return Json(Kind::kObject, ""); }
  static Json Array() { return Json(Kind::kArray, ""); }

  // The member `key`, added (null) when missing; a null value becomes an object.
  Json& operator[](std::string_view key) {
    if (kind_ == Kind::kNull) kind_ = Kind::kObject;
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] == key) return values_[i];
    }
    keys_.emplace_back(key);
    values_.emplace_back();
    return values_.back();
  }
  bool Has(std::string_view key) const {
    return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
  }
  Json& Push(Json value) {
    if (kind_ == Kind::kNull) kind_ = Kind::kArray;
    items_.push_back(std::move(value));
    return items_.back();
  }
  bool empty() const { return keys_.empty() && items_.empty(); }

  void Write(std::string& out) const {
    switch (kind_) {
      case Kind::kNull:
        out.append("null");
        return;
      case Kind::kRaw:
        out.append(text_);
        return;
      case Kind::kString:
        internal::AppendJsonString(out, text_);
        return;
      case Kind::kArray:
        out.push_back('[');
        for (size_t i = 0; i < items_.size(); ++i) {
          if (i > 0) out.push_back(',');
          items_[i].Write(out);
        }
        out.push_back(']');
        return;
      case Kind::kObject:
        out.push_back('{');
        for (size_t i = 0; i < keys_.size(); ++i) {
          if (i > 0) out.push_back(',');
          internal::AppendJsonString(out, keys_[i]);
          out.push_back(':');
          values_[i].Write(out);
        }
        out.push_back('}');
        return;
    }
  }

 private:
  Json(Kind kind, std::string text) : kind_(kind), text_(std::move(text)) {}

  Kind kind_ = Kind::kNull;
  std::string text_;
  std::vector<std::string> keys_;  // An object's members, in insertion order.
  std::vector<Json> values_;
  std::vector<Json> items_;
};

Json Type(std::string_view type) {
  Json j = Json::Object();
  j["type"] = Json::Str(type);
  return j;
}

Json TypeFormat(std::string_view type, std::string_view format) {
  Json j = Type(type);
  j["format"] = Json::Str(format);
  return j;
}

// {"type": [type, "null"]}: a wrapper's JSON is its value or null.
Json Nullable(Json schema) {
  Json types = Json::Array();
  types.Push(schema["type"]);
  types.Push(Json::Str("null"));
  schema["type"] = std::move(types);
  return schema;
}

std::string Ref(std::string_view component) {
  return absl::StrCat("#/components/schemas/", S(component));
}

Json RefTo(std::string_view component) {
  Json j = Json::Object();
  j["$ref"] = Json::Str(Ref(component));
  return j;
}

// The comments protoc kept for a descriptor (descriptor sets built with --include_source_info;
// reflection usually has none): leading ones, else trailing, one space of indent removed.
template <typename D>
std::string Comments(const D* d) {
  pb::SourceLocation loc;
  if (d == nullptr || !d->GetSourceLocation(&loc)) return "";
  const std::string& raw =
      loc.leading_comments.empty() ? loc.trailing_comments : loc.leading_comments;
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(raw, '\n')) {
    if (absl::StartsWith(line, " ")) line.remove_prefix(1);
    lines.emplace_back(absl::StripTrailingAsciiWhitespace(line));
  }
  return std::string(absl::StripAsciiWhitespace(absl::StrJoin(lines, "\n")));
}

void SetDescription(Json& schema, std::string_view text) {
  if (text.empty()) return;
  schema["description"] = Json::Str(text);
}

// Scalars in the proto3 JSON mapping, as the proxy prints them.
Json ScalarSchema(const pb::FieldDescriptor* field) {
  switch (field->type()) {
    case pb::FieldDescriptor::TYPE_DOUBLE:
      return TypeFormat("number", "double");
    case pb::FieldDescriptor::TYPE_FLOAT:
      return TypeFormat("number", "float");
    case pb::FieldDescriptor::TYPE_INT32:
    case pb::FieldDescriptor::TYPE_SINT32:
    case pb::FieldDescriptor::TYPE_SFIXED32:
      return TypeFormat("integer", "int32");
    case pb::FieldDescriptor::TYPE_UINT32:
    case pb::FieldDescriptor::TYPE_FIXED32: {
      Json j = TypeFormat("integer", "int64");
      j["minimum"] = Json::Int(0);
      j["maximum"] = Json::Int(4294967295);
      return j;
    }
    case pb::FieldDescriptor::TYPE_INT64:
    case pb::FieldDescriptor::TYPE_SINT64:
    case pb::FieldDescriptor::TYPE_SFIXED64:
      return TypeFormat("string", "int64");
    case pb::FieldDescriptor::TYPE_UINT64:
    case pb::FieldDescriptor::TYPE_FIXED64:
      return TypeFormat("string", "uint64");
    case pb::FieldDescriptor::TYPE_BOOL:
      return Type("boolean");
    case pb::FieldDescriptor::TYPE_STRING:
      return Type("string");
    case pb::FieldDescriptor::TYPE_BYTES: {
      Json j = TypeFormat("string", "byte");
      j["contentEncoding"] = Json::Str("base64");
      return j;
    }
    default:
      return Json::Object();  // Enums and messages are handled by the caller.
  }
}

// Well-known types with their own JSON form, inline; nullopt for ordinary messages.
std::optional<Json> WellKnownSchema(const pb::Descriptor* type) {
  const std::string& n = type->full_name();
  if (n == "google.protobuf.Timestamp") {
    Json j = TypeFormat("string", "date-time");
    SetDescription(j, "RFC 3339, UTC (\"Z\"), up to nanoseconds.");
    return j;
  }
  if (n == "google.protobuf.Duration") {
    // Not format "duration": JSON Schema's is ISO 8601 ("PT1.5S"); protobuf's is "1.5s".
    Json j = Type("string");
    j["pattern"] = Json::Str("^-?[0-9]+(\\.[0-9]{1,9})?s$");
    j["examples"].Push(Json::Str("1.5s"));
    SetDescription(j, "Seconds with up to 9 fractional digits and the suffix \"s\".");
    return j;
  }
  if (n == "google.protobuf.FieldMask") {
    Json j = Type("string");
    SetDescription(j, "Field paths separated by commas, each in lowerCamelCase (\"a.bC,d\").");
    return j;
  }
  if (n == "google.protobuf.Struct") return Type("object");
  if (n == "google.protobuf.Value") {
    Json j = Json::Object();
    SetDescription(j, "Any JSON value.");
    return j;
  }
  if (n == "google.protobuf.ListValue") {
    Json j = Type("array");
    j["items"] = Json::Object();
    return j;
  }
  if (n == "google.protobuf.Empty") return Type("object");
  if (n == "google.protobuf.Any") {
    Json j = Type("object");
    j["properties"]["@type"] = Type("string");
    j["required"].Push(Json::Str("@type"));
    SetDescription(j,
                   "A message of the type its \"@type\" URL names "
                   "(type.googleapis.com/<full name>) with that message's fields, or its JSON "
                   "form in \"value\" for well-known types.");
    return j;
  }
  if (internal::IsWrapperType(type)) {
    return Nullable(ScalarSchema(type->FindFieldByNumber(1)));
  }
  return std::nullopt;
}

// "a.b" in proto or JSON names, resolved from `type`; empty when some part is unknown.
std::vector<const pb::FieldDescriptor*> ResolveFieldPath(const pb::Descriptor* type,
                                                         std::string_view path) {
  std::vector<const pb::FieldDescriptor*> chain;
  for (absl::string_view part : absl::StrSplit(S(path), '.')) {
    if (type == nullptr) return {};
    const pb::FieldDescriptor* f = internal::FindField(type, Sv(part));
    if (f == nullptr) return {};
    chain.push_back(f);
    type = f->message_type();
  }
  return chain;
}

std::string CanonicalPath(const std::vector<const pb::FieldDescriptor*>& chain) {
  std::vector<std::string> names;
  for (const pb::FieldDescriptor* f : chain) names.push_back(f->name());
  return absl::StrJoin(names, ".");
}

bool IsOperationMethod(std::string_view m) {
  for (std::string_view known :
       {"get", "put", "post", "delete", "options", "head", "patch", "trace"}) {
    if (m == known) return true;
  }
  return false;
}

class Generator {
 public:
  Generator(const RouteTable& routes, const OpenApiOptions& options)
      : routes_(routes), options_(options) {}

  std::string Render();

 private:
  // A path parameter slot: one "*" or "**" position of a template.
  struct Slot {
    std::string name;     // The OpenAPI parameter name.
    std::string field;    // The variable's field path as written; "" for an unnamed wildcard.
    std::string pattern;  // The variable's template ("shelves/*"), for multi-segment ones.
    bool rest = false;    // "**": the rest of the path, '/' included.
  };
  struct PathShape {
    std::string openapi_path;
    std::vector<Slot> slots;
  };

  std::string FieldName(const pb::FieldDescriptor* f) const {
    return options_.preserve_proto_field_names ? f->name() : f->json_name();
  }

  Json MessageSchemaRef(const pb::Descriptor* type);
  Json EnumSchemaRef(const pb::EnumDescriptor* type);
  Json SingularSchema(const pb::FieldDescriptor* f);
  Json FieldSchema(const pb::FieldDescriptor* f);
  Json PropertySchema(const pb::FieldDescriptor* f);
  Json MessageSchema(const pb::Descriptor* type, const std::set<const pb::FieldDescriptor*>& skip);
  void DrainPending();

  PathShape ShapeOf(const Route& route) const;
  void AddQueryParams(const pb::Descriptor* type, const std::string& json_prefix,
                      const std::string& proto_prefix, const std::set<std::string>& bound,
                      const std::string& body, std::vector<const pb::Descriptor*>& chain,
                      Json& params);
  Json RequestBody(const Route& route, const std::set<const pb::FieldDescriptor*>& top_bound);
  Json Responses(const Route& route);
  void AddOperation(const Route& route);

  const RouteTable& routes_;
  const OpenApiOptions& options_;
  Json paths_ = Json::Object();
  std::map<std::string, Json> schemas_;  // By component name (sorted in the output).
  std::set<std::string> requested_;      // Components referenced (rendered or pending).
  std::deque<const pb::Descriptor*> pending_messages_;
  std::map<std::string, PathShape> shapes_;  // PathTemplate::Shape() -> the first route's.
  std::set<std::string> operation_ids_;
  std::set<std::string> tags_;
  Json tag_list_ = Json::Array();
  bool openai_errors_ = false;
  bool tei_errors_ = false;
  Json unlisted_ = Json::Array();
};

Json Generator::MessageSchemaRef(const pb::Descriptor* type) {
  if (std::optional<Json> wkt = WellKnownSchema(type)) return *std::move(wkt);
  if (requested_.insert(type->full_name()).second) pending_messages_.push_back(type);
  return RefTo(type->full_name());
}

Json Generator::EnumSchemaRef(const pb::EnumDescriptor* type) {
  if (type->full_name() == "google.protobuf.NullValue") return Type("null");
  if (requested_.insert(type->full_name()).second) {
    Json j;
    if (options_.enums_as_ints) {
      j = TypeFormat("integer", "int32");
      for (int i = 0; i < type->value_count(); ++i)
        j["enum"].Push(Json::Int(type->value(i)->number()));
    } else {
      j = Type("string");
      for (int i = 0; i < type->value_count(); ++i)
        j["enum"].Push(Json::Str(type->value(i)->name()));
    }
    std::string text = Comments(type);
    std::vector<std::string> values;
    for (int i = 0; i < type->value_count(); ++i) {
      const pb::EnumValueDescriptor* v = type->value(i);
      std::string c = Comments(v);
      values.push_back(absl::StrCat("- ", v->name(), " = ", v->number(), c.empty() ? "" : ": ", c));
    }
    absl::StrAppend(&text, text.empty() ? "" : "\n\n",
                    "Requests may give the name or the number.\n", absl::StrJoin(values, "\n"));
    SetDescription(j, text);
    schemas_[type->full_name()] = std::move(j);
  }
  return RefTo(type->full_name());
}

Json Generator::SingularSchema(const pb::FieldDescriptor* f) {
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE)
    return MessageSchemaRef(f->message_type());
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) return EnumSchemaRef(f->enum_type());
  return ScalarSchema(f);
}

Json Generator::FieldSchema(const pb::FieldDescriptor* f) {
  if (f->is_map()) {
    const pb::FieldDescriptor* key = f->message_type()->map_key();
    Json j = Type("object");
    j["additionalProperties"] = SingularSchema(f->message_type()->map_value());
    switch (key->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        j["propertyNames"]["enum"].Push(Json::Str("true"));
        j["propertyNames"]["enum"].Push(Json::Str("false"));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT32:
      case pb::FieldDescriptor::CPPTYPE_INT64:
        j["propertyNames"]["pattern"] = Json::Str("^-?[0-9]+$");
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        j["propertyNames"]["pattern"] = Json::Str("^[0-9]+$");
        break;
      default:
        break;
    }
    return j;
  }
  if (f->is_repeated()) {
    Json j = Type("array");
    j["items"] = SingularSchema(f);
    return j;
  }
  return SingularSchema(f);
}

// A property: the field's schema with its comments and oneof membership.
Json Generator::PropertySchema(const pb::FieldDescriptor* f) {
  Json j = FieldSchema(f);
  std::string text = Comments(f);
  const pb::OneofDescriptor* oneof = f->real_containing_oneof();
  if (oneof != nullptr) {
    std::vector<std::string> names;
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(FieldName(oneof->field(i)));
    absl::StrAppend(&text, text.empty() ? "" : "\n\n", "Oneof ", oneof->name(), ": at most one of ",
                    absl::StrJoin(names, ", "), " may be set.");
    j["x-oneof"] = Json::Str(oneof->name());
  }
  SetDescription(j, text);
  return j;
}

Json Generator::MessageSchema(const pb::Descriptor* type,
                              const std::set<const pb::FieldDescriptor*>& skip) {
  Json j = Type("object");
  Json properties = Json::Object();
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    if (skip.count(f) != 0) continue;
    properties[FieldName(f)] = PropertySchema(f);
  }
  if (!properties.empty()) j["properties"] = std::move(properties);
  SetDescription(j, Comments(type));
  return j;
}

void Generator::DrainPending() {
  while (!pending_messages_.empty()) {
    const pb::Descriptor* type = pending_messages_.front();
    pending_messages_.pop_front();
    schemas_[type->full_name()] = MessageSchema(type, {});
  }
}

// OpenAPI path parameters cannot hold '/', so a variable spanning several segments
// ({name=shelves/*/things/*}) becomes the template's literal segments with one parameter per
// wildcard: /v1/shelves/{name.shelves}/things/{name.things}. Clients then fill plain segments
// (a generated client percent-encodes '/' in a parameter, which would not match). A lone "**"
// keeps the field's name. Routes with the same shape share the first one's parameter names:
// OpenAPI treats /a/{x} and /a/{y} as the same path.
Generator::PathShape Generator::ShapeOf(const Route& route) const {
  const PathTemplate& t = route.path_template;
  PathShape shape;
  std::set<std::string> used;
  auto unique = [&used](const std::string& name) {
    std::string candidate = name;
    for (int n = 2; !used.insert(candidate).second; ++n) candidate = absl::StrCat(name, "_", n);
    return candidate;
  };
  const std::vector<PathTemplate::Segment>& segs = t.segments();
  size_t unnamed = 0;
  for (size_t i = 0; i < segs.size();) {
    const PathTemplate::Variable* var = nullptr;
    for (const PathTemplate::Variable& v : t.variables()) {
      if (v.start_segment == i && v.end_segment > i) var = &v;
    }
    if (var == nullptr) {
      if (segs[i].kind == PathTemplate::SegmentKind::kLiteral) {
        absl::StrAppend(&shape.openapi_path, "/", segs[i].literal);
      } else {
        Slot slot{.name = unique(absl::StrCat("_", ++unnamed)),
                  .field = "",
                  .pattern = "",
                  .rest = segs[i].kind == PathTemplate::SegmentKind::kDoubleWildcard};
        absl::StrAppend(&shape.openapi_path, "/{", slot.name, "}");
        shape.slots.push_back(std::move(slot));
      }
      ++i;
      continue;
    }
    size_t end = std::min(var->end_segment, segs.size());
    std::vector<std::string> pattern;
    for (size_t j = var->start_segment; j < end; ++j) {
      pattern.push_back(segs[j].kind == PathTemplate::SegmentKind::kLiteral    ? segs[j].literal
                        : segs[j].kind == PathTemplate::SegmentKind::kWildcard ? "*"
                                                                               : "**");
    }
    std::string pattern_text = absl::StrJoin(pattern, "/");
    size_t wildcard = 0;
    for (size_t j = var->start_segment; j < end; ++j) {
      if (segs[j].kind == PathTemplate::SegmentKind::kLiteral) {
        absl::StrAppend(&shape.openapi_path, "/", segs[j].literal);
        continue;
      }
      ++wildcard;
      std::string name;
      if (!var->multi_segment || end - var->start_segment == 1) {
        name = var->field_path;
      } else if (j > var->start_segment &&
                 segs[j - 1].kind == PathTemplate::SegmentKind::kLiteral) {
        name = absl::StrCat(var->field_path, ".", segs[j - 1].literal);
      } else {
        name = absl::StrCat(var->field_path, ".", wildcard);
      }
      Slot slot{.name = unique(name),
                .field = var->field_path,
                .pattern = var->multi_segment ? pattern_text : "",
                .rest = segs[j].kind == PathTemplate::SegmentKind::kDoubleWildcard};
      absl::StrAppend(&shape.openapi_path, "/{", slot.name, "}");
      shape.slots.push_back(std::move(slot));
    }
    i = end;
  }
  if (shape.openapi_path.empty())
    shape.openapi_path.push_back('/');  // Not = "/": GCC 12 -Wrestrict false positive.
  if (!t.verb().empty()) absl::StrAppend(&shape.openapi_path, ":", t.verb());
  return shape;
}

// grpc-gateway's (protoc-gen-openapiv2's) query parameters: every field that can bind a query
// value (scalars, enums, wrappers, Timestamp, Duration, FieldMask; repeated ones too), nested
// messages dotted, except the path-bound fields and the body's; maps and repeated messages are
// not listed, and recursion stops at a message already on the path.
void Generator::AddQueryParams(const pb::Descriptor* type, const std::string& json_prefix,
                               const std::string& proto_prefix, const std::set<std::string>& bound,
                               const std::string& body, std::vector<const pb::Descriptor*>& chain,
                               Json& params) {
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    std::string canonical = absl::StrCat(proto_prefix, f->name());
    if (bound.count(canonical) != 0 || canonical == body || f->is_map()) continue;
    std::string name = absl::StrCat(json_prefix, FieldName(f));
    if (internal::IsBindableLeaf(f)) {
      Json p = Json::Object();
      p["name"] = Json::Str(name);
      p["in"] = Json::Str("query");
      p["schema"] = FieldSchema(f);
      if (f->is_repeated()) {
        p["style"] = Json::Str("form");
        p["explode"] = Json::Bool(true);
      }
      SetDescription(p, Comments(f));
      params.Push(std::move(p));
      continue;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated() ||
        internal::IsWellKnownType(f->message_type())) {
      continue;
    }
    const pb::Descriptor* sub = f->message_type();
    if (chain.size() >= options_.max_depth ||
        std::find(chain.begin(), chain.end(), sub) != chain.end()) {
      continue;
    }
    chain.push_back(sub);
    AddQueryParams(sub, name + ".", canonical + ".", bound, body, chain, params);
    chain.pop_back();
  }
}

Json Generator::RequestBody(const Route& route,
                            const std::set<const pb::FieldDescriptor*>& top_bound) {
  Json body = Json::Object();
  body["required"] = Json::Bool(false);
  Json& content = body["content"];
  if (route.body == "*" && internal::IsHttpBody(route.request_type)) {
    Json schema = Json::Object();
    SetDescription(schema,
                   "Any content: the raw bytes and their Content-Type (google.api.HttpBody).");
    content["*/*"]["schema"] = std::move(schema);
    return body;
  }
  Json schema;
  std::string message;
  if (route.body == "*") {
    message = route.request_type->full_name();
    if (top_bound.empty()) {
      schema = MessageSchemaRef(route.request_type);
    } else {
      // The whole message minus the fields the path binds (the path would override them).
      schema = MessageSchema(route.request_type, top_bound);
    }
  } else {
    schema = FieldSchema(route.body_field);
    if (route.body_field->message_type() != nullptr)
      message = route.body_field->message_type()->full_name();
  }
  if (route.client_streaming) {
    // The request stream comes in the body (docs/streaming.md): a JSON array of messages, or
    // NDJSON, each message transcoded and framed; path and query bindings apply to each.
    Json array = Type("array");
    array["items"] = schema;
    SetDescription(array, "The request stream: one JSON array of messages.");
    content["application/json"]["schema"] = std::move(array);
    Json ndjson = Json::Object();
    ndjson["allOf"].Push(std::move(schema));
    SetDescription(ndjson, "The request stream: one message per line (NDJSON).");
    content["application/x-ndjson"]["schema"] = std::move(ndjson);
    if (!message.empty()) {
      Json binary = Json::Object();
      SetDescription(binary, absl::StrCat("One binary ", message, " message: a stream of one."));
      content["application/x-protobuf"]["schema"] = std::move(binary);
    }
    return body;
  }
  content["application/json"]["schema"] = std::move(schema);
  if (!message.empty()) {
    Json binary = Json::Object();
    SetDescription(binary, absl::StrCat("A binary ", message, " message."));
    content["application/x-protobuf"]["schema"] = std::move(binary);
  }
  return body;
}

Json Generator::Responses(const Route& route) {
  Json responses = Json::Object();
  Json& ok = responses["200"];
  ok["description"] = Json::Str("OK");
  Json& content = ok["content"];
  if (route.response_body_field == nullptr && internal::IsHttpBody(route.response_type)) {
    Json schema = Json::Object();
    SetDescription(schema,
                   route.server_streaming
                       ? "The data of each google.api.HttpBody message, concatenated, with the "
                         "first one's content type."
                       : "The google.api.HttpBody's data with its content type.");
    content["*/*"]["schema"] = std::move(schema);
  } else {
    Json message = route.response_body_field != nullptr ? FieldSchema(route.response_body_field)
                                                        : MessageSchemaRef(route.response_type);
    const std::string& type_name = route.response_type->full_name();
    if (!route.server_streaming) {
      content["application/json"]["schema"] = std::move(message);
      Json binary = Json::Object();
      SetDescription(binary, absl::StrCat("A binary ", type_name, " message."));
      content["application/x-protobuf"]["schema"] = std::move(binary);
    } else {
      Json status = RefTo("google.rpc.Status");
      if (options_.stream_json_format == "grpc_gateway") {
        Json line = Type("object");
        line["properties"]["result"] = message;
        line["properties"]["error"] = status;
        SetDescription(line,
                       "One object per line: {\"result\": message} for each message; a failure "
                       "after the first is a last line {\"error\": google.rpc.Status}.");
        content["application/json"]["schema"] = std::move(line);
      } else {
        Json array = Type("array");
        array["items"] = message;
        SetDescription(array,
                       "All messages as one JSON array. A failure after the first message leaves "
                       "the array open and adds a line {\"error\": google.rpc.Status}.");
        content["application/json"]["schema"] = std::move(array);
      }
      Json ndjson = Json::Object();
      ndjson["allOf"].Push(message);
      SetDescription(ndjson,
                     "One message per line (Accept: application/x-ndjson); a failure after the "
                     "first is a last line {\"error\": google.rpc.Status}.");
      content["application/x-ndjson"]["schema"] = std::move(ndjson);
      Json sse = Type("string");
      SetDescription(sse,
                     "Server-Sent Events (Accept: text/event-stream): one unnamed event per "
                     "message, its data the message as JSON; then \"end\" (code 0) or "
                     "\"error\", whose data is a google.rpc.Status.");
      content["text/event-stream"]["schema"] = std::move(sse);
      Json binary = Json::Object();
      SetDescription(
          binary,
          absl::StrCat("Varint-delimited tipperary.proxy.v1.StreamFrame messages, each "
                       "holding a binary ",
                       type_name, " or the final status (Accept: application/x-protobuf)."));
      content["application/x-protobuf"]["schema"] = std::move(binary);
    }
  }
  Json error = Json::Object();
  if (route.error_format == ErrorFormat::kOpenAi) {
    openai_errors_ = true;
    error["$ref"] = Json::Str("#/components/responses/OpenAIError");
  } else if (route.error_format == ErrorFormat::kTei) {
    tei_errors_ = true;
    error["$ref"] = Json::Str("#/components/responses/TEIError");
  } else {
    error["$ref"] = Json::Str("#/components/responses/Error");
  }
  responses["default"] = std::move(error);
  return responses;
}

void Generator::AddOperation(const Route& route) {
  std::string method = absl::AsciiStrToLower(route.http_method);
  if (!IsOperationMethod(method)) {
    Json j = Json::Object();
    j["method"] = Json::Str(route.http_method);
    j["path"] = Json::Str(route.path_template.text());
    j["grpc_method"] = Json::Str(route.grpc_path.substr(1));
    unlisted_.Push(std::move(j));
    return;
  }
  auto [it, inserted] = shapes_.emplace(route.path_template.Shape(), PathShape{});
  PathShape own = ShapeOf(route);
  if (inserted) it->second = own;
  const PathShape& shared = it->second;

  const pb::MethodDescriptor* m = route.method;
  Json op = Json::Object();
  std::string service = m->service()->full_name();
  op["tags"].Push(Json::Str(service));
  if (tags_.insert(service).second) {
    Json tag = Json::Object();
    tag["name"] = Json::Str(service);
    SetDescription(tag, Comments(m->service()));
    tag_list_.Push(std::move(tag));
  }
  std::string id = absl::StrCat(m->service()->name(), "_", m->name());
  for (int n = 2; !operation_ids_.insert(id).second; ++n) {
    id = absl::StrCat(m->service()->name(), "_", m->name(), n);
  }
  op["operationId"] = Json::Str(id);
  std::string text = Comments(m);
  if (!text.empty()) {
    op["summary"] = Json::Str(std::string(text.substr(0, text.find('\n'))));
    op["description"] = Json::Str(text);
  }
  if (m->options().deprecated()) op["deprecated"] = Json::Bool(true);

  Json params = Json::Array();
  std::set<std::string> bound;
  std::set<const pb::FieldDescriptor*> top_bound;
  for (size_t i = 0; i < own.slots.size() && i < shared.slots.size(); ++i) {
    const Slot& slot = own.slots[i];
    Json p = Json::Object();
    p["name"] = Json::Str(shared.slots[i].name);
    p["in"] = Json::Str("path");
    p["required"] = Json::Bool(true);
    std::vector<const pb::FieldDescriptor*> chain =
        slot.field.empty() ? std::vector<const pb::FieldDescriptor*>{}
                           : ResolveFieldPath(route.request_type, slot.field);
    std::string description;
    if (slot.field.empty()) {
      p["schema"] = Type("string");
      description = "A path segment the route ignores.";
    } else if (slot.pattern.empty() && !chain.empty()) {
      const pb::FieldDescriptor* f = chain.back();
      p["schema"] = FieldSchema(f);
      description = Comments(f);
      if (f->is_repeated() && options_.repeated_path_param_separator != ',') {
        absl::StrAppend(&description, description.empty() ? "" : "\n\n", "Values separated by '",
                        std::string(1, options_.repeated_path_param_separator), "'.");
      }
    } else {
      p["schema"] = Type("string");
      description =
          absl::StrCat(slot.rest ? "The rest of the path ('/' allowed, unescaped)" : "One segment",
                       " of ", slot.field, " (", slot.field, "=", slot.pattern, ").");
    }
    if (!slot.field.empty()) {
      p["x-tipperary-variable"] = Json::Str(
          slot.pattern.empty() ? slot.field : absl::StrCat(slot.field, "=", slot.pattern));
    }
    if (slot.rest) p["x-tipperary-multi-segment"] = Json::Bool(true);
    SetDescription(p, description);
    params.Push(std::move(p));
    if (!chain.empty()) {
      bound.insert(CanonicalPath(chain));
      if (chain.size() == 1) top_bound.insert(chain.front());
    }
  }
  if (route.body != "*" && !internal::IsHttpBody(route.request_type)) {
    std::vector<const pb::Descriptor*> chain{route.request_type};
    AddQueryParams(route.request_type, "", "", bound, CanonicalPath(route.body_path), chain,
                   params);
  }
  if (!params.empty()) op["parameters"] = std::move(params);
  if (!route.body.empty()) op["requestBody"] = RequestBody(route, top_bound);
  op["responses"] = Responses(route);
  if (route.server_streaming || route.client_streaming) {
    op["x-stream"] = Json::Str(route.server_streaming && route.client_streaming ? "bidi"
                               : route.server_streaming                         ? "server"
                                                                                : "client");
  }
  op["x-grpc-method"] = Json::Str(route.grpc_path.substr(1));
  paths_[shared.openapi_path][method] = std::move(op);
}

std::string Generator::Render() {
  for (const std::unique_ptr<Route>& route : routes_.routes()) AddOperation(*route);

  Json doc = Json::Object();
  doc["openapi"] = Json::Str("3.1.0");
  Json& info = doc["info"];
  info["title"] = Json::Str(options_.title);
  info["version"] = Json::Str(options_.version);
  if (!options_.description.empty()) info["description"] = Json::Str(options_.description);
  for (const std::string& url : options_.servers) {
    Json server = Json::Object();
    server["url"] = Json::Str(url);
    doc["servers"].Push(std::move(server));
  }
  if (!tag_list_.empty()) doc["tags"] = tag_list_;
  doc["paths"] = std::move(paths_);

  if (const pb::Descriptor* status = routes_.schema().FindMessage("google.rpc.Status")) {
    MessageSchemaRef(status);
  }
  DrainPending();
  if (openai_errors_) {
    Json object = Type("object");
    object["properties"]["message"] = Type("string");
    object["properties"]["type"] = Type("string");
    object["properties"]["param"] = Nullable(Type("string"));
    object["properties"]["code"] = Nullable(Type("string"));
    Json wrapper = Type("object");
    wrapper["properties"]["error"] = std::move(object);
    wrapper["required"].Push(Json::Str("error"));
    schemas_["OpenAIError"] = std::move(wrapper);
  }
  if (tei_errors_) {
    Json object = Type("object");
    object["properties"]["error"] = Type("string");
    Json type = Type("string");
    for (const char* name :
         {"Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"}) {
      type["enum"].Push(Json::Str(name));
    }
    object["properties"]["error_type"] = std::move(type);
    object["required"].Push(Json::Str("error"));
    object["required"].Push(Json::Str("error_type"));
    schemas_["TEIError"] = std::move(object);
  }
  // References into a Json are only taken where no sibling is added after them.
  Json components = Json::Object();
  for (auto& [name, schema] : schemas_) components["schemas"][name] = std::move(schema);
  Json error = Json::Object();
  error["description"] = Json::Str("The gRPC status as google.rpc.Status (docs/errors.md).");
  error["content"]["application/json"]["schema"] = RefTo("google.rpc.Status");
  components["responses"]["Error"] = std::move(error);
  if (openai_errors_) {
    Json openai = Json::Object();
    openai["description"] = Json::Str("An error in OpenAI's shape (docs/openai.md).");
    openai["content"]["application/json"]["schema"] = RefTo("OpenAIError");
    components["responses"]["OpenAIError"] = std::move(openai);
  }
  if (tei_errors_) {
    Json tei = Json::Object();
    tei["description"] = Json::Str("An error in Hugging Face TEI's shape (docs/tei.md).");
    tei["content"]["application/json"]["schema"] = RefTo("TEIError");
    components["responses"]["TEIError"] = std::move(tei);
  }
  doc["components"] = std::move(components);
  if (!unlisted_.empty()) doc["x-tipperary-unlisted-routes"] = std::move(unlisted_);
  std::string out;
  doc.Write(out);
  out.push_back('\n');
  return out;
}

}  // namespace

std::string RenderOpenApi(const RouteTable& routes, const OpenApiOptions& options) {
  return Generator(routes, options).Render();
}

}  // namespace tipperary::transcoder
