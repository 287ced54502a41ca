// HttpListener against real clients: raw TCP sockets for byte-level checks, curl and openssl
// s_client for realism, and a TLS CA + server/client certificates made with the openssl CLI.
#include "tipperary/http1/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tipperary::http1 {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
namespace net = boost::asio;
namespace http = boost::beast::http;

// Hang guard for every blocking client read.
constexpr int kRecvTimeoutSeconds = 10;

// ---- The application under the listener ----

class TestApp {
 public:
  std::atomic<int> cancels{0};
  std::atomic<int> hangs{0};
  std::shared_ptr<HttpExchange> live;  // /live: the test sends its chunks (loop thread only).
  // /upload-hold: reads on when the test runs this (loop thread only).
  std::function<void()> held;

  // /upload*: a streamed body (StreamingOptions selects it).
  static bool IsUpload(const HttpRequest& head) {
    return std::string_view(head.target().data(), head.target().size()).rfind("/upload", 0) == 0;
  }

  // /json/<n>: a compressible JSON body of n bytes.
  static std::string JsonBody(size_t n) {
    std::string body = "[";
    for (int i = 0; body.size() + 12 < n; ++i) body += std::to_string(i * 7919 % 10007) + ",";
    body += "0";
    body.append(n - body.size() - 1, ' ');
    return body + "]";
  }

  RequestHandler Handler(net::io_context& ioc) {
    return [this, &ioc](std::shared_ptr<HttpExchange> ex) { Handle(ioc, std::move(ex)); };
  }

 private:
  static HttpResponse Text(const HttpExchange& ex, std::string body) {
    HttpResponse res{http::status::ok, ex.request().version()};
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(body);
    return res;
  }

  struct Upload {
    uint64_t bytes = 0;
    int pieces = 0;
    bool hold = false;
  };

  // Reads the body piece by piece, then answers what arrived.
  void ReadUpload(const std::shared_ptr<HttpExchange>& ex, const std::shared_ptr<Upload>& up) {
    ex->ReadBody([this, ex, up](BodyPiece piece) {
      if (piece.error) {
        HttpResponse res{piece.error->status, 11};
        res.body() = piece.error->message;
        ex->Respond(std::move(res));
        return;
      }
      up->bytes += piece.data.size();
      ++up->pieces;
      if (piece.last) {
        ex->Respond(Text(*ex, "streamed=" + std::to_string(ex->body_streamed()) +
                                  " bytes=" + std::to_string(up->bytes) +
                                  " trailer=" + std::string(ex->trailers()["x-t"])));
        return;
      }
      if (up->hold && up->pieces == 1) {
        held = [this, ex, up] { ReadUpload(ex, up); };
        return;
      }
      ReadUpload(ex, up);
    });
  }

  void Handle(net::io_context& ioc, std::shared_ptr<HttpExchange> ex) {
    std::string target(ex->request().target());
    if (target.rfind("/delay/", 0) == 0) {
      // /delay/<ms>/<tag>: answers <tag> after <ms>, to complete out of order.
      std::string rest = target.substr(7);
      size_t slash = rest.find('/');
      int ms = std::stoi(rest.substr(0, slash));
      std::string tag = slash == std::string::npos ? "" : rest.substr(slash + 1);
      auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(ms));
      timer->async_wait(
          [ex, timer, tag](boost::system::error_code) { ex->Respond(Text(*ex, tag)); });
    } else if (target == "/stream") {
      HttpResponse header{http::status::ok, ex->request().version()};
      header.set(http::field::content_type, "text/plain");
      ex->BeginStream(std::move(header));
      ex->SendChunk("a");
      net::post(ioc, [ex, &ioc] {
        ex->SendChunk("bb");
        net::post(ioc, [ex] {
          ex->SendChunk("ccc");
          HttpFields trailers;
          trailers.set("x-trailer", "done");
          ex->EndStream(std::move(trailers));
        });
      });
    } else if (target.rfind("/json/", 0) == 0) {
      HttpResponse res{http::status::ok, ex->request().version()};
      res.set(http::field::content_type, "application/json");
      res.body() = JsonBody(std::stoul(target.substr(6)));
      ex->Respond(std::move(res));
    } else if (target == "/live") {
      HttpResponse header{http::status::ok, ex->request().version()};
      header.set(http::field::content_type, "application/x-ndjson");
      ex->BeginStream(std::move(header));
      ex->SendChunk("{\"n\":0}\n");
      live = ex;
    } else if (target == "/upload-early") {
      ex->Respond(Text(*ex, "early"));  // Before the body: the connection cannot be reused.
    } else if (IsUpload(ex->request())) {
      auto upload = std::make_shared<Upload>();
      upload->hold = target == "/upload-hold";
      ReadUpload(ex, upload);
    } else if (target == "/hang") {
      ex->SetCancelHandler([this] { cancels.fetch_add(1); });
      hangs.fetch_add(1);
    } else if (target == "/subject") {
      ex->Respond(Text(*ex, ex->peer_certificate_subject() + (ex->is_tls() ? "|tls" : "|plain")));
    } else if (target == "/throw") {
      throw std::runtime_error("handler failure");
    } else {
      const HttpRequest& req = ex->request();
      std::string body = std::string(req.method_string()) + " " + target + "\n";
      body += "body=" + req.body() + "\n";
      body += "x-echo=" + std::string(req["x-echo"]) + "\n";
      body += "peer=" + ex->peer_address() + "\n";
      ex->Respond(Text(*ex, std::move(body)));
    }
  }
};

// ---- A blocking TCP client ----

struct RawResponse {
  bool ok = false;
  std::string error;
  http::response<http::string_body> msg;
  std::string raw;
};

class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{kRecvTimeoutSeconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Sends what the socket takes within `wait` (without blocking longer): 0 when it took nothing.
  ssize_t SendSome(std::string_view data, std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return 0;
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  // One response, parsed by Beast; raw holds its exact bytes.
  RawResponse ReadResponse(bool head_request = false) {
    RawResponse r;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    parser.eager(true);
    if (head_request) parser.skip(true);
    for (;;) {
      if (!buf_.empty()) {
        boost::system::error_code ec;
        size_t n = parser.put(net::buffer(buf_), ec);
        r.raw.append(buf_, 0, n);
        buf_.erase(0, n);
        if (ec && ec != http::error::need_more) {
          r.error = ec.message();
          return r;
        }
        if (parser.is_done()) {
          r.msg = parser.release();
          r.ok = true;
          return r;
        }
        if (!ec && n > 0) continue;
      }
      if (!Fill()) {
        boost::system::error_code ec;
        if (parser.got_some()) parser.put_eof(ec);
        if (!ec && parser.got_some() && parser.is_done()) {
          r.msg = parser.release();
          r.ok = true;
          return r;
        }
        r.error = "connection closed before a full response";
        return r;
      }
    }
  }

  // Everything until the server closes (or the hang guard fires).
  std::string ReadToEof() {
    while (Fill()) {
    }
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  // One read's bytes ("" at EOF or when the hang guard fires).
  std::string ReadSome() {
    if (buf_.empty() && !Fill()) return "";
    return std::exchange(buf_, std::string());
  }

  // True when the server closed the connection without sending anything more.
  bool ClosedSilently() { return ReadToEof().empty() && eof_; }

  // True when nothing arrives within the wait (the connection stays open and quiet).
  bool QuietFor(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(wait.count())) == 0;
  }

 private:
  bool Fill() {
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) {
      eof_ = (n == 0) || errno == ECONNRESET;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool HaveTool(const std::string& tool) {
  return RunCommand("command -v " + tool + " >/dev/null").exit_code == 0;
}

// Polls a condition as a hang guard (never as a timing assertion).
bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(extra_headers) + "\r\n";
}

// ---- Fixture: a listener on 127.0.0.1:0 driven by a background io_context thread ----

class ListenerTest : public ::testing::Test {
 protected:
  static ListenerOptions DefaultOptions() {
    ListenerOptions options;
    options.name = "test";
    options.endpoint.host = "127.0.0.1";
    options.endpoint.port = 0;
    options.log_listening = false;
    return options;
  }

  void StartServer(ListenerOptions options = DefaultOptions(),
                   std::shared_ptr<net::ssl::context> tls = nullptr) {
    auto listener = HttpListener::Create(ioc_, std::move(options), app_.Handler(ioc_), tls);
    ASSERT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
    listener_->Start();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  void TearDown() override {
    if (listener_ && thread_.joinable()) {
      OnLoop([this] {
        listener_->StopAccepting();
        listener_->CloseAll();
      });
    }
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    listener_.reset();
  }

  void OnLoop(const std::function<void()>& fn) {
    std::promise<void> done;
    net::post(ioc_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  uint16_t port() const { return listener_->port(); }
  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port()) + std::string(path);
  }

  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(ioc_);
  TestApp app_;
  std::unique_ptr<HttpListener> listener_;
  std::thread thread_;
};

TEST_F(ListenerTest, KeepAliveReusesTheConnection) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client.Send(Get("/echo/" + std::to_string(i))));
    RawResponse r = client.ReadResponse();
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.result_int(), 200);
    EXPECT_THAT(r.msg.body(), HasSubstr("GET /echo/" + std::to_string(i)));
    EXPECT_THAT(r.raw, HasSubstr("Server: tipperary-proxy\r\n"));
    EXPECT_THAT(r.raw, Not(HasSubstr("Connection:")));
    EXPECT_EQ(r.msg[http::field::content_length], std::to_string(r.msg.body().size()));
  }
  EXPECT_EQ(listener_->counters().connections_accepted, 1u);
  EXPECT_EQ(listener_->counters().requests, 3u);
}

TEST_F(ListenerTest, CurlReusesKeepAliveConnection) {
  if (!HaveTool("curl")) GTEST_SKIP() << "curl not installed";
  StartServer();
  CommandResult r = RunCommand("curl -sS -v " + Url("/echo/one") + " " + Url("/echo/two"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("GET /echo/one"));
  EXPECT_THAT(r.output, HasSubstr("GET /echo/two"));
  EXPECT_THAT(r.output, HasSubstr("Re-using existing connection"));
}

TEST_F(ListenerTest, CurlPostsABody) {
  if (!HaveTool("curl")) GTEST_SKIP() << "curl not installed";
  StartServer();
  CommandResult r = RunCommand("curl -sS -i --data-binary hello-world " + Url("/echo"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(r.output, HasSubstr("POST /echo\nbody=hello-world\n"));
  EXPECT_THAT(r.output, HasSubstr("peer=127.0.0.1\n"));
}

TEST_F(ListenerTest, PipelinedResponsesComeInRequestOrder) {
  StartServer();
  RawClient client(port());
  // The first completes last, the last first.
  ASSERT_TRUE(
      client.Send(Get("/delay/300/first") + Get("/delay/100/second") + Get("/delay/0/third")));
  for (const char* tag : {"first", "second", "third"}) {
    RawResponse r = client.ReadResponse();
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.body(), tag);
  }
}

TEST_F(ListenerTest, PipelineDepthLimitStillAnswersEverything) {
  ListenerOptions options = DefaultOptions();
  options.max_pipelined_requests = 2;
  StartServer(options);
  RawClient client(port());
  std::string requests;
  for (int i = 0; i < 6; ++i) {
    requests += Get("/delay/" + std::to_string((6 - i) * 10) + "/r" + std::to_string(i));
  }
  ASSERT_TRUE(client.Send(requests));
  for (int i = 0; i < 6; ++i) {
    RawResponse r = client.ReadResponse();
    ASSERT_TRUE(r.ok) << r.error;
    // Not "r" + std::to_string(i): GCC 12's -Wrestrict misfires on operator+(const char*, &&).
    EXPECT_EQ(r.msg.body(), std::string("r").append(std::to_string(i))) << r.raw;
  }
}

TEST_F(ListenerTest, Http10WithoutKeepAliveCloses) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send("GET /echo HTTP/1.0\r\n\r\n"));
  std::string all = client.ReadToEof();
  EXPECT_THAT(all, HasSubstr("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(all, HasSubstr("GET /echo"));
}

TEST_F(ListenerTest, Http10WithKeepAliveStaysOpen) {
  StartServer();
  RawClient client(port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    RawResponse r = client.ReadResponse();
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.version(), 10);
    EXPECT_THAT(r.raw, HasSubstr("Connection: keep-alive\r\n"));
  }
}

TEST_F(ListenerTest, ConnectionCloseRequestGetsCloseAndEof) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/echo", "Connection: close\r\n")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(ListenerTest, ChunkedRequestBody) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(
      client.Send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.msg.body(), HasSubstr("body=hello world\n"));
}

TEST_F(ListenerTest, ExpectContinueSends100ThenTheResponse) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(
      "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  RawResponse interim = client.ReadResponse();
  ASSERT_TRUE(interim.ok) << interim.error;
  EXPECT_EQ(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("12345"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 200);
  EXPECT_THAT(r.msg.body(), HasSubstr("body=12345\n"));
}

TEST_F(ListenerTest, ExpectContinueOverLimitGets413WithoutReadingTheBody) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(
      client.Send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 413);
  EXPECT_EQ(r.msg[http::field::content_type], "application/json");
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":8,"));
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(ListenerTest, HeaderTooLargeIs431) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/echo", "X-Big: " + std::string(20 * 1024, 'x') + "\r\n")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 431);
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":8,"));
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(ListenerTest, ContentLengthOverLimitIs413) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(
      "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5000000\r\n\r\nsome of the body"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 413);
}

TEST_F(ListenerTest, ChunkedBodyOverLimitIs413) {
  ListenerOptions options = DefaultOptions();
  options.limits.max_body_bytes = 1024;
  StartServer(options);
  RawClient client(port());
  std::string chunk = "1f4\r\n" + std::string(500, 'z') + "\r\n";
  ASSERT_TRUE(
      client.Send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  chunk + chunk + chunk + "0\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 413);
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":8,"));
}

TEST_F(ListenerTest, GarbageIs400) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send("\x01\x02 not http at all\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 400);
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":3,\"message\":\"control character"));
  EXPECT_TRUE(client.ClosedSilently());
  EXPECT_EQ(listener_->counters().protocol_errors, 1u);
}

TEST_F(ListenerTest, UnsupportedVersionIs505) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send("GET /echo HTTP/2.0\r\nHost: test\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 505);
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":12,"));
}

TEST_F(ListenerTest, StalledBodyGets408) {
  ListenerOptions options = DefaultOptions();
  options.request_read_timeout = 300ms;
  StartServer(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 408);
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(r.msg.body(), HasSubstr("{\"code\":4,"));
  EXPECT_TRUE(client.ClosedSilently());
  EXPECT_EQ(listener_->counters().timeouts, 1u);
}

TEST_F(ListenerTest, IdleKeepAliveConnectionClosesSilently) {
  ListenerOptions options = DefaultOptions();
  options.idle_timeout = 300ms;
  StartServer(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/echo")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(client.ClosedSilently());
  EXPECT_TRUE(Eventually([&] { return listener_->active_connections() == 0; }));
}

TEST_F(ListenerTest, DrainingClosesIdleConnectionsAndAddsConnectionClose) {
  StartServer();
  RawClient idle(port());
  ASSERT_TRUE(idle.Send(Get("/echo")));
  ASSERT_TRUE(idle.ReadResponse().ok);
  ASSERT_TRUE(Eventually([&] { return listener_->active_requests() == 0; }));

  RawClient busy(port());
  ASSERT_TRUE(busy.Send(Get("/delay/200/late")));
  ASSERT_TRUE(Eventually([&] { return listener_->active_requests() == 1; }));
  listener_->SetDraining();

  EXPECT_TRUE(idle.ClosedSilently());
  RawResponse r = busy.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.body(), "late");
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(busy.ClosedSilently());
  EXPECT_TRUE(Eventually([&] { return listener_->active_connections() == 0; }));
}

TEST_F(ListenerTest, StreamedResponseIsChunkedWithTrailers) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/stream") + Get("/echo/after")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.raw, HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_THAT(r.raw, Not(HasSubstr("Content-Length")));
  EXPECT_THAT(r.raw,
              HasSubstr("\r\n\r\n1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\nx-trailer: done\r\n\r\n"));
  EXPECT_EQ(r.msg.body(), "abbccc");
  // The connection goes on after the stream.
  RawResponse next = client.ReadResponse();
  ASSERT_TRUE(next.ok) << next.error;
  EXPECT_THAT(next.msg.body(), HasSubstr("GET /echo/after"));
}

TEST_F(ListenerTest, StreamedResponseBehindASlowOneIsBuffered) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/delay/200/slow") + Get("/stream")));
  RawResponse first = client.ReadResponse();
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.msg.body(), "slow");
  RawResponse second = client.ReadResponse();
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.msg.body(), "abbccc");
}

TEST_F(ListenerTest, StreamedResponseToHttp10IsCloseDelimited) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  std::string all = client.ReadToEof();
  EXPECT_THAT(all, HasSubstr("HTTP/1.0 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(all, Not(HasSubstr("chunked")));
  EXPECT_THAT(all, Not(HasSubstr("x-trailer")));
  EXPECT_TRUE(all.size() >= 6 && all.substr(all.size() - 6) == "abbccc") << all;
}

TEST_F(ListenerTest, HeadResponseHasLengthButNoBody) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send("HEAD /echo HTTP/1.1\r\nHost: test\r\n\r\n" + Get("/echo/next")));
  RawResponse head = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(head.ok) << head.error;
  EXPECT_NE(head.msg[http::field::content_length], "0");
  EXPECT_TRUE(head.raw.size() >= 4 && head.raw.substr(head.raw.size() - 4) == "\r\n\r\n");
  RawResponse next = client.ReadResponse();
  ASSERT_TRUE(next.ok) << next.error;
  EXPECT_THAT(next.msg.body(), HasSubstr("GET /echo/next"));
}

TEST_F(ListenerTest, ClientDisconnectCancelsThePendingExchange) {
  StartServer();
  {
    RawClient client(port());
    ASSERT_TRUE(client.Send(Get("/hang")));
    ASSERT_TRUE(Eventually([&] { return app_.hangs.load() == 1; }));
    EXPECT_EQ(listener_->active_requests(), 1u);
  }
  EXPECT_TRUE(Eventually([&] { return app_.cancels.load() == 1; }));
  EXPECT_TRUE(Eventually([&] { return listener_->active_requests() == 0; }));
  EXPECT_TRUE(Eventually([&] { return listener_->active_connections() == 0; }));
  EXPECT_EQ(app_.cancels.load(), 1);
}

TEST_F(ListenerTest, CloseAllCancelsPendingExchanges) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/hang")));
  ASSERT_TRUE(Eventually([&] { return app_.hangs.load() == 1; }));
  listener_->CloseAll();
  EXPECT_TRUE(Eventually([&] { return app_.cancels.load() == 1; }));
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(ListenerTest, HandlerExceptionBecomes500) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/throw")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 500);
}

TEST_F(ListenerTest, MaxConnectionsPausesAccepting) {
  ListenerOptions options = DefaultOptions();
  options.max_connections = 1;
  StartServer(options);
  RawClient first(port());
  ASSERT_TRUE(first.Send(Get("/echo/first")));
  ASSERT_TRUE(first.ReadResponse().ok);

  RawClient second(port());  // Connects (kernel backlog) but is not accepted yet.
  ASSERT_TRUE(second.connected());
  ASSERT_TRUE(second.Send(Get("/echo/second")));
  EXPECT_TRUE(second.QuietFor(200ms));
  EXPECT_EQ(listener_->active_connections(), 1u);

  first.Close();
  RawResponse r = second.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.msg.body(), HasSubstr("GET /echo/second"));
}

// ---- Content codings (the rules: compression_test.cc; here, over the wire) ----

std::string GunzipAll(std::string_view data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[4096];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

std::string GzipAll(std::string_view data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

std::string Post(std::string_view target, std::string_view body, std::string_view headers) {
  return std::string("POST ") + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(headers) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

TEST_F(ListenerTest, GzipResponseDecodesToTheIdentityOne) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(
      client.Send(Get("/json/5000") + Get("/json/5000", "Accept-Encoding: gzip\r\n") +
                  "HEAD /json/5000 HTTP/1.1\r\nHost: test\r\nAccept-Encoding: gzip\r\n\r\n"));
  RawResponse plain = client.ReadResponse();
  RawResponse gzip = client.ReadResponse();
  RawResponse head = client.ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(plain.ok && gzip.ok && head.ok) << plain.error << gzip.error << head.error;
  EXPECT_EQ(plain.msg.body().size(), 5000u);
  EXPECT_EQ(plain.msg.count(http::field::content_encoding), 0u);
  EXPECT_EQ(plain.msg[http::field::vary], "Accept-Encoding");
  EXPECT_EQ(gzip.msg[http::field::content_encoding], "gzip");
  EXPECT_EQ(gzip.msg[http::field::vary], "Accept-Encoding");
  EXPECT_EQ(gzip.msg[http::field::content_length], std::to_string(gzip.msg.body().size()));
  EXPECT_LT(gzip.msg.body().size(), 5000u * 3 / 4);
  EXPECT_EQ(GunzipAll(gzip.msg.body()), plain.msg.body());
  // HEAD: the headers GET gets, the compressed length included, and no body.
  EXPECT_EQ(head.msg[http::field::content_encoding], "gzip");
  EXPECT_EQ(head.msg[http::field::content_length], gzip.msg[http::field::content_length]);
  EXPECT_TRUE(head.raw.size() >= 4 && head.raw.substr(head.raw.size() - 4) == "\r\n\r\n");
}

TEST_F(ListenerTest, CurlCompressedGetsTheSameBytes) {
  if (!HaveTool("curl")) GTEST_SKIP() << "curl not installed";
  StartServer();
  CommandResult plain = RunCommand("curl -sS " + Url("/json/20000"));
  CommandResult compressed =
      RunCommand("curl -sS --compressed -D /dev/stderr " + Url("/json/20000"));
  ASSERT_EQ(compressed.exit_code, 0) << compressed.output;
  EXPECT_THAT(compressed.output, HasSubstr("Content-Encoding: gzip"));
  EXPECT_THAT(compressed.output, HasSubstr(TestApp::JsonBody(20000)));
  EXPECT_EQ(plain.output, TestApp::JsonBody(20000));
}

TEST_F(ListenerTest, CompressedStreamDeliversEachMessageBeforeTheNext) {
  StartServer();
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/live", "Accept-Encoding: gzip\r\n")));
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string raw;      // Bytes received, not yet parsed as chunks.
  std::string decoded;  // What the client's decoder has produced so far.
  bool in_body = false;
  // Reads until the decoder has produced `want` (never more: the next message is not sent).
  auto read_until = [&](const std::string& want) {
    while (decoded.size() < want.size()) {
      std::string more = client.ReadSome();
      if (more.empty()) return false;
      raw += more;
      if (!in_body) {
        size_t end = raw.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        EXPECT_THAT(raw.substr(0, end), HasSubstr("Content-Encoding: gzip"));
        EXPECT_THAT(raw.substr(0, end), HasSubstr("Transfer-Encoding: chunked"));
        raw.erase(0, end + 4);
        in_body = true;
      }
      for (;;) {
        size_t eol = raw.find("\r\n");
        if (eol == std::string::npos) break;
        size_t size = std::stoul(raw.substr(0, eol), nullptr, 16);
        if (raw.size() < eol + 2 + size + 2) break;
        std::string data = raw.substr(eol + 2, size);
        raw.erase(0, eol + 2 + size + 2);
        z.next_in = reinterpret_cast<Bytef*>(data.data());
        z.avail_in = static_cast<uInt>(data.size());
        while (z.avail_in > 0) {
          char buf[4096];
          z.next_out = reinterpret_cast<Bytef*>(buf);
          z.avail_out = sizeof(buf);
          int rc = inflate(&z, Z_SYNC_FLUSH);
          if (rc != Z_OK && rc != Z_STREAM_END) return false;
          decoded.append(buf, sizeof(buf) - z.avail_out);
          if (rc == Z_STREAM_END) break;
        }
      }
    }
    return decoded == want;
  };
  std::string expected = "{\"n\":0}\n";
  ASSERT_TRUE(read_until(expected)) << decoded;
  for (int i = 1; i <= 3; ++i) {
    const std::string message = "{\"n\":" + std::to_string(i) + "}\n";
    OnLoop([&] { app_.live->SendChunk(message); });
    expected += message;
    ASSERT_TRUE(read_until(expected)) << decoded;
  }
  OnLoop([&] {
    app_.live->EndStream({});
    app_.live.reset();
  });
  // The end of the gzip stream, then the last chunk.
  std::string rest;
  while (rest.find("0\r\n\r\n") == std::string::npos) {
    std::string more = client.ReadSome();
    ASSERT_FALSE(more.empty());
    rest += more;
  }
  raw += rest;
  inflateEnd(&z);
}

TEST_F(ListenerTest, GzipRequestBodyIsDecodedForTheApplication) {
  StartServer();
  RawClient client(port());
  const std::string body = R"({"text":"hello hello hello"})";
  ASSERT_TRUE(client.Send(Post("/echo", GzipAll(body), "Content-Encoding: gzip\r\n")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 200);
  EXPECT_THAT(r.msg.body(), HasSubstr("body=" + body + "\n"));
}

TEST_F(ListenerTest, BadRequestCodingsAreAnsweredAndTheConnectionStays) {
  ListenerOptions options = DefaultOptions();
  options.limits.max_body_bytes = 64 << 10;
  StartServer(options);
  RawClient client(port());
  const std::string bomb = GzipAll(std::string(1 << 20, '0'));
  ASSERT_TRUE(client.Send(Post("/echo", "{}", "Content-Encoding: br\r\n") +
                          Post("/echo", "\x1f\x8b\x08\x00garbage", "Content-Encoding: gzip\r\n") +
                          Post("/echo", bomb, "Content-Encoding: gzip\r\n") + Get("/echo/after")));
  RawResponse unknown = client.ReadResponse();
  RawResponse corrupt = client.ReadResponse();
  RawResponse too_big = client.ReadResponse();
  RawResponse after = client.ReadResponse();
  ASSERT_TRUE(unknown.ok && corrupt.ok && too_big.ok && after.ok);
  EXPECT_EQ(unknown.msg.result_int(), 415);
  EXPECT_EQ(unknown.msg[http::field::accept_encoding], "gzip, deflate");
  EXPECT_THAT(unknown.msg.body(), HasSubstr("Content-Encoding \\\"br\\\" is not supported"));
  EXPECT_EQ(corrupt.msg.result_int(), 400);
  EXPECT_THAT(corrupt.msg.body(), HasSubstr("not valid gzip"));
  EXPECT_EQ(too_big.msg.result_int(), 413);
  EXPECT_THAT(too_big.msg.body(), HasSubstr("\"code\":8"));
  EXPECT_THAT(too_big.msg.body(), HasSubstr("65536 bytes"));
  for (const RawResponse* r : {&unknown, &corrupt, &too_big}) {
    EXPECT_THAT(r->raw, Not(HasSubstr("Connection: close")));
  }
  EXPECT_THAT(after.msg.body(), HasSubstr("GET /echo/after"));
  EXPECT_EQ(listener_->counters().requests, 1u);  // Only the last reached the application.
  EXPECT_EQ(listener_->counters().protocol_errors, 3u);
}

TEST_F(ListenerTest, CompressionOffSendsIdentityAndRefusesCodings) {
  ListenerOptions options = DefaultOptions();
  options.compression.enabled = false;
  options.compression.decode_requests = false;
  StartServer(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send(Get("/json/5000", "Accept-Encoding: gzip\r\n") +
                          Post("/echo", GzipAll("{}"), "Content-Encoding: gzip\r\n")));
  RawResponse json = client.ReadResponse();
  RawResponse refused = client.ReadResponse();
  ASSERT_TRUE(json.ok && refused.ok);
  EXPECT_EQ(json.msg.body().size(), 5000u);
  EXPECT_EQ(json.msg.count(http::field::content_encoding), 0u);
  EXPECT_EQ(json.msg.count(http::field::vary), 0u);
  EXPECT_EQ(refused.msg.result_int(), 415);
  EXPECT_EQ(refused.msg[http::field::accept_encoding], "identity");
}

TEST_F(ListenerTest, SharedPortWithReusePortAndBindErrors) {
  StartServer();
  ListenerOptions options = DefaultOptions();
  options.endpoint.port = port();
  auto second = HttpListener::Create(ioc_, options, app_.Handler(ioc_), nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->port(), port());
  EXPECT_EQ((*second)->address(), "127.0.0.1:" + std::to_string(port()));

  // A plain socket holding a port (no SO_REUSEPORT) makes bind fail, naming the address.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  options.endpoint.port = ntohs(addr.sin_port);
  auto taken = HttpListener::Create(ioc_, options, app_.Handler(ioc_), nullptr);
  ::close(fd);
  ASSERT_FALSE(taken.ok());
  EXPECT_THAT(std::string(taken.status().message()),
              HasSubstr("127.0.0.1:" + std::to_string(options.endpoint.port)));

  options.endpoint.host = "no-such-host.invalid";
  EXPECT_FALSE(HttpListener::Create(ioc_, options, app_.Handler(ioc_), nullptr).ok());
  second->reset();
}

// ---- TLS ----

class TlsListenerTest : public ListenerTest {
 protected:
  static void SetUpTestSuite() {
    if (!HaveTool("openssl")) return;
    char tmpl[] = "/tmp/tipperary-listener-tls-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = new std::string(tmpl);
    const std::string key = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    CommandResult r = RunCommand(
        "cd " + *dir_ + " && " +
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout ca.key -out ca.crt -days 2 -subj '/CN=Tipperary Test CA' && " +
        key + " -keyout server.key -out server.csr -subj '/CN=localhost' && " +
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
        "> server.ext && "
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out server.crt -days 2 -extfile server.ext && " +
        key + " -keyout client.key -out client.csr -subj '/O=Tipperary/CN=test-client' && " +
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && "
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out client.crt -days 2 -extfile client.ext");
    certs_ok_ = r.exit_code == 0;
    if (!certs_ok_) std::fprintf(stderr, "certificate generation failed:\n%s\n", r.output.c_str());
  }

  static void TearDownTestSuite() {
    if (dir_ != nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(*dir_, ec);
      delete dir_;
      dir_ = nullptr;
    }
  }

  void SetUp() override {
    if (!certs_ok_ || !HaveTool("curl")) GTEST_SKIP() << "openssl/curl not available";
  }

  static std::string File(const std::string& name) { return *dir_ + "/" + name; }

  TlsOptions ServerTls() const {
    TlsOptions tls;
    tls.cert_file = File("server.crt");
    tls.key_file = File("server.key");
    return tls;
  }

  void StartTls(const TlsOptions& tls) {
    auto ctx = MakeServerTlsContext(tls);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ListenerOptions options = DefaultOptions();
    options.tls = tls;
    StartServer(options, *ctx);
  }

  std::string HttpsUrl(std::string_view path) const {
    return "https://127.0.0.1:" + std::to_string(port()) + std::string(path);
  }
  std::string Curl(std::string_view args) const {
    return "curl -sS --max-time 10 --cacert " + File("ca.crt") + " " + std::string(args);
  }

  static inline std::string* dir_ = nullptr;
  static inline bool certs_ok_ = false;
};

TEST_F(TlsListenerTest, ServesHttps) {
  StartTls(ServerTls());
  CommandResult r = RunCommand(Curl("-i " + HttpsUrl("/subject") + " " + HttpsUrl("/echo")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(r.output, HasSubstr("|tls"));
  EXPECT_THAT(r.output, HasSubstr("GET /echo"));
}

TEST_F(TlsListenerTest, ServesHttpsStreamAndPost) {
  StartTls(ServerTls());
  CommandResult r = RunCommand(Curl(HttpsUrl("/stream") + " --next --cacert " + File("ca.crt") +
                                    " --data-binary tls-body " + HttpsUrl("/echo")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("abbccc"));
  EXPECT_THAT(r.output, HasSubstr("body=tls-body"));
}

TEST_F(TlsListenerTest, MutualTlsRequiresAClientCertificate) {
  TlsOptions tls = ServerTls();
  tls.client_ca_file = File("ca.crt");
  StartTls(tls);

  CommandResult without = RunCommand(Curl(HttpsUrl("/subject")));
  EXPECT_NE(without.exit_code, 0) << without.output;
  EXPECT_THAT(without.output, Not(HasSubstr("|tls")));

  CommandResult with = RunCommand(Curl("--cert " + File("client.crt") + " --key " +
                                       File("client.key") + " " + HttpsUrl("/subject")));
  EXPECT_EQ(with.exit_code, 0) << with.output;
  EXPECT_THAT(with.output, HasSubstr("CN=test-client"));
  EXPECT_THAT(with.output, HasSubstr("O=Tipperary"));
  EXPECT_TRUE(Eventually([&] { return listener_->counters().tls_handshake_failures >= 1; }));
}

TEST_F(TlsListenerTest, OptionalClientCertificate) {
  TlsOptions tls = ServerTls();
  tls.client_ca_file = File("ca.crt");
  tls.require_client_cert = false;
  StartTls(tls);
  CommandResult without = RunCommand(Curl(HttpsUrl("/subject")));
  EXPECT_EQ(without.exit_code, 0) << without.output;
  EXPECT_THAT(without.output, HasSubstr("|tls"));
  EXPECT_THAT(without.output, Not(HasSubstr("CN=")));
}

TEST_F(TlsListenerTest, OldProtocolVersionsAreRefused) {
  StartTls(ServerTls());
  const std::string connect = "openssl s_client -connect 127.0.0.1:" + std::to_string(port()) +
                              " -cipher DEFAULT@SECLEVEL=0 </dev/null";
  CommandResult tls11 = RunCommand(connect + " -tls1_1");
  EXPECT_NE(tls11.exit_code, 0) << tls11.output;
  CommandResult tls12 = RunCommand(connect + " -tls1_2");
  EXPECT_EQ(tls12.exit_code, 0) << tls12.output;
}

TEST_F(TlsListenerTest, MinimumVersion13RefusesTls12) {
  TlsOptions tls = ServerTls();
  tls.min_version = "1.3";
  StartTls(tls);
  CommandResult tls12 = RunCommand(Curl("--tls-max 1.2 " + HttpsUrl("/echo")));
  EXPECT_NE(tls12.exit_code, 0) << tls12.output;
  CommandResult tls13 = RunCommand(Curl(HttpsUrl("/echo")));
  EXPECT_EQ(tls13.exit_code, 0) << tls13.output;
}

TEST_F(TlsListenerTest, ContextErrorsNameTheFile) {
  TlsOptions tls = ServerTls();
  tls.cert_file = File("missing.crt");
  auto missing = MakeServerTlsContext(tls);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.crt"));

  tls = ServerTls();
  tls.key_file = File("client.key");  // Does not match server.crt.
  EXPECT_FALSE(MakeServerTlsContext(tls).ok());

  tls = ServerTls();
  tls.min_version = "1.1";
  EXPECT_FALSE(MakeServerTlsContext(tls).ok());
}

}  // namespace
}  // namespace tipperary::http1

// ---- Streamed request bodies ----

namespace tipperary::http1 {
namespace {

class StreamedBodyTest : public ListenerTest {
 protected:
  static ListenerOptions StreamingOptions() {
    ListenerOptions options = DefaultOptions();
    options.stream_request_body = &TestApp::IsUpload;
    options.stream_body_window_bytes = 64 * 1024;
    return options;
  }
};

TEST_F(StreamedBodyTest, ArrivesInPiecesWithItsTrailersAndTheConnectionGoesOn) {
  StartServer(StreamingOptions());
  RawClient client(port());
  ASSERT_TRUE(
      client.Send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n"));
  // The application has the request (and reads) before the body ends.
  EXPECT_TRUE(client.QuietFor(100ms));
  ASSERT_TRUE(client.Send("6\r\n world\r\n0\r\nX-T: end\r\n\r\n" + Get("/echo/next")));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.body(), "streamed=1 bytes=11 trailer=end");
  RawResponse next = client.ReadResponse();
  ASSERT_TRUE(next.ok) << next.error;
  EXPECT_THAT(next.msg.body(), HasSubstr("GET /echo/next"));
}

TEST_F(StreamedBodyTest, AClientIsHeldBackWhileTheApplicationDoesNotRead) {
  StartServer(StreamingOptions());
  RawClient client(port());
  constexpr size_t kTotal = 64 << 20;
  ASSERT_TRUE(client.Send("POST /upload-hold HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                          std::to_string(kTotal) + "\r\n\r\n"));
  // Send until the kernel's buffers are full: the listener stopped reading after one window.
  const std::string block(64 * 1024, 'x');
  size_t sent = 0;
  while (sent < kTotal) {
    ssize_t n = client.SendSome(block, 300ms);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  EXPECT_LT(sent, size_t{32} << 20) << "the listener read on while the application did not";
  OnLoop([this] { app_.held(); });
  while (sent < kTotal) {
    size_t n = std::min(block.size(), kTotal - sent);
    ASSERT_TRUE(client.Send(std::string_view(block).substr(0, n)));
    sent += n;
  }
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.body(), "streamed=1 bytes=" + std::to_string(kTotal) + " trailer=");
}

TEST_F(StreamedBodyTest, OverItsOwnLimitIs413ThenClose) {
  ListenerOptions options = StreamingOptions();
  options.limits.max_body_bytes = 100;  // Not a streamed body's limit.
  options.limits.max_streamed_body_bytes = 1000;
  StartServer(options);
  RawClient client(port());
  std::string chunk = "1f4\r\n" + std::string(500, 'z') + "\r\n";
  ASSERT_TRUE(client.Send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                          chunk + chunk + chunk + "0\r\n\r\n"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 413);
  EXPECT_THAT(r.msg.body(), HasSubstr("limits.max_streamed_request_body_bytes"));
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  // A Content-Length over it is refused before the body.
  RawClient second(port());
  ASSERT_TRUE(second.Send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"));
  r = second.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 413);
}

TEST_F(StreamedBodyTest, AnAnswerBeforeTheBodyEndsClosesTheConnection) {
  StartServer(StreamingOptions());
  RawClient client(port());
  ASSERT_TRUE(
      client.Send("POST /upload-early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.body(), "early");
  EXPECT_THAT(r.raw, HasSubstr("Connection: close\r\n"));
  client.Send("345678");
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(StreamedBodyTest, ABodyThatStallsGets408) {
  ListenerOptions options = StreamingOptions();
  options.request_read_timeout = 200ms;
  StartServer(options);
  RawClient client(port());
  ASSERT_TRUE(client.Send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12"));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.result_int(), 408);
  EXPECT_TRUE(client.ClosedSilently());
}

TEST_F(StreamedBodyTest, ACodedBodyIsReadWhole) {
  StartServer(StreamingOptions());
  RawClient client(port());
  std::string gz = GzipAll("hello");
  ASSERT_TRUE(
      client.Send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\n"
                  "Content-Length: " +
                  std::to_string(gz.size()) + "\r\n\r\n" + gz));
  RawResponse r = client.ReadResponse();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.msg.body(), "streamed=0 bytes=5 trailer=");
}

}  // namespace
}  // namespace tipperary::http1
