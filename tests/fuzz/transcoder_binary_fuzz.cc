// Fuzz target: binary protobuf through the transcoder, both ways.
//  * Requests: the body as an application/x-protobuf request body (BuildRequestMessage with
//    BodyFormat::kProtobuf: the wire checker, then path bindings and query parameters appended).
//  * Responses: the body as the upstream's reply message: BuildResponseBody and BuildStreamChunk
//    in JSON (the fast printer, else protobuf's converter, behind the wire checker) and binary,
//    StreamContentType; and as grpc-status-details-bin: StatusJson and BuildStreamError.
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
#include "transcoder_world.h"
#include "wire_check.h"

namespace {

namespace pb = google::protobuf;
using namespace tipperary::transcoder;  // NOLINT
using tipperary::fuzz::Fail;
using tipperary::fuzz::IsValidJson;

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
    absl::StatusOr<std::string> chunk = t.BuildStreamChunk(*route, bin, rfmt, pretty);
    if (chunk.ok() && rfmt == ResponseFormat::kJson && !http_body) {
      if (!absl::EndsWith(*chunk, "\n")) Fail("a JSON stream chunk without its newline", input);
      std::string_view line(*chunk);
      line.remove_suffix(1);
      if (!pretty && line.find('\n') != std::string_view::npos) {
        Fail("a compact JSON stream chunk of several lines", input);
      }
      CheckJsonOutput("a JSON stream chunk", line, input);
    }
    if (out.ok() != chunk.ok()) Fail("BuildResponseBody and BuildStreamChunk disagree", input);
    (void)t.StreamContentType(*route, rfmt, bin);
  }
  CheckFastPrint(route->response_type, bin, options);
  if (route->response_body_field != nullptr &&
      route->response_body_field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    CheckFastPrint(route->response_body_field->message_type(), bin, options);
  }

  // The same bytes as grpc-status-details-bin (a google.rpc.Status), the query as its message.
  CheckJsonOutput("a status",
                  t.StatusJson(absl::StatusCode::kInvalidArgument, req.query, bin, pretty), input);
  const std::string stream_error = t.BuildStreamError(absl::StatusCode::kInternal, req.query, bin);
  if (!absl::EndsWith(stream_error, "\n")) Fail("a stream error without its newline", input);
  CheckJsonOutput("a stream error",
                  std::string_view(stream_error).substr(0, stream_error.size() - 1), input);
  return 0;
}
