// What the worker's in-process tests share: the model directory, the test configuration and a
// started server, a channel and deadline, a plain HTTP/1.1 client for the admin port, and a
// hang-guarded wait.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "tipperary/config/worker_config.h"
#include "tipperary/worker/worker_server.h"

namespace tipperary::worker::test_util {

inline constexpr auto kHangGuard = std::chrono::seconds(30);

inline std::string ModelDir() {
  if (const char* env = std::getenv("TIPPERARY_MODEL_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef TIPPERARY_MODEL_DIR
  return TIPPERARY_MODEL_DIR;
#else
  return "";
#endif
}

inline constexpr char kModel[] = "all-minilm-l6-v2";

// The default model on the CPU in float32 (exact figures in the tests), with two aliases.
inline config::WorkerConfig TestConfig() {
  config::WorkerConfig config;
  config.listen = "127.0.0.1:0";
  config.admin_address = "127.0.0.1:0";
  config::WorkerModelConfig model;
  model.name = kModel;
  model.path = ModelDir();
  model.backend = "cpu";
  model.dtype = "float32";  // Exact figures below; bfloat16 has its own reference test.
  model.threads = 2;
  // One tiny batch: warming every bucket costs ~25 s on 2 cores, and the tests start many
  // workers (the full warm-up has its own test in tests/integration/test_worker_e2e.py).
  model.warmup = "minimal";
  model.is_default = true;
  model.aliases = {"minilm", "acme/MiniLM"};
  config.models.push_back(model);
  config.drain = std::chrono::seconds(5);
  config.log_level = "warn";
  return config;
}

// Created and started; with `load`, its models loaded too. Null (and a test failure) if not.
inline std::unique_ptr<WorkerServer> StartServer(config::WorkerConfig config, bool load = true) {
  absl::StatusOr<std::unique_ptr<WorkerServer>> server = WorkerServer::Create(std::move(config));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  absl::Status started = (*server)->Start();
  EXPECT_TRUE(started.ok()) << started;
  if (load) {
    absl::Status loaded = (*server)->LoadModels();
    EXPECT_TRUE(loaded.ok()) << loaded;
  }
  return *std::move(server);
}

inline std::shared_ptr<grpc::Channel> Connect(const WorkerServer& server) {
  return grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
}

inline void SetDeadline(grpc::ClientContext& context,
                        std::chrono::milliseconds timeout = kHangGuard) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Field names as sent.
};

// METHOD http://address/path over a plain socket.
inline HttpResult HttpCall(const std::string& address, boost::beast::http::verb method,
                           const std::string& path) {
  namespace http = boost::beast::http;
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  size_t colon = address.rfind(':');
  auto endpoints = resolver.resolve(address.substr(0, colon), address.substr(colon + 1));
  boost::asio::ip::tcp::socket socket(ioc);
  boost::asio::connect(socket, endpoints);
  http::request<http::string_body> req{method, path, 11};
  req.set(http::field::host, address);
  req.prepare_payload();
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  HttpResult result{static_cast<int>(res.result_int()), res.body(), {}};
  for (const auto& field : res) {
    result.headers[std::string(field.name_string())] = std::string(field.value());
  }
  return result;
}

// GET http://address/path; returns {status, body}.
inline std::pair<int, std::string> HttpGet(const std::string& address, const std::string& path) {
  HttpResult r = HttpCall(address, boost::beast::http::verb::get, path);
  return {r.status, r.body};
}

// Polls until `predicate` holds; a hang guard, not a timing assertion.
inline bool WaitFor(const std::function<bool()>& predicate) {
  auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

// The initial metadata of a finished call, by key (the last value of a repeated key).
inline std::map<std::string, std::string> InitialMetadata(const grpc::ClientContext& context) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : context.GetServerInitialMetadata()) {
    out[std::string(key.data(), key.size())] = std::string(value.data(), value.size());
  }
  return out;
}

// The trailing metadata of a finished call, by key (the last value of a repeated key).
inline std::map<std::string, std::string> TrailingMetadata(const grpc::ClientContext& context) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    out[std::string(key.data(), key.size())] = std::string(value.data(), value.size());
  }
  return out;
}

// A whole non-negative decimal integer, else -1.
inline int64_t MetadataInt(const std::map<std::string, std::string>& metadata,
                           const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end() || it->second.empty()) return -1;
  int64_t value = -1;
  const char* end = it->second.data() + it->second.size();
  auto [ptr, ec] = std::from_chars(it->second.data(), end, value);
  return ec == std::errc() && ptr == end && value >= 0 ? value : -1;
}

// TEI's timing keys of a successful embedding call (a unary call's initial metadata, a stream's
// trailers): whole milliseconds, queue and
// inference time within the total, x-compute-time the total (TEI's meaning), the tokens the
// model saw and, when `characters` >= 0, the characters (absent otherwise).
inline void ExpectTimingMetadata(const std::map<std::string, std::string>& metadata, int64_t tokens,
                                 int64_t characters) {
  ASSERT_TRUE(metadata.count("x-compute-type")) << "no timing metadata";
  EXPECT_EQ(metadata.at("x-compute-type"), "cpu");
  const int64_t total = MetadataInt(metadata, "x-total-time");
  ASSERT_GE(total, 0);
  EXPECT_EQ(MetadataInt(metadata, "x-compute-time"), total);
  for (const char* key : {"x-tokenization-time", "x-queue-time", "x-inference-time"}) {
    const int64_t part = MetadataInt(metadata, key);
    EXPECT_GE(part, 0) << key;
    EXPECT_LE(part, total) << key;
  }
  EXPECT_EQ(MetadataInt(metadata, "x-compute-tokens"), tokens);
  if (characters >= 0) {
    EXPECT_EQ(MetadataInt(metadata, "x-compute-characters"), characters);
  } else {
    EXPECT_EQ(metadata.count("x-compute-characters"), 0u);
  }
  if (metadata.count("x-tokens-per-second")) {
    EXPECT_GT(MetadataInt(metadata, "x-tokens-per-second"), 0);
  }
}

}  // namespace tipperary::worker::test_util
