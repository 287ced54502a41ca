// libFuzzer target: a gRPC response as the proxy's upstream client decodes it
// (src/upstream/upstream_call.cc, compiled in): the events its nghttp2 callbacks hand over, a
// header block (or a trailers-only one), the DATA bytes in chunks, a trailer block, then the end
// of the stream. The input (FuzzedDataProvider) chooses the message size limit, the header and
// trailer fields (common names or any), the DATA bytes and how they are split. Checks, besides
// "no crash, no leak, no UB":
// - the split does not matter: the same bytes in one chunk give the same messages, headers and
//   result (outcome, code, message, details, trailers);
// - the messages are the DATA's own frames, in order, each within the limit; an error stops the
//   decoding at the first frame with a bad flag byte or over the limit, and nothing after it;
// - a result is a gRPC code (0..16); an OK one with messages used every DATA byte in its frames;
// reserved keys never reach the metadata handed on,
//   "-bin" values are decoded.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tipperary/upstream/grpc_wire.h"
#include "upstream_call.h"

namespace {

namespace upstream = tipperary::upstream;
using Fields = std::vector<std::pair<std::string, std::string>>;

struct Outcome {
  std::optional<upstream::Metadata> headers;
  std::vector<std::string> messages;
  std::optional<upstream::GrpcResult> result;
  bool data_error = false;  // OnData answered an error (the stream would be reset).
};

bool SameResult(const upstream::GrpcResult& a, const upstream::GrpcResult& b) {
  return a.outcome == b.outcome && a.code == b.code && a.grpc_message == b.grpc_message &&
         a.status_details == b.status_details && a.trailers == b.trailers &&
         a.http_status == b.http_status;
}

Fields ConsumeFields(FuzzedDataProvider& provider, bool response_headers) {
  static const char* const kNames[] = {":status",
                                       "content-type",
                                       "grpc-status",
                                       "grpc-message",
                                       "grpc-status-details-bin",
                                       "x-cost",
                                       "x-blob-bin",
                                       "-bin",
                                       "grpc-encoding",
                                       "te",
                                       "content-length",
                                       "grpc-accept-encoding"};
  static const char* const kValues[] = {
      "200", "application/grpc", "application/grpc+proto", "0", "13", "AAEC", "text/html", "100",
      "503"};
  Fields fields;
  const int count = provider.ConsumeIntegralInRange<int>(0, 6);
  if (response_headers && provider.ConsumeBool()) {
    fields.emplace_back(":status", "200");
    fields.emplace_back("content-type", "application/grpc");
  }
  for (int i = 0; i < count; ++i) {
    std::string name =
        provider.ConsumeBool()
            ? kNames[provider.ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)]
            : provider.ConsumeRandomLengthString(24);
    std::string value =
        provider.ConsumeBool()
            ? kValues[provider.ConsumeIntegralInRange<size_t>(0, std::size(kValues) - 1)]
            : provider.ConsumeRandomLengthString(48);
    fields.emplace_back(std::move(name), std::move(value));
  }
  return fields;
}

// The events of one response, DATA cut into `chunks` (empty: whole).
Outcome Run(uint64_t max_bytes, const Fields& headers, bool trailers_only, const std::string& data,
            const std::vector<size_t>& chunks, const std::optional<Fields>& trailers) {
  Outcome out;
  upstream::CallHandlers handlers;
  handlers.on_headers = [&out](const upstream::Metadata& h) {
    FUZZ_CHECK(!out.headers.has_value() && out.messages.empty());
    out.headers = h;
  };
  handlers.on_message = [&out](std::string message) { out.messages.push_back(std::move(message)); };
  upstream::UpstreamCall call(1, upstream::GrpcRequest{}, std::move(handlers), max_bytes);
  call.BeginHeaders();
  for (const auto& [name, value] : headers) call.OnHeader(name, value);
  call.EndHeaders(trailers_only);
  if (!trailers_only) {
    size_t offset = 0;
    size_t index = 0;
    while (offset < data.size()) {
      size_t n = data.size() - offset;
      if (!chunks.empty()) n = std::min(n, chunks[index++ % chunks.size()]);
      std::optional<upstream::GrpcResult> error =
          call.OnData(reinterpret_cast<const uint8_t*>(data.data() + offset), n);
      offset += n;
      if (error) {
        FUZZ_CHECK(error->outcome == upstream::CallOutcome::kProtocolError);
        out.data_error = true;
        out.result = std::move(*error);
        return out;
      }
    }
    if (trailers) {
      call.BeginHeaders();
      for (const auto& [name, value] : *trailers) call.OnHeader(name, value);
      call.EndHeaders(true);
    }
  }
  out.result = call.Finish();
  return out;
}

// The frames of `data` up to the first bad one (flag byte not 0, or over the limit), and whether
// there was one.
std::pair<std::vector<std::string>, bool> ReferenceFrames(const std::string& data,
                                                          uint64_t max_bytes) {
  std::vector<std::string> frames;
  size_t pos = 0;
  while (data.size() - pos >= 5) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + pos);
    const uint64_t length =
        (uint64_t{p[1]} << 24) | (uint64_t{p[2]} << 16) | (uint64_t{p[3]} << 8) | p[4];
    if (p[0] != 0 || length > max_bytes) return {frames, true};
    if (data.size() - pos - 5 < length) break;
    frames.push_back(data.substr(pos + 5, length));
    pos += 5 + length;
  }
  return {frames, false};
}

// The header block of a gRPC answer in the plain case the reference knows: ":status" exactly 200
// and a gRPC content-type ("application/grpc", alone or followed by '+' or ';'), the last of
// each field counting as the decoder reads them. (1xx blocks and odd :status spellings are left
// to the split check.)
bool IsPlainGrpcAnswer(const Fields& headers) {
  std::string status;
  std::string content_type;
  for (const auto& [name, value] : headers) {
    if (name == ":status") status = value;
    if (name == "content-type") content_type = value;
  }
  constexpr std::string_view kGrpc = "application/grpc";
  const std::string_view type(content_type);
  return status == "200" && type.starts_with(kGrpc) &&
         (type.size() == kGrpc.size() || type[kGrpc.size()] == '+' || type[kGrpc.size()] == ';');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider provider(bytes, size);
  const uint64_t max_bytes = provider.ConsumeIntegralInRange<uint64_t>(0, 300);
  const Fields headers = ConsumeFields(provider, true);
  const bool trailers_only = provider.ConsumeBool();
  std::optional<Fields> trailers;
  if (provider.ConsumeBool()) trailers = ConsumeFields(provider, false);
  std::vector<size_t> chunks(provider.ConsumeIntegralInRange<size_t>(0, 4));
  for (size_t& chunk : chunks) chunk = provider.ConsumeIntegralInRange<size_t>(1, 40);
  const std::string data = provider.ConsumeRemainingBytesAsString();

  const Outcome split = Run(max_bytes, headers, trailers_only, data, chunks, trailers);
  const Outcome whole = Run(max_bytes, headers, trailers_only, data, {}, trailers);
  FUZZ_CHECK(split.messages == whole.messages);
  FUZZ_CHECK(split.headers == whole.headers);
  FUZZ_CHECK(split.data_error == whole.data_error);
  FUZZ_CHECK(split.result && whole.result && SameResult(*split.result, *whole.result));

  const upstream::GrpcResult& result = *whole.result;
  FUZZ_CHECK(static_cast<int>(result.code) >= 0 && static_cast<int>(result.code) <= 16);
  for (const auto* metadata : {&result.trailers, whole.headers ? &*whole.headers : nullptr}) {
    if (metadata == nullptr) continue;
    for (const auto& [key, value] : *metadata) {
      FUZZ_CHECK(!upstream::IsReservedResponseHeader(key));
      if (upstream::IsBinaryHeader(key)) FUZZ_CHECK(value.size() <= 48);  // Decoded, not grown.
    }
  }
  // Messages: the DATA's own frames, in order, within the limit; no message without the
  // response headers of a gRPC answer.
  if (!whole.messages.empty()) FUZZ_CHECK(!trailers_only);
  if (!trailers_only && (!whole.messages.empty() || IsPlainGrpcAnswer(headers))) {
    auto [frames, bad] = ReferenceFrames(data, max_bytes);
    FUZZ_CHECK(whole.messages == frames);
    FUZZ_CHECK(whole.data_error == bad);
  }
  for (const std::string& message : whole.messages) FUZZ_CHECK(message.size() <= max_bytes);
  if (result.outcome == upstream::CallOutcome::kGrpc && result.code == absl::StatusCode::kOk &&
      !trailers_only && !whole.messages.empty()) {
    // OK: every DATA byte belonged to a delivered frame.
    size_t framed = 0;
    for (const std::string& message : whole.messages) framed += 5 + message.size();
    FUZZ_CHECK(framed == data.size());
  }
  return 0;
}
