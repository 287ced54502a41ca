// The request direction: an HTTP request (route, path bindings, query, body) into the gRPC
// request message, without parsing the body into a message where it can be avoided.
#include <google/protobuf/arena.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "codec.h"
#include "fast_json.h"
#include "field_binding.h"
#include "google/api/httpbody.pb.h"
#include "google/rpc/status.pb.h"
#include "internal.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/transcoder.h"
#include "wire_check.h"

namespace tipperary::transcoder {
namespace {

namespace pb = google::protobuf;
using internal::AppendLengthDelimited;
using internal::AppendVarint;
using internal::Apply;
using internal::BinaryToJson;
using internal::IsBlank;
using internal::JsonNestingExceeds;
using internal::JsonToBinary;
using internal::Msg;
using internal::Origin;
using internal::ParseQuery;
using internal::Piece;
using internal::QueryParam;
using internal::Quote;
using internal::Reindent;
using internal::Resolve;
using internal::ResolvedPath;
using internal::S;
using internal::TrimTrailingNewlines;

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

// Wraps the serialized value of route.body_path's last field in the messages above it:
// innermost first, so that "a.b" becomes field a { field b { bytes } }.
std::string WrapInBodyPath(const Route& route, size_t levels, std::string bytes) {
  for (size_t i = levels; i-- > 0;) {
    std::string outer;
    AppendLengthDelimited(&outer, route.body_path[i]->number(), bytes);
    bytes = std::move(outer);
  }
  return bytes;
}

absl::Status JsonError(std::string_view what, const pb::util::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(S(what), ": ", Msg(s)));
}

}  // namespace

bool IsHttpBodyRequest(const Route& route) {
  if (route.body == "*") return internal::IsHttpBody(route.request_type);
  return route.body_field != nullptr &&
         route.body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
         !route.body_field->is_repeated() && internal::IsHttpBody(route.body_field->message_type());
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
                    is("application/x-www-form-urlencoded") ||
                    // Client streams' NDJSON (a unary route parses it as one JSON value).
                    is("application/x-ndjson") || is("application/jsonl");
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
  const bool ignore_unknown = route.ignore_unknown_fields.value_or(options_.ignore_unknown_fields);
  parse_options.ignore_unknown_fields = ignore_unknown;

  // 1. The body, as serialized request-message bytes (a request fragment).
  std::string out;
  const bool http_body = IsHttpBodyRequest(route);
  const pb::FieldDescriptor* body_field = route.body_field;
  if (route.body.empty()) {
    // A body on a rule without one is ignored, as grpc-gateway does; the proxy refuses it
    // before it gets here when transcoding.unexpected_body is "reject".
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
      out = WrapInBodyPath(route, route.body_path.size(), hb.SerializeAsString());
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
      // A scalar, repeated or map body field: parse {"field": <body>} as the message holding
      // the field and keep only that field, so that a body like `1, "other": 2` cannot reach
      // other fields; then wrap it in the messages above (a nested body path "a.b").
      const size_t parents = route.body_path.size() - 1;
      const pb::Descriptor* holder =
          parents == 0 ? route.request_type : route.body_path[parents - 1]->message_type();
      std::string wrapped = "{";
      internal::AppendJsonString(wrapped, body_field->json_name());
      wrapped.push_back(':');
      wrapped.append(body.data(), body.size());
      wrapped.push_back('}');
      std::string bin;
      pb::util::Status s =
          JsonToBinary(resolver, TypeUrl(holder->full_name()), wrapped, &bin, parse_options);
      if (!s.ok()) return JsonError("invalid JSON body", s);
      pb::Arena arena;
      pb::Message* tmp = schema_->Prototype(holder)->New(&arena);
      if (!tmp->ParseFromString(bin)) return absl::InvalidArgumentError("invalid JSON body");
      std::vector<const pb::FieldDescriptor*> set;
      tmp->GetReflection()->ListFields(*tmp, &set);
      for (const pb::FieldDescriptor* f : set) {
        if (f != body_field) tmp->GetReflection()->ClearField(tmp, f);
      }
      out = WrapInBodyPath(route, parents, tmp->SerializeAsString());
    }
    if (message_body && body_field != nullptr) {
      out = WrapInBodyPath(route, route.body_path.size(), std::move(body_bin));
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
    if (rp.chain.back()->is_repeated()) {
      // A repeated field bound to a path segment: separated values, as grpc-gateway's
      // runtime splits them ("/v1/things/a,b,c").
      for (absl::string_view part : absl::StrSplit(value, options_.repeated_path_param_separator)) {
        s = Apply(extra, rp, std::string(part), Origin{"path variable", field_path});
        if (!s.ok()) return s;
      }
    } else {
      s = Apply(extra, rp, value, Origin{"path variable", field_path});
      if (!s.ok()) return s;
    }
    bound.push_back(std::move(rp.canonical));
  }
  absl::flat_hash_set<std::string> seen;
  for (const QueryParam& p : params) {
    if (p.name == "pretty") continue;
    if (std::find(options_.ignored_query_parameters.begin(),
                  options_.ignored_query_parameters.end(),
                  p.name) != options_.ignored_query_parameters.end()) {
      continue;
    }
    ResolvedPath rp;
    absl::Status s = Resolve(route.request_type, p.name, options_.max_depth, &rp);
    if (absl::IsNotFound(s)) {
      if (ignore_unknown || options_.ignore_unknown_query_parameters) continue;
      return absl::InvalidArgumentError(absl::StrCat("unknown query parameter ", Quote(p.name)));
    }
    if (!s.ok()) return s;
    if (body_field != nullptr && rp.chain.size() >= route.body_path.size() &&
        std::equal(route.body_path.begin(), route.body_path.end(), rp.chain.begin())) {
      continue;  // The body's.
    }
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

}  // namespace tipperary::transcoder
