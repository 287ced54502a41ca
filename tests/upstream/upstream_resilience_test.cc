// UpstreamCluster with several endpoints that fail without failing requests: real grpc++
// servers on port 0 (with grpc's own health service, or one that only knows Check), a TCP relay
// that can stop forwarding (a SIGSTOPped server: it accepts and never answers), and the
// scripted HTTP/2 server of fake_h2_server.h for refused streams and GOAWAY.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/method_handler.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_h2_server.h"
#include "grpc/health/v1/health.pb.h"
#include "tipperary/testing/v1/test_service.grpc.pb.h"
#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {
namespace {

using namespace std::chrono_literals;
namespace v1 = ::tipperary::testing::v1;
namespace health_v1 = ::grpc::health::v1;
using test_support::FakeH2Server;

constexpr char kSlowPath[] = "/tipperary.testing.v1.TestService/Slow";

// Slow sleeps for the request's delay plus the server's extra delay, or fails with the server's
// fail_code; it counts what it was asked.
class ResilienceService final : public v1::TestService::Service {
 public:
  grpc::Status Slow(grpc::ServerContext* context, const v1::SlowRequest* request,
                    v1::SlowResponse* response) override {
    ++calls;
    if (const int code = fail_code.load(); code != 0) {
      return {static_cast<grpc::StatusCode>(code), "failing on purpose"};
    }
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(request->delay_ms() + extra_delay_ms.load());
    while (std::chrono::steady_clock::now() < until) {
      if (context->IsCancelled()) {
        ++cancelled;
        return {grpc::StatusCode::CANCELLED, "cancelled"};
      }
      std::this_thread::sleep_for(1ms);
    }
    response->set_slept_ms(request->delay_ms());
    return grpc::Status::OK;
  }

  std::atomic<int> calls{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> extra_delay_ms{0};
  std::atomic<int> fail_code{0};
};

// grpc.health.v1.Health with Check alone, as older servers have it: Watch is UNIMPLEMENTED.
class CheckOnlyHealthService final : public grpc::Service {
 public:
  CheckOnlyHealthService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<CheckOnlyHealthService, health_v1::HealthCheckRequest,
                                             health_v1::HealthCheckResponse>(
            [](CheckOnlyHealthService* service, grpc::ServerContext*,
               const health_v1::HealthCheckRequest*, health_v1::HealthCheckResponse* response) {
              ++service->checks;
              response->set_status(service->serving.load()
                                       ? health_v1::HealthCheckResponse::SERVING
                                       : health_v1::HealthCheckResponse::NOT_SERVING);
              return grpc::Status::OK;
            },
            this)));
  }

  std::atomic<bool> serving{true};
  std::atomic<int> checks{0};
};

class Backend {
 public:
  enum class Health { kNone, kGrpcDefault, kCheckOnly };

  explicit Backend(Health health = Health::kGrpcDefault) : health_(health) {
    // A process-wide switch that grpc reads when the server is built.
    grpc::EnableDefaultHealthCheckService(health == Health::kGrpcDefault);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    if (health == Health::kCheckOnly) builder.RegisterService(&check_only_);
    // gRPC's default ping policing stays on: hung detection must live with it.
    server_ = builder.BuildAndStart();
    grpc::EnableDefaultHealthCheckService(false);
  }
  ~Backend() { Shutdown(std::chrono::system_clock::now()); }

  void Shutdown(std::chrono::system_clock::time_point deadline) {
    if (server_) server_->Shutdown(deadline);
  }

  bool ok() const { return server_ != nullptr && port_ != 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ResilienceService& service() { return service_; }
  CheckOnlyHealthService& check_only() { return check_only_; }

  void SetServing(bool serving) {
    if (health_ == Health::kCheckOnly) {
      check_only_.serving = serving;
    } else {
      server_->GetHealthCheckService()->SetServingStatus(serving);
    }
  }

 private:
  Health health_;
  ResilienceService service_;
  CheckOnlyHealthService check_only_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A TCP relay in front of a server that can stop forwarding and accepting, as a SIGSTOPped
// process does: the kernel still completes connections and takes bytes; nothing comes back.
class PausableRelay {
 public:
  explicit PausableRelay(int target_port) : target_port_(target_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~PausableRelay() {
    stop_ = true;
    thread_.join();
    for (const auto& [a, b] : pairs_) {
      close(a);
      close(b);
    }
    close(listen_fd_);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void Pause(bool paused) { paused_ = paused; }

 private:
  void Run() {
    std::vector<char> buffer(64 * 1024);
    while (!stop_) {
      if (paused_) {
        std::this_thread::sleep_for(2ms);
        continue;
      }
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const auto& [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (poll(fds.data(), fds.size(), 5) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) Accept();
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0 || paused_) continue;
        const size_t pair = (i - 1) / 2;
        if (pair >= pairs_.size()) continue;
        auto [a, b] = pairs_[pair];
        const int from = (i % 2 == 1) ? a : b;
        const int to = (i % 2 == 1) ? b : a;
        ssize_t n = read(from, buffer.data(), buffer.size());
        if (n <= 0 || !WriteAll(to, buffer.data(), static_cast<size_t>(n))) {
          close(a);
          close(b);
          pairs_[pair] = {-1, -1};
        }
      }
      std::erase_if(pairs_, [](const auto& p) { return p.first < 0; });
    }
  }

  void Accept() {
    const int client = accept(listen_fd_, nullptr, nullptr);
    if (client < 0) return;
    const int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(target_port_));
    if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(client);
      close(server);
      return;
    }
    pairs_.emplace_back(client, server);
  }

  static bool WriteAll(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = write(fd, data, size);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::vector<std::pair<int, int>> pairs_;  // Relay thread only.
  std::thread thread_;
};

struct Record {
  bool done = false;
  GrpcResult result;
  int headers_calls = 0;
};

class UpstreamResilienceTest : public ::testing::Test {
 protected:
  // Health checking, outlier detection and hung detection off: each test turns on its own.
  static UpstreamOptions Options(const std::vector<std::string>& addresses) {
    UpstreamOptions options;
    options.name = "test";
    for (const std::string& address : addresses) {
      options.endpoints.push_back(*common::ParseEndpoint(address));
    }
    options.keepalive_interval = 0s;
    options.reconnect_backoff_initial = 10ms;
    options.reconnect_backoff_max = 100ms;
    options.outlier_detection.consecutive_failures = 0;
    options.hung_detection.ping_after = 0s;
    return options;
  }

  static void EnableHealth(UpstreamOptions& options) {
    options.health_check.interval = 100ms;
    options.health_check.timeout = 1s;
  }

  // Runs the event loop until done() holds; the guard only stops a hang.
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds guard = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + guard;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      ioc_.run_for(2ms);
    }
    return true;
  }

  void RunFor(std::chrono::milliseconds duration) {
    const auto until = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < until) ioc_.run_for(2ms);
  }

  static GrpcRequest Slow(int delay_ms, std::chrono::nanoseconds timeout = 10s) {
    v1::SlowRequest message;
    message.set_delay_ms(delay_ms);
    GrpcRequest request;
    request.path = kSlowPath;
    request.message = message.SerializeAsString();
    request.timeout = timeout;
    return request;
  }

  std::shared_ptr<Record> Start(UpstreamCluster& cluster, GrpcRequest request) {
    auto record = std::make_shared<Record>();
    CallHandlers handlers;
    handlers.on_headers = [record](const Metadata&) { ++record->headers_calls; };
    handlers.on_done = [record](GrpcResult result) {
      record->result = std::move(result);
      record->done = true;
    };
    cluster.Call(std::move(request), std::move(handlers));
    return record;
  }

  std::shared_ptr<Record> Run(UpstreamCluster& cluster, GrpcRequest request) {
    auto record = Start(cluster, std::move(request));
    EXPECT_TRUE(RunUntil([&] { return record->done; })) << "call did not finish";
    return record;
  }

  static bool AllDone(const std::vector<std::shared_ptr<Record>>& records) {
    return std::all_of(records.begin(), records.end(), [](const auto& r) { return r->done; });
  }

  static int CountOk(const std::vector<std::shared_ptr<Record>>& records) {
    return static_cast<int>(std::count_if(records.begin(), records.end(), [](const auto& r) {
      return r->result.code == absl::StatusCode::kOk;
    }));
  }

  // Keeps `concurrency` calls in flight until `total` were made.
  std::vector<std::shared_ptr<Record>> RunLoad(UpstreamCluster& cluster, int total, int concurrency,
                                               const std::function<GrpcRequest()>& make) {
    std::vector<std::shared_ptr<Record>> records;
    int in_flight = 0;
    EXPECT_TRUE(RunUntil(
        [&] {
          in_flight = static_cast<int>(std::count_if(records.begin(), records.end(),
                                                     [](const auto& r) { return !r->done; }));
          while (in_flight < concurrency && static_cast<int>(records.size()) < total) {
            records.push_back(Start(cluster, make()));
            ++in_flight;
          }
          return static_cast<int>(records.size()) == total && in_flight == 0;
        },
        60s));
    return records;
  }

  static EndpointStatus EndpointAt(const UpstreamCluster& cluster, size_t index) {
    return cluster.Endpoints().at(index);
  }

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
};

TEST_F(UpstreamResilienceTest, PowerOfTwoChoicesFollowsOutstandingLoad) {
  Backend slow, fast;
  ASSERT_TRUE(slow.ok() && fast.ok());
  slow.service().extra_delay_ms = 300;
  for (LoadBalancing policy : {LoadBalancing::kRoundRobin, LoadBalancing::kPowerOfTwoChoices}) {
    slow.service().calls = 0;
    fast.service().calls = 0;
    UpstreamOptions options = Options({slow.address(), fast.address()});
    options.load_balancing = policy;
    UpstreamCluster cluster(ioc_, options);
    cluster.Start();
    ASSERT_TRUE(RunUntil(
        [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
    auto records = RunLoad(cluster, 60, 6, [] { return Slow(5); });
    EXPECT_EQ(CountOk(records), 60);
    const int on_slow = slow.service().calls.load();
    const int on_fast = fast.service().calls.load();
    EXPECT_EQ(on_slow + on_fast, 60);
    if (policy == LoadBalancing::kRoundRobin) {
      EXPECT_NEAR(on_slow, 30, 2) << "round-robin ignores load";
    } else {
      // The slow endpoint's requests pile up, so it loses nearly every draw.
      EXPECT_LT(on_slow * 4, on_fast) << on_slow << " on the slow endpoint, " << on_fast;
    }
  }
}

TEST_F(UpstreamResilienceTest, NotServingEndpointGetsNoRequests) {
  Backend a, b, c;
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  UpstreamOptions options = Options({a.address(), b.address(), c.address()});
  EnableHealth(options);
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 3; }));

  b.SetServing(false);  // Watch tells at once.
  ASSERT_TRUE(
      RunUntil([&] { return EndpointAt(cluster, 1).health == EndpointHealth::kNotServing; }));
  EXPECT_EQ(EndpointAt(cluster, 1).health_detail, "health NOT_SERVING");
  auto records = RunLoad(cluster, 30, 3, [] { return Slow(1); });
  EXPECT_EQ(CountOk(records), 30);
  EXPECT_EQ(b.service().calls.load(), 0);
  EXPECT_EQ(a.service().calls.load() + c.service().calls.load(), 30);

  b.SetServing(true);
  ASSERT_TRUE(RunUntil([&] { return EndpointAt(cluster, 1).health == EndpointHealth::kServing; }));
  records = RunLoad(cluster, 30, 3, [] { return Slow(1); });
  EXPECT_EQ(CountOk(records), 30);
  EXPECT_GT(b.service().calls.load(), 0);
  // One Watch stream per endpoint carried all of that: no Check was needed.
  EXPECT_EQ(cluster.GetStats().health_checks_total, 3u);
}

TEST_F(UpstreamResilienceTest, CheckOnIntervalWhereWatchIsUnimplemented) {
  Backend a(Backend::Health::kCheckOnly), b(Backend::Health::kNone);
  ASSERT_TRUE(a.ok() && b.ok());
  UpstreamOptions options = Options({a.address(), b.address()});
  EnableHealth(options);
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  // Without any health service an endpoint counts as serving.
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 2; }));
  ASSERT_TRUE(RunUntil([&] { return a.check_only().checks.load() >= 3; }));  // Every 100 ms.

  a.SetServing(false);
  ASSERT_TRUE(
      RunUntil([&] { return EndpointAt(cluster, 0).health == EndpointHealth::kNotServing; }));
  auto records = RunLoad(cluster, 20, 2, [] { return Slow(1); });
  EXPECT_EQ(CountOk(records), 20);
  EXPECT_EQ(a.service().calls.load(), 0);
  EXPECT_EQ(b.service().calls.load(), 20);
}

TEST_F(UpstreamResilienceTest, PanicThresholdRoutesToAllWhenTooFewAreHealthy) {
  Backend a, b, c;
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  a.SetServing(false);
  b.SetServing(false);
  for (uint32_t threshold : {50u, 30u, 0u}) {
    a.service().calls = b.service().calls = c.service().calls = 0;
    UpstreamOptions options = Options({a.address(), b.address(), c.address()});
    EnableHealth(options);
    options.health_check.panic_threshold_percent = threshold;
    UpstreamCluster cluster(ioc_, options);
    cluster.Start();
    ASSERT_TRUE(RunUntil([&] {
      auto endpoints = cluster.Endpoints();
      return std::none_of(endpoints.begin(), endpoints.end(),
                          [](const auto& e) { return e.health == EndpointHealth::kUnknown; });
    }));
    auto records = RunLoad(cluster, 30, 3, [] { return Slow(1); });
    const int not_serving_calls = a.service().calls.load() + b.service().calls.load();
    if (threshold == 50) {
      // One healthy in three is under 50%: all three share the load.
      EXPECT_EQ(CountOk(records), 30);
      EXPECT_GT(not_serving_calls, 0);
      EXPECT_EQ(cluster.GetStats().panic_routed_total, 30u);
    } else if (threshold == 30) {
      EXPECT_EQ(CountOk(records), 30);
      EXPECT_EQ(not_serving_calls, 0);
      EXPECT_EQ(c.service().calls.load(), 30);
    } else {
      // 0: never route to an unhealthy endpoint, even with none left.
      c.SetServing(false);
      ASSERT_TRUE(
          RunUntil([&] { return EndpointAt(cluster, 2).health == EndpointHealth::kNotServing; }));
      auto failed = Run(cluster, Slow(1));
      EXPECT_EQ(failed->result.code, absl::StatusCode::kUnavailable);
      EXPECT_NE(failed->result.grpc_message.find("no endpoint of upstream test is healthy"),
                std::string::npos)
          << failed->result.grpc_message;
      c.SetServing(true);
    }
  }
}

TEST_F(UpstreamResilienceTest, ConsecutiveUnavailableEjectsAndTheEjectionExpires) {
  Backend bad, good;
  ASSERT_TRUE(bad.ok() && good.ok());
  bad.service().fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  UpstreamOptions options = Options({bad.address(), good.address()});
  options.load_balancing = LoadBalancing::kRoundRobin;  // Every other call to the bad one.
  options.outlier_detection.consecutive_failures = 3;
  options.outlier_detection.base_ejection_time = 300ms;
  options.outlier_detection.max_ejection_time = 1s;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil(
      [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));

  // Sequential calls: the bad endpoint gets three, which fail, and is ejected.
  std::vector<std::shared_ptr<Record>> records;
  while (cluster.GetStats().ejections_total == 0 && records.size() < 20) {
    records.push_back(Run(cluster, Slow(1)));
  }
  ASSERT_EQ(cluster.GetStats().ejections_total, 1u);
  EXPECT_EQ(bad.service().calls.load(), 3);
  EXPECT_TRUE(EndpointAt(cluster, 0).ejected);
  EXPECT_EQ(cluster.GetStats().endpoints_ejected, 1u);

  // While ejected it gets nothing: every call succeeds on the other one.
  for (int i = 0; i < 10; ++i) {
    auto record = Run(cluster, Slow(1));
    EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  }
  EXPECT_EQ(bad.service().calls.load(), 3);

  // The ejection expires; failing again ejects it again, for twice as long.
  ASSERT_TRUE(RunUntil([&] { return !EndpointAt(cluster, 0).ejected; }));
  while (cluster.GetStats().ejections_total == 1 && bad.service().calls.load() < 20) {
    Run(cluster, Slow(1));
  }
  EXPECT_EQ(cluster.GetStats().ejections_total, 2u);
  EXPECT_EQ(bad.service().calls.load(), 6);
  EXPECT_EQ(EndpointAt(cluster, 0).times_ejected, 2u);
}

TEST_F(UpstreamResilienceTest, AtMostMaxEjectionPercentIsEjected) {
  Backend a, b;
  ASSERT_TRUE(a.ok() && b.ok());
  a.service().fail_code = b.service().fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  UpstreamOptions options = Options({a.address(), b.address()});
  options.outlier_detection.consecutive_failures = 2;
  options.outlier_detection.max_ejection_percent = 50;
  UpstreamCluster cluster(ioc_, options);
  auto records = RunLoad(cluster, 20, 1, [] { return Slow(1); });
  EXPECT_EQ(CountOk(records), 0);
  EXPECT_EQ(cluster.GetStats().ejections_total, 1u);
  EXPECT_EQ(cluster.GetStats().endpoints_ejected, 1u);
}

// The hung endpoint: a relay that stops forwarding, in front of a working server.
TEST_F(UpstreamResilienceTest, HungEndpointIsDetectedAndIdempotentCallsSucceedElsewhere) {
  Backend a, b, behind;
  ASSERT_TRUE(a.ok() && b.ok() && behind.ok());
  PausableRelay hung(behind.port());
  UpstreamOptions options = Options({a.address(), b.address(), hung.address()});
  EnableHealth(options);
  options.hung_detection.ping_after = 200ms;
  options.hung_detection.ping_timeout = 500ms;  // Margin for a loaded test machine.
  options.connect_timeout = 500ms;
  options.retry_policy.idempotent_methods = {"tipperary.testing.v1.TestService/*"};
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 3; }));

  // Steady load; the third endpoint stops answering in the middle of it.
  std::vector<std::shared_ptr<Record>> records;
  auto pause_at = std::chrono::steady_clock::now() + 300ms;
  std::optional<std::chrono::steady_clock::time_point> paused, detected;
  ASSERT_TRUE(RunUntil(
      [&] {
        const auto now = std::chrono::steady_clock::now();
        if (!paused && now >= pause_at) {
          hung.Pause(true);
          paused = now;
        }
        if (paused && !detected && cluster.GetStats().hung_connections_total > 0) detected = now;
        const auto in_flight =
            std::count_if(records.begin(), records.end(), [](const auto& r) { return !r->done; });
        if (records.size() < 200 && in_flight < 6) records.push_back(Start(cluster, Slow(10)));
        return records.size() == 200 && AllDone(records);
      },
      60s));
  ASSERT_TRUE(paused.has_value());
  ASSERT_TRUE(detected.has_value()) << "the hung connection was never detected";
  // About ping_after + ping_timeout; the bound is generous (a loaded test machine).
  EXPECT_LT(*detected - *paused, 3s);
  for (const auto& record : records) {
    EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  }
  const UpstreamCluster::Stats stats = cluster.GetStats();
  EXPECT_GE(stats.retries_by_reason.count("unavailable"), 1u);
  EXPECT_NE(EndpointAt(cluster, 2).health, EndpointHealth::kServing);

  // SIGCONT: it comes back.
  hung.Pause(false);
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 3; }));
  behind.service().calls = 0;
  records = RunLoad(cluster, 60, 6, [] { return Slow(5); });
  EXPECT_EQ(CountOk(records), 60);
  EXPECT_GT(behind.service().calls.load(), 0);
}

TEST_F(UpstreamResilienceTest, HungEndpointFailsOnlyTheCallsSentToIt) {
  Backend a, behind;
  ASSERT_TRUE(a.ok() && behind.ok());
  PausableRelay hung(behind.port());
  UpstreamOptions options = Options({a.address(), hung.address()});
  options.hung_detection.ping_after = 200ms;
  options.hung_detection.ping_timeout = 500ms;  // Margin for a loaded test machine.
  options.connect_timeout = 500ms;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil(
      [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
  hung.Pause(true);
  // Not idempotent: what was sent to the hung endpoint fails, with the reason; the rest is fine.
  auto records = RunLoad(cluster, 40, 4, [] { return Slow(10); });
  int failed = 0;
  for (const auto& record : records) {
    if (record->result.code == absl::StatusCode::kOk) continue;
    ++failed;
    EXPECT_EQ(record->result.code, absl::StatusCode::kUnavailable);
    EXPECT_NE(record->result.grpc_message.find("is hung"), std::string::npos)
        << record->result.grpc_message;
  }
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 40);
  EXPECT_EQ(cluster.GetStats().hung_connections_total, 1u);
  EXPECT_EQ(cluster.GetStats().retries_by_reason.count("unavailable"), 0u);
}

TEST_F(UpstreamResilienceTest, CallSentBehindAnUnansweredKeepalivePingGetsItsOwnPingTimeout) {
  Backend behind;
  ASSERT_TRUE(behind.ok());
  PausableRelay hung(behind.port());
  UpstreamOptions options = Options({hung.address()});
  options.keepalive_interval = 100ms;
  options.keepalive_timeout = 10s;
  options.hung_detection.ping_after = 200ms;
  options.hung_detection.ping_timeout = 500ms;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return EndpointAt(cluster, 0).connected; }));
  hung.Pause(true);
  // An idle connection's keepalive PING goes unanswered for twice ping_timeout: idle, that is
  // keepalive_timeout's business, not a hang.
  RunFor(1000ms);
  ASSERT_GE(cluster.GetStats().pings_sent_total, 1u);
  ASSERT_EQ(cluster.GetStats().hung_connections_total, 0u);
  // A call sent now has waited for nothing yet: it is not failed at once for the old PING.
  const auto sent = std::chrono::steady_clock::now();
  auto record = Run(cluster, Slow(10));
  const auto waited = std::chrono::steady_clock::now() - sent;
  EXPECT_EQ(record->result.code, absl::StatusCode::kUnavailable);
  EXPECT_NE(record->result.grpc_message.find("is hung"), std::string::npos)
      << record->result.grpc_message;
  EXPECT_GE(waited, 450ms) << "declared hung before the call waited ping_timeout";
}

TEST_F(UpstreamResilienceTest, SlowCallIsNotMistakenForAHungConnection) {
  Backend server;  // gRPC's default ping policing: a third PING without data is a GOAWAY.
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options({server.address()});
  options.hung_detection.ping_after = 100ms;
  options.hung_detection.ping_timeout = 500ms;
  UpstreamCluster cluster(ioc_, options);
  auto record = Run(cluster, Slow(2000));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  const UpstreamCluster::Stats stats = cluster.GetStats();
  EXPECT_EQ(stats.pings_sent_total, 2u);  // Two per silence, answered.
  EXPECT_EQ(stats.hung_connections_total, 0u);
  EXPECT_EQ(stats.goaways_total, 0u);
}

TEST_F(UpstreamResilienceTest, RefusedStreamsMoveToAnotherEndpoint) {
  for (FakeH2Server::Mode mode :
       {FakeH2Server::Mode::kRefuseAll, FakeH2Server::Mode::kGoawayEach}) {
    FakeH2Server refusing(mode);
    Backend good;
    ASSERT_TRUE(good.ok());
    UpstreamOptions options = Options({refusing.address(), good.address()});
    options.load_balancing = LoadBalancing::kRoundRobin;
    UpstreamCluster cluster(ioc_, options);
    cluster.Start();
    ASSERT_TRUE(RunUntil(
        [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
    // Not idempotent, yet safe: the refused ones never reached the application.
    auto records = RunLoad(cluster, 10, 1, [] { return Slow(1); });
    EXPECT_EQ(CountOk(records), 10);
    EXPECT_EQ(good.service().calls.load(), 10);
    const UpstreamCluster::Stats stats = cluster.GetStats();
    EXPECT_GE(stats.retries_by_reason.at("unprocessed"), 1u);
    EXPECT_EQ(stats.retries_total, stats.retries_by_reason.at("unprocessed"));
  }
}

TEST_F(UpstreamResilienceTest, RetryBudgetStopsRetriesWhenEverythingFails) {
  Backend a, b;
  ASSERT_TRUE(a.ok() && b.ok());
  a.service().fail_code = b.service().fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  UpstreamOptions options = Options({a.address(), b.address()});
  options.retry_policy.idempotent_methods = {"*"};
  options.retry_policy.max_attempts = 5;
  options.retry_budget.budget_percent = 20;
  options.retry_budget.min_retry_concurrency = 3;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil(
      [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
  std::vector<std::shared_ptr<Record>> records;
  for (int i = 0; i < 50; ++i) records.push_back(Start(cluster, Slow(1)));
  ASSERT_TRUE(RunUntil([&] { return AllDone(records); }));
  EXPECT_EQ(CountOk(records), 0);
  const UpstreamCluster::Stats stats = cluster.GetStats();
  const int attempts = a.service().calls.load() + b.service().calls.load();
  // Without the budget: 50 calls x 5 attempts. With it, at most 20% of 50 retry at once.
  RecordProperty("attempts", attempts);
  EXPECT_LT(attempts, 150) << "retries multiplied the load";
  EXPECT_GE(stats.retry_budget_exhausted_total, 25u);
  EXPECT_EQ(static_cast<uint64_t>(attempts), 50 + stats.retries_total);
  EXPECT_EQ(stats.retries_active, 0u);

  // With room in the budget, the same failure is retried to max_attempts.
  a.service().calls = b.service().calls = 0;
  auto one = Run(cluster, Slow(1));
  EXPECT_EQ(one->result.code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(a.service().calls.load() + b.service().calls.load(), 5);
}

TEST_F(UpstreamResilienceTest, PerTryTimeoutRetriesOnAnotherEndpointWithinTheDeadline) {
  Backend stuck, fine;
  ASSERT_TRUE(stuck.ok() && fine.ok());
  stuck.service().extra_delay_ms = 5000;
  UpstreamOptions options = Options({stuck.address(), fine.address()});
  options.load_balancing = LoadBalancing::kRoundRobin;  // The first call goes to `stuck`.
  options.retry_policy.idempotent_methods = {"tipperary.testing.v1.TestService/Slow"};
  options.retry_policy.per_try_timeout = 200ms;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil(
      [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
  auto record = Run(cluster, Slow(1, 3s));
  EXPECT_EQ(record->result.code, absl::StatusCode::kOk) << record->result.grpc_message;
  EXPECT_EQ(stuck.service().calls.load(), 1);
  EXPECT_EQ(fine.service().calls.load(), 1);
  EXPECT_EQ(cluster.GetStats().retries_by_reason.at("deadline_exceeded"), 1u);
  // The abandoned attempt was cancelled on the server (RST_STREAM), not left running.
  ASSERT_TRUE(RunUntil([&] { return stuck.service().cancelled.load() == 1; }));

  // Not idempotent: the per-try timeout ends the call. (The retry's endpoint had no
  // alternative, so round-robin goes on with `fine`, then `stuck`.)
  EXPECT_EQ(Run(cluster, Slow(1, 3s))->result.code, absl::StatusCode::kOk);
  EXPECT_EQ(fine.service().calls.load(), 2);
  GrpcRequest request = Slow(1, 3s);
  request.path = "/tipperary.testing.v1.TestService/Slow";
  auto policy = std::make_shared<RetryPolicy>(options.retry_policy);
  policy->idempotent_methods.clear();
  request.retry_policy = policy;
  auto first = Run(cluster, std::move(request));
  EXPECT_EQ(first->result.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(first->result.grpc_message.find("per-try timeout"), std::string::npos)
      << first->result.grpc_message;
}

TEST_F(UpstreamResilienceTest, CallerMarksACallIdempotent) {
  Backend bad, good;
  ASSERT_TRUE(bad.ok() && good.ok());
  bad.service().fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  UpstreamOptions options = Options({bad.address(), good.address()});
  options.load_balancing = LoadBalancing::kRoundRobin;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil(
      [&] { return EndpointAt(cluster, 0).connected && EndpointAt(cluster, 1).connected; }));
  auto plain = Run(cluster, Slow(1));  // To `bad`, not retried.
  EXPECT_EQ(plain->result.code, absl::StatusCode::kUnavailable);
  Run(cluster, Slow(1));  // To `good`.
  GrpcRequest request = Slow(1);
  request.idempotent = true;
  auto retried = Run(cluster, std::move(request));  // To `bad`, then `good`.
  EXPECT_EQ(retried->result.code, absl::StatusCode::kOk) << retried->result.grpc_message;
  EXPECT_EQ(bad.service().calls.load(), 2);
  EXPECT_EQ(cluster.GetStats().retries_by_reason.at("unavailable"), 1u);
}

TEST_F(UpstreamResilienceTest, CircuitBreakersFailAtOnceWithRetryAfter) {
  Backend server;
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options({server.address()});
  options.circuit_breakers.max_requests = 2;
  options.circuit_breakers.retry_after = 3s;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  auto first = Start(cluster, Slow(1000));
  auto second = Start(cluster, Slow(1000));
  auto third = Run(cluster, Slow(1));
  EXPECT_FALSE(first->done);  // It answered before the slow ones: at once.
  EXPECT_EQ(third->result.code, absl::StatusCode::kUnavailable);
  EXPECT_NE(third->result.grpc_message.find("circuit breaker max_requests"), std::string::npos)
      << third->result.grpc_message;
  ASSERT_EQ(third->result.trailers.size(), 1u);
  EXPECT_EQ(third->result.trailers[0], (std::pair<std::string, std::string>("retry-after", "3")));
  EXPECT_EQ(cluster.GetStats().overflow_requests_total, 1u);
  ASSERT_TRUE(RunUntil([&] { return first->done && second->done; }));
  EXPECT_EQ(first->result.code, absl::StatusCode::kOk);
  EXPECT_EQ(Run(cluster, Slow(1))->result.code, absl::StatusCode::kOk);  // Closed again.
}

TEST_F(UpstreamResilienceTest, PendingRequestsCircuitBreaker) {
  grpc::ServerBuilder builder;
  ResilienceService service;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server && port != 0);
  UpstreamOptions options = Options({"127.0.0.1:" + std::to_string(port)});
  options.circuit_breakers.max_pending_requests = 1;
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.HasReadyConnection(); }));
  RunFor(50ms);  // The server's SETTINGS (one stream) are in.
  auto active = Start(cluster, Slow(500));
  auto waiting = Start(cluster, Slow(1));
  auto overflow = Run(cluster, Slow(1));
  EXPECT_EQ(overflow->result.code, absl::StatusCode::kUnavailable);
  EXPECT_NE(overflow->result.grpc_message.find("max_pending_requests"), std::string::npos)
      << overflow->result.grpc_message;
  EXPECT_EQ(cluster.GetStats().overflow_pending_total, 1u);
  ASSERT_TRUE(RunUntil([&] { return active->done && waiting->done; }));
  EXPECT_EQ(waiting->result.code, absl::StatusCode::kOk);
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(UpstreamResilienceTest, ShutdownEndsHealthWatchesSoConnectionsDrain) {
  Backend server;
  ASSERT_TRUE(server.ok());
  UpstreamOptions options = Options({server.address()});
  EnableHealth(options);
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 1; }));
  cluster.Shutdown();
  ASSERT_TRUE(RunUntil([&] {
    auto stats = cluster.GetStats();
    return stats.ready + stats.draining + stats.connecting == 0;
  }));
}

TEST_F(UpstreamResilienceTest, HealthWatchDoesNotHoldAServersGracefulShutdown) {
  auto server = std::make_unique<Backend>();
  ASSERT_TRUE(server->ok());
  UpstreamOptions options = Options({server->address()});
  EnableHealth(options);
  UpstreamCluster cluster(ioc_, options);
  cluster.Start();
  ASSERT_TRUE(RunUntil([&] { return cluster.GetStats().endpoints_healthy == 1; }));
  // A graceful shutdown waits for open calls until its deadline; the Watch is one until the
  // GOAWAY makes the cluster cancel it.
  std::atomic<bool> finished{false};
  const auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    server->Shutdown(std::chrono::system_clock::now() + 10s);
    finished = true;
  });
  const bool in_time = RunUntil([&] { return finished.load(); }, 20s);
  stopper.join();
  ASSERT_TRUE(in_time);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "held until its deadline";
}

}  // namespace
}  // namespace tipperary::upstream
