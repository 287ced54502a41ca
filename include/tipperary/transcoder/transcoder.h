// Pure HTTP <-> gRPC message conversion for a matched Route: builds the serialized request
// message from path bindings, query string and body (JSON, binary protobuf or raw HttpBody),
// and turns serialized response messages and gRPC statuses into HTTP bodies. No I/O.
//
//   Transcoder t(schema, TranscoderOptions{});
//   absl::StatusOr<std::string> req = t.BuildRequestMessage(
//       *match.route, match.bindings, "page_size=10", body, BodyFormat::kJson, content_type);
//   if (!req.ok()) -> 400 with t.StatusJson(3, req.status().message(), "", false)
//   absl::StatusOr<HttpBodyOut> out = t.BuildResponseBody(*match.route, reply_bytes,
//                                                         ResponseFormat::kJson, pretty);
//
// Request rules (grpc-gateway's):
//  * body "*": the whole request comes from the body; the query string is ignored (only
//    `pretty` is consumed) and path bindings override body fields.
//  * body "field": the body fills that field; query params naming that field or anything under
//    it are ignored; path bindings override.
//  * no body: a body is ignored, as in grpc-gateway (the proxy refuses it first when
//    transcoding.unexpected_body is "reject").
//  * a path variable bound to a repeated field takes separated values ("a,b,c"; the separator
//    is an option, as in protoc-gen-grpc-gateway's repeated_path_param_separator).
//  * body and response_body may be nested field paths ("a.b"), as grpc-gateway allows.
//  * Query params name fields by dotted path of proto or JSON names ("filter.name=x"); repeated
//    fields by repetition ("view=a&view=b"); maps as "m[key]=v". Params naming a path-bound
//    field are ignored. Unknown params are InvalidArgument unless ignore_unknown_fields.
//    A non-repeated field given twice is InvalidArgument. `pretty` is reserved (never a field).
//  * PATCH with a field body and a FieldMask field ("update_mask", else the only top-level
//    FieldMask) not set by path or query: the mask lists the JSON keys present in the body,
//    recursively into nested message objects (not into maps, repeated fields or well-known
//    types), as proto field paths.
// Response rules: response_body selects a field; google.api.HttpBody responses are their raw
// data with their content_type (default application/octet-stream); JSON is "application/json",
// binary "application/x-protobuf".
// Streams: see stream_encoder.h (the formats a client picks with Accept).
// All methods are const and thread-safe; none throws or crashes on hostile input, and recursion
// is bounded by max_depth.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/schema.h"

namespace tipperary::transcoder {

struct TranscoderOptions {
  bool preserve_proto_field_names = false;
  bool always_print_primitive_fields = false;
  bool enums_as_ints = false;
  bool ignore_unknown_fields = false;            // JSON fields and query params.
  bool ignore_unknown_query_parameters = false;  // Query params only (Envoy's option).
  // Never bound to a field, whatever the request type has ("pretty" always is).
  std::vector<std::string> ignored_query_parameters;
  // Between the values of a path variable bound to a repeated field: ',' (grpc-gateway's
  // default, "csv"), '|' ("pipes"), ' ' ("ssv") or '\t' ("tsv").
  char repeated_path_param_separator = ',';
  size_t max_depth = 64;  // Nesting of messages we walk ourselves.
};

enum class BodyFormat {
  kJson,
  kProtobuf,
  kRaw,          // google.api.HttpBody body: any content type.
  kUnsupported,  // A media type this route cannot decode: 415.
};
enum class ResponseFormat { kJson, kProtobuf };

struct HttpBodyOut {
  std::string content_type;
  std::string body;
};

inline constexpr std::string_view kJsonContentType = "application/json";
inline constexpr std::string_view kProtobufContentType = "application/x-protobuf";
// A binary server stream: varint-delimited tipperary.proxy.v1.StreamFrame messages.
inline constexpr std::string_view kProtobufStreamContentType =
    "application/x-protobuf; delimited=true; messageType=\"tipperary.proxy.v1.StreamFrame\"";

// Picks the request body format from a Content-Type value (media type case-insensitive):
// - a route whose body is google.api.HttpBody takes every content type: kRaw;
// - application/x-protobuf, application/protobuf, application/vnd.google.protobuf: kProtobuf;
// - JSON: no Content-Type, application/json, text/json, any "+json" type, application/x-ndjson
//   and application/jsonl (client streams), and, for the clients
//   that send JSON under them, text/plain (a browser's CORS-simple request) and
//   application/x-www-form-urlencoded (curl -d); a charset other than UTF-8 is kUnsupported
//   (RFC 8259 §8.1);
// - anything else: kUnsupported.
BodyFormat BodyFormatFor(const Route& route, std::string_view content_type);

// The media types a route decodes, for a 415's message.
std::string AcceptedMediaTypes(const Route& route);

// Query parameters in a query string ("a=1&b=2&&c" has 3), without decoding them.
size_t CountQueryParams(std::string_view query_string);

// True when the route's request body (whole request or body field) is google.api.HttpBody.
bool IsHttpBodyRequest(const Route& route);
// True when the route's response (or response_body field) is google.api.HttpBody.
bool IsHttpBodyResponse(const Route& route);

class Transcoder {
 public:
  Transcoder(std::shared_ptr<const Schema> schema, TranscoderOptions options);

  const TranscoderOptions& options() const { return options_; }
  const Schema& schema() const { return *schema_; }

  absl::StatusOr<std::string> BuildRequestMessage(
      const Route& route, const std::vector<std::pair<std::string, std::string>>& bindings,
      std::string_view query_string, std::string_view body, BodyFormat fmt,
      std::string_view content_type) const;

  absl::StatusOr<HttpBodyOut> BuildResponseBody(const Route& route, std::string_view message,
                                                ResponseFormat fmt, bool pretty) const;

  // {"code":3,"message":"...","details":[...]}: details decoded from the serialized
  // google.rpc.Status (grpc-status-details-bin, already base64-decoded); a detail whose type
  // is unknown becomes {"@type":"...","value":"<base64>"}. code and message are always the
  // ones given. Never fails.
  std::string StatusJson(absl::StatusCode code, std::string_view message,
                         std::string_view status_details_bin, bool pretty) const;

  // The body of an error response on `route` (null: no route matched), in the route's
  // ErrorFormat: StatusJson above, or OpenAI's error object, whose "type" follows the HTTP
  // status (invalid_request_error for 4xx, requests for 429, server_error for 5xx), "param" is
  // the field of a google.rpc.BadRequest detail and "code" the lower-cased reason of a
  // google.rpc.ErrorInfo detail (429 without one: rate_limit_exceeded), or TEI's
  // {"error","error_type"} (TeiError below). `http_status` is the status the error would have
  // without the route's format (ErrorHttpStatus's input). Never fails.
  std::string ErrorBody(const Route* route, absl::StatusCode code, int http_status,
                        std::string_view message, std::string_view status_details_bin,
                        bool pretty) const;

  // The HTTP status of that error response: `http_status` (grpc-gateway's mapping of the
  // code, or the proxy's own choice), except on a TEI route, whose statuses are TEI's.
  int ErrorHttpStatus(const Route* route, int http_status,
                      std::string_view status_details_bin) const;

  // TEI's error_type and status for an error that would otherwise be `http_status`. The worker
  // names the type with a google.rpc.ErrorInfo whose reason is the type in upper case
  // (VALIDATION, EMPTY, TOKENIZER, OVERLOADED, BACKEND, UNHEALTHY): then TEI's status for it
  // (422, 400, 422, 429, 424, 503). Otherwise from the status: 400 -> Validation 422,
  // 429 -> Overloaded, 500 -> Backend 424, 503 -> Unhealthy, any other 4xx Validation and 5xx
  // Backend with the status kept (413 from the listener, 404, 502, 504...).
  struct TeiError {
    std::string_view type;
    int http_status = 0;
  };
  static TeiError TeiErrorFor(int http_status, std::string_view status_details_bin);

  // Whether the query string asks for pretty output (?pretty, ?pretty=true, ?pretty=1).
  static bool WantsPretty(std::string_view query_string);

 private:
  std::shared_ptr<const Schema> schema_;
  TranscoderOptions options_;
};

}  // namespace tipperary::transcoder
