// WorkerProbe against a real HTTP server (the project's Beast listener) and dead ports.
#include "tipperary/autoscaling/worker_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <thread>

#include "tipperary/http1/http_listener.h"

namespace tipperary::autoscaling {
namespace {

namespace http = boost::beast::http;

constexpr char kBody[] =
    "{\"ready\":true,\"queue_depth\":5,\"batches_total\":10,\"batch_texts_total\":80,"
    "\"batch_tokens_total\":2560,\"max_batch_size\":32,\"max_batch_tokens\":16384,"
    "\"models\":{}}";

class WorkerProbeTest : public testing::Test {
 protected:
  void SetUp() override {
    http1::ListenerOptions options;
    options.name = "worker-admin";
    options.endpoint = *common::ParseEndpoint("127.0.0.1:0", true);
    auto l = http1::HttpListener::Create(
        ioc_, options,
        [this](std::shared_ptr<http1::HttpExchange> ex) {
          http1::HttpResponse res{status_, ex->request().version()};
          res.body() = ex->request().target() == "/autoscaling" ? body_ : "";
          ex->Respond(std::move(res));
        },
        nullptr);
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
    listener_->Start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    // The listener closes its connections on the loop when it is destroyed, so the loop stops
    // only after that: a stop() racing the reset could win, and a connection whose last
    // response was still being written then kept itself alive through its exchange (a leak).
    boost::asio::post(ioc_, [this] {
      listener_.reset();
      ioc_.stop();
    });
    thread_.join();
  }
  std::string Address() { return "127.0.0.1:" + std::to_string(listener_->port()); }

  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      ioc_.get_executor()};
  std::unique_ptr<http1::HttpListener> listener_;
  std::thread thread_;
  std::string body_ = kBody;
  http::status status_ = http::status::ok;
};

TEST_F(WorkerProbeTest, ReadsCounters) {
  absl::StatusOr<WorkerCounters> c = WorkerProbe(Address(), std::chrono::seconds(2)).Poll();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->queue_depth, 5);
  EXPECT_EQ(c->batches, 10);
  EXPECT_EQ(c->batch_texts, 80);
  EXPECT_EQ(c->batch_tokens, 2560);
  EXPECT_EQ(c->max_batch_size, 32);
  EXPECT_EQ(c->max_batch_tokens, 16384);
  // An older worker: no backlog, and that is not an error.
  EXPECT_FALSE(c->queued_tokens.has_value());
  EXPECT_FALSE(c->backlog_seconds.has_value());
  EXPECT_TRUE(c->models.empty());
}

TEST_F(WorkerProbeTest, ReadsTheBacklog) {
  body_ =
      "{\"ready\":true,\"queue_depth\":5,\"batches_total\":10,\"batch_texts_total\":80,"
      "\"batch_tokens_total\":2560,\"max_batch_size\":32,\"max_batch_tokens\":16384,"
      "\"queued_tokens\":3000,\"backlog_seconds\":1.5,\"models\":{"
      "\"a\":{\"queue_depth\":5,\"queued_tokens\":3000,\"tokens_per_second\":2000,"
      "\"backlog_seconds\":1.5},"
      "\"b\":{\"queue_depth\":0,\"queued_tokens\":0,\"backlog_seconds\":0},"
      "\"old\":{\"queue_depth\":0}}}";
  absl::StatusOr<WorkerCounters> c = WorkerProbe(Address(), std::chrono::seconds(2)).Poll();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->queued_tokens, 3000);
  EXPECT_EQ(c->backlog_seconds, 1.5);
  ASSERT_EQ(c->models.size(), 2u);  // "old" reports no backlog.
  EXPECT_EQ(c->models.at("a").queued_tokens, 3000);
  EXPECT_EQ(c->models.at("a").tokens_per_second, 2000);
  EXPECT_EQ(c->models.at("a").backlog_seconds, 1.5);
  EXPECT_EQ(c->models.at("b").tokens_per_second, std::nullopt);
  EXPECT_EQ(c->models.at("b").backlog_seconds, 0);
}

TEST_F(WorkerProbeTest, BadAnswers) {
  status_ = http::status::service_unavailable;
  absl::StatusOr<WorkerCounters> c = WorkerProbe(Address(), std::chrono::seconds(2)).Poll();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(c.status().message()),
              ::testing::MatchesRegex("worker admin 127.0.0.1:[0-9]+/autoscaling answered 503"));
  status_ = http::status::ok;
  body_ = "{\"queue_depth\":1}";
  c = WorkerProbe(Address(), std::chrono::seconds(2)).Poll();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(c.status().message(), "worker /autoscaling has no \"batches_total\"");
  body_ = "<html>";
  c = WorkerProbe(Address(), std::chrono::seconds(2)).Poll();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal);
}

TEST(WorkerProbeDeadTest, ClosedPortIsUnavailable) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  int port = acceptor.local_endpoint().port();
  acceptor.close();
  absl::StatusOr<WorkerCounters> c =
      WorkerProbe("127.0.0.1:" + std::to_string(port), std::chrono::seconds(2)).Poll();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
}

TEST(WorkerProbeDeadTest, SilentServerTimesOut) {
  // Accepts (the kernel completes the handshake into the backlog) but never answers.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  int port = acceptor.local_endpoint().port();
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<WorkerCounters> c =
      WorkerProbe("127.0.0.1:" + std::to_string(port), std::chrono::milliseconds(200)).Poll();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace tipperary::autoscaling
