// ProxiedRequest driven without sockets: a fake HTTP exchange, a fake upstream the test answers
// by hand, a fake clock, and the real schema, transcoder and metrics registry. Every way out of
// the state machine is here: each error status, deadlines, metadata, streams, cancellation and
// a schema swap under a request in flight.
#include "proxied_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "tipperary/metrics/registry.h"
#include "tipperary/testing/v1/test_service.pb.h"
#include "tipperary/transcoder/schema.h"

namespace tipperary::proxy {
namespace {

namespace http = boost::beast::http;
namespace v1 = tipperary::testing::v1;
using ::testing::HasSubstr;
using State = ProxiedRequest::State;

// ---- Fakes ----

class FakeHttpExchange : public http1::HttpExchange {
 public:
  explicit FakeHttpExchange(http1::HttpRequest request) : request_(std::move(request)) {}

  const http1::HttpRequest& request() const override { return request_; }
  const http1::HttpFields& trailers() const override { return trailers_; }
  const std::string& peer_address() const override { return peer_; }
  bool is_tls() const override { return false; }
  const std::string& peer_certificate_subject() const override { return subject_; }
  bool body_streamed() const override { return body_streamed_; }
  void ReadBody(std::function<void(http1::BodyPiece piece)> on_piece) override {
    ASSERT_FALSE(reader_) << "two body reads at once";
    reader_ = std::move(on_piece);
  }
  void NotifyWhenDrained(std::function<void()> on_drained) override {
    on_drained_ = std::move(on_drained);
  }

  // What the listener would do later on its loop: a body that is not streamed arrives whole.
  void FlushWholeBody() {
    if (!body_streamed_ && reader_) Deliver(Piece(request_.body(), /*last=*/true));
  }
  static http1::BodyPiece Piece(std::string data, bool last = false) {
    http1::BodyPiece piece;
    piece.data = std::move(data);
    piece.last = last;
    return piece;
  }
  // A piece of a streamed body reaches the application, which asked for one.
  void Deliver(http1::BodyPiece piece) {
    ASSERT_TRUE(reader_) << "the application did not ask for the body";
    auto reader = std::move(reader_);
    reader_ = nullptr;
    reader(std::move(piece));
  }
  bool reading_body() const { return static_cast<bool>(reader_); }
  // The slow client read everything: the drain notification, if one was asked for.
  void Drain() {
    buffered_ = 0;
    if (auto on_drained = std::move(on_drained_)) on_drained();
  }
  bool drain_awaited() const { return static_cast<bool>(on_drained_); }

  void Respond(http1::HttpResponse response) override {
    if (cancelled_) return;
    ASSERT_FALSE(response_) << "answered twice";
    response_ = std::move(response);
    complete_ = true;
  }
  void BeginStream(http1::HttpResponse header) override {
    if (cancelled_) return;
    ASSERT_FALSE(response_) << "answered twice";
    response_ = std::move(header);
    streamed_ = true;
  }
  void SendChunk(std::string data) override {
    if (cancelled_) return;
    ASSERT_TRUE(streamed_);
    ASSERT_FALSE(complete_);
    body_ += data;
    ++chunks_;
  }
  void EndStream(http1::HttpFields trailers) override {
    if (cancelled_) return;
    ASSERT_TRUE(streamed_);
    ASSERT_FALSE(complete_);
    response_trailers_ = std::move(trailers);
    complete_ = true;
  }
  void SetCancelHandler(std::function<void()> on_cancel) override { on_cancel_ = on_cancel; }
  bool cancelled() const override { return cancelled_; }

  // The client goes away.
  void Cancel() {
    cancelled_ = true;
    if (on_cancel_) on_cancel_();
  }

  unsigned status() const { return response_ ? response_->result_int() : 0; }
  std::string header(std::string_view name) const {
    return response_ ? std::string((*response_)[name]) : "";
  }
  // The whole body: a whole response's or the stream's chunks.
  std::string body() const { return streamed_ ? body_ : (response_ ? response_->body() : ""); }
  bool complete() const { return complete_; }
  bool streamed() const { return streamed_; }
  size_t buffered_bytes() const override { return buffered_; }
  size_t buffered_ = 0;  // What a test says a slow reader has left unread.
  int chunks() const { return chunks_; }
  std::string trailer(std::string_view name) const { return std::string(response_trailers_[name]); }

  http1::HttpFields trailers_;
  std::string peer_ = "10.1.2.3";
  bool body_streamed_ = false;

 private:
  http1::HttpRequest request_;
  std::string subject_;
  std::optional<http1::HttpResponse> response_;
  std::string body_;
  http1::HttpFields response_trailers_;
  bool streamed_ = false;
  bool complete_ = false;
  bool cancelled_ = false;
  int chunks_ = 0;
  std::function<void()> on_cancel_;
  std::function<void(http1::BodyPiece)> reader_;
  std::function<void()> on_drained_;
};

// Records calls; the test answers them through Call(i).
class FakeUpstream : public upstream::UpstreamClient {
 public:
  struct Pending {
    upstream::GrpcRequest request;
    upstream::CallHandlers handlers;
    bool cancelled = false;
    std::string sent;          // What Send() queued (streaming requests).
    bool half_closed = false;  // CloseSend().
    size_t unsent = 0;         // What send_buffered() says: the server's window is full.
    bool receive_paused = false;
  };

  upstream::CallId Call(upstream::GrpcRequest request, upstream::CallHandlers handlers) override {
    Pending pending;
    pending.request = std::move(request);
    pending.handlers = std::move(handlers);
    calls_.push_back(std::move(pending));
    return calls_.size();
  }
  void Cancel(upstream::CallId id) override {
    ASSERT_GE(id, 1u);
    calls_[id - 1].cancelled = true;
  }
  bool Send(upstream::CallId id, std::string framed) override {
    Pending& p = calls_.at(id - 1);
    EXPECT_TRUE(p.request.streaming);
    EXPECT_FALSE(p.half_closed);
    if (p.cancelled) return false;
    p.sent += framed;
    return true;
  }
  void CloseSend(upstream::CallId id) override { calls_.at(id - 1).half_closed = true; }
  size_t send_buffered(upstream::CallId id) const override { return calls_.at(id - 1).unsent; }
  void PauseReceive(upstream::CallId id, bool paused) override {
    calls_.at(id - 1).receive_paused = paused;
  }

  size_t size() const { return calls_.size(); }
  Pending& call(size_t i) { return calls_.at(i); }
  const std::string& metadata(size_t i, std::string_view key) {
    static const std::string none = "<none>";
    for (const auto& [k, v] : calls_.at(i).request.metadata) {
      if (k == key) return v;
    }
    return none;
  }

  // Answers call i: initial metadata, messages, then the status.
  void Answer(size_t i, std::vector<std::string> messages, upstream::GrpcResult result,
              upstream::Metadata headers = {}) {
    Pending& p = calls_.at(i);
    if (p.handlers.on_headers) p.handlers.on_headers(headers);
    for (std::string& m : messages) p.handlers.on_message(std::move(m));
    p.handlers.on_done(std::move(result));
  }

 private:
  std::deque<Pending> calls_;
};

class FakeEnvironment : public RequestEnvironment {
 public:
  class FakeTimer : public Timer {
   public:
    explicit FakeTimer(std::shared_ptr<std::function<void()>> fire) : fire_(std::move(fire)) {}

   private:
    std::shared_ptr<std::function<void()>> fire_;  // The environment holds it weakly.
  };

  FakeEnvironment() : stats_(ProxyStats::Register(registry_)), cache_(stats_) {
    config_.upstreams.push_back(config::UpstreamConfig{});
    config_.upstreams[0].name = "backend";
    config_.transcoding.allow_grpc_method_paths = true;
    SetSchema();
  }

  void SetSchema() {
    auto set = transcoder::ReadDescriptorSetFile(TIPPERARY_TEST_DESCRIPTOR_SET);
    ASSERT_TRUE(set.ok()) << set.status();
    auto routing = BuildRouting(config_, {*set});
    ASSERT_TRUE(routing.ok()) << routing.status();
    cache_.Clear();
    routing_ = *routing;
  }
  void ClearSchema() { routing_ = nullptr; }

  // A copy per request, as a reload would publish it: tests change config_ as they go.
  std::shared_ptr<const config::ProxyConfig> config() const override {
    return std::make_shared<const config::ProxyConfig>(config_);
  }
  std::shared_ptr<const Routing> routing() const override { return routing_; }
  std::shared_ptr<upstream::UpstreamClient> upstream(int index) override {
    EXPECT_EQ(index, 0);
    return std::shared_ptr<upstream::UpstreamClient>(std::shared_ptr<void>(), &upstream_);
  }
  std::shared_ptr<RouteStats> StatsFor(const transcoder::Route* route) override {
    return cache_.For(route);
  }
  void RecordUpstream(const std::string&, absl::StatusCode code, double) override {
    upstream_codes_.push_back(code);
  }
  Clock::time_point Now() const override { return now_; }
  std::unique_ptr<Timer> StartTimer(Clock::duration delay, std::function<void()> fire) override {
    auto shared = std::make_shared<std::function<void()>>(std::move(fire));
    timers_.emplace_back(now_ + delay, shared);
    return std::make_unique<FakeTimer>(std::move(shared));
  }
  // Moves the fake clock on, firing the live timers that fall due on the way, in due order.
  void Advance(Clock::duration by) {
    const Clock::time_point until = now_ + by;
    while (true) {
      auto next = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (!it->second.expired() && it->first <= until &&
            (next == timers_.end() || it->first < next->first)) {
          next = it;
        }
      }
      if (next == timers_.end()) break;
      now_ = next->first;
      auto fire = next->second.lock();
      timers_.erase(next);
      (*fire)();
    }
    now_ = until;
  }
  size_t LiveTimers() const {
    return std::count_if(timers_.begin(), timers_.end(),
                         [](const auto& t) { return !t.second.expired(); });
  }
  AccessLog* access_log() const override { return nullptr; }
  std::shared_ptr<const CorsPolicy> cors() const override {
    return std::make_shared<const CorsPolicy>(config_.cors);  // Tests change config_ as they go.
  }
  std::atomic<int64_t>& in_flight() override { return in_flight_; }

  // "name{labels} value" lines of the exposition for a metric name prefix.
  std::string Metric(std::string_view prefix) const {
    std::string out;
    std::string text = registry_.Serialize();
    size_t pos = 0;
    while (pos < text.size()) {
      size_t eol = text.find('\n', pos);
      std::string line = text.substr(pos, eol - pos);
      if (line.rfind(prefix, 0) == 0) out += line + "\n";
      pos = eol == std::string::npos ? text.size() : eol + 1;
    }
    return out;
  }

  config::ProxyConfig config_;
  FakeUpstream upstream_;
  Clock::time_point now_ = Clock::time_point(std::chrono::seconds(1000));
  std::atomic<int64_t> in_flight_{0};
  std::vector<absl::StatusCode> upstream_codes_;
  std::vector<std::pair<Clock::time_point, std::weak_ptr<std::function<void()>>>> timers_;

 private:
  metrics::Registry registry_;
  ProxyStats stats_;
  RouteStatsCache cache_;
  std::shared_ptr<const Routing> routing_;
};

http1::HttpRequest Request(http::verb method, std::string target, std::string body = "",
                           std::vector<std::pair<std::string, std::string>> headers = {}) {
  http1::HttpRequest req{method, target, 11};
  req.set(http::field::host, "proxy.test");
  for (auto& [name, value] : headers) req.insert(name, value);
  if (!body.empty() && req.count(http::field::content_type) == 0) {
    req.set(http::field::content_type, "application/json");
  }
  req.body() = std::move(body);
  return req;
}

upstream::GrpcResult Ok() { return upstream::GrpcResult{}; }

std::string AllTypesBytes(const std::string& s) {
  v1::AllTypes m;
  m.set_f_string(s);
  return m.SerializeAsString();
}

std::string ThingBytes(const std::string& name) {
  v1::Thing thing;
  thing.set_name(name);
  return thing.SerializeAsString();
}

upstream::GrpcResult Status(absl::StatusCode code, std::string message) {
  upstream::GrpcResult r;
  r.code = code;
  r.grpc_message = std::move(message);
  return r;
}

class ProxiedRequestTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeHttpExchange> Start(http1::HttpRequest req) {
    http_ = std::make_shared<FakeHttpExchange>(std::move(req));
    request_ = ProxiedRequest::Start(env_, http_);
    http_->FlushWholeBody();
    return http_;
  }

  // A client stream whose body the listener streams: the handler runs on the head alone.
  std::shared_ptr<FakeHttpExchange> StartStreamed(http1::HttpRequest req) {
    EXPECT_TRUE(ProxiedRequest::StreamsBody(env_, req));
    http_ = std::make_shared<FakeHttpExchange>(std::move(req));
    http_->body_streamed_ = true;
    request_ = ProxiedRequest::Start(env_, http_);
    return http_;
  }

  FakeEnvironment env_;
  std::shared_ptr<FakeHttpExchange> http_;
  std::shared_ptr<ProxiedRequest> request_;
};

// ---- The unary path ----

TEST_F(ProxiedRequestTest, UnaryCallFromJsonToJson) {
  auto http = Start(Request(http::verb::post, "/v1/echo", R"({"fString":"hi","fInt32":7})",
                            {{"X-Request-Id", "rid-1"}, {"Grpc-Metadata-Tenant", "acme"}}));
  EXPECT_EQ(request_->state(), State::kCalling);
  ASSERT_EQ(env_.upstream_.size(), 1u);
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  EXPECT_EQ(call.request.path, "/tipperary.testing.v1.TestService/Echo");
  v1::AllTypes sent;
  ASSERT_TRUE(sent.ParseFromString(call.request.message));
  EXPECT_EQ(sent.f_string(), "hi");
  EXPECT_EQ(sent.f_int32(), 7);
  EXPECT_EQ(env_.upstream_.metadata(0, "x-request-id"), "rid-1");
  EXPECT_EQ(env_.upstream_.metadata(0, "tenant"), "acme");
  EXPECT_EQ(env_.upstream_.metadata(0, "x-forwarded-for"), "10.1.2.3");
  EXPECT_EQ(env_.in_flight_.load(), 1);
  EXPECT_FALSE(http->complete());

  v1::AllTypes reply;
  reply.set_f_string("back");
  env_.now_ += std::chrono::milliseconds(250);
  env_.upstream_.Answer(0, {reply.SerializeAsString()}, Ok(), {{"x-resp", "r"}});
  EXPECT_EQ(request_->state(), State::kDone);
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->body(), R"({"fString":"back"})");
  EXPECT_EQ(http->header("Content-Type"), "application/json");
  EXPECT_EQ(http->header("X-Request-Id"), "rid-1");
  EXPECT_EQ(http->header("Grpc-Metadata-x-resp"), "r");
  EXPECT_EQ(env_.in_flight_.load(), 0);
  EXPECT_THAT(env_.Metric("tipperary_http_requests_total"),
              HasSubstr(R"({code="200",method="POST",route="POST /v1/echo"} 1)"));
  EXPECT_THAT(env_.Metric("tipperary_http_request_duration_seconds_sum"),
              HasSubstr(R"(route="POST /v1/echo"} 0.25)"));
  EXPECT_THAT(env_.Metric("tipperary_http_requests_in_flight"),
              HasSubstr(R"(route="POST /v1/echo"} 0)"));
  EXPECT_EQ(env_.upstream_codes_, std::vector<absl::StatusCode>{absl::StatusCode::kOk});
}

TEST_F(ProxiedRequestTest, BinaryProtobufBothWays) {
  v1::AllTypes sent;
  sent.set_f_int64(42);
  auto http = Start(
      Request(http::verb::post, "/v1/echo", sent.SerializeAsString(),
              {{"Content-Type", "application/x-protobuf"}, {"Accept", "application/x-protobuf"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  EXPECT_EQ(env_.upstream_.call(0).request.message, sent.SerializeAsString());
  env_.upstream_.Answer(0, {sent.SerializeAsString()}, Ok());
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->header("Content-Type"), "application/x-protobuf");
  EXPECT_EQ(http->body(), sent.SerializeAsString());
}

TEST_F(ProxiedRequestTest, PathVariablesAndQueryParameters) {
  Start(Request(http::verb::get, "/v1/echo/abc?fInt32=5&rInt64=1&rInt64=2"));
  v1::AllTypes sent;
  ASSERT_TRUE(sent.ParseFromString(env_.upstream_.call(0).request.message));
  EXPECT_EQ(sent.f_string(), "abc");
  EXPECT_EQ(sent.f_int32(), 5);
  EXPECT_EQ(sent.r_int64_size(), 2);
}

TEST_F(ProxiedRequestTest, HeadIsGetWithoutTheBody) {
  auto http = Start(Request(http::verb::head, "/v1/echo/abc"));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  EXPECT_EQ(env_.upstream_.call(0).request.path, "/tipperary.testing.v1.TestService/Echo");
}

TEST_F(ProxiedRequestTest, ForwardedTrailersOnlyWhenNamed) {
  env_.config_.metadata.forward_request_trailers = {"x-trace"};
  auto req = Request(http::verb::post, "/v1/echo", "{}");
  http_ = std::make_shared<FakeHttpExchange>(std::move(req));
  http_->trailers_.insert("X-Trace", "t1");
  http_->trailers_.insert("Authorization", "smuggled");
  request_ = ProxiedRequest::Start(env_, http_);
  EXPECT_EQ(env_.upstream_.metadata(0, "x-trace"), "t1");
  EXPECT_EQ(env_.upstream_.metadata(0, "authorization"), "<none>");
}

// ---- Deadlines ----

TEST_F(ProxiedRequestTest, DeadlineIsTheRoutesTightenedByGrpcTimeoutAndCapped) {
  env_.config_.timeouts.upstream_default = std::chrono::seconds(30);
  env_.config_.timeouts.max_upstream = std::chrono::seconds(60);
  Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(env_.upstream_.call(0).request.timeout, std::chrono::seconds(30));
  Start(Request(http::verb::post, "/v1/echo", "{}", {{"Grpc-Timeout", "1500m"}}));
  EXPECT_EQ(env_.upstream_.call(1).request.timeout, std::chrono::milliseconds(1500));
  Start(Request(http::verb::post, "/v1/echo", "{}", {{"Grpc-Timeout", "2H"}}));
  EXPECT_EQ(env_.upstream_.call(2).request.timeout, std::chrono::seconds(30));
  env_.config_.timeouts.upstream_default = std::chrono::hours(1);
  Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(env_.upstream_.call(3).request.timeout, std::chrono::seconds(60));
}

TEST_F(ProxiedRequestTest, BadGrpcTimeoutIs400WithoutACall) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}", {{"Grpc-Timeout", "soon"}}));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr("bad Grpc-Timeout header"));
  EXPECT_EQ(env_.upstream_.size(), 0u);
}

TEST_F(ProxiedRequestTest, UpstreamDeadlineIs504) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  upstream::GrpcResult r = Status(absl::StatusCode::kDeadlineExceeded, "deadline of 1s exceeded");
  r.outcome = upstream::CallOutcome::kDeadline;
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 504u);
  EXPECT_THAT(http->body(), HasSubstr(R"("code":4,"message":"deadline of 1s exceeded")"));
}

// ---- Errors the proxy finds itself ----

TEST_F(ProxiedRequestTest, NoSchemaYetIs503WithRetryAfter) {
  env_.ClearSchema();
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(http->status(), 503u);
  EXPECT_EQ(http->header("Retry-After"), "1");
  EXPECT_THAT(http->body(), HasSubstr("no schema yet"));
  EXPECT_THAT(env_.Metric("tipperary_http_requests_total"),
              HasSubstr(R"({code="503",method="-",route="unmatched"} 1)"));
  EXPECT_EQ(env_.in_flight_.load(), 0);
}

TEST_F(ProxiedRequestTest, NotFoundAndMethodNotAllowed) {
  auto http = Start(Request(http::verb::get, "/v1/nothing/here"));
  EXPECT_EQ(http->status(), 404u);
  EXPECT_THAT(http->body(), HasSubstr(R"("code":5,"message":"no route for GET /v1/nothing/here")"));
  http = Start(Request(http::verb::delete_, "/v1/echo/x"));
  EXPECT_EQ(http->status(), 405u);
  EXPECT_THAT(http->header("Allow"), HasSubstr("GET"));
  EXPECT_THAT(http->header("Allow"), HasSubstr("HEAD"));
  EXPECT_EQ(env_.upstream_.size(), 0u);
}

TEST_F(ProxiedRequestTest, MalformedPercentEncodingIs400) {
  auto http = Start(Request(http::verb::get, "/v1/echo/%zz"));
  EXPECT_EQ(http->status(), 400u);
}

TEST_F(ProxiedRequestTest, InFlightLimitIs503NamingItsKey) {
  env_.config_.limits.max_in_flight_requests = 1;
  Start(Request(http::verb::post, "/v1/echo", "{}"));
  auto first = http_;
  auto second = Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(second->status(), 503u);
  EXPECT_THAT(second->body(), HasSubstr("limits.max_in_flight_requests"));
  EXPECT_EQ(second->header("Retry-After"), "1");
  // The first one's answer frees its slot before it reaches the client.
  env_.upstream_.Answer(0, {"\x72\x01x"}, Ok());
  EXPECT_EQ(env_.in_flight_.load(), 0);
  auto third = Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(env_.upstream_.size(), 2u);
}

TEST_F(ProxiedRequestTest, TooManyQueryParametersIs414) {
  env_.config_.limits.max_query_params = 2;
  auto http = Start(Request(http::verb::get, "/v1/echo/x?fInt32=1&fInt64=2&fBool=true"));
  EXPECT_EQ(http->status(), 414u);
  EXPECT_THAT(http->body(), HasSubstr("limits.max_query_params"));
}

TEST_F(ProxiedRequestTest, UndecodableBodiesAre415) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "<x/>", {{"Content-Type", "text/xml"}}));
  EXPECT_EQ(http->status(), 415u);
  EXPECT_THAT(http->body(), Not(HasSubstr("<x/>")));
  // Content-Encoding is the listener's (tests/http1/compression_test.cc): never decided here.
}

TEST_F(ProxiedRequestTest, InvalidJsonIs400NamingTheProblem) {
  auto http = Start(Request(http::verb::post, "/v1/echo", R"({"fInt32":"seven"})"));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr(R"("code":3)"));
  EXPECT_EQ(env_.upstream_.size(), 0u);
}

// ---- Errors from upstream ----

TEST_F(ProxiedRequestTest, UpstreamStatusesMapOneTable) {
  const std::pair<absl::StatusCode, unsigned> cases[] = {
      {absl::StatusCode::kNotFound, 404},           {absl::StatusCode::kPermissionDenied, 403},
      {absl::StatusCode::kUnauthenticated, 401},    {absl::StatusCode::kResourceExhausted, 429},
      {absl::StatusCode::kFailedPrecondition, 400}, {absl::StatusCode::kAborted, 409},
      {absl::StatusCode::kUnimplemented, 501},      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnavailable, 503},        {absl::StatusCode::kCancelled, 499},
  };
  size_t i = 0;
  for (const auto& [code, status] : cases) {
    auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
    env_.upstream_.Answer(i++, {}, Status(code, "why"));
    EXPECT_EQ(http->status(), status) << absl::StatusCodeToString(code);
    EXPECT_THAT(http->body(), HasSubstr(absl::StrCat(R"({"code":)", static_cast<int>(code),
                                                     R"(,"message":"why")")));
  }
}

TEST_F(ProxiedRequestTest, ErrorDetailsAreRenderedAndRetryInfoSetsRetryAfter) {
  google::rpc::Status details;
  details.set_code(8);
  details.set_message("slow down");
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(3);
  retry.mutable_retry_delay()->set_nanos(1);
  details.add_details()->PackFrom(retry);
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  upstream::GrpcResult r = Status(absl::StatusCode::kResourceExhausted, "slow down");
  r.status_details = details.SerializeAsString();
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 429u);
  EXPECT_EQ(http->header("Retry-After"), "4");
  EXPECT_THAT(http->body(), HasSubstr("type.googleapis.com/google.rpc.RetryInfo"));
}

// POST /v1/openai-echo: Echo behind a route that imitates OpenAI's API (by config here;
// tipperary-worker's schema says it with the tipperary.api.v1.http_api method option).
void AddOpenAiEchoRoute(FakeEnvironment& env, std::optional<bool> ignore_unknown_fields) {
  config::RouteConfig route;
  route.method = "POST";
  route.path = "/v1/openai-echo";
  route.grpc_method = "tipperary.testing.v1.TestService/Echo";
  route.body = "*";
  route.error_format = "openai";
  route.ignore_unknown_fields = ignore_unknown_fields;
  env.config_.routes.push_back(route);
  env.SetSchema();
}

TEST_F(ProxiedRequestTest, ListenerErrorsTakeTheRoutesErrorShape) {
  AddOpenAiEchoRoute(env_, std::nullopt);
  const http1::RequestError too_large = http1::MakeRequestError(
      http::status::payload_too_large, absl::StatusCode::kResourceExhausted, "too big");
  EXPECT_EQ(ProxiedRequest::ListenerErrorBody(
                env_, Request(http::verb::post, "/v1/openai-echo?x=1", "{}"), too_large),
            R"({"error":{"message":"too big","type":"invalid_request_error","param":null,)"
            R"("code":null}})");
  EXPECT_THAT(ProxiedRequest::ListenerErrorBody(env_, Request(http::verb::post, "/v1/echo", "{}"),
                                                too_large),
              HasSubstr("\"code\":8"));
  EXPECT_EQ(ProxiedRequest::ListenerErrorBody(env_, Request(http::verb::post, "/v1/nope", "{}"),
                                              too_large),
            "");
}

// A route that imitates OpenAI's API (here by config; tipperary-worker's schema says it with
// the tipperary.api.v1.http_api method option): every error is OpenAI's error object, with the
// route's own unknown-field handling; other routes keep google.rpc.Status.
TEST_F(ProxiedRequestTest, OpenAiRoutesAnswerOpenAiErrors) {
  AddOpenAiEchoRoute(env_, true);

  // Unknown fields reach no 400 on this route...
  auto http = Start(Request(http::verb::post, "/v1/openai-echo", R"({"fString":"a","future":1})"));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  google::rpc::Status details;
  google::rpc::ErrorInfo info;
  info.set_reason("MODEL_NOT_FOUND");
  details.add_details()->PackFrom(info);
  google::rpc::BadRequest bad_request;
  bad_request.add_field_violations()->set_field("model");
  details.add_details()->PackFrom(bad_request);
  upstream::GrpcResult r = Status(absl::StatusCode::kNotFound, "no model \"x\"");
  r.status_details = details.SerializeAsString();
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 404u);
  EXPECT_EQ(http->header("Content-Type"), "application/json");
  EXPECT_EQ(http->body(), R"({"error":{"message":"no model \"x\"","type":"invalid_request_error",)"
                          R"("param":"model","code":"model_not_found"}})");

  // ...the proxy's own errors on it are OpenAI's too...
  http = Start(Request(http::verb::post, "/v1/openai-echo", "{not json"));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr(R"({"error":{"message":"invalid JSON body)"));
  EXPECT_THAT(http->body(),
              HasSubstr(R"("type":"invalid_request_error","param":null,"code":null}})"));
  http = Start(Request(http::verb::post, "/v1/openai-echo", "{}", {{"Content-Type", "text/csv"}}));
  EXPECT_EQ(http->status(), 415u);
  EXPECT_THAT(http->body(), HasSubstr(R"("type":"invalid_request_error")"));

  // ...with OpenAI's types for 429 and 5xx (and Retry-After as everywhere).
  http = Start(Request(http::verb::post, "/v1/openai-echo", "{}"));
  env_.upstream_.Answer(env_.upstream_.size() - 1, {},
                        Status(absl::StatusCode::kResourceExhausted, "queue full"));
  EXPECT_EQ(http->status(), 429u);
  EXPECT_EQ(http->header("Retry-After"), "1");
  EXPECT_EQ(http->body(), R"({"error":{"message":"queue full","type":"requests","param":null,)"
                          R"("code":"rate_limit_exceeded"}})");
  http = Start(Request(http::verb::post, "/v1/openai-echo", "{}"));
  env_.upstream_.Answer(env_.upstream_.size() - 1, {},
                        Status(absl::StatusCode::kUnavailable, "draining"));
  EXPECT_EQ(http->status(), 503u);
  EXPECT_THAT(http->body(), HasSubstr(R"("type":"server_error")"));

  // The annotated route to the same method keeps google.rpc.Status and strict fields.
  http = Start(Request(http::verb::post, "/v1/echo", R"({"future":1})"));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr(R"({"code":3,"message":)"));
}

// A route that imitates Hugging Face TEI's API (tipperary-worker's TextEmbeddingsInference says it
// with the http_api option; a config route here): TEI's error object and TEI's statuses, the
// error type named by the upstream's ErrorInfo reason or else by the status.
TEST_F(ProxiedRequestTest, TeiRoutesAnswerTeisErrorsAndStatuses) {
  config::RouteConfig route;
  route.method = "POST";
  route.path = "/embed";
  route.grpc_method = "tipperary.testing.v1.TestService/Echo";
  route.body = "*";
  route.error_format = "tei";
  env_.config_.routes.push_back(route);
  env_.SetSchema();
  auto reason = [](const char* name) {
    google::rpc::Status details;
    google::rpc::ErrorInfo info;
    info.set_reason(name);
    details.add_details()->PackFrom(info);
    return details.SerializeAsString();
  };
  struct Case {
    absl::StatusCode code;
    std::string details;
    unsigned status;
    const char* type;
  };
  for (const Case& c : std::vector<Case>{
           {absl::StatusCode::kInvalidArgument, "", 422, "Validation"},
           {absl::StatusCode::kInvalidArgument, reason("EMPTY"), 400, "Empty"},
           {absl::StatusCode::kResourceExhausted, "", 429, "Overloaded"},
           {absl::StatusCode::kInternal, "", 424, "Backend"},
           {absl::StatusCode::kUnavailable, reason("UNHEALTHY"), 503, "Unhealthy"},
           {absl::StatusCode::kNotFound, "", 404, "Validation"},
           {absl::StatusCode::kDeadlineExceeded, "", 504, "Backend"},
       }) {
    auto http = Start(Request(http::verb::post, "/embed", "{}"));
    upstream::GrpcResult r = Status(c.code, "it failed");
    r.status_details = c.details;
    env_.upstream_.Answer(env_.upstream_.size() - 1, {}, r);
    EXPECT_EQ(http->status(), c.status) << c.type;
    EXPECT_EQ(http->header("Content-Type"), "application/json");
    EXPECT_EQ(http->body(),
              absl::StrCat(R"({"error":"it failed","error_type":")", c.type, R"("})"));
    if (c.status == 429 || c.status == 503) {
      EXPECT_FALSE(http->header("Retry-After").empty()) << c.type;
    }
  }
  // The proxy's own refusals: a body that is not JSON is TEI's 422.
  auto http = Start(Request(http::verb::post, "/embed", "{not json"));
  EXPECT_EQ(http->status(), 422u);
  EXPECT_THAT(http->body(), HasSubstr(R"("error_type":"Validation"})"));
}

TEST_F(ProxiedRequestTest, RetryAfterMetadataAndTrailersOnErrors) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  upstream::GrpcResult r = Status(absl::StatusCode::kUnavailable, "restarting");
  r.trailers = {{"retry-after", "9"}, {"x-why", "deploy"}};
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 503u);
  EXPECT_EQ(http->header("Retry-After"), "9");
  // Trailing metadata as header fields: the client did not ask for trailers.
  EXPECT_FALSE(http->streamed());
  EXPECT_EQ(http->header("Grpc-Trailer-x-why"), "deploy");
  EXPECT_THAT(http->body(), HasSubstr("restarting"));
}

TEST_F(ProxiedRequestTest, UnaryTrailingMetadataAsHeadersUnlessTheClientAsksForTrailers) {
  upstream::GrpcResult r = Ok();
  r.trailers = {{"x-cost", "7"}, {"x-sig-bin", std::string("\x00\xff", 2)}};
  // No TE: one buffered response, trailing metadata among its header fields.
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  env_.upstream_.Answer(0, {AllTypesBytes("a")}, r);
  EXPECT_EQ(http->status(), 200u);
  EXPECT_FALSE(http->streamed());
  EXPECT_EQ(http->header("Grpc-Trailer-x-cost"), "7");
  EXPECT_EQ(http->header("Grpc-Trailer-x-sig-bin"), "AP8=");
  EXPECT_EQ(http->header("Trailer"), "");
  EXPECT_EQ(http->body(), R"({"fString":"a"})");

  // HTTP/1.0: headers too (it has no trailers at all), even with TE: trailers.
  auto req10 = Request(http::verb::post, "/v1/echo", "{}", {{"TE", "trailers"}});
  req10.version(10);
  http = Start(std::move(req10));
  env_.upstream_.Answer(1, {AllTypesBytes("b")}, r);
  EXPECT_FALSE(http->streamed());
  EXPECT_EQ(http->header("Grpc-Trailer-x-cost"), "7");

  // TE: trailers on HTTP/1.1: chunked, trailing metadata as trailers (announced), not headers.
  http = Start(Request(http::verb::post, "/v1/echo", "{}", {{"TE", "deflate, Trailers;q=1"}}));
  env_.upstream_.Answer(2, {AllTypesBytes("c")}, r);
  EXPECT_TRUE(http->streamed());
  EXPECT_TRUE(http->complete());
  EXPECT_EQ(http->header("Grpc-Trailer-x-cost"), "");
  EXPECT_EQ(http->header("Trailer"), "Grpc-Trailer-X-Cost, Grpc-Trailer-X-Sig-Bin");
  EXPECT_EQ(http->trailer("Grpc-Trailer-x-cost"), "7");
  EXPECT_EQ(http->body(), R"({"fString":"c"})");

  // A TE without the token does not count.
  http = Start(Request(http::verb::post, "/v1/echo", "{}", {{"TE", "gzip"}}));
  env_.upstream_.Answer(3, {AllTypesBytes("d")}, r);
  EXPECT_FALSE(http->streamed());
  EXPECT_EQ(http->header("Grpc-Trailer-x-cost"), "7");
}

TEST_F(ProxiedRequestTest, StreamsKeepTrailingMetadataAsTrailers) {
  auto http = Start(Request(http::verb::get, "/v1/stream?count=1"));
  upstream::GrpcResult r = Ok();
  r.trailers = {{"x-cost", "7"}};
  env_.upstream_.Answer(0, {ThingBytes("a")}, r);
  EXPECT_TRUE(http->streamed());
  EXPECT_EQ(http->header("Grpc-Trailer-x-cost"), "");
  EXPECT_EQ(http->trailer("Grpc-Trailer-x-cost"), "7");
  EXPECT_EQ(http->trailer("Grpc-Status"), "0");
}

TEST_F(ProxiedRequestTest, BodyOnABodylessRuleIsIgnoredOrRejected) {
  // Ignored (the default, as grpc-gateway): not decoded, so neither its JSON nor its media
  // type matters, and the call goes out with the path's fields only.
  auto http = Start(Request(http::verb::post, "/v1/parity/nobody/x", "<not json>",
                            {{"Content-Type", "application/xml"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  v1::AllTypes sent;
  ASSERT_TRUE(sent.ParseFromString(env_.upstream_.call(0).request.message));
  EXPECT_EQ(sent.f_string(), "x");
  EXPECT_EQ(sent.f_int32(), 0);
  // A GET with a body: the same.
  http = Start(Request(http::verb::get, "/v1/echo/y", R"({"fInt32": 5})"));
  ASSERT_EQ(env_.upstream_.size(), 2u);
  ASSERT_TRUE(sent.ParseFromString(env_.upstream_.call(1).request.message));
  EXPECT_EQ(sent.f_string(), "y");
  EXPECT_EQ(sent.f_int32(), 0);

  env_.config_.transcoding.unexpected_body = "reject";
  http = Start(Request(http::verb::post, "/v1/parity/nobody/x", "{}"));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr("does not take a request body"));
  http = Start(Request(http::verb::get, "/v1/echo/y", "{}"));
  EXPECT_EQ(http->status(), 400u);
  EXPECT_EQ(env_.upstream_.size(), 2u);
  // No body is fine either way; a rule with a body still takes one.
  http = Start(Request(http::verb::get, "/v1/echo/y"));
  EXPECT_EQ(env_.upstream_.size(), 3u);
  http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  EXPECT_EQ(env_.upstream_.size(), 4u);
}

TEST_F(ProxiedRequestTest, UpstreamProtocolErrorsAre502) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  upstream::GrpcResult r = Status(absl::StatusCode::kResourceExhausted,
                                  "upstream response message of 9 bytes exceeds the limit");
  r.outcome = upstream::CallOutcome::kProtocolError;
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 502u);
  EXPECT_EQ(http->header("Retry-After"), "");
}

TEST_F(ProxiedRequestTest, UnaryWithoutExactlyOneMessageIs502) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  env_.upstream_.Answer(0, {}, Ok());
  EXPECT_EQ(http->status(), 502u);
  EXPECT_THAT(http->body(), HasSubstr("upstream sent 0 messages"));
  http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  env_.upstream_.Answer(1, {"", ""}, Ok());
  EXPECT_EQ(http->status(), 502u);
}

TEST_F(ProxiedRequestTest, UnparsableResponseIs502) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  env_.upstream_.Answer(0, {"\xff\xff\xff"}, Ok());
  EXPECT_EQ(http->status(), 502u);
  EXPECT_THAT(http->body(), HasSubstr("cannot transcode the response"));
}

// ---- Server streams ----

TEST_F(ProxiedRequestTest, StreamSendsEachMessageAsItComes) {
  auto http = Start(Request(http::verb::get, "/v1/stream?count=2"));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.handlers.on_message(ThingBytes("a"));
  EXPECT_EQ(request_->state(), State::kStreaming);
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->chunks(), 1);
  call.handlers.on_message(ThingBytes("b"));
  EXPECT_EQ(http->chunks(), 2);
  call.handlers.on_done(Ok());
  EXPECT_TRUE(http->complete());
  // No Accept: a JSON array (streaming.json_format's default), sent element by element.
  EXPECT_EQ(http->header("Content-Type"), "application/json");
  EXPECT_EQ(http->header("X-Accel-Buffering"), "no");
  EXPECT_EQ(http->body(), R"([{"name":"a"},{"name":"b"}])");
  EXPECT_EQ(http->trailer("Grpc-Status"), "0");
  EXPECT_EQ(env_.in_flight_.load(), 0);
}

TEST_F(ProxiedRequestTest, StreamErrorAfterMessagesIsTheLastLineAndTrailers) {
  auto http = Start(Request(http::verb::get, "/v1/stream"));
  env_.upstream_.Answer(0, {ThingBytes("a")},
                        Status(absl::StatusCode::kFailedPrecondition, "stop\r\nnow"));
  EXPECT_THAT(http->body(),
              HasSubstr("{\"error\":{\"code\":9,\"message\":\"stop\\r\\nnow\",\"details\":[]}}\n"));
  EXPECT_EQ(http->trailer("Grpc-Status"), "9");
  EXPECT_EQ(http->trailer("Grpc-Message"), "stop%0D%0Anow");
}

TEST_F(ProxiedRequestTest, BinaryStreamEndsWithAStatusFrame) {
  auto http =
      Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "application/x-protobuf"}}));
  env_.upstream_.Answer(0, {ThingBytes("a")}, Status(absl::StatusCode::kAborted, "x"));
  EXPECT_EQ(http->header("Content-Type"), transcoder::kProtobufStreamContentType);
  std::string body = http->body();
  // Frame 1: StreamFrame{message}; frame 2: StreamFrame{status}.
  ASSERT_GT(body.size(), 4u);
  EXPECT_EQ(body[1], '\x0a');
  size_t second = 1 + static_cast<unsigned char>(body[0]);
  ASSERT_LT(second + 1, body.size());
  EXPECT_EQ(body[second + 1], '\x12');
}

TEST_F(ProxiedRequestTest, GrpcGatewayEnvelopeByConfig) {
  env_.config_.streaming.json_format = "grpc_gateway";
  auto http = Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "application/json"}}));
  env_.upstream_.Answer(0, {ThingBytes("a"), ThingBytes("b")},
                        Status(absl::StatusCode::kAborted, "x"));
  EXPECT_EQ(http->header("Content-Type"), "application/json");
  EXPECT_EQ(http->body(),
            "{\"result\":{\"name\":\"a\"}}\n{\"result\":{\"name\":\"b\"}}\n"
            "{\"error\":{\"code\":10,\"message\":\"x\",\"details\":[]}}\n");
}

TEST_F(ProxiedRequestTest, NdjsonByAccept) {
  auto http = Start(Request(http::verb::get, "/v1/stream", "",
                            {{"Accept", "application/json;q=0.5, application/x-ndjson"}}));
  env_.upstream_.Answer(0, {ThingBytes("a"), ThingBytes("b")}, Ok());
  EXPECT_EQ(http->header("Content-Type"), "application/x-ndjson");
  EXPECT_EQ(http->body(), "{\"name\":\"a\"}\n{\"name\":\"b\"}\n");
  EXPECT_EQ(http->header("Cache-Control"), "");
}

TEST_F(ProxiedRequestTest, ServerSentEventsWithHeartbeats) {
  env_.config_.streaming.sse_heartbeat_interval = std::chrono::seconds(15);
  auto http = Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "text/event-stream"}}));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  env_.Advance(std::chrono::seconds(14));
  EXPECT_EQ(request_->state(), State::kCalling);
  // 15 s with nothing from upstream: the stream begins with a heartbeat, so an ingress's read
  // timeout does not cut it.
  env_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(request_->state(), State::kStreaming);
  EXPECT_EQ(http->header("Content-Type"), "text/event-stream");
  EXPECT_EQ(http->header("Cache-Control"), "no-cache");
  EXPECT_EQ(http->body(), ": heartbeat\n\n");
  env_.Advance(std::chrono::seconds(5));  // t=20
  call.handlers.on_message(ThingBytes("a"));
  env_.Advance(std::chrono::seconds(14));  // t=34: 14 s since the message, no heartbeat yet.
  EXPECT_EQ(http->body(), ": heartbeat\n\ndata: {\"name\":\"a\"}\n\n");
  env_.Advance(std::chrono::seconds(1));  // t=35
  EXPECT_EQ(http->body(), ": heartbeat\n\ndata: {\"name\":\"a\"}\n\n: heartbeat\n\n");
  call.handlers.on_done(Status(absl::StatusCode::kUnavailable, "gone"));
  EXPECT_THAT(http->body(),
              ::testing::EndsWith("event: error\ndata: {\"code\":14,\"message\":\"gone\","
                                  "\"details\":[]}\n\n"));
  EXPECT_EQ(http->trailer("Grpc-Status"), "14");
  EXPECT_EQ(env_.LiveTimers(), 0u);  // The heartbeat stops with the stream.
  const std::string body = http->body();
  env_.Advance(std::chrono::minutes(1));
  EXPECT_EQ(http->body(), body);
}

TEST_F(ProxiedRequestTest, ServerSentEventsEndAndHeartbeatsOff) {
  env_.config_.streaming.sse_heartbeat_interval = std::chrono::seconds(0);
  auto http = Start(
      Request(http::verb::get, "/v1/stream", "", {{"Accept", "text/html, text/event-stream"}}));
  EXPECT_EQ(env_.LiveTimers(), 0u);
  env_.Advance(std::chrono::minutes(5));
  EXPECT_EQ(request_->state(), State::kCalling);
  env_.upstream_.Answer(0, {ThingBytes("a")}, Ok());
  EXPECT_EQ(http->body(),
            "data: {\"name\":\"a\"}\n\n"
            "event: end\ndata: {\"code\":0,\"message\":\"\",\"details\":[]}\n\n");
}

TEST_F(ProxiedRequestTest, AHeartbeatDoesNotKeepARequestAlive) {
  std::weak_ptr<ProxiedRequest> weak;
  {
    auto http =
        Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "text/event-stream"}}));
    weak = request_;
    request_.reset();
    EXPECT_EQ(env_.LiveTimers(), 1u);
    env_.upstream_.Answer(0, {}, Ok());
  }
  env_.upstream_.call(0).handlers = {};
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(env_.LiveTimers(), 0u);
}

TEST_F(ProxiedRequestTest, UnaryProtobufOnlyWhenAcceptPrefersIt) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}",
                            {{"Accept", "application/x-protobuf;q=0, application/json"}}));
  env_.upstream_.Answer(0, {"\x72\x01x"}, Ok());
  EXPECT_EQ(http->header("Content-Type"), "application/json");
  http = Start(Request(http::verb::post, "/v1/echo", "{}",
                       {{"Accept", "application/json;q=0.9, application/x-protobuf"}}));
  env_.upstream_.Answer(1, {"\x72\x01x"}, Ok());
  EXPECT_EQ(http->header("Content-Type"), "application/x-protobuf");
  EXPECT_EQ(http->body(), "\x72\x01x");
}

TEST_F(ProxiedRequestTest, EmptyStreamIsA200WithNothingInIt) {
  auto http = Start(Request(http::verb::get, "/v1/stream"));
  env_.upstream_.Answer(0, {}, Ok());
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->body(), "[]");
  EXPECT_FALSE(http->streamed());
}

TEST_F(ProxiedRequestTest, StreamErrorBeforeTheFirstMessageIsAnErrorResponse) {
  auto http = Start(Request(http::verb::get, "/v1/stream"));
  env_.upstream_.Answer(0, {}, Status(absl::StatusCode::kNotFound, "gone"));
  EXPECT_EQ(http->status(), 404u);
  EXPECT_FALSE(http->streamed());
}

TEST_F(ProxiedRequestTest, AMessageThatCannotBeTranscodedEndsTheStreamInsteadOfVanishing) {
  auto http = Start(Request(http::verb::get, "/v1/stream"));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.handlers.on_message(ThingBytes("a"));
  call.handlers.on_message("\xff\xff\xff");
  EXPECT_TRUE(call.cancelled);
  call.handlers.on_message(ThingBytes("c"));  // Raced the cancel: not sent.
  upstream::GrpcResult cancelled = Status(absl::StatusCode::kCancelled, "cancelled");
  cancelled.outcome = upstream::CallOutcome::kCancelled;
  call.handlers.on_done(cancelled);
  EXPECT_THAT(http->body(), HasSubstr("cannot transcode stream message 2"));
  EXPECT_THAT(http->body(), Not(HasSubstr("\"c\"")));
  EXPECT_EQ(http->trailer("Grpc-Status"), "13");
}

// ---- gRPC-Web ----

std::string WebFrame(char flag, const std::string& payload) {
  std::string f(1, flag);
  const auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<char>(n >> shift));
  return f + payload;
}

constexpr char kEchoPath[] = "/tipperary.testing.v1.TestService/Echo";
constexpr char kStreamPath[] = "/tipperary.testing.v1.TestService/StreamThings";

TEST_F(ProxiedRequestTest, GrpcWebUnaryPassesTheMessageThroughWithTrailersInTheBody) {
  v1::AllTypes sent;
  sent.set_f_string("hi");
  auto http = Start(Request(http::verb::post, kEchoPath, WebFrame(0, sent.SerializeAsString()),
                            {{"Content-Type", "application/grpc-web+proto"},
                             {"X-User", "u1"},
                             {"Cookie", "session=1"},
                             {"Sec-Fetch-Mode", "cors"},
                             {"X-Grpc-Web", "1"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  EXPECT_EQ(env_.upstream_.call(0).request.path, kEchoPath);
  EXPECT_EQ(env_.upstream_.call(0).request.message, sent.SerializeAsString());
  // A page's metadata are plain header fields; the browser's own are not metadata.
  EXPECT_EQ(env_.upstream_.metadata(0, "x-user"), "u1");
  EXPECT_EQ(env_.upstream_.metadata(0, "cookie"), "<none>");
  EXPECT_EQ(env_.upstream_.metadata(0, "sec-fetch-mode"), "<none>");
  upstream::GrpcResult ok = Ok();
  ok.trailers = {{"x-cost", "3"}};
  env_.upstream_.Answer(0, {"\x72\x01x"}, ok, {{"x-init", "i"}});
  EXPECT_EQ(http->status(), 200u);
  EXPECT_FALSE(http->streamed());
  EXPECT_EQ(http->header("Content-Type"), "application/grpc-web+proto");
  EXPECT_EQ(http->header("x-init"), "i");
  EXPECT_EQ(http->body(),
            WebFrame(0, "\x72\x01x") + WebFrame('\x80', "grpc-status:0\r\nx-cost:3\r\n"));
}

TEST_F(ProxiedRequestTest, GrpcWebTextServerStream) {
  v1::StreamRequest req;
  req.set_count(2);
  auto http = Start(Request(http::verb::post, kStreamPath,
                            absl::Base64Escape(WebFrame(0, req.SerializeAsString())),
                            {{"Content-Type", "application/grpc-web-text"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  EXPECT_EQ(env_.upstream_.call(0).request.message, req.SerializeAsString());
  env_.upstream_.Answer(0, {ThingBytes("a"), ThingBytes("b")},
                        Status(absl::StatusCode::kFailedPrecondition, "stop"));
  EXPECT_TRUE(http->streamed());
  EXPECT_EQ(http->header("Content-Type"), "application/grpc-web-text+proto");
  EXPECT_EQ(http->body(),
            absl::Base64Escape(WebFrame(0, ThingBytes("a"))) +
                absl::Base64Escape(WebFrame(0, ThingBytes("b"))) +
                absl::Base64Escape(WebFrame('\x80', "grpc-status:9\r\ngrpc-message:stop\r\n")));
  EXPECT_EQ(http->trailer("Grpc-Status"), "");  // In the body, not in HTTP trailers.
}

TEST_F(ProxiedRequestTest, GrpcWebEmptyStreamIsItsTrailerFrame) {
  auto http = Start(Request(http::verb::post, kStreamPath, WebFrame(0, ""),
                            {{"Content-Type", "application/grpc-web"}}));
  env_.upstream_.Answer(0, {}, Ok());
  EXPECT_EQ(http->body(), WebFrame('\x80', "grpc-status:0\r\n"));
}

TEST_F(ProxiedRequestTest, GrpcWebErrorsAre200sWithTheStatusInTheTrailerFrame) {
  auto http = Start(Request(http::verb::post, "/tipperary.testing.v1.TestService/Nope",
                            WebFrame(0, ""), {{"Content-Type", "application/grpc-web"}}));
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->header("Content-Type"), "application/grpc-web+proto");
  EXPECT_EQ(http->body().substr(0, 1), "\x80");
  EXPECT_THAT(http->body(), HasSubstr("grpc-status:12\r\ngrpc-message:unknown gRPC method"));
  http = Start(Request(http::verb::post, kEchoPath, std::string("\0\0", 2),
                       {{"Content-Type", "application/grpc-web"}}));
  EXPECT_THAT(http->body(), HasSubstr("grpc-status:3\r\ngrpc-message:the gRPC-Web request body"));
  EXPECT_EQ(env_.upstream_.size(), 0u);
  http = Start(Request(http::verb::post, kEchoPath, WebFrame(0, ""),
                       {{"Content-Type", "application/grpc-web"}}));
  env_.upstream_.Answer(0, {}, Status(absl::StatusCode::kUnavailable, "down 100%"));
  EXPECT_EQ(http->status(), 200u);
  EXPECT_EQ(http->body(), WebFrame('\x80', "grpc-status:14\r\ngrpc-message:down 100%25\r\n"));
}

TEST_F(ProxiedRequestTest, GrpcWebOffIsPlainHttp) {
  env_.config_.grpc_web.enabled = false;
  auto http = Start(Request(http::verb::post, kEchoPath, WebFrame(0, ""),
                            {{"Content-Type", "application/grpc-web"}}));
  EXPECT_EQ(http->status(), 415u);  // The gRPC method path's JSON route refuses the media type.
}

// ---- OPTIONS and CORS ----

TEST_F(ProxiedRequestTest, OptionsListsTheMethodsOfATarget) {
  auto http = Start(Request(http::verb::options, "/v1/echo"));
  EXPECT_EQ(http->status(), 204u);
  EXPECT_EQ(http->header("Allow"), "POST, OPTIONS");
  http = Start(Request(http::verb::options, "/v1/names/x"));
  EXPECT_EQ(http->header("Allow"), "GET, HEAD, OPTIONS");
  http = Start(Request(http::verb::options, "*"));
  EXPECT_EQ(http->status(), 204u);
  EXPECT_EQ(http->header("Allow"), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  http = Start(Request(http::verb::options, "/v1/nothing"));
  EXPECT_EQ(http->status(), 404u);
  EXPECT_EQ(env_.upstream_.size(), 0u);
}

TEST_F(ProxiedRequestTest, CorsPreflightAnsweredByTheProxy) {
  env_.config_.cors.allow_origins = {"https://app.example"};
  auto preflight = [&](std::string origin, std::string method, std::string headers) {
    return Start(Request(http::verb::options, kEchoPath, "",
                         {{"Origin", origin},
                          {"Access-Control-Request-Method", method},
                          {"Access-Control-Request-Headers", headers}}));
  };
  auto http = preflight("https://app.example", "POST", "content-type,x-grpc-web");
  EXPECT_EQ(http->status(), 204u);
  EXPECT_EQ(http->header("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(http->header("Access-Control-Allow-Methods"), "GET, POST, PUT, PATCH, DELETE");
  EXPECT_EQ(http->header("Access-Control-Max-Age"), "600");
  EXPECT_EQ(http->header("Access-Control-Expose-Headers"), "");
  http = preflight("https://evil.example", "POST", "content-type");
  EXPECT_EQ(http->status(), 403u);
  EXPECT_EQ(http->header("Access-Control-Allow-Origin"), "");
  EXPECT_THAT(http->body(), HasSubstr("cors.allow_origins"));
  EXPECT_EQ(preflight("https://app.example", "PURGE", "")->status(), 403u);
  EXPECT_EQ(preflight("https://app.example", "POST", "x-secret")->status(), 403u);
  EXPECT_EQ(env_.upstream_.size(), 0u);
  // CORS off: a preflight is a plain OPTIONS, with nothing that lets a browser go on.
  env_.config_.cors.allow_origins.clear();
  http = preflight("https://app.example", "POST", "content-type");
  EXPECT_EQ(http->header("Access-Control-Allow-Origin"), "");
}

TEST_F(ProxiedRequestTest, CorsHeadersOnAnswersAndErrors) {
  env_.config_.cors.allow_origins = {"https://*.example"};
  auto http = Start(Request(http::verb::get, "/v1/nothing", "", {{"Origin", "https://a.example"}}));
  EXPECT_EQ(http->status(), 404u);
  EXPECT_EQ(http->header("Access-Control-Allow-Origin"), "https://a.example");
  EXPECT_EQ(http->header("Vary"), "Origin");
  http = Start(Request(http::verb::post, "/v1/echo", "{}", {{"Origin", "https://a.example"}}));
  env_.upstream_.Answer(0, {"\x72\x01x"}, Ok());
  EXPECT_EQ(http->status(), 200u);
  EXPECT_THAT(http->header("Access-Control-Expose-Headers"), HasSubstr("grpc-status"));
  http = Start(Request(http::verb::post, "/v1/echo", "{}", {{"Origin", "https://b.other"}}));
  env_.upstream_.Answer(1, {"\x72\x01x"}, Ok());
  EXPECT_EQ(http->header("Access-Control-Allow-Origin"), "");
}

// ---- Client streams, sent whole ----

std::string Framed(const std::vector<std::string>& messages) {
  std::string out;
  for (const std::string& m : messages) {
    out.push_back('\0');
    const auto n = static_cast<uint32_t>(m.size());
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
    out += m;
  }
  return out;
}

TEST_F(ProxiedRequestTest, ClientStreamFromNdjsonOrAnArray) {
  auto http = Start(Request(http::verb::post, "/v1/things:collect",
                            "{\"name\":\"a\"}\n{\"name\":\"b\",\"size\":\"2\"}\n",
                            {{"Content-Type", "application/x-ndjson"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  v1::Thing b;
  b.set_name("b");
  b.set_size(2);
  EXPECT_TRUE(env_.upstream_.call(0).request.streaming);
  EXPECT_EQ(env_.upstream_.call(0).sent, Framed({ThingBytes("a"), b.SerializeAsString()}));
  EXPECT_TRUE(env_.upstream_.call(0).half_closed);
  http = Start(Request(http::verb::post, "/v1/things:collect", R"([{"name":"a"}, {"name":"c"}])"));
  EXPECT_EQ(env_.upstream_.call(1).sent, Framed({ThingBytes("a"), ThingBytes("c")}));
  // No body: a stream of no messages.
  http = Start(Request(http::verb::post, "/v1/things:collect"));
  EXPECT_TRUE(env_.upstream_.call(2).request.streaming);
  EXPECT_EQ(env_.upstream_.call(2).sent, "");
  EXPECT_TRUE(env_.upstream_.call(2).half_closed);
}

upstream::GrpcResult CancelledResult() {
  upstream::GrpcResult cancelled = Status(absl::StatusCode::kCancelled, "cancelled");
  cancelled.outcome = upstream::CallOutcome::kCancelled;
  return cancelled;
}

TEST_F(ProxiedRequestTest, ABadMessageInAClientStreamIsA400NamingIt) {
  // The messages before it have gone upstream already; the call is cancelled and the client
  // gets the error once the cancel completes.
  auto http =
      Start(Request(http::verb::post, "/v1/things:collect", "{\"name\":\"a\"}\n{\"nope\":1}\n"));
  FakeUpstream::Pending& first = env_.upstream_.call(0);
  EXPECT_EQ(first.sent, Framed({ThingBytes("a")}));
  EXPECT_TRUE(first.cancelled);
  EXPECT_FALSE(first.half_closed);
  first.handlers.on_done(CancelledResult());
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr("message 2 of the stream"));
  http = Start(Request(http::verb::post, "/v1/things:collect", "{\"name\":\"a\"}\n{\"na"));
  env_.upstream_.call(1).handlers.on_done(CancelledResult());
  EXPECT_EQ(http->status(), 400u);
  EXPECT_THAT(http->body(), HasSubstr("message 2 of the stream is not a JSON value"));
}

TEST_F(ProxiedRequestTest, AStreamedBodyGoesUpstreamMessageByMessage) {
  auto http = StartStreamed(Request(http::verb::post, "/v1/things:collect", "",
                                    {{"Content-Type", "application/x-ndjson"}}));
  ASSERT_EQ(env_.upstream_.size(), 1u);
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  EXPECT_TRUE(call.request.streaming);
  ASSERT_TRUE(http->reading_body());
  // A message cut by the reads goes when its end arrives, not before.
  http->Deliver(FakeHttpExchange::Piece("{\"name\":\"a\"}\n{\"na"));
  EXPECT_EQ(call.sent, Framed({ThingBytes("a")}));
  ASSERT_TRUE(http->reading_body());
  http->Deliver(FakeHttpExchange::Piece("me\":\"b\"}\n"));
  EXPECT_EQ(call.sent, Framed({ThingBytes("a"), ThingBytes("b")}));
  EXPECT_FALSE(call.half_closed);
  http->Deliver(FakeHttpExchange::Piece("", /*last=*/true));
  EXPECT_TRUE(call.half_closed);
  EXPECT_FALSE(http->reading_body());
  env_.upstream_.Answer(0, {""}, Ok());  // An empty ListThingsResponse.
  EXPECT_EQ(http->status(), 200u);
  // The streamed body's bytes count as they arrive: 17 + 9.
  EXPECT_THAT(env_.Metric("tipperary_http_request_bytes_total"), HasSubstr("} 26\n"));
}

TEST_F(ProxiedRequestTest, AStreamedBodyWaitsWhileTheUpstreamHasAWindowToTake) {
  auto http = StartStreamed(Request(http::verb::post, "/v1/things:collect", "",
                                    {{"Content-Type", "application/x-ndjson"}}));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.unsent = env_.config_.limits.stream_window_bytes;  // The server's window is spent.
  http->Deliver(FakeHttpExchange::Piece("{\"name\":\"a\"}\n"));
  EXPECT_FALSE(http->reading_body()) << "read on while the upstream could not take it";
  call.unsent = 0;
  call.handlers.on_send_drained();
  EXPECT_TRUE(http->reading_body());
}

TEST_F(ProxiedRequestTest, AStreamedBodyThatBreaksOffIsAnsweredWithItsError) {
  auto http = StartStreamed(Request(http::verb::post, "/v1/things:collect", "",
                                    {{"Content-Type", "application/x-ndjson"}}));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  http->Deliver(FakeHttpExchange::Piece("{\"name\":\"a\"}\n"));
  http1::BodyPiece broken;
  broken.error =
      http1::MakeRequestError(http::status::payload_too_large, absl::StatusCode::kResourceExhausted,
                              "too much (limits.max_streamed_request_body_bytes)");
  http->Deliver(std::move(broken));
  EXPECT_TRUE(call.cancelled);
  call.handlers.on_done(CancelledResult());
  EXPECT_EQ(http->status(), 413u);
  EXPECT_THAT(http->body(), HasSubstr("limits.max_streamed_request_body_bytes"));
}

TEST_F(ProxiedRequestTest, OnlyJsonClientStreamsAreStreamedByTheListener) {
  EXPECT_TRUE(ProxiedRequest::StreamsBody(env_, Request(http::verb::post, "/v1/things:echo", "",
                                                        {{"Content-Type", "application/json"}})));
  // Unary and server-streaming routes, unknown paths, binary bodies: read whole.
  EXPECT_FALSE(ProxiedRequest::StreamsBody(env_, Request(http::verb::post, "/v1/echo", "{}")));
  EXPECT_FALSE(ProxiedRequest::StreamsBody(env_, Request(http::verb::post, "/v1/nope", "{}")));
  EXPECT_FALSE(
      ProxiedRequest::StreamsBody(env_, Request(http::verb::post, "/v1/things:collect", "x",
                                                {{"Content-Type", "application/x-protobuf"}})));
  env_.ClearSchema();
  EXPECT_FALSE(
      ProxiedRequest::StreamsBody(env_, Request(http::verb::post, "/v1/things:collect", "{}")));
}

TEST_F(ProxiedRequestTest, BidiStreamsRepliesAsTheyCome) {
  auto http = Start(Request(http::verb::post, "/v1/things:echo", "{\"name\":\"a\"}\n",
                            {{"Accept", "application/x-ndjson"}}));
  env_.upstream_.Answer(0, {ThingBytes("a")}, Ok());
  EXPECT_TRUE(http->streamed());
  EXPECT_EQ(http->body(), "{\"name\":\"a\"}\n");
}

TEST_F(ProxiedRequestTest, ASlowReaderHoldsTheUpstreamBackUntilItCatchesUp) {
  auto http =
      Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "application/x-ndjson"}}));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.handlers.on_message(ThingBytes("a"));
  EXPECT_FALSE(call.receive_paused);
  http->buffered_ = env_.config_.limits.stream_window_bytes;  // A window behind.
  call.handlers.on_message(ThingBytes("b"));
  EXPECT_TRUE(call.receive_paused);
  EXPECT_TRUE(http->drain_awaited());
  EXPECT_FALSE(call.cancelled);
  http->Drain();
  EXPECT_FALSE(call.receive_paused);
  call.handlers.on_message(ThingBytes("c"));
  env_.upstream_.Answer(0, {}, Ok());
  EXPECT_EQ(http->body(), "{\"name\":\"a\"}\n{\"name\":\"b\"}\n{\"name\":\"c\"}\n");
}

TEST_F(ProxiedRequestTest, ASlowReaderEndsTheStreamInsteadOfGrowingMemory) {
  env_.config_.limits.max_stream_buffer_bytes = 64 << 10;
  auto http =
      Start(Request(http::verb::get, "/v1/stream", "", {{"Accept", "application/x-ndjson"}}));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.handlers.on_message(ThingBytes("a"));
  EXPECT_FALSE(call.cancelled);
  http->buffered_ = (64 << 10) + 1;  // The client stopped reading.
  call.handlers.on_message(ThingBytes("b"));
  EXPECT_TRUE(call.cancelled);
  call.handlers.on_message(ThingBytes("c"));  // Raced the cancel: not sent.
  upstream::GrpcResult cancelled = Status(absl::StatusCode::kCancelled, "cancelled");
  cancelled.outcome = upstream::CallOutcome::kCancelled;
  call.handlers.on_done(cancelled);
  EXPECT_THAT(http->body(), ::testing::StartsWith("{\"name\":\"a\"}\n{\"name\":\"b\"}\n"));
  EXPECT_THAT(http->body(), HasSubstr("{\"error\":{\"code\":8,"));
  EXPECT_THAT(http->body(), HasSubstr("limits.max_stream_buffer_bytes"));
  EXPECT_EQ(http->trailer("Grpc-Status"), "8");
}

// ---- Cancellation ----

TEST_F(ProxiedRequestTest, ClientGoneCancelsTheCallAndNothingIsSent) {
  auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
  http->Cancel();
  EXPECT_TRUE(env_.upstream_.call(0).cancelled);
  upstream::GrpcResult r = Status(absl::StatusCode::kCancelled, "call cancelled by the client");
  r.outcome = upstream::CallOutcome::kCancelled;
  env_.upstream_.Answer(0, {}, r);
  EXPECT_EQ(http->status(), 0u);
  EXPECT_EQ(request_->state(), State::kDone);
  EXPECT_EQ(env_.in_flight_.load(), 0);
  EXPECT_THAT(env_.Metric("tipperary_http_requests_total"),
              HasSubstr(R"({code="499",method="POST",route="POST /v1/echo"} 1)"));
}

TEST_F(ProxiedRequestTest, ARequestHoldsItselfUntilItsCallEnds) {
  std::weak_ptr<ProxiedRequest> weak;
  {
    auto http = Start(Request(http::verb::post, "/v1/echo", "{}"));
    weak = request_;
    request_.reset();
    EXPECT_FALSE(weak.expired());  // The call's handlers hold it.
    env_.upstream_.Answer(0, {"\x72\x01x"}, Ok());
  }
  env_.upstream_.call(0).handlers = {};  // A real client drops them after on_done.
  EXPECT_TRUE(weak.expired());
}

// ---- A schema swap under a request in flight ----

TEST_F(ProxiedRequestTest, SchemaSwapKeepsTheRequestsSchemaAndStats) {
  env_.config_.streaming.json_format = "grpc_gateway";
  auto http = Start(Request(http::verb::get, "/v1/stream"));
  FakeUpstream::Pending& call = env_.upstream_.call(0);
  call.handlers.on_message(ThingBytes("a"));
  env_.SetSchema();  // New routes, stats cache cleared: the old ones must live on.
  call.handlers.on_message(ThingBytes("b"));
  call.handlers.on_done(Ok());
  EXPECT_EQ(http->body(), "{\"result\":{\"name\":\"a\"}}\n{\"result\":{\"name\":\"b\"}}\n");
  EXPECT_THAT(env_.Metric("tipperary_http_requests_total"),
              HasSubstr(R"({code="200",method="GET",route="GET /v1/stream"} 1)"));
  EXPECT_THAT(env_.Metric("tipperary_http_requests_in_flight"),
              HasSubstr(R"(route="GET /v1/stream"} 0)"));
}

// Many requests in flight across many swaps, finishing in an order unrelated to their start:
// each keeps the schema and the stats it started with (the ASan and TSan presets run this).
TEST_F(ProxiedRequestTest, SchemaSwapsUnderManyRequestsInFlight) {
  env_.config_.streaming.json_format = "grpc_gateway";
  constexpr int kRequests = 64;
  std::vector<std::shared_ptr<FakeHttpExchange>> https;
  std::vector<std::shared_ptr<ProxiedRequest>> requests;
  for (int i = 0; i < kRequests; ++i) {
    https.push_back(Start(Request(http::verb::get, "/v1/stream")));
    requests.push_back(request_);
    if (i % 3 == 0) env_.SetSchema();
  }
  ASSERT_EQ(env_.upstream_.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    env_.upstream_.call(i).handlers.on_message(ThingBytes(absl::StrCat("m", i)));
    env_.SetSchema();
  }
  requests.clear();  // Only the calls' handlers keep them alive now.
  request_.reset();
  for (int i = kRequests - 1; i >= 0; --i) {
    env_.upstream_.call(i).handlers.on_done(Ok());
    env_.upstream_.call(i).handlers = {};
    if (i % 5 == 0) env_.SetSchema();
  }
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(https[i]->body(), absl::StrCat("{\"result\":{\"name\":\"m", i, "\"}}\n"));
  }
  EXPECT_EQ(env_.in_flight_.load(), 0);
}

}  // namespace
}  // namespace tipperary::proxy
