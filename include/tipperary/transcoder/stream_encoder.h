// The body of one transcoded server stream, message by message, in the format the client asked
// for with Accept (docs/streaming.md). Pure conversion, no I/O: the caller writes each returned
// chunk as it gets it.
//
//   StreamFormat format = StreamFormatFor(route, request_accept, JsonStreamFormat::kArray);
//   StreamEncoder encoder(transcoder, route, format, pretty);
//   response.set("Content-Type", encoder.ContentType(first_message));
//   for (each message) write(*encoder.Message(message));   // StatusOr: a bad message fails
//   write(encoder.End(code, grpc_message, status_details_bin));
//
// Formats:
//  * kJsonArray (application/json, Envoy's): "[" m1 "," m2 ... "]". A failure after the first
//    message leaves the array open and ends the body with a line {"error": Status}: the body is
//    then not valid JSON, so a client that parses it whole fails loudly, as on a cut stream,
//    instead of taking a failed stream for a complete one.
//  * kJsonEnvelope (application/json, grpc-gateway's): one {"result": m} per line, a failure as
//    a last line {"error": Status}.
//  * kNdjson (application/x-ndjson): one message per line, a failure as a last line
//    {"error": Status}.
//  * kSse (text/event-stream): one "data:" event per message; a failure as "event: error" with
//    the Status as its data; success as "event: end" with code 0, so an EventSource client
//    knows not to reconnect; heartbeats are comment lines.
//  * kProtobuf: varint-delimited tipperary.proxy.v1.StreamFrame messages, always ending with
//    one status frame.
// A route whose response is google.api.HttpBody streams each message's raw data with the first
// message's content type, whatever the format; its status travels in the trailers only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tipperary/transcoder/route_table.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {

enum class StreamFormat { kJsonArray, kJsonEnvelope, kNdjson, kSse, kProtobuf };
// What application/json (and an Accept that names no streaming type) means for a stream.
enum class JsonStreamFormat { kArray, kGrpcGatewayEnvelope };

inline constexpr std::string_view kNdjsonContentType = "application/x-ndjson";
inline constexpr std::string_view kSseContentType = "text/event-stream";

// The stream format for a request's Accept value (RFC 9110 §12.5.1: q-values, wildcards, the
// most specific range wins; ties go to the order JSON, NDJSON, SSE, protobuf). No Accept, or
// one that accepts none of them, gets JSON in `json_format`: RFC 9110 lets a server ignore an
// Accept it cannot satisfy, and a 406 would break clients that send browser-style Accepts.
StreamFormat StreamFormatFor(std::string_view accept, JsonStreamFormat json_format);
// The unary response format for a request's Accept value: protobuf when a protobuf media type
// is preferred to JSON, else JSON (the same rules).
ResponseFormat ResponseFormatFor(std::string_view accept);

class StreamEncoder {
 public:
  // `transcoder` and `route` outlive the encoder. pretty applies to the JSON array and the
  // envelope; NDJSON and SSE need one line per message and ignore it.
  StreamEncoder(const Transcoder& transcoder, const Route& route, StreamFormat format, bool pretty);

  StreamFormat format() const { return format_; }
  // The response's Content-Type; for google.api.HttpBody streams the first message's.
  std::string ContentType(std::string_view first_message) const;
  // The chunk for one serialized response message, or why it cannot be transcoded.
  absl::StatusOr<std::string> Message(std::string_view message);
  // The last chunk: the format's end for this status (possibly empty).
  std::string End(absl::StatusCode code, std::string_view message,
                  std::string_view status_details_bin);
  // A chunk that keeps an idle stream alive through ingress read timeouts: an SSE comment;
  // empty for the other formats, which have no way to say nothing.
  std::string Heartbeat() const;
  // Messages encoded so far.
  uint64_t messages() const { return messages_; }

 private:
  std::string ErrorJson(absl::StatusCode code, std::string_view message,
                        std::string_view status_details_bin) const;

  const Transcoder& transcoder_;
  const Route& route_;
  StreamFormat format_;
  bool pretty_;
  bool http_body_;
  uint64_t messages_ = 0;
};

}  // namespace tipperary::transcoder
