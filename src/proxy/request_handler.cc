#include "request_handler.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "metadata_mapping.h"
#include "tipperary/common/log.h"
#include "tipperary/transcoder/path_template.h"
#include "tipperary/transcoder/status_mapping.h"
#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::proxy {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsProtobufType(std::string_view content_type) {
  std::string lower = absl::AsciiStrToLower(Sv(content_type));
  return absl::StartsWith(lower, "application/x-protobuf") ||
         absl::StartsWith(lower, "application/protobuf") ||
         absl::StartsWith(lower, "application/vnd.google.protobuf");
}

// One request's state from the moment it is routed until its response is queued.
struct Exchange {
  std::shared_ptr<listener::HttpExchange> http;
  std::shared_ptr<const Routing> routing;  // Keeps the route table alive while in flight.
  const transcoder::Route* route = nullptr;
  RouteStats* stats = nullptr;
  int upstream = -1;
  Clock::time_point start;
  Clock::time_point upstream_start;
  std::string request_id;
  bool pretty = false;
  transcoder::ResponseFormat format = transcoder::ResponseFormat::kJson;
  upstream::Metadata response_headers;
  std::string message;  // Unary: the one response message.
  int messages = 0;
  bool streaming_started = false;
  bool finished = false;
  uint64_t call_id = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int grpc_status = -1;
  std::string stream_error;  // Set when a stream message could not be transcoded.
  std::string details;       // The error's grpc-status-details-bin, if any.
};

}  // namespace

namespace {

class Responder {
 public:
  Responder(EventLoop& loop, SharedState& shared) : loop_(loop), shared_(shared) {}

  void Finish(Exchange& ex, listener::HttpResponse res, const upstream::Metadata* trailers) {
    if (ex.finished) return;
    ex.finished = true;
    int status = res.result_int();
    ex.bytes_out += res.body().size();
    if (status == 429 || status == 503) {
      // RFC 9110 §10.2.3: when to come back. The upstream's own hint wins.
      res.set(http::field::retry_after, absl::StrCat(RetryAfterSeconds(trailers, ex.details)));
    }
    // Accounted before the response can reach the client: a client that sends its next
    // request on reading this one must find this one's in-flight slot free.
    Record(ex, status);
    SendResponse(ex, std::move(res), trailers);
  }

  // The upstream's hint (a google.rpc.RetryInfo detail, or retry-after metadata in seconds),
  // else timeouts.retry_after.
  int64_t RetryAfterSeconds(const upstream::Metadata* trailers,
                            std::string_view details_bin) const {
    if (auto delay = transcoder::RetryDelayFromStatusDetails(details_bin)) return delay->count();
    if (trailers != nullptr) {
      for (const auto& [key, value] : *trailers) {
        int64_t seconds = 0;
        if (key == "retry-after" && absl::SimpleAtoi(value, &seconds) && seconds >= 0) {
          return seconds;
        }
      }
    }
    auto configured = std::chrono::ceil<std::chrono::seconds>(shared_.config.timeouts.retry_after);
    return std::max<int64_t>(0, configured.count());
  }

  void SendResponse(Exchange& ex, listener::HttpResponse res, const upstream::Metadata* trailers) {
    res.set("X-Request-Id", ex.request_id);
    for (auto& [name, value] : MetadataToHeaders(ex.response_headers, "Grpc-Metadata-")) {
      res.insert(name, value);
    }
    bool has_trailers = trailers != nullptr && !trailers->empty();
    if (has_trailers && ex.http->request().version() >= 11 && !ex.http->cancelled()) {
      // Trailing metadata travels as HTTP/1.1 trailers of a chunked response.
      HeaderList trailer_headers = MetadataToHeaders(*trailers, "Grpc-Trailer-");
      std::vector<std::string> names;
      listener::HttpFields fields;
      for (auto& [name, value] : trailer_headers) {
        names.push_back(name);
        fields.insert(name, value);
      }
      res.set(http::field::trailer, absl::StrJoin(names, ", "));
      std::string body = std::move(res.body());
      res.body().clear();
      ex.http->BeginStream(std::move(res));
      if (!body.empty()) ex.http->SendChunk(std::move(body));
      ex.http->EndStream(std::move(fields));
      return;
    }
    ex.http->Respond(std::move(res));
  }

  void Record(Exchange& ex, int http_status) {
    auto elapsed = std::chrono::duration<double>(Clock::now() - ex.start).count();
    RouteStats& stats = ex.stats ? *ex.stats : loop_.StatsFor(nullptr);
    stats.Requests(shared_, http_status).Increment();
    stats.duration->Observe(elapsed);
    stats.in_flight->Decrement();
    stats.request_bytes->Increment(static_cast<double>(ex.bytes_in));
    stats.response_bytes->Increment(static_cast<double>(ex.bytes_out));
    shared_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (shared_.access_log && shared_.access_log->Sample()) {
      AccessLogEntry e;
      const auto& req = ex.http->request();
      e.request_id = ex.request_id;
      e.peer = ex.http->peer_address();
      e.method = std::string(req.method_string());
      std::string_view target = req.target();
      e.path = std::string(target.substr(0, target.find('?')));
      e.route = stats.label;
      e.http_status = http_status;
      e.grpc_status = ex.grpc_status;
      e.duration_ms = elapsed * 1000.0;
      if (ex.upstream_start != Clock::time_point{}) {
        e.upstream_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - ex.upstream_start).count();
      }
      e.bytes_in = ex.bytes_in;
      e.bytes_out = ex.bytes_out;
      shared_.access_log->Write(e);
    }
  }

  // An error in google.rpc.Status JSON, from the proxy itself or from upstream.
  void Error(Exchange& ex, int grpc_code, std::string_view message, std::string_view details_bin,
             const upstream::Metadata* trailers, int http_status = 0,
             std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
    if (http_status == 0) http_status = transcoder::GrpcCodeToHttpStatus(grpc_code);
    listener::HttpResponse res{static_cast<http::status>(http_status),
                               ex.http->request().version()};
    res.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) res.set(name, value);
    ex.details = std::string(details_bin);
    if (ex.routing) {
      res.body() = ex.routing->transcoder->StatusJson(grpc_code, message, details_bin, ex.pretty);
    } else {
      res.body() = transcoder::MinimalStatusJson(grpc_code, message);
    }
    if (ex.grpc_status < 0) ex.grpc_status = grpc_code;
    Finish(ex, std::move(res), trailers);
  }

 private:
  EventLoop& loop_;
  SharedState& shared_;
};

}  // namespace

void RequestHandler::Handle(std::shared_ptr<listener::HttpExchange> http_exchange) {
  auto ex = std::make_shared<Exchange>();
  ex->http = std::move(http_exchange);
  ex->start = Clock::now();
  ex->routing = loop_.routing();
  const listener::HttpRequest& req = ex->http->request();
  ex->bytes_in = req.body().size();
  shared_.in_flight.fetch_add(1, std::memory_order_relaxed);

  std::string_view target = req.target();
  size_t qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  std::string_view query =
      qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);
  ex->pretty = transcoder::Transcoder::WantsPretty(query);

  HeaderList headers;
  headers.reserve(16);
  for (const auto& field : req) {
    headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  ForwardedRequestInfo forwarded = BuildUpstreamMetadata(headers, ex->http->peer_address());
  ex->request_id = forwarded.request_id;
  // Request trailers never merge into the headers; only the configured ones go upstream.
  for (const std::string& name : shared_.config.metadata.forward_request_trailers) {
    auto [begin, end] = ex->http->trailers().equal_range(name);
    for (auto it = begin; it != end; ++it) {
      forwarded.metadata.emplace_back(name, std::string(it->value()));
    }
  }

  Responder responder(loop_, shared_);
  if (!ex->routing) {
    loop_.StatsFor(nullptr).in_flight->Increment();
    responder.Error(*ex, 14, "the proxy has no schema yet: waiting for descriptors from upstream",
                    "", nullptr);
    return;
  }
  if (!transcoder::IsValidPercentEncoding(path)) {
    loop_.StatsFor(nullptr).in_flight->Increment();
    responder.Error(*ex, 3, "malformed percent-encoding in the request path", "", nullptr);
    return;
  }
  uint32_t max_in_flight = shared_.config.limits.max_in_flight_requests;
  // HEAD is GET without the body (RFC 9110 §9.3.2); the listener drops the body.
  const std::string_view method =
      req.method() == http::verb::head
          ? std::string_view("GET")
          : std::string_view(req.method_string().data(), req.method_string().size());
  const transcoder::RouteTable::MatchResult match = ex->routing->routes->Match(method, path);
  if (match.status != transcoder::RouteTable::MatchStatus::kOk) {
    ex->stats = &loop_.StatsFor(nullptr);
    ex->stats->in_flight->Increment();
    if (match.status == transcoder::RouteTable::MatchStatus::kMethodNotAllowed) {
      listener::HttpResponse res{http::status::method_not_allowed, req.version()};
      std::vector<std::string> allowed = match.allowed_methods;
      if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) {
        allowed.push_back("HEAD");
      }
      res.set(http::field::allow, absl::StrJoin(allowed, ", "));
      res.set(http::field::content_type, "application/json");
      res.body() = ex->routing->transcoder->StatusJson(
          12,
          absl::StrCat("method ", std::string(req.method_string()), " is not allowed on ",
                       std::string(path.substr(0, 256))),
          "", ex->pretty);
      ex->grpc_status = 12;
      responder.Finish(*ex, std::move(res), nullptr);
      return;
    }
    responder.Error(*ex, 5,
                    absl::StrCat("no route for ", std::string(req.method_string()), " ",
                                 std::string(path.substr(0, 256))),
                    "", nullptr);
    return;
  }
  ex->route = match.route;
  ex->stats = &loop_.StatsFor(ex->route);
  ex->stats->in_flight->Increment();
  if (max_in_flight > 0 &&
      shared_.in_flight.load(std::memory_order_relaxed) > static_cast<int64_t>(max_in_flight)) {
    responder.Error(*ex, 14,
                    absl::StrCat("more than ", max_in_flight,
                                 " requests in flight (limits.max_in_flight_requests)"),
                    "", nullptr, 503);
    return;
  }
  ex->upstream = ex->routing->UpstreamFor(*ex->route);
  if (ex->upstream < 0) {
    responder.Error(*ex, 12,
                    absl::StrCat("no upstream serves ", ex->route->method->service()->full_name()),
                    "", nullptr);
    return;
  }

  const uint32_t max_params = shared_.config.limits.max_query_params;
  if (transcoder::CountQueryParams(query) > max_params) {
    responder.Error(
        *ex, 3,
        absl::StrCat("more than ", max_params, " query parameters (limits.max_query_params)"), "",
        nullptr, 414);
    return;
  }
  std::string_view content_type = req[http::field::content_type];
  transcoder::BodyFormat body_format = transcoder::BodyFormatFor(*ex->route, content_type);
  if (!req.body().empty()) {
    // RFC 9110 §15.5.16: a body this route cannot decode is a 415, never "invalid JSON".
    std::string_view encoding = req[http::field::content_encoding];
    if (!encoding.empty() && !absl::EqualsIgnoreCase(Sv(encoding), "identity")) {
      responder.Error(
          *ex, 3,
          absl::StrCat("Content-Encoding \"", Sv(encoding.substr(0, 64)), "\" is not supported"),
          "", nullptr, 415, {{"Accept-Encoding", "identity"}});
      return;
    }
    if (body_format == transcoder::BodyFormat::kUnsupported) {
      responder.Error(
          *ex, 3,
          absl::StrCat("Content-Type \"", Sv(content_type.substr(0, 100)),
                       "\" is not supported: send ", transcoder::AcceptedMediaTypes(*ex->route)),
          "", nullptr, 415);
      return;
    }
  }
  ex->format = IsProtobufType(req[http::field::accept]) ? transcoder::ResponseFormat::kProtobuf
                                                        : transcoder::ResponseFormat::kJson;
  absl::StatusOr<std::string> message = ex->routing->transcoder->BuildRequestMessage(
      *ex->route, match.bindings, query, req.body(), body_format, content_type);
  if (!message.ok()) {
    responder.Error(*ex, transcoder::AbslCodeToGrpcCode(message.status().code()),
                    std::string(message.status().message()), "", nullptr);
    return;
  }

  // Deadline: the route's (or the default), tightened by the client's Grpc-Timeout, capped.
  std::chrono::nanoseconds timeout =
      ex->route->timeout.value_or(shared_.config.timeouts.upstream_default);
  std::string_view grpc_timeout = req["Grpc-Timeout"];
  if (!grpc_timeout.empty()) {
    std::chrono::nanoseconds client_timeout;
    if (!ParseGrpcTimeout(grpc_timeout, &client_timeout)) {
      responder.Error(
          *ex, 3,
          absl::StrCat("bad Grpc-Timeout header \"", std::string(grpc_timeout.substr(0, 32)), "\""),
          "", nullptr);
      return;
    }
    timeout = std::min(timeout, client_timeout);
  }
  timeout = std::min(timeout, std::chrono::nanoseconds(shared_.config.timeouts.max_upstream));

  upstream::GrpcRequest grpc_request;
  grpc_request.path = ex->route->grpc_path;
  grpc_request.metadata = std::move(forwarded.metadata);
  grpc_request.message = std::move(*message);
  grpc_request.timeout = timeout;

  upstream::CallHandlers handlers;
  EventLoop* loop = &loop_;
  SharedState* shared = &shared_;
  handlers.on_headers = [ex](const upstream::Metadata& metadata) {
    ex->response_headers = metadata;
  };
  bool streaming = ex->route->server_streaming;
  handlers.on_message = [ex, loop, shared, streaming](std::string msg) {
    if (ex->finished) return;
    ++ex->messages;
    if (!streaming) {
      if (ex->messages == 1) ex->message = std::move(msg);
      return;
    }
    if (!ex->stream_error.empty()) return;  // Already failed: the rest is not sent.
    auto chunk = ex->routing->transcoder->BuildStreamChunk(*ex->route, msg, ex->format, ex->pretty);
    if (!chunk.ok()) {
      // Never skip a message silently: end the stream with this error instead.
      ex->stream_error = absl::StrCat("cannot transcode stream message ", ex->messages, ": ",
                                      std::string(chunk.status().message()));
      loop->cluster(ex->upstream)->Cancel(ex->call_id);
      return;
    }
    if (!ex->streaming_started) {
      ex->streaming_started = true;
      listener::HttpResponse head{http::status::ok, ex->http->request().version()};
      head.set(http::field::content_type,
               ex->routing->transcoder->StreamContentType(*ex->route, ex->format, msg));
      head.set("X-Request-Id", ex->request_id);
      for (auto& [name, value] : MetadataToHeaders(ex->response_headers, "Grpc-Metadata-")) {
        head.insert(name, value);
      }
      ex->http->BeginStream(std::move(head));
    }
    ex->bytes_out += chunk->size();
    ex->http->SendChunk(std::move(*chunk));
  };
  handlers.on_done = [ex, loop, shared, streaming](upstream::GrpcResult result) {
    Responder responder(*loop, *shared);
    auto upstream_elapsed =
        std::chrono::duration<double>(Clock::now() - ex->upstream_start).count();
    loop->UpstreamRequests(ex->upstream, result.grpc_status).Increment();
    loop->UpstreamDuration(ex->upstream).Observe(upstream_elapsed);
    if (ex->finished) return;
    if (!ex->stream_error.empty()) {
      result.grpc_status = 13;
      result.grpc_message = ex->stream_error;
      result.status_details.clear();
      result.outcome = upstream::CallOutcome::kProtocolError;
    }
    ex->grpc_status = result.grpc_status;
    if (streaming && ex->streaming_started) {
      // The stream's end, in-band (a JSON error line, or the protobuf status frame) and as
      // trailers for the clients that read them.
      std::string end = ex->routing->transcoder->BuildStreamEnd(
          *ex->route, ex->format, result.grpc_status, result.grpc_message, result.status_details);
      if (!end.empty()) {
        ex->bytes_out += end.size();
        ex->http->SendChunk(std::move(end));
      }
      listener::HttpFields trailers;
      trailers.insert("Grpc-Status", absl::StrCat(result.grpc_status));
      if (!result.grpc_message.empty()) {
        trailers.insert("Grpc-Message", upstream::PercentEncode(result.grpc_message));
      }
      for (auto& [name, value] : MetadataToHeaders(result.trailers, "Grpc-Trailer-")) {
        trailers.insert(name, value);
      }
      ex->finished = true;
      responder.Record(*ex, 200);
      ex->http->EndStream(std::move(trailers));
      return;
    }
    if (result.outcome == upstream::CallOutcome::kProtocolError) {
      // The upstream broke the protocol (an oversized or malformed message): its fault, not
      // the client's, whatever gRPC code describes it.
      responder.Error(*ex, result.grpc_status, result.grpc_message, "", &result.trailers, 502);
      return;
    }
    if (result.grpc_status != 0) {
      responder.Error(*ex, result.grpc_status, result.grpc_message, result.status_details,
                      &result.trailers);
      return;
    }
    if (streaming) {
      // A stream that ended with no message: a 200 with no messages (and, for binary
      // protobuf, its status frame).
      listener::HttpResponse res{http::status::ok, ex->http->request().version()};
      res.set(http::field::content_type,
              ex->routing->transcoder->StreamContentType(*ex->route, ex->format, ""));
      res.body() = ex->routing->transcoder->BuildStreamEnd(*ex->route, ex->format, 0, "", "");
      responder.Finish(*ex, std::move(res), &result.trailers);
      return;
    }
    if (ex->messages != 1) {
      responder.Error(
          *ex, 13,
          absl::StrCat("upstream sent ", ex->messages, " messages for a unary call; expected 1"),
          "", &result.trailers, 502);
      return;
    }
    absl::StatusOr<transcoder::HttpBodyOut> out =
        ex->routing->transcoder->BuildResponseBody(*ex->route, ex->message, ex->format, ex->pretty);
    if (!out.ok()) {
      responder.Error(
          *ex, 13,
          absl::StrCat("cannot transcode the response: ", std::string(out.status().message())), "",
          &result.trailers, 502);
      return;
    }
    listener::HttpResponse res{http::status::ok, ex->http->request().version()};
    res.set(http::field::content_type, out->content_type);
    res.body() = std::move(out->body);
    responder.Finish(*ex, std::move(res), &result.trailers);
  };

  upstream::UpstreamCluster* cluster = loop_.cluster(ex->upstream);
  ex->upstream_start = Clock::now();
  ex->call_id = cluster->Call(std::move(grpc_request), std::move(handlers));
  std::weak_ptr<Exchange> weak = ex;
  ex->http->SetCancelHandler([weak, cluster] {
    if (auto locked = weak.lock()) cluster->Cancel(locked->call_id);
  });
}

}  // namespace tipperary::proxy
