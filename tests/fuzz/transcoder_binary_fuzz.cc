// Fuzz target: binary protobuf through the transcoder, both ways.
//  * Requests: the body as an application/x-protobuf request body (BuildRequestMessage with
//    BodyFormat::kProtobuf: the wire checker, then path bindings and query parameters appended).
//  * Responses: the body as the upstream's reply message: BuildResponseBody and StreamEncoder
//    in JSON (the fast printer, else protobuf's converter, behind the wire checker) and binary,
//    every stream format; and as grpc-status-details-bin: StatusJson and the streams' ends.
//  * Accept: the query as an Accept value (StreamFormatFor, ResponseFormatFor).
// The route is the one the request line matches, else one picked by a hash of the line, so every
// route (response_body fields, HttpBody, streams, both schemas) is reachable from any input.
// Input format: transcoder_world.h (the content-type line is ignored). Besides not crashing,
// checks that
//  * every JSON output is valid JSON in valid UTF-8, and a stream chunk is one line,
//  * a built request message is a well-formed, parsable message of the route's request type,
//  * the fast printer, whenever it takes a message, agrees byte for byte with protobuf's.
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "fast_json.h"
#include "json_check.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/stream_encoder.h"
#include "transcoder_world.h"
#include "wire_check.h"

namespace {

namespace pb = google::protobuf;
using namespace tipperary::transcoder;  // NOLINT
using tipperary::fuzz::Fail;
using tipperary::fuzz::IsValidJson;

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (!s->starts_with(prefix)) return false;
  s->remove_prefix(prefix.size());
  return true;
}
bool ConsumeSuffix(std::string_view* s, std::string_view suffix) {
  if (!s->ends_with(suffix)) return false;
  s->remove_suffix(suffix.size());
  return true;
}

// Whenever the fast printer takes a well-formed message, protobuf's converter must print the
// same text (fast_json.h's contract).
void CheckFastPrint(const pb::Descriptor* type, std::string_view bin,
                    const TranscoderOptions& options) {
  if (!internal::IsWellFormed(type, bin, options.max_depth)) return;
  internal::FastPrintOptions fast_options;
  fast_options.preserve_proto_field_names = options.preserve_proto_field_names;
  fast_options.enums_as_ints = options.enums_as_ints;
  std::string fast;
  if (!internal::FastBinaryToJson(type, bin, fast_options, options.max_depth, &fast)) {
    if (!fast.empty()) Fail("FastBinaryToJson left partial output", bin);
    return;
  }
  pb::util::JsonPrintOptions print;
  print.preserve_proto_field_names = options.preserve_proto_field_names;
  print.always_print_enums_as_ints = options.enums_as_ints;
  std::string slow;
  pb::util::Status s =
      pb::util::BinaryToJsonString(tipperary::fuzz::FuzzSchema()->type_resolver(),
                                   TypeUrl(type->full_name()), std::string(bin), &slow, print);
  if (!s.ok()) Fail("FastBinaryToJson took what protobuf rejects: " + s.ToString(), bin);
  if (fast != slow)
    Fail("FastBinaryToJson differs from BinaryToJsonString:\n" + fast + "\n" + slow, bin);
}

void CheckJsonOutput(std::string_view what, std::string_view json, std::string_view input) {
  if (!IsValidJson(json))
    Fail(std::string(what) + " is not valid JSON: " + std::string(json), input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const tipperary::fuzz::FuzzRequest req = tipperary::fuzz::ParseFuzzRequest(input);
  const RouteTable& routes = *tipperary::fuzz::FuzzRoutes();
  const TranscoderOptions options = tipperary::fuzz::OptionsFromFlags(req.flags);
  const Transcoder t(tipperary::fuzz::FuzzSchema(), options);
  const bool pretty = tipperary::fuzz::HasFlag(req.flags, 'r');

  RouteTable::MatchResult m;
  if (IsValidPercentEncoding(req.path)) m = routes.Match(req.method, req.path);
  const Route* route = m.route;
  if (route == nullptr) {
    const size_t h = std::hash<std::string_view>()(input.substr(0, input.find('\n')));
    route = routes.routes()[h % routes.routes().size()].get();
    m.bindings.clear();
  }
  const std::string_view bin = req.body;

  // Request direction.
  const BodyFormat fmt = IsHttpBodyRequest(*route) ? BodyFormat::kRaw : BodyFormat::kProtobuf;
  absl::StatusOr<std::string> message =
      t.BuildRequestMessage(*route, m.bindings, req.query, bin, fmt, "application/x-protobuf");
  if (message.ok()) {
    if (!internal::IsWellFormed(route->request_type, *message, 1000)) {
      Fail("built a malformed " + route->request_type->full_name(), input);
    }
    std::unique_ptr<pb::Message> parsed(
        tipperary::fuzz::FuzzSchema()->Prototype(route->request_type)->New());
    if (!parsed->ParseFromString(*message)) {
      Fail("built an unparsable " + route->request_type->full_name(), input);
    }
  }

  // Response direction: the same bytes as the upstream's reply.
  const bool http_body = IsHttpBodyResponse(*route);
  for (ResponseFormat rfmt : {ResponseFormat::kJson, ResponseFormat::kProtobuf}) {
    absl::StatusOr<HttpBodyOut> out = t.BuildResponseBody(*route, bin, rfmt, pretty);
    if (out.ok() && rfmt == ResponseFormat::kJson && !http_body) {
      CheckJsonOutput("a JSON response", out->body, input);
    }
  }
  // Each stream format, one encoder per format fed the same bytes twice (first and later
  // message), then ended with the same bytes as the status details.
  for (StreamFormat sfmt : {StreamFormat::kJsonArray, StreamFormat::kJsonEnvelope,
                            StreamFormat::kNdjson, StreamFormat::kSse, StreamFormat::kProtobuf}) {
    StreamEncoder encoder(t, *route, sfmt, pretty);
    (void)encoder.ContentType(bin);
    const bool json_out = !http_body && sfmt != StreamFormat::kProtobuf;
    const bool json_ok = t.BuildResponseBody(*route, bin, ResponseFormat::kJson, pretty).ok();
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<std::string> chunk = encoder.Message(bin);
      if (json_out && chunk.ok() != json_ok) Fail("a stream chunk and the body disagree", input);
      if (!chunk.ok() || !json_out) continue;
      std::string_view c(*chunk);
      if (sfmt == StreamFormat::kNdjson || sfmt == StreamFormat::kJsonEnvelope) {
        if (!ConsumeSuffix(&c, "\n")) Fail("a JSON stream line without its newline", input);
        if ((sfmt == StreamFormat::kNdjson || !pretty) && c.find('\n') != c.npos) {
          Fail("a JSON stream line of several lines", input);
        }
        CheckJsonOutput("a JSON stream line", c, input);
      } else if (sfmt == StreamFormat::kSse) {
        if (!ConsumeSuffix(&c, "\n\n") || !ConsumePrefix(&c, "data: ") || c.find('\n') != c.npos) {
          Fail("an SSE event that is not one data line", input);
        }
        CheckJsonOutput("an SSE event", c, input);
      } else if (!ConsumePrefix(&c, i == 0 ? "[" : ",")) {
        Fail("a JSON array element without its separator", input);
      } else {
        CheckJsonOutput("a JSON array element", c, input);
      }
    }
    const std::string end = encoder.End(absl::StatusCode::kInternal, req.query, bin);
    if (json_out && sfmt == StreamFormat::kNdjson) {
      std::string_view line(end);
      if (!ConsumeSuffix(&line, "\n")) Fail("a stream error without its newline", input);
      CheckJsonOutput("a stream error", line, input);
    }
  }
  // Accept values come from the network too.
  (void)StreamFormatFor(req.query, JsonStreamFormat::kArray);
  (void)ResponseFormatFor(req.query);
  CheckFastPrint(route->response_type, bin, options);
  if (route->response_body_field != nullptr &&
      route->response_body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    CheckFastPrint(route->response_body_field->message_type(), bin, options);
  }

  // The same bytes as grpc-status-details-bin (a google.rpc.Status), the query as its message.
  CheckJsonOutput("a status",
                  t.StatusJson(absl::StatusCode::kInvalidArgument, req.query, bin, pretty), input);
  return 0;
}
