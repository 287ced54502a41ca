// The value types of one gRPC call made by the upstream client.
//
// A call sends one request message (unary or server-streaming), or a client stream given whole
// (`framed`) or as it comes (`streaming`: UpstreamClient::Send), and receives zero or more
// response messages, then a status.
//
//   GrpcRequest req{.path = "/pkg.Svc/Method", .message = bytes, .timeout = 2s};
//   cluster.Call(std::move(req), {.on_message = ..., .on_done = [](GrpcResult r) {...}});
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tipperary/upstream/retry_policy.h"

namespace tipperary::upstream {

// Lower-case keys; values of "-bin" keys are raw bytes (base64 on the wire).
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct GrpcRequest {
  std::string path;       // ":path", "/package.Service/Method".
  std::string authority;  // ":authority"; empty = the endpoint.
  Metadata metadata;      // Custom metadata; reserved headers (te, content-type, ...) are ours.
  std::string message;    // One serialized protobuf message, unframed (but see `framed`).
  // A client stream sent whole: `message` already holds zero or more length-prefixed gRPC
  // messages, one after the other, and goes out as it is.
  bool framed = false;
  // A client stream sent as it comes: `message` is ignored; UpstreamClient::Send() queues
  // length-prefixed messages and CloseSend() half-closes. What the server has not taken yet
  // (HTTP/2 flow control) waits in UpstreamClient::send_buffered().
  bool streaming = false;
  std::optional<std::chrono::nanoseconds> timeout;  // Sent as grpc-timeout and enforced.
  // This call's retry policy (a route's); null = the upstream's UpstreamOptions::retry_policy.
  std::shared_ptr<const RetryPolicy> retry_policy = {};
  // The caller knows the method is idempotent (a route says so): as if the policy's
  // idempotent_methods matched it.
  bool idempotent = false;
};

// Where a call ended. kOk/kGrpc carry the server's status; the others are the client's own.
enum class CallOutcome {
  kGrpc,           // The server sent a status (grpc-status), possibly non-zero.
  kUnavailable,    // No connection could carry the call (connect failed, reset, GOAWAY).
  kDeadline,       // The timeout expired first; RST_STREAM(CANCEL) was sent.
  kCancelled,      // Cancel() was called.
  kProtocolError,  // The server broke the protocol (bad framing, oversized message, ...).
};

struct GrpcResult {
  CallOutcome outcome = CallOutcome::kGrpc;
  // Set for every outcome (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, INTERNAL...). A code
  // outside gRPC's 0..16 from the wire reads as UNKNOWN, as gRPC clients do.
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string grpc_message;    // Percent-decoded grpc-message, or our description.
  std::string status_details;  // Decoded grpc-status-details-bin: a google.rpc.Status.
  Metadata trailers;           // Trailing metadata without reserved keys.
  int http_status = 200;       // The upstream :status (for non-gRPC answers).
};

struct CallHandlers {
  // Initial metadata without reserved keys, once, before the first message. Optional.
  std::function<void(const Metadata& headers)> on_headers;
  // Each response message, unframed. Optional for callers that only need the status.
  std::function<void(std::string message)> on_message;
  // Exactly once, last; also after Cancel().
  std::function<void(GrpcResult result)> on_done;
  // Streaming requests: everything given to Send() has been handed to the connection (the
  // server's flow-control window had room). Posted, never from inside Send(). Optional.
  std::function<void()> on_send_drained;
};

}  // namespace tipperary::upstream
