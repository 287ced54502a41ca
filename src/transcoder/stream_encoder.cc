#include "tipperary/transcoder/stream_encoder.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "accept.h"
#include "codec.h"
#include "google/rpc/status.pb.h"

namespace tipperary::transcoder {
namespace {

using internal::AppendLengthDelimited;
using internal::AppendVarint;
using internal::Reindent;
using internal::TrimTrailingNewlines;

std::string S(std::string_view s) { return std::string(s); }
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Offered media types in the server's order of preference (ties go to the earlier one).
struct Offer {
  std::string_view media_type;
  int format;  // A StreamFormat, or -1 for "JSON in the configured shape".
};
constexpr std::array<Offer, 7> kStreamOffers = {{
    {"application/json", -1},
    {"application/x-ndjson", static_cast<int>(StreamFormat::kNdjson)},
    {"application/jsonl", static_cast<int>(StreamFormat::kNdjson)},
    {"text/event-stream", static_cast<int>(StreamFormat::kSse)},
    {"application/x-protobuf", static_cast<int>(StreamFormat::kProtobuf)},
    {"application/protobuf", static_cast<int>(StreamFormat::kProtobuf)},
    {"application/vnd.google.protobuf", static_cast<int>(StreamFormat::kProtobuf)},
}};

// The index of the best offer for `accept` (quality > 0, earliest on ties), or -1.
template <size_t N>
int BestOffer(std::string_view accept, const std::array<Offer, N>& offers) {
  int best = -1;
  int best_quality = 0;
  for (size_t i = 0; i < N; ++i) {
    const int q = internal::AcceptQuality(accept, offers[i].media_type);
    if (q > best_quality) {
      best_quality = q;
      best = static_cast<int>(i);
    }
  }
  return best;
}

// varint(len(frame)) + frame, the frame being one StreamFrame field.
std::string DelimitedFrame(int field_number, std::string_view bytes) {
  std::string frame;
  AppendLengthDelimited(&frame, field_number, bytes);
  std::string out;
  AppendVarint(&out, frame.size());
  out.append(frame);
  return out;
}

}  // namespace

StreamFormat StreamFormatFor(std::string_view accept, JsonStreamFormat json_format) {
  const StreamFormat json = json_format == JsonStreamFormat::kArray ? StreamFormat::kJsonArray
                                                                    : StreamFormat::kJsonEnvelope;
  if (accept.empty()) return json;
  const int best = BestOffer(accept, kStreamOffers);
  if (best < 0 || kStreamOffers[best].format < 0) return json;
  return static_cast<StreamFormat>(kStreamOffers[best].format);
}

ResponseFormat ResponseFormatFor(std::string_view accept) {
  static constexpr std::array<Offer, 4> kUnaryOffers = {{
      {"application/json", 0},
      {"application/x-protobuf", 1},
      {"application/protobuf", 1},
      {"application/vnd.google.protobuf", 1},
  }};
  if (accept.empty()) return ResponseFormat::kJson;
  const int best = BestOffer(accept, kUnaryOffers);
  return best > 0 ? ResponseFormat::kProtobuf : ResponseFormat::kJson;
}

StreamEncoder::StreamEncoder(const Transcoder& transcoder, const Route& route, StreamFormat format,
                             bool pretty)
    : transcoder_(transcoder),
      route_(route),
      format_(format),
      pretty_(pretty),
      http_body_(IsHttpBodyResponse(route)) {}

std::string StreamEncoder::ContentType(std::string_view first_message) const {
  if (http_body_) {
    absl::StatusOr<HttpBodyOut> out =
        transcoder_.BuildResponseBody(route_, first_message, ResponseFormat::kProtobuf, false);
    return out.ok() ? out->content_type : std::string("application/octet-stream");
  }
  switch (format_) {
    case StreamFormat::kJsonArray:
    case StreamFormat::kJsonEnvelope:
      return S(kJsonContentType);
    case StreamFormat::kNdjson:
      return S(kNdjsonContentType);
    case StreamFormat::kSse:
      return S(kSseContentType);
    case StreamFormat::kProtobuf:
      return S(kProtobufStreamContentType);
  }
  return S(kJsonContentType);
}

absl::StatusOr<std::string> StreamEncoder::Message(std::string_view message) {
  const bool binary = http_body_ || format_ == StreamFormat::kProtobuf;
  absl::StatusOr<HttpBodyOut> body = transcoder_.BuildResponseBody(
      route_, message, binary ? ResponseFormat::kProtobuf : ResponseFormat::kJson,
      pretty_ && (format_ == StreamFormat::kJsonArray || format_ == StreamFormat::kJsonEnvelope));
  if (!body.ok()) return body.status();
  const bool first = messages_++ == 0;
  if (http_body_) return std::move(body->body);
  const std::string_view json = TrimTrailingNewlines(body->body);
  switch (format_) {
    case StreamFormat::kProtobuf:
      return DelimitedFrame(1, body->body);
    case StreamFormat::kJsonArray:
      if (pretty_) return absl::StrCat(first ? "[\n" : ",\n", Sv(json));
      return absl::StrCat(first ? "[" : ",", Sv(json));
    case StreamFormat::kJsonEnvelope:
      if (!pretty_) return absl::StrCat("{\"result\":", Sv(json), "}\n");
      return absl::StrCat("{\n \"result\": ", Reindent(json, " "), "\n}\n");
    case StreamFormat::kNdjson:
      return absl::StrCat(Sv(json), "\n");
    case StreamFormat::kSse:
      return absl::StrCat("data: ", Sv(json), "\n\n");
  }
  return absl::InternalError("unknown stream format");
}

std::string StreamEncoder::End(absl::StatusCode code, std::string_view message,
                               std::string_view status_details_bin) {
  if (http_body_) return "";
  const bool ok = code == absl::StatusCode::kOk;
  switch (format_) {
    case StreamFormat::kProtobuf: {
      google::rpc::Status status;
      if (!status_details_bin.empty() &&
          status_details_bin.size() < static_cast<size_t>(INT32_MAX) &&
          !status.ParseFromArray(status_details_bin.data(),
                                 static_cast<int>(status_details_bin.size()))) {
        status.Clear();
      }
      status.set_code(static_cast<int>(code));
      status.set_message(S(message));
      return DelimitedFrame(2, status.SerializeAsString());
    }
    case StreamFormat::kJsonArray:
      if (ok) return messages_ == 0 ? "[]" : (pretty_ ? "\n]\n" : "]");
      return absl::StrCat(messages_ == 0 ? "[" : "",
                          "\n{\"error\":", ErrorJson(code, message, status_details_bin), "}\n");
    case StreamFormat::kJsonEnvelope:
    case StreamFormat::kNdjson:
      if (ok) return "";
      return absl::StrCat("{\"error\":", ErrorJson(code, message, status_details_bin), "}\n");
    case StreamFormat::kSse:
      if (ok) return "event: end\ndata: {\"code\":0,\"message\":\"\",\"details\":[]}\n\n";
      return absl::StrCat("event: error\ndata: ", ErrorJson(code, message, status_details_bin),
                          "\n\n");
  }
  return "";
}

std::string StreamEncoder::Heartbeat() const {
  return format_ == StreamFormat::kSse && !http_body_ ? ": heartbeat\n\n" : "";
}

std::string StreamEncoder::ErrorJson(absl::StatusCode code, std::string_view message,
                                     std::string_view status_details_bin) const {
  return transcoder_.StatusJson(code, message, status_details_bin, /*pretty=*/false);
}

}  // namespace tipperary::transcoder
