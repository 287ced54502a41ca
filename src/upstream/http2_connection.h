// One HTTP/2 client connection, driving an nghttp2 session with asio: h2c (prior knowledge) over
// TCP or a unix socket, or HTTP/2 over TLS (ALPN "h2") when the options carry TLS; connect, TLS
// handshake, SETTINGS handshake, multiplexed gRPC streams, keepalive PINGs, GOAWAY draining.
// Internal to tipperary::upstream; the cluster owns and pools these.
//
//   auto conn = std::make_shared<Http2Connection>(ioc, options, endpoint_index, &listener);
//   conn->Connect();                    // listener.OnConnectionReady(conn) once usable
//   if (conn->HasCapacity()) conn->Submit(call);
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tipperary/upstream/upstream_cluster.h"
#include "upstream_call.h"

namespace tipperary::upstream {

class TlsClientStream;

class Http2Connection : public std::enable_shared_from_this<Http2Connection> {
 public:
  enum class State { kConnecting, kReady, kDraining, kClosed };

  // The cluster's side. Called on the io_context thread, possibly from inside nghttp2 callbacks:
  // implementations may submit streams but must not close this connection synchronously.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnConnectionReady(Http2Connection* connection) = 0;
    // GOAWAY received (by_server, with its HTTP/2 error code) or Drain() called: no new
    // streams from now on.
    virtual void OnConnectionDraining(Http2Connection* connection, bool by_server,
                                      uint32_t goaway_error_code) = 0;
    // Last event of a connection. was_ready: it completed the handshake at some point.
    virtual void OnConnectionClosed(Http2Connection* connection, bool was_ready,
                                    const std::string& reason) = 0;
    // The call is finished: deliver result (unless the cluster finished it already).
    virtual void OnCallDone(const std::shared_ptr<UpstreamCall>& call, GrpcResult result) = 0;
    // The server never saw the call (GOAWAY, REFUSED_STREAM, never sent): place it again.
    virtual void OnCallRefused(const std::shared_ptr<UpstreamCall>& call) = 0;
    // A stream closed, so the connection may take another.
    virtual void OnStreamClosed(Http2Connection* connection) = 0;
    virtual void OnPingSent(Http2Connection* connection) = 0;
    // A PING went unanswered; `hung`: while requests waited (the connection is closed next).
    virtual void OnPingTimeout(Http2Connection* connection, bool hung) = 0;
  };

  Http2Connection(boost::asio::io_context& ioc, std::shared_ptr<const UpstreamOptions> options,
                  size_t endpoint_index, std::chrono::nanoseconds keepalive_interval,
                  Listener* listener);
  ~Http2Connection();

  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  void Connect();

  State state() const { return state_; }
  // Inside nghttp2_session_mem_recv/mem_send: no sending, no closing (they are deferred).
  bool in_nghttp2() const { return in_nghttp2_; }
  size_t endpoint_index() const { return endpoint_index_; }
  const std::string& label() const { return label_; }
  size_t active_streams() const { return streams_.size(); }
  // Ready, and fewer streams than min(our cap, the server's SETTINGS_MAX_CONCURRENT_STREAMS).
  bool HasCapacity() const;

  // Opens a stream for the call. False when the connection cannot take it (the caller
  // places it elsewhere).
  bool Submit(const std::shared_ptr<UpstreamCall>& call);
  // Detaches the call from its stream (no more events for it) and sends RST_STREAM.
  void ResetStream(int32_t stream_id, uint32_t error_code);
  // A streaming call queued more body (or half-closed): nghttp2 asks for it again.
  void ResumeSend(int32_t stream_id);
  // Applies the call's receive_paused: reopens the stream's window with what it withheld.
  void UpdateReceiveWindow(int32_t stream_id);
  // Called by the body read callback: on_send_drained, posted when the call's queue emptied.
  void AfterBodyRead(UpstreamCall* call);
  // No new streams; GOAWAY and close once the last stream ends.
  void Drain();
  // Closes now; streams fail (or are retried when the server never saw them).
  void Close(const std::string& reason);
  // Closes now without telling anyone: the cluster is being destroyed.
  void Abort();

  // nghttp2 callbacks land here (see the anonymous namespace in the .cc).
  int OnBeginHeaders(const nghttp2_frame* frame);
  int OnHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value);
  int OnFrameRecv(const nghttp2_frame* frame);
  int OnDataChunkRecv(int32_t stream_id, const uint8_t* data, size_t size);
  int OnStreamClose(int32_t stream_id, uint32_t error_code);
  int OnFrameSend(const nghttp2_frame* frame);

 private:
  struct SessionDeleter {
    void operator()(nghttp2_session* session) const { nghttp2_session_del(session); }
  };
  struct Stream {
    std::shared_ptr<UpstreamCall> call;
    bool attached = true;  // False once the call finished or was cancelled: ignore events.
    bool headers_sent = false;
    std::chrono::steady_clock::time_point submitted_at{};
  };

  void StartConnect(std::vector<boost::asio::generic::stream_protocol::endpoint> endpoints);
  void OnConnected(const boost::system::error_code& ec);
  void StartTlsHandshake();
  void OnTlsHandshake(const boost::system::error_code& ec);
  // The transport is up (TCP/unix connected, TLS done): start HTTP/2 with our preface.
  void StartHttp2();
  bool InitSession(std::string& error);
  void StartRead();
  void OnRead(const boost::system::error_code& ec, size_t bytes);
  // After a call into nghttp2 returned rv: closes the connection if it failed or a callback asked
  // to close it meanwhile. Returns whether the connection is still open.
  bool OpenAfterNghttp2(ssize_t rv);
  // Flushes and closes when done; a no-op inside nghttp2 callbacks (the caller runs it after).
  void AfterIo();
  // Marks the connection closed and stops its socket, resolver and timers.
  void ShutDownIo();
  void Flush();
  void OnWrite(const boost::system::error_code& ec);
  void BecomeReady();
  void StartDraining(bool by_server);
  // Hung detection: a connection whose requests wait with nothing received for
  // hung_detection.ping_after is sent a PING; no ack within hung_detection.ping_timeout closes
  // it as hung (UpstreamOptions). One timer serves keepalive PINGs, these PINGs and the ack
  // deadline: armed for `when` unless already armed for earlier.
  void ArmPingTimer(std::chrono::steady_clock::time_point when);
  void OnPingTimer(const boost::system::error_code& ec);
  // When the next PING is due (max() for never), and whether it is for hung detection.
  std::chrono::steady_clock::time_point NextPingDue(bool* hung) const;
  // The oldest submit time of the attached streams that wait for an answer (not silent by
  // design); max() when none.
  std::chrono::steady_clock::time_point OldestWaiting() const;
  // The ack deadline of the PING in flight: tighter (hung_detection.ping_timeout) while
  // requests wait.
  std::chrono::steady_clock::time_point PingDeadline() const;
  // The stream ended with END_STREAM from the server.
  void FinishStream(int32_t stream_id);
  Stream* FindAttached(int32_t stream_id);

  std::shared_ptr<const UpstreamOptions> options_;
  size_t endpoint_index_;
  std::chrono::nanoseconds keepalive_interval_;  // The cluster's, possibly backed off.
  Listener* listener_;
  std::string label_;      // The endpoint as the operator wrote it, for messages.
  std::string authority_;  // Default :authority.
  const char* scheme_;     // :scheme, "http" or "https".

  boost::asio::generic::stream_protocol::socket socket_;
  // Set for TLS: all reads and writes go through it (over socket_); null for h2c, whose I/O is
  // on socket_ directly. Decided once per connection: one pointer test per read or write.
  std::unique_ptr<TlsClientStream> tls_;
  bool tls_handshaking_ = false;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer
      keepalive_timer_;  // All PINGs: keepalive, hung detection, ack deadline.
  std::unique_ptr<nghttp2_session, SessionDeleter> session_;

  State state_ = State::kConnecting;
  bool was_ready_ = false;
  bool closed_ = false;
  bool in_nghttp2_ = false;  // Inside mem_recv/mem_send: no sending, no closing.
  std::optional<std::string> close_after_nghttp2_;
  bool client_goaway_ = false;  // Drain(): send our GOAWAY once idle.
  bool goaway_submitted_ = false;
  bool writing_ = false;
  uint32_t goaway_error_code_ = 0;

  std::map<int32_t, Stream> streams_;
  std::array<uint8_t, 64 * 1024> read_buffer_{};
  std::vector<uint8_t> write_buffer_;

  std::chrono::steady_clock::time_point last_received_;
  bool ping_outstanding_ = false;
  std::chrono::steady_clock::time_point ping_sent_at_;
  std::chrono::steady_clock::time_point ping_timer_due_ =
      std::chrono::steady_clock::time_point::max();
  // Hung-detection PINGs since HEADERS or DATA last arrived: at most kMaxSilencePings, as gRPC
  // servers count a third PING without data in between as abuse (GOAWAY too_many_pings).
  static constexpr int kMaxSilencePings = 2;
  int silence_pings_ = 0;
};

}  // namespace tipperary::upstream
