// One proxied exchange, HTTP/1.1 in and out, gRPC in the middle, as an object with explicit
// states (in the spirit of an Envoy filter's per-request state):
//
//   kReceived ─Route()─▶ kRouted ─Decode()─▶ kCalling ─first stream message─▶ kStreaming
//        │                  │                    │                                 │
//        └──────────────────┴─── Fail() ─────────┴──────────── OnDone() ───────────┴─▶ kDone
//
// Route() picks the route, the upstream and the stats and checks the request's shape (limits,
// media type); Decode() builds the gRPC request (message, metadata, deadline); the call's
// handlers move it on; every response, error or not, leaves through Finish(), which does the
// accounting before the response can reach the client. Errors are typed (ProxyError) until
// Fail() renders them, once.
//
//   RequestEnvironment& env = loop;   // or a fake in tests
//   http1::RequestHandler handler = [&env](std::shared_ptr<http1::HttpExchange> ex) {
//     ProxiedRequest::Start(env, std::move(ex));
//   };
//
// Threading: everything runs on the environment's event loop thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "grpc_web_codec.h"
#include "proxy_error.h"
#include "request_environment.h"
#include "tipperary/http1/http_exchange.h"
#include "tipperary/transcoder/stream_encoder.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::proxy {

class ProxiedRequest : public std::enable_shared_from_this<ProxiedRequest> {
 public:
  enum class State { kReceived, kRouted, kCalling, kStreaming, kDone };

  // Handles the exchange; the request keeps itself alive (through the upstream call's
  // handlers) until it is done. The returned pointer is for tests.
  static std::shared_ptr<ProxiedRequest> Start(RequestEnvironment& env,
                                               std::shared_ptr<http1::HttpExchange> http);

  State state() const { return state_; }

  // Private but for make_shared.
  ProxiedRequest(RequestEnvironment& env, std::shared_ptr<http1::HttpExchange> http);

 private:
  using Clock = RequestEnvironment::Clock;

  void Run();
  // OPTIONS: a CORS preflight, or which methods a target allows (RFC 9110 §9.3.7).
  void AnswerOptions();
  // GET openapi.path on the listener (openapi.on_listener): the document of this generation.
  void AnswerOpenApi();
  std::optional<ProxyError> Route();
  std::optional<ProxyError> Decode(upstream::GrpcRequest* request);
  // A client stream's JSON body (NDJSON or an array of messages), each message transcoded and
  // framed, ready to send whole (GrpcRequest::framed).
  absl::StatusOr<std::string> BuildClientStream(std::string_view content_type);
  void Call(upstream::GrpcRequest request);

  void OnHeaders(const upstream::Metadata& headers);
  void OnMessage(std::string message);
  void OnDone(upstream::GrpcResult result);
  void BeginStream(std::string_view first_message);
  void EndStream(const upstream::GrpcResult& result);
  // SSE heartbeats: a comment when nothing was sent for streaming.sse_heartbeat_interval.
  void ArmHeartbeat(Clock::time_point due);
  void OnHeartbeat();
  void RespondUnary(const upstream::GrpcResult& result);

  // The one way out for errors: renders the google.rpc.Status body and finishes.
  void Fail(const ProxyError& error, const upstream::Metadata* trailers = nullptr);
  // The one way out for every response: Retry-After, request id, response metadata, trailers;
  // the accounting first, so that a client reading this response finds its slot free.
  void Finish(http1::HttpResponse response, const upstream::Metadata* trailers,
              std::string_view details_bin);
  void Record(int http_status);
  int64_t RetryAfterSeconds(const upstream::Metadata* trailers, std::string_view details_bin) const;
  void AddResponseHeaders(http1::HttpResponse& response) const;

  RequestEnvironment& env_;
  std::shared_ptr<http1::HttpExchange> http_;
  std::shared_ptr<const Routing> routing_;  // The schema this request started with.
  std::shared_ptr<RouteStats> stats_;
  State state_ = State::kReceived;

  const transcoder::Route* route_ = nullptr;
  std::vector<std::pair<std::string, std::string>> bindings_;
  std::string_view path_;
  std::string_view query_;
  // The header fields the request path reads, found in one pass over the fields.
  std::string_view content_type_;
  std::string_view accept_;
  std::string_view origin_;
  std::string_view cors_request_method_;   // Access-Control-Request-Method: a preflight.
  std::string_view cors_request_headers_;  // Access-Control-Request-Headers.
  std::string_view grpc_timeout_;
  std::string_view client_request_id_;
  int upstream_ = -1;
  bool pretty_ = false;
  // TE names "trailers": trailing metadata of a unary response may travel as chunked trailers.
  bool accepts_trailers_ = false;
  // A body sent to a rule without `body` (transcoding.unexpected_body: ignore): not decoded.
  bool ignore_body_ = false;
  transcoder::ResponseFormat format_ = transcoder::ResponseFormat::kJson;
  std::optional<transcoder::StreamEncoder> encoder_;  // Server-streaming routes.
  std::optional<GrpcWebMode> grpc_web_;  // A gRPC-Web call: frames in and out, no transcoding.
  bool preflight_ = false;
  std::unique_ptr<RequestEnvironment::Timer> heartbeat_;
  Clock::time_point last_sent_;  // The stream's last chunk (or its start).
  std::string request_id_;

  Clock::time_point start_;
  Clock::time_point upstream_start_;
  upstream::CallId call_id_ = 0;
  upstream::Metadata response_headers_;
  std::string message_;  // Unary: the one response message.
  int messages_ = 0;
  std::optional<ProxyError> stream_error_;     // A stream message that could not be transcoded.
  std::optional<absl::StatusCode> grpc_code_;  // For the access log: the call's or ours.
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace tipperary::proxy
