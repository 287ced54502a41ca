// Fuzz target: an HTTP request through the transcoder as tipperary-proxy's RequestHandler runs
// it (src/proxy/request_handler.cc): percent-encoding check, RouteTable::Match (path templates,
// verbs, percent-decoding of bound values), BodyFormatFor, then
// Transcoder::BuildRequestMessage(route, bindings, query, body, format, content type): query
// parameters, path bindings, JSON bodies (fast path and protobuf's parser), the PATCH mask.
// Input format: transcoder_world.h; with the extra flag t, the query string is also parsed as a
// path template (PathTemplate::Parse, as config routes are) and matched against the path.
// Besides not crashing, checks that
//  * RouteTable::Match (a trie) agrees with matching every route's template one by one: found
//    when a route of the method matches, 405 when only routes of other methods do, else 404,
//  * a matched route's own template matches the path with the same bindings,
//  * a built request message is a well-formed, parsable message of the route's request type,
//  * the JSON fast path, whenever it takes a body, agrees byte for byte with protobuf's parser,
//  * the body read as a client stream (JsonStreamSplitter) splits the same whether it arrives
//    whole, a byte at a time or in pieces of a size the input picks, and each value is a
//    contiguous piece of the body.
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fast_json.h"
#include "tipperary/transcoder/json_stream_splitter.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/status_mapping.h"
#include "transcoder_world.h"
#include "wire_check.h"

namespace {

namespace pb = google::protobuf;
using namespace tipperary::transcoder;  // NOLINT
using tipperary::fuzz::Fail;

// The message type a JSON body fills, as BuildRequestMessage picks it; nullptr when the body
// is not a message (no body, a scalar/repeated/map body field, HttpBody).
const pb::Descriptor* JsonBodyType(const Route& route) {
  if (route.body.empty() || IsHttpBodyRequest(route)) return nullptr;
  if (route.body_field == nullptr) return route.request_type;
  if (route.body_field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE ||
      route.body_field->is_repeated()) {
    return nullptr;
  }
  return route.body_field->message_type();
}

// Whenever the fast path takes a JSON text, protobuf's converter must take it and produce the
// same bytes (fast_json.h's contract).
void CheckFastJson(const pb::Descriptor* type, std::string_view json, size_t max_depth) {
  std::string fast;
  if (!internal::FastJsonToBinary(type, json, max_depth, &fast)) return;
  std::string slow;
  pb::util::Status s =
      pb::util::JsonToBinaryString(tipperary::fuzz::FuzzSchema()->type_resolver(),
                                   TypeUrl(type->full_name()), std::string(json), &slow);
  if (!s.ok()) Fail("FastJsonToBinary took JSON that protobuf rejects: " + s.ToString(), json);
  if (fast != slow) Fail("FastJsonToBinary differs from JsonToBinaryString", json);
}

// The values (or the error) of `body` split as a client stream fed in pieces of `piece` bytes.
std::vector<std::string> SplitStream(std::string_view body, bool array_allowed, size_t piece) {
  JsonStreamSplitter splitter(array_allowed, SIZE_MAX);
  std::vector<std::string> values;
  auto collect = [&values](std::string_view value) {
    values.emplace_back(value);
    return absl::OkStatus();
  };
  absl::Status status;
  for (size_t i = 0; status.ok() && i < body.size(); i += piece) {
    status = splitter.Feed(body.substr(i, piece), collect);
  }
  if (status.ok()) status = splitter.Finish(collect);
  if (splitter.count() != values.size()) Fail("JsonStreamSplitter miscounted its values", body);
  if (!status.ok()) values.push_back("error: " + std::string(status.message()));
  return values;
}

void CheckStreamSplit(std::string_view body) {
  const bool array_allowed = body.size() % 2 == 0;
  const std::vector<std::string> whole = SplitStream(body, array_allowed, body.size() + 1);
  const size_t piece = body.empty() ? 1 : 1 + static_cast<unsigned char>(body[0]) % 17;
  if (SplitStream(body, array_allowed, 1) != whole ||
      SplitStream(body, array_allowed, piece) != whole) {
    Fail("JsonStreamSplitter splits differently when the body arrives in pieces", body);
  }
  for (const std::string& value : whole) {
    if (value.rfind("error: ", 0) != 0 && body.find(value) == std::string_view::npos) {
      Fail("a client-stream value that is not a piece of the body", value);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const tipperary::fuzz::FuzzRequest req = tipperary::fuzz::ParseFuzzRequest(input);
  const RouteTable& routes = *tipperary::fuzz::FuzzRoutes();
  const Transcoder t(tipperary::fuzz::FuzzSchema(), tipperary::fuzz::OptionsFromFlags(req.flags));
  const bool pretty = Transcoder::WantsPretty(req.query);
  CheckStreamSplit(req.body);

  if (tipperary::fuzz::HasFlag(req.flags, 't')) {
    absl::StatusOr<PathTemplate> tmpl = PathTemplate::Parse(req.query);
    if (tmpl.ok()) {
      (void)tmpl->Shape();
      std::optional<PathTemplate::Bindings> b = tmpl->Match(req.path);
      if (b.has_value() && b->size() != tmpl->variables().size()) {
        Fail("a template match without a binding per variable", input);
      }
    }
  }

  // The proxy answers 400 to a malformed escape before routing.
  if (!IsValidPercentEncoding(req.path)) {
    (void)PercentDecode(req.path, false);
    (void)PercentDecode(req.path, true, true);
    return 0;
  }
  const RouteTable::MatchResult m = routes.Match(req.method, req.path);
  // The trie search against every route's own template, one by one.
  bool matches_any = false;
  bool matches_method = false;
  for (const auto& r : routes.routes()) {
    if (r->path_template.Match(req.path).has_value()) {
      matches_any = true;
      if (r->http_method == req.method) matches_method = true;
    }
  }
  const bool consistent =
      m.status == RouteTable::MatchStatus::kOk
          ? matches_method
          : (m.status == RouteTable::MatchStatus::kMethodNotAllowed ? matches_any && !matches_method
                                                                    : !matches_any);
  if (!consistent) {
    Fail("RouteTable::Match disagrees with the routes' templates (status " +
             std::to_string(static_cast<int>(m.status)) + ")",
         input);
  }
  if (m.status != RouteTable::MatchStatus::kOk) {
    if (m.route != nullptr) Fail("a failed match returned a route", req.path);
    if ((m.status == RouteTable::MatchStatus::kMethodNotAllowed) == m.allowed_methods.empty()) {
      Fail("allowed methods disagree with the match status", req.path);
    }
    (void)t.StatusJson(absl::StatusCode::kNotFound, req.path.substr(0, 256), "", pretty);
    return 0;
  }
  if (m.route == nullptr) Fail("a match without a route", req.path);
  const Route& route = *m.route;
  if (route.http_method != req.method) Fail("matched a route of another method", req.method);
  std::optional<PathTemplate::Bindings> again = route.path_template.Match(req.path);
  if (!again.has_value() || *again != m.bindings) {
    Fail("the route table and the route's own template disagree on " + route.path_template.text(),
         req.path);
  }

  const BodyFormat fmt = BodyFormatFor(route, req.content_type);
  absl::StatusOr<std::string> message =
      t.BuildRequestMessage(route, m.bindings, req.query, req.body, fmt, req.content_type);
  if (message.ok()) {
    if (!internal::IsWellFormed(route.request_type, *message, 1000)) {
      Fail("built a malformed " + route.request_type->full_name(), *message);
    }
    std::unique_ptr<pb::Message> parsed(
        tipperary::fuzz::FuzzSchema()->Prototype(route.request_type)->New());
    if (!parsed->ParseFromString(*message)) {
      Fail("built an unparsable " + route.request_type->full_name(), *message);
    }
  } else {
    // As the proxy renders the error.
    (void)t.StatusJson(message.status().code(), std::string(message.status().message()), "",
                       pretty);
  }
  if (fmt == BodyFormat::kJson) {
    if (const pb::Descriptor* type = JsonBodyType(route); type != nullptr) {
      CheckFastJson(type, req.body, t.options().max_depth);
    }
  }
  return 0;
}
