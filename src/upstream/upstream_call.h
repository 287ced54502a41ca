// One gRPC call as the upstream client tracks it: the framed request body it sends, the response
// it decodes (headers, length-prefixed messages, trailers) and the user's handlers.
// Internal to tipperary::upstream; the cluster owns calls, connections carry them.
//
//   auto call = std::make_shared<UpstreamCall>(id, std::move(request), std::move(handlers), max);
//   call->BeginHeaders(); call->OnHeader(":status", "200"); call->EndHeaders(false);
//   call->OnData(data, size);  // calls on_message per complete message
#pragma once

#include <sys/types.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "tipperary/upstream/grpc_call.h"
#include "tipperary/upstream/retry_policy.h"

namespace tipperary::upstream {

class Http2Connection;

class UpstreamCall {
 public:
  // kNew: not yet placed; kPending: queued for a stream; kActive: on a stream; kBackoff:
  // waiting to be retried.
  enum class Phase { kNew, kPending, kActive, kBackoff, kDone };

  UpstreamCall(uint64_t id, GrpcRequest request, CallHandlers handlers,
               uint64_t max_response_bytes);

  uint64_t id() const { return id_; }
  const GrpcRequest& request() const { return request_; }
  CallHandlers& handlers() { return handlers_; }

  Phase phase() const { return phase_; }
  void set_phase(Phase phase) { phase_ = phase; }

  // Absolute deadline, when the request has a timeout.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::optional<boost::asio::steady_timer> deadline_timer;
  // The current attempt's per-try deadline (RetryPolicy::per_try_timeout), when set.
  std::optional<std::chrono::steady_clock::time_point> try_deadline;
  // The per-try timeout while kActive, the backoff while kBackoff.
  std::optional<boost::asio::steady_timer> attempt_timer;
  // What goes out as grpc-timeout: the earlier of the two deadlines.
  std::optional<std::chrono::steady_clock::time_point> AttemptDeadline() const;

  // A health check of the cluster's own: pinned to one endpoint, outside load balancing,
  // retries, circuit breakers and outlier detection.
  bool internal = false;
  int pinned_endpoint = -1;
  // A stream that legitimately stays silent (a health Watch): hung detection ignores it.
  bool expects_silence = false;

  // The endpoint of the attempt on a stream now (-1: none), and of the previous attempt, which
  // a retry avoids when it has a choice.
  int attempt_endpoint = -1;
  int avoid_endpoint = -1;
  // Retries of possibly processed attempts so far (RetryPolicy), and whether the call counts
  // against the retry budget (from its first such retry until it ends).
  uint32_t policy_retries = 0;
  bool retrying = false;
  // Transparent re-placements of never-processed attempts so far.
  uint32_t unprocessed_retries = 0;

  // Where the call runs while kActive.
  void Bind(std::weak_ptr<Http2Connection> connection, int32_t stream_id);
  std::shared_ptr<Http2Connection> connection() const { return connection_.lock(); }
  int32_t stream_id() const { return stream_id_; }

  // A call may move to another connection when the server provably never saw it; bounded. A
  // streamed body's bytes are gone once taken, so such a call moves only before its first.
  bool CanRetry() const {
    return !received_anything_ && !body_taken_ &&
           unprocessed_retries + 1 < RetryPolicy::kMaxUnprocessedAttempts;
  }
  // Whether another attempt could be sent at all after this one was (possibly) processed:
  // nothing of the response reached the caller and the body can be sent again.
  bool CanResend() const { return !message_delivered_ && !body_taken_; }
  // Forgets the previous attempt (response state, body position) before it is sent again.
  void PrepareRetry();
  // Response headers are handed to on_headers only with the first message, or with the final
  // result: an attempt that is retried must not have shown its headers. Takes them.
  std::optional<Metadata> TakeHeldHeaders() { return std::exchange(held_headers_, std::nullopt); }

  // The request body: one length-prefixed message, or what Send() queued (NGHTTP2_ERR_DEFERRED
  // while the queue is empty and open). nghttp2 data provider semantics.
  ssize_t ReadBody(uint8_t* buf, size_t length, uint32_t* data_flags);

  // Streaming requests.
  void Append(std::string framed);
  void CloseSend() { send_closed_ = true; }
  size_t send_buffered() const { return send_queue_.size() - send_pos_; }
  // ReadBody emptied the queue since the last call: on_send_drained is due.
  bool TakeDrained() { return std::exchange(drained_, false); }

  // Receive back-pressure (UpstreamClient::PauseReceive): DATA bytes not yet given back to the
  // server's window.
  bool receive_paused = false;
  size_t unconsumed_bytes = 0;

  // Response events, in HTTP/2 order.
  void BeginHeaders();
  void OnHeader(std::string_view name, std::string_view value);
  // Holds the response headers of a gRPC answer for on_headers (see TakeHeldHeaders).
  void EndHeaders(bool end_stream);
  // Calls on_message per complete message. An error result means the stream must be reset.
  std::optional<GrpcResult> OnData(const uint8_t* data, size_t size);
  // The result once the server ended the stream (END_STREAM seen).
  GrpcResult Finish();

 private:
  uint64_t id_;
  GrpcRequest request_;
  CallHandlers handlers_;
  uint64_t max_response_bytes_;
  Phase phase_ = Phase::kNew;

  std::weak_ptr<Http2Connection> connection_;
  int32_t stream_id_ = -1;

  std::array<uint8_t, 5> prefix_{};
  size_t body_offset_ = 0;
  std::string send_queue_;  // Streaming: queued bytes; those before send_pos_ are sent.
  size_t send_pos_ = 0;
  bool send_closed_ = false;
  bool body_taken_ = false;  // Streaming: nghttp2 took some body bytes.
  bool drained_ = false;

  bool received_anything_ = false;
  bool message_delivered_ = false;  // on_message ran for this call.
  std::optional<Metadata> held_headers_;
  bool have_response_headers_ = false;
  bool grpc_response_ = false;
  int http_status_ = 0;
  std::string content_type_;
  Metadata block_;     // The header block being received.
  Metadata trailers_;  // The final header block.
  bool have_trailers_ = false;
  std::string inbox_;  // Unconsumed DATA bytes.
  size_t inbox_pos_ = 0;
};

}  // namespace tipperary::upstream
