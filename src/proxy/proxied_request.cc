#include "proxied_request.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "metadata_mapping.h"
#include "tipperary/common/status_json.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/status_mapping.h"
#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::proxy {
namespace {

namespace http = boost::beast::http;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Sv(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

std::shared_ptr<ProxiedRequest> ProxiedRequest::Start(RequestEnvironment& env,
                                                      std::shared_ptr<http1::HttpExchange> http) {
  auto request = std::make_shared<ProxiedRequest>(env, std::move(http));
  request->Run();
  return request;
}

ProxiedRequest::ProxiedRequest(RequestEnvironment& env, std::shared_ptr<http1::HttpExchange> http)
    : env_(env), http_(std::move(http)) {}

namespace {

// The JSON route a request head asks for, as the listener sees it before the request runs;
// nullptr when none does.
const transcoder::Route* RouteForHead(const Routing& routing, const http1::HttpRequest& head) {
  const std::string_view target = Sv(head.target());
  const std::string_view path = target.substr(0, target.find('?'));
  if (!transcoder::IsValidPercentEncoding(path)) return nullptr;
  transcoder::RouteTable::MatchResult match = routing.routes->Match(Sv(head.method_string()), path);
  return match.status == transcoder::RouteTable::MatchStatus::kOk ? match.route : nullptr;
}

}  // namespace

std::string ProxiedRequest::ListenerErrorBody(const RequestEnvironment& env,
                                              const http1::HttpRequest& head,
                                              const http1::RequestError& error) {
  std::shared_ptr<const Routing> routing = env.routing();
  const transcoder::Route* route = routing ? RouteForHead(*routing, head) : nullptr;
  if (route == nullptr) return "";
  return routing->transcoder->ErrorBody(route, error.code, static_cast<int>(error.status),
                                        error.message, "", /*pretty=*/false);
}

bool ProxiedRequest::StreamsBody(const RequestEnvironment& env, const http1::HttpRequest& head) {
  std::shared_ptr<const Routing> routing = env.routing();
  if (!routing || !routing->has_client_streams) return false;
  const std::string_view content_type = Sv(head[http::field::content_type]);
  if (env.config()->grpc_web.enabled && GrpcWebModeFor(content_type)) return false;
  const transcoder::Route* route = RouteForHead(*routing, head);
  return route != nullptr && route->client_streaming && !route->body.empty() &&
         transcoder::BodyFormatFor(*route, content_type) == transcoder::BodyFormat::kJson;
}

void ProxiedRequest::Run() {
  start_ = env_.Now();
  // The configuration, schema and CORS policy in effect now stay this request's to its end,
  // whatever a reload publishes meanwhile.
  config_ = env_.config();
  cors_ = env_.cors();
  routing_ = env_.routing();
  env_.in_flight().fetch_add(1, std::memory_order_relaxed);
  const http1::HttpRequest& req = http_->request();
  bytes_in_ = req.body().size();
  std::string_view target = Sv(req.target());
  size_t qpos = target.find('?');
  path_ = target.substr(0, qpos);
  query_ = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);
  pretty_ = !query_.empty() && transcoder::Transcoder::WantsPretty(query_);
  for (const auto& field : req) {
    std::string_view value = Sv(field.value());
    switch (field.name()) {
      case http::field::content_type:
        content_type_ = value;
        break;
      case http::field::accept:
        accept_ = value;
        break;
      case http::field::origin:
        origin_ = value;
        break;
      case http::field::access_control_request_method:
        cors_request_method_ = value;
        break;
      case http::field::access_control_request_headers:
        cors_request_headers_ = value;
        break;
      case http::field::te:
        // RFC 9110 §10.1.4: "trailers" is a token of the list (grpc-gateway looks for the word).
        for (absl::string_view token : absl::StrSplit(Sv(value), ',')) {
          token = absl::StripAsciiWhitespace(token.substr(0, token.find(';')));
          accepts_trailers_ = accepts_trailers_ || absl::EqualsIgnoreCase(token, "trailers");
        }
        break;
      case http::field::unknown: {
        std::string_view name = Sv(field.name_string());
        if (absl::EqualsIgnoreCase(Sv(name), "grpc-timeout")) {
          grpc_timeout_ = value;
        } else if (absl::EqualsIgnoreCase(Sv(name), "x-request-id")) {
          client_request_id_ = value;
        }
        break;
      }
      default:
        break;
    }
  }
  request_id_ = !client_request_id_.empty() && client_request_id_.size() <= 200
                    ? std::string(client_request_id_)
                    : GenerateRequestId();

  if (req.method() == http::verb::options) {
    AnswerOptions();
    return;
  }
  const config::OpenApiConfig& openapi = config_->openapi;
  if (openapi.on_listener && path_ == openapi.path &&
      (req.method() == http::verb::get || req.method() == http::verb::head)) {
    AnswerOpenApi();
    return;
  }
  if (config_->grpc_web.enabled && !content_type_.empty()) {
    grpc_web_ = GrpcWebModeFor(content_type_);
  }
  if (std::optional<ProxyError> error = Route()) {
    Fail(*error);
    return;
  }
  state_ = State::kRouted;
  upstream::GrpcRequest grpc_request;
  if (std::optional<ProxyError> error = Decode(&grpc_request)) {
    Fail(*error);
    return;
  }
  Call(std::move(grpc_request));
}

void ProxiedRequest::AnswerOptions() {
  const http1::HttpRequest& req = http_->request();
  const CorsPolicy& cors = *cors_;
  if (cors.enabled() && !origin_.empty() && !cors_request_method_.empty()) {
    // A preflight is answered here, never routed: a gRPC-Web method path has no HTTP route,
    // and the upstream has no say in the proxy's CORS policy.
    auto refuse = [&](std::string why) {
      Fail(ProxyError::Make(absl::StatusCode::kPermissionDenied, std::move(why), 403));
    };
    if (!cors.AllowsOrigin(origin_)) {
      return refuse(absl::StrCat("origin \"", Sv(origin_.substr(0, 200)),
                                 "\" is not allowed (cors.allow_origins)"));
    }
    if (!cors.AllowsMethod(cors_request_method_)) {
      return refuse(absl::StrCat("method \"", Sv(cors_request_method_.substr(0, 32)),
                                 "\" is not allowed (cors.allow_methods)"));
    }
    if (!cors.AllowsHeaders(cors_request_headers_)) {
      return refuse(absl::StrCat("a requested header is not allowed (cors.allow_headers): \"",
                                 Sv(cors_request_headers_.substr(0, 200)), "\""));
    }
    preflight_ = true;
    Finish(http1::HttpResponse{http::status::no_content, req.version()}, nullptr, "");
    return;
  }
  // RFC 9110 §9.3.7: the methods the target supports, in Allow.
  std::vector<std::string> allowed;
  if (path_ == "*") {
    allowed = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  } else if (!routing_) {
    Fail(ProxyError::Make(absl::StatusCode::kUnavailable,
                          "the proxy has no schema yet: waiting for descriptors from upstream"));
    return;
  } else {
    transcoder::RouteTable::MatchResult match = routing_->routes->Match("OPTIONS", path_);
    if (match.status == transcoder::RouteTable::MatchStatus::kNotFound) {
      Fail(ProxyError::Make(absl::StatusCode::kNotFound,
                            absl::StrCat("no route for OPTIONS ", Sv(path_.substr(0, 256)))));
      return;
    }
    allowed = std::move(match.allowed_methods);
    if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) {
      allowed.push_back("HEAD");
    }
    allowed.push_back("OPTIONS");
  }
  http1::HttpResponse res{http::status::no_content, req.version()};
  res.set(http::field::allow, absl::StrJoin(allowed, ", "));
  Finish(std::move(res), nullptr, "");
}

void ProxiedRequest::AnswerOpenApi() {
  if (!routing_) {
    Fail(ProxyError::Make(absl::StatusCode::kUnavailable,
                          "the proxy has no schema yet: waiting for descriptors from upstream"));
    return;
  }
  http1::HttpResponse res{http::status::ok, http_->request().version()};
  res.set(http::field::content_type, "application/json");
  res.body() = routing_->OpenApiDocument();
  Finish(std::move(res), nullptr, "");
}

std::optional<ProxyError> ProxiedRequest::Route() {
  const http1::HttpRequest& req = http_->request();
  auto unmatched = [this](absl::StatusCode code, std::string message, int http_status = 0) {
    stats_ = env_.StatsFor(nullptr);
    stats_->in_flight().Increment();
    return ProxyError::Make(code, std::move(message), http_status);
  };
  if (!routing_) {
    return unmatched(absl::StatusCode::kUnavailable,
                     "the proxy has no schema yet: waiting for descriptors from upstream");
  }
  if (!transcoder::IsValidPercentEncoding(path_)) {
    return unmatched(absl::StatusCode::kInvalidArgument,
                     "malformed percent-encoding in the request path");
  }
  // HEAD is GET without the body (RFC 9110 §9.3.2); the listener drops the body.
  const std::string_view method =
      req.method() == http::verb::head ? std::string_view("GET") : Sv(req.method_string());
  // gRPC-Web calls the gRPC method path, and only with POST.
  transcoder::RouteTable::MatchResult match =
      (grpc_web_ ? routing_->grpc_routes : routing_->routes)->Match(method, path_);
  if (match.status != transcoder::RouteTable::MatchStatus::kOk) {
    const std::string shown_path(path_.substr(0, 256));
    if (match.status == transcoder::RouteTable::MatchStatus::kMethodNotAllowed) {
      ProxyError error = unmatched(
          absl::StatusCode::kUnimplemented,
          absl::StrCat("method ", Sv(Sv(req.method_string())), " is not allowed on ", shown_path),
          405);
      std::vector<std::string> allowed = match.allowed_methods;
      if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) {
        allowed.push_back("HEAD");
      }
      error.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
      return error;
    }
    if (grpc_web_) {
      // What a gRPC server says of a method it does not have.
      return unmatched(absl::StatusCode::kUnimplemented,
                       absl::StrCat("unknown gRPC method ", shown_path));
    }
    return unmatched(absl::StatusCode::kNotFound,
                     absl::StrCat("no route for ", Sv(Sv(req.method_string())), " ", shown_path));
  }
  route_ = match.route;
  bindings_ = std::move(match.bindings);
  stats_ = env_.StatsFor(route_);
  stats_->in_flight().Increment();

  const config::ProxyConfig& config = *config_;
  const uint32_t max_in_flight = config.limits.max_in_flight_requests;
  if (max_in_flight > 0 &&
      env_.in_flight().load(std::memory_order_relaxed) > static_cast<int64_t>(max_in_flight)) {
    return ProxyError::Make(absl::StatusCode::kUnavailable,
                            absl::StrCat("more than ", max_in_flight,
                                         " requests in flight (limits.max_in_flight_requests)"));
  }
  upstream_ = routing_->UpstreamFor(*route_);
  if (upstream_ < 0) {
    return ProxyError::Make(
        absl::StatusCode::kUnimplemented,
        absl::StrCat("no upstream serves ", route_->method->service()->full_name()));
  }
  client_ = env_.upstream(upstream_);
  const uint32_t max_params = config.limits.max_query_params;
  if (transcoder::CountQueryParams(query_) > max_params) {
    return ProxyError::Make(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("more than ", max_params, " query parameters (limits.max_query_params)"), 414);
  }
  if (!req.body().empty() && route_->body.empty() && !grpc_web_) {
    // grpc-gateway never reads the body of a rule without `body`; a client that sends one
    // anyway (a GET with a body, a POST to a bodyless rule) gets the same unless configured.
    if (config.transcoding.unexpected_body == "reject") {
      return ProxyError::Make(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("route ", route_->label,
                       " does not take a request body (transcoding.unexpected_body: reject)"));
    }
    ignore_body_ = true;
  }
  if (!req.body().empty() && !ignore_body_ && !grpc_web_) {
    // RFC 9110 §15.5.16: a body this route cannot decode is a 415, never "invalid JSON". A
    // Content-Encoding never gets here: the listener decoded the body or answered 415 itself
    // (http1/compression.h), for every port alike.
    std::string_view content_type = content_type_;
    if (transcoder::BodyFormatFor(*route_, content_type) == transcoder::BodyFormat::kUnsupported) {
      return ProxyError::Make(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("Content-Type \"", Sv(content_type.substr(0, 100)),
                       "\" is not supported: send ", transcoder::AcceptedMediaTypes(*route_)),
          415);
    }
  }
  return std::nullopt;
}

std::optional<ProxyError> ProxiedRequest::Decode(upstream::GrpcRequest* request) {
  const http1::HttpRequest& req = http_->request();
  const config::ProxyConfig& config = *config_;
  std::string_view content_type = Sv(req[http::field::content_type]);
  format_ = transcoder::ResponseFormatFor(accept_);
  if (route_->server_streaming && !grpc_web_) {
    encoder_.emplace(*routing_->transcoder, *route_,
                     transcoder::StreamFormatFor(
                         accept_, config.streaming.json_format == "array"
                                      ? transcoder::JsonStreamFormat::kArray
                                      : transcoder::JsonStreamFormat::kGrpcGatewayEnvelope),
                     pretty_);
  }
  absl::StatusOr<std::string> message;
  if (grpc_web_) {
    // gRPC-Web carries the serialized message itself: unframed, then checked as a binary
    // protobuf body (the wire checker), so malformed bytes are the client's INVALID_ARGUMENT
    // here rather than the upstream's problem.
    absl::StatusOr<std::string> unframed = DecodeGrpcWebRequest(req.body(), *grpc_web_);
    if (!unframed.ok()) return ProxyError::FromStatus(unframed.status());
    message = routing_->transcoder->BuildRequestMessage(*route_, bindings_, "", *unframed,
                                                        transcoder::BodyFormat::kProtobuf,
                                                        transcoder::kProtobufContentType);
  } else if (route_->client_streaming && !ignore_body_ &&
             transcoder::BodyFormatFor(*route_, content_type) == transcoder::BodyFormat::kJson) {
    // The messages go upstream as the body arrives (OnRequestBody). A request type that is
    // itself a JSON array (ListValue, Value) cannot use the array form.
    const std::string& type = route_->request_type->full_name();
    const bool array_allowed =
        type != "google.protobuf.ListValue" && type != "google.protobuf.Value";
    splitter_.emplace(array_allowed, config.limits.max_request_body_bytes);
    request->streaming = true;
    message = std::string();
  } else if (http_->body_streamed()) {
    // The listener streamed the body for the schema of its head; a new one came in between.
    return ProxyError::Make(absl::StatusCode::kUnavailable,
                            "the route changed while the request was read; send it again");
  } else {
    message = routing_->transcoder->BuildRequestMessage(
        *route_, bindings_, query_,
        ignore_body_ ? std::string_view() : std::string_view(req.body()),
        transcoder::BodyFormatFor(*route_, content_type), content_type);
  }
  if (!message.ok()) return ProxyError::FromStatus(message.status());

  // Deadline: the route's (or the default), tightened by the client's Grpc-Timeout, capped.
  std::chrono::nanoseconds timeout = route_->timeout.value_or(config.timeouts.upstream_default);
  std::string_view grpc_timeout = grpc_timeout_;
  if (!grpc_timeout.empty()) {
    std::chrono::nanoseconds client_timeout;
    if (!ParseGrpcTimeout(grpc_timeout, &client_timeout)) {
      return ProxyError::Make(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("bad Grpc-Timeout header \"", Sv(grpc_timeout.substr(0, 32)), "\""));
    }
    timeout = std::min(timeout, client_timeout);
  }
  timeout = std::min(timeout, std::chrono::nanoseconds(config.timeouts.max_upstream));

  request->path = route_->grpc_path;
  request->metadata =
      BuildUpstreamMetadata(req, http_->peer_address(), request_id_, grpc_web_.has_value());
  // Request trailers never merge into the headers; only the configured ones go upstream.
  for (const std::string& name : config.metadata.forward_request_trailers) {
    auto [begin, end] = http_->trailers().equal_range(name);
    for (auto it = begin; it != end; ++it) {
      request->metadata.emplace_back(name, std::string(it->value()));
    }
  }
  request->message = std::move(*message);
  request->timeout = timeout;
  if (const Routing::RouteRetry* retry = routing_->RetryFor(*route_)) {
    request->idempotent = retry->idempotent;
    request->retry_policy = retry->policy;
  }
  return std::nullopt;
}

void ProxiedRequest::Call(upstream::GrpcRequest request) {
  state_ = State::kCalling;
  upstream_start_ = env_.Now();
  upstream::CallHandlers handlers;
  // The handlers hold the request alive until on_done, which always runs.
  auto self = shared_from_this();
  handlers.on_headers = [self](const upstream::Metadata& headers) { self->OnHeaders(headers); };
  handlers.on_message = [self](std::string message) { self->OnMessage(std::move(message)); };
  handlers.on_done = [self](upstream::GrpcResult result) { self->OnDone(std::move(result)); };
  if (request.streaming) handlers.on_send_drained = [self] { self->OnSendDrained(); };
  upstream::UpstreamClient& client = *client_;
  call_id_ = client.Call(std::move(request), std::move(handlers));
  std::weak_ptr<ProxiedRequest> weak = self;
  http_->SetCancelHandler([weak, &client] {
    if (auto locked = weak.lock()) client.Cancel(locked->call_id_);
  });
  if (state_ == State::kCalling && encoder_ && !encoder_->Heartbeat().empty() &&
      config_->streaming.sse_heartbeat_interval > Clock::duration::zero()) {
    last_sent_ = upstream_start_;
    ArmHeartbeat(last_sent_ + config_->streaming.sse_heartbeat_interval);
  }
  if (splitter_ && state_ == State::kCalling) ReadRequestBody();
}

void ProxiedRequest::ReadRequestBody() {
  std::weak_ptr<ProxiedRequest> weak = shared_from_this();
  http_->ReadBody([weak](http1::BodyPiece piece) {
    if (auto self = weak.lock()) self->OnRequestBody(std::move(piece));
  });
}

void ProxiedRequest::OnRequestBody(http1::BodyPiece piece) {
  if (state_ == State::kDone || stream_error_) return;
  if (piece.error) {
    // The body broke off (framing, its limit, a stalled client): the listener closes the
    // connection after this answer.
    FailCall(ProxyError::Make(piece.error->code, piece.error->message,
                              static_cast<int>(piece.error->status)));
    return;
  }
  if (http_->body_streamed()) bytes_in_ += piece.data.size();
  std::string framed;
  auto send = [this, &framed](std::string_view value) -> absl::Status {
    absl::StatusOr<std::string> message = routing_->transcoder->BuildRequestMessage(
        *route_, bindings_, query_, value, transcoder::BodyFormat::kJson, content_type_);
    if (!message.ok()) {
      return absl::Status(message.status().code(),
                          absl::StrCat("message ", splitter_->count(),
                                       " of the stream: ", message.status().message()));
    }
    upstream::AppendGrpcFrame(0, *message, &framed);
    return absl::OkStatus();
  };
  absl::Status status = splitter_->Feed(piece.data, send);
  if (status.ok() && piece.last) status = splitter_->Finish(send);
  upstream::UpstreamClient& client = *client_;
  if (!framed.empty()) client.Send(call_id_, std::move(framed));
  if (!status.ok()) {
    FailCall(ProxyError::FromStatus(status));
    return;
  }
  if (piece.last) {
    client.CloseSend(call_id_);
    return;
  }
  if (client.send_buffered(call_id_) >= config_->limits.stream_window_bytes) {
    awaiting_send_drain_ = true;  // The upstream is slower than the client: let it catch up.
    return;
  }
  ReadRequestBody();
}

void ProxiedRequest::OnSendDrained() {
  if (!awaiting_send_drain_ || state_ == State::kDone || stream_error_) return;
  awaiting_send_drain_ = false;
  ReadRequestBody();
}

void ProxiedRequest::FailCall(ProxyError error) {
  if (state_ == State::kDone || stream_error_) return;
  stream_error_ = std::move(error);
  client_->Cancel(call_id_);
}

void ProxiedRequest::OnClientDrained() {
  if (state_ == State::kDone || !receive_paused_) return;
  receive_paused_ = false;
  client_->PauseReceive(call_id_, false);
}

void ProxiedRequest::ArmHeartbeat(Clock::time_point due) {
  std::weak_ptr<ProxiedRequest> weak = shared_from_this();
  heartbeat_ = env_.StartTimer(due - env_.Now(), [weak] {
    if (auto locked = weak.lock()) locked->OnHeartbeat();
  });
}

void ProxiedRequest::OnHeartbeat() {
  if (state_ != State::kCalling && state_ != State::kStreaming) return;
  const Clock::duration interval = config_->streaming.sse_heartbeat_interval;
  const Clock::time_point now = env_.Now();
  if (now - last_sent_ >= interval) {
    // Nothing sent for a whole interval: a comment, beginning the stream if it has not begun
    // (an upstream slow to its first message must not look like a dead connection either).
    if (state_ != State::kStreaming) BeginStream("");
    std::string beat = encoder_->Heartbeat();
    bytes_out_ += beat.size();
    http_->SendChunk(std::move(beat));
    last_sent_ = now;
  }
  ArmHeartbeat(last_sent_ + interval);
}

void ProxiedRequest::OnHeaders(const upstream::Metadata& headers) {
  if (state_ == State::kDone) return;
  response_headers_ = headers;
}

void ProxiedRequest::OnMessage(std::string message) {
  if (state_ == State::kDone) return;
  ++messages_;
  if (!route_->server_streaming) {
    if (messages_ == 1) message_ = std::move(message);
    return;
  }
  if (stream_error_) return;  // Already failed: the rest is not sent.
  absl::StatusOr<std::string> chunk =
      grpc_web_ ? EncodeGrpcWebMessage(message, *grpc_web_) : encoder_->Message(message);
  if (!chunk.ok()) {
    // Never skip a message silently: end the stream with this error instead.
    FailCall(ProxyError::Make(
        absl::StatusCode::kInternal,
        absl::StrCat("cannot transcode stream message ", messages_, ": ", chunk.status().message()),
        502));
    return;
  }
  if (state_ != State::kStreaming) BeginStream(message);
  bytes_out_ += chunk->size();
  last_sent_ = env_.Now();
  http_->SendChunk(std::move(*chunk));
  const config::LimitsConfig& limits = config_->limits;
  const size_t buffered = http_->buffered_bytes();
  if (buffered > limits.max_stream_buffer_bytes) {
    // Past the window the upstream's own window is held closed, so only a window larger than
    // this cap (or an upstream window larger than it) gets here: end the stream.
    FailCall(ProxyError::Make(
        absl::StatusCode::kResourceExhausted,
        absl::StrCat("the client reads slower than the stream is produced: more than ",
                     limits.max_stream_buffer_bytes,
                     " bytes waiting (limits.max_stream_buffer_bytes)"),
        502));
    return;
  }
  if (!receive_paused_ && buffered >= limits.stream_window_bytes) {
    // Hold the upstream back (its HTTP/2 window stays spent) until the client has read.
    receive_paused_ = true;
    client_->PauseReceive(call_id_, true);
    std::weak_ptr<ProxiedRequest> weak = shared_from_this();
    http_->NotifyWhenDrained([weak] {
      if (auto self = weak.lock()) self->OnClientDrained();
    });
  }
}

void ProxiedRequest::BeginStream(std::string_view first_message) {
  state_ = State::kStreaming;
  http1::HttpResponse head{http::status::ok, http_->request().version()};
  head.set(http::field::content_type, grpc_web_ ? std::string(GrpcWebContentType(*grpc_web_))
                                                : encoder_->ContentType(first_message));
  if (encoder_ && encoder_->format() == transcoder::StreamFormat::kSse) {
    head.set(http::field::cache_control, "no-cache");
  }
  // Tells nginx (the usual ingress) not to buffer this response: each message is worth
  // sending as it comes, whatever proxy_buffering says for the location.
  head.set("X-Accel-Buffering", "no");
  AddResponseHeaders(head);
  http_->BeginStream(std::move(head));
}

void ProxiedRequest::OnDone(upstream::GrpcResult result) {
  env_.RecordUpstream(config_->upstreams[upstream_].name, result.code,
                      std::chrono::duration<double>(env_.Now() - upstream_start_).count());
  if (state_ == State::kDone) return;
  if (stream_error_) {
    result.outcome = upstream::CallOutcome::kProtocolError;
    result.code = stream_error_->code;
    result.grpc_message = stream_error_->message;
    result.status_details.clear();
  }
  grpc_code_ = result.code;
  if (state_ == State::kStreaming) {
    EndStream(result);
    return;
  }
  if (result.code != absl::StatusCode::kOk ||
      result.outcome == upstream::CallOutcome::kProtocolError) {
    Fail(stream_error_ ? *stream_error_ : ProxyError::FromUpstream(result), &result.trailers);
    return;
  }
  if (route_->server_streaming && !grpc_web_) {
    // A stream that ended with no message: a 200 with no messages (and, for binary protobuf,
    // its status frame).
    http1::HttpResponse res{http::status::ok, http_->request().version()};
    res.set(http::field::content_type, encoder_->ContentType(""));
    res.body() = encoder_->End(absl::StatusCode::kOk, "", "");
    Finish(std::move(res), &result.trailers, "");
    return;
  }
  RespondUnary(result);
}

void ProxiedRequest::EndStream(const upstream::GrpcResult& result) {
  // The stream's end, in-band (a JSON error line, or the protobuf status frame) and as
  // trailers for the clients that read them.
  heartbeat_.reset();
  std::string end = grpc_web_
                        ? EncodeGrpcWebTrailers(result.code, result.grpc_message,
                                                result.status_details, result.trailers, *grpc_web_)
                        : encoder_->End(result.code, result.grpc_message, result.status_details);
  if (!end.empty()) {
    bytes_out_ += end.size();
    http_->SendChunk(std::move(end));
  }
  http1::HttpFields trailers;
  if (grpc_web_) {
    // The status is in the trailer frame; browsers cannot read HTTP/1.1 trailers anyway.
    state_ = State::kDone;
    Record(200);
    http_->EndStream(std::move(trailers));
    return;
  }
  trailers.insert("Grpc-Status", absl::StrCat(static_cast<int>(result.code)));
  if (!result.grpc_message.empty()) {
    trailers.insert("Grpc-Message", upstream::PercentEncode(result.grpc_message));
  }
  AppendMetadataFields(result.trailers, "Grpc-Trailer-", trailers);
  state_ = State::kDone;
  Record(200);
  http_->EndStream(std::move(trailers));
}

void ProxiedRequest::RespondUnary(const upstream::GrpcResult& result) {
  if (grpc_web_ && route_->server_streaming && messages_ == 0) {
    // A gRPC-Web stream that ended with no message: only its trailer frame.
    http1::HttpResponse res{http::status::ok, http_->request().version()};
    res.set(http::field::content_type, GrpcWebContentType(*grpc_web_));
    res.body() = EncodeGrpcWebTrailers(absl::StatusCode::kOk, "", "", result.trailers, *grpc_web_);
    Finish(std::move(res), nullptr, "");
    return;
  }
  if (messages_ != 1) {
    Fail(ProxyError::Make(
             absl::StatusCode::kInternal,
             absl::StrCat("upstream sent ", messages_, " messages for a unary call; expected 1"),
             502),
         &result.trailers);
    return;
  }
  if (grpc_web_) {
    http1::HttpResponse res{http::status::ok, http_->request().version()};
    res.set(http::field::content_type, GrpcWebContentType(*grpc_web_));
    res.body() = EncodeGrpcWebMessage(message_, *grpc_web_);
    res.body() += EncodeGrpcWebTrailers(absl::StatusCode::kOk, "", "", result.trailers, *grpc_web_);
    Finish(std::move(res), nullptr, "");
    return;
  }
  absl::StatusOr<transcoder::HttpBodyOut> out =
      routing_->transcoder->BuildResponseBody(*route_, message_, format_, pretty_);
  if (!out.ok()) {
    Fail(ProxyError::Make(absl::StatusCode::kInternal,
                          absl::StrCat("cannot transcode the response: ", out.status().message()),
                          502),
         &result.trailers);
    return;
  }
  http1::HttpResponse res{http::status::ok, http_->request().version()};
  res.set(http::field::content_type, out->content_type);
  res.body() = std::move(out->body);
  Finish(std::move(res), &result.trailers, "");
}

void ProxiedRequest::Fail(const ProxyError& error, const upstream::Metadata* trailers) {
  if (!grpc_code_) grpc_code_ = error.code;
  if (grpc_web_) {
    // gRPC-Web's errors are 200s whose trailer frame holds the status (what a gRPC-Web client
    // reads), whatever the HTTP status would have been.
    http1::HttpResponse res{http::status::ok, http_->request().version()};
    res.set(http::field::content_type, GrpcWebContentType(*grpc_web_));
    res.body() = EncodeGrpcWebTrailers(error.code, error.message, error.details_bin,
                                       trailers ? *trailers : upstream::Metadata{}, *grpc_web_);
    Finish(std::move(res), nullptr, "");
    return;
  }
  // The route's error format (google.rpc.Status, or the error object of the API it imitates,
  // whose statuses may be its own: TEI's).
  const int status = routing_ ? routing_->transcoder->ErrorHttpStatus(route_, error.HttpStatus(),
                                                                      error.details_bin)
                              : error.HttpStatus();
  http1::HttpResponse res{static_cast<http::status>(status), http_->request().version()};
  res.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : error.headers) res.set(name, value);
  res.body() = routing_ ? routing_->transcoder->ErrorBody(route_, error.code, error.HttpStatus(),
                                                          error.message, error.details_bin, pretty_)
                        : common::StatusJson(error.code, error.message);
  Finish(std::move(res), trailers, error.details_bin);
}

void ProxiedRequest::Finish(http1::HttpResponse response, const upstream::Metadata* trailers,
                            std::string_view details_bin) {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  heartbeat_.reset();
  const int status = response.result_int();
  bytes_out_ += response.body().size();
  if (status == 429 || status == 503) {
    // RFC 9110 §10.2.3: when to come back. The upstream's own hint wins.
    response.set(http::field::retry_after, absl::StrCat(RetryAfterSeconds(trailers, details_bin)));
  }
  // Accounted before the response can reach the client: a client that sends its next
  // request on reading this one must find this one's in-flight slot free.
  Record(status);
  AddResponseHeaders(response);
  const bool has_trailers = trailers != nullptr && !trailers->empty();
  if (has_trailers && (!accepts_trailers_ || http_->request().version() < 11)) {
    // Trailing metadata as header fields of the buffered response: they survive the proxies
    // and HTTP/1.0 clients that drop chunked trailers (grpc-gateway drops them instead).
    AppendMetadataFields(*trailers, "Grpc-Trailer-", response);
  } else if (has_trailers && !http_->cancelled()) {
    // The client asked for trailers (TE: trailers): HTTP/1.1 trailers of a chunked response,
    // as grpc-gateway sends them.
    http1::HttpFields fields;
    AppendMetadataFields(*trailers, "Grpc-Trailer-", fields);
    std::vector<absl::string_view> names;
    for (const auto& field : fields) names.push_back(Sv(Sv(field.name_string())));
    response.set(http::field::trailer, absl::StrJoin(names, ", "));
    std::string body = std::move(response.body());
    response.body().clear();
    http_->BeginStream(std::move(response));
    if (!body.empty()) http_->SendChunk(std::move(body));
    http_->EndStream(std::move(fields));
    return;
  }
  http_->Respond(std::move(response));
}

void ProxiedRequest::AddResponseHeaders(http1::HttpResponse& response) const {
  response.set("X-Request-Id", request_id_);
  // gRPC-Web's initial metadata is plain header fields; JSON's are grpc-gateway's prefixed ones,
  // but for the keys configured to keep their name (TEI's x-queue-time...).
  if (grpc_web_) {
    AppendMetadataFields(response_headers_, "", response);
  } else {
    AppendMetadataFields(response_headers_, "Grpc-Metadata-", response,
                         config_->metadata.unprefixed_response_metadata);
  }
  const CorsPolicy& cors = *cors_;
  if (cors.enabled() && !origin_.empty() && cors.AllowsOrigin(origin_)) {
    if (preflight_) {
      cors.AddPreflightHeaders(origin_, cors_request_headers_, response);
    } else {
      cors.AddResponseHeaders(origin_, response);
    }
  }
}

int64_t ProxiedRequest::RetryAfterSeconds(const upstream::Metadata* trailers,
                                          std::string_view details_bin) const {
  // The upstream's hint: a google.rpc.RetryInfo detail, or retry-after metadata in seconds.
  if (auto delay = transcoder::RetryDelayFromStatusDetails(details_bin)) return delay->count();
  if (trailers != nullptr) {
    for (const auto& [key, value] : *trailers) {
      int64_t seconds = 0;
      if (key == "retry-after" && absl::SimpleAtoi(value, &seconds) && seconds >= 0) {
        return seconds;
      }
    }
  }
  auto configured = std::chrono::ceil<std::chrono::seconds>(config_->timeouts.retry_after);
  return std::max<int64_t>(0, configured.count());
}

void ProxiedRequest::Record(int http_status) {
  if (!stats_) {
    stats_ = env_.StatsFor(nullptr);
    stats_->in_flight().Increment();
  }
  const Clock::time_point now = env_.Now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  stats_->Requests(http_status).Increment();
  stats_->duration().Observe(elapsed);
  stats_->in_flight().Decrement();
  stats_->request_bytes().Increment(static_cast<double>(bytes_in_));
  stats_->response_bytes().Increment(static_cast<double>(bytes_out_));
  env_.in_flight().fetch_sub(1, std::memory_order_relaxed);
  AccessLog* log = env_.access_log();
  if (log == nullptr || !log->Sample()) return;
  const http1::HttpRequest& req = http_->request();
  AccessLogEntry e;
  e.request_id = request_id_;
  e.peer = http_->peer_address();
  e.method = std::string(Sv(req.method_string()));
  e.path = std::string(path_);
  e.route = stats_->label();
  e.http_status = http_status;
  e.grpc_status = grpc_code_ ? static_cast<int>(*grpc_code_) : -1;
  e.duration_ms = elapsed * 1000.0;
  if (upstream_start_ != Clock::time_point{}) {
    e.upstream_ms = std::chrono::duration<double, std::milli>(now - upstream_start_).count();
  }
  e.bytes_in = bytes_in_;
  e.bytes_out = bytes_out_;
  log->Write(e);
}

}  // namespace tipperary::proxy
