// One proxied exchange, HTTP/1.1 in and out, gRPC in the middle, as an object with explicit
// states (in the spirit of an Envoy filter's per-request state):
//
// A client stream's body goes upstream as it arrives (RequestBody pieces, each message sent as
// soon as it is complete), paced by the upstream's HTTP/2 window; a server stream's messages
// go to the client as they come, and the upstream's window stays closed while the client is
// more than limits.stream_window_bytes behind.
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
#include "tipperary/transcoder/json_stream_splitter.h"
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

  // For ListenerOptions::stream_request_body: whether the request with this head is a client
  // stream whose body goes upstream as it arrives (JSON, to a client- or bidi-streaming route).
  static bool StreamsBody(const RequestEnvironment& env, const http1::HttpRequest& head);
  // For ListenerOptions::render_error: an error the listener answers itself (a body over its
  // limit, ...) in the error shape of the request's route (OpenAI's on the OpenAI routes); ""
  // when no route matches (the listener's google.rpc.Status then).
  static std::string ListenerErrorBody(const RequestEnvironment& env,
                                       const http1::HttpRequest& head,
                                       const http1::RequestError& error);

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
  void Call(upstream::GrpcRequest request);
  // A client stream: asks the listener for the next piece of the body.
  void ReadRequestBody();
  // Each complete message of the piece transcoded and sent; the next piece is asked for unless
  // the upstream has a window's worth waiting (then OnSendDrained asks).
  void OnRequestBody(http1::BodyPiece piece);
  void OnSendDrained();
  // The call fails on our side (a bad message in either direction, a slow reader): cancelled,
  // and OnDone answers with `error` (in-band once the response stream has begun).
  void FailCall(ProxyError error);
  // The client caught up with a server stream: the upstream may send again.
  void OnClientDrained();

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
  std::shared_ptr<const config::ProxyConfig> config_;  // The configuration it started with.
  std::shared_ptr<const CorsPolicy> cors_;
  std::shared_ptr<const Routing> routing_;            // The schema this request started with.
  std::shared_ptr<upstream::UpstreamClient> client_;  // Its upstream, as routed.
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
  // Client-streaming routes with a JSON body: the body's messages, as they arrive.
  std::optional<transcoder::JsonStreamSplitter> splitter_;
  bool awaiting_send_drain_ = false;     // The upstream has a window of the body to take first.
  bool receive_paused_ = false;          // The client is a window behind the upstream.
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
  std::optional<ProxyError> stream_error_;     // FailCall's error, answered by OnDone.
  std::optional<absl::StatusCode> grpc_code_;  // For the access log: the call's or ours.
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
};

}  // namespace tipperary::proxy
