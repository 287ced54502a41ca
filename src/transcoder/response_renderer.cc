// The response direction: upstream message bytes into HTTP bodies (JSON, binary protobuf,
// google.api.HttpBody) and server-stream chunks and ends.
#include <google/protobuf/arena.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

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
using internal::BinaryToJson;
using internal::IsBlank;
using internal::JsonToBinary;
using internal::Msg;
using internal::Piece;
using internal::Quote;
using internal::Reindent;
using internal::S;
using internal::TrimTrailingNewlines;

}  // namespace

bool IsHttpBodyResponse(const Route& route) {
  if (route.response_body_field == nullptr) return internal::IsHttpBody(route.response_type);
  return route.response_body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
         !route.response_body_field->is_repeated() &&
         internal::IsHttpBody(route.response_body_field->message_type());
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
  // A nested response_body ("a.b"): the message holding the field stands in for the response.
  const pb::Descriptor* holder_type = route.response_type;
  std::string holder_url = route.response_type_url;
  for (size_t i = 0; i + 1 < route.response_body_path.size(); ++i) {
    const pb::FieldDescriptor* step = route.response_body_path[i];
    msg = msg->GetReflection()->MutableMessage(msg, step);
    holder_type = step->message_type();
  }
  if (holder_type != route.response_type) holder_url = TypeUrl(holder_type->full_name());
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
  if (!internal::IsWellFormed(holder_type, only, options_.max_depth)) {
    return absl::InternalError(
        absl::StrCat("response is not a valid ", route.response_type->full_name()));
  }
  pb::util::Status s = BinaryToJson(resolver, holder_url, only, &json, compact);
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

}  // namespace tipperary::transcoder
