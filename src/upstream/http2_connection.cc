#include "http2_connection.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <utility>

#include "tipperary/common/check.h"
#include "tipperary/common/log.h"
#include "tipperary/upstream/grpc_wire.h"
#include "tls_client_stream.h"

namespace tipperary::upstream {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using GenericEndpoint = asio::generic::stream_protocol::endpoint;

constexpr size_t kMaxWriteBatch = 256 * 1024;
constexpr std::string_view kUserAgent = "tipperary-proxy/0.1";

// nghttp2 calls these with the connection as user_data; they only run inside
// nghttp2_session_mem_recv / mem_send (the connection's re-entrancy guard is set), on its loop
// thread, while the connection is alive.
Http2Connection* Conn(void* user_data) {
  auto* conn = static_cast<Http2Connection*>(user_data);
  TIPPERARY_DCHECK(conn->in_nghttp2());
  return conn;
}

int OnBeginHeadersCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return Conn(user_data)->OnBeginHeaders(frame);
}

int OnHeaderCallback(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                     size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                     void* user_data) {
  return Conn(user_data)->OnHeader(
      frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
      std::string_view(reinterpret_cast<const char*>(value), valuelen));
}

int OnFrameRecvCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return Conn(user_data)->OnFrameRecv(frame);
}

int OnDataChunkRecvCallback(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                            size_t len, void* user_data) {
  return Conn(user_data)->OnDataChunkRecv(stream_id, data, len);
}

int OnStreamCloseCallback(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                          void* user_data) {
  return Conn(user_data)->OnStreamClose(stream_id, error_code);
}

int OnFrameSendCallback(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return Conn(user_data)->OnFrameSend(frame);
}

ssize_t ReadBodyCallback(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                         uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
  auto* call = static_cast<UpstreamCall*>(source->ptr);
  const ssize_t n = call->ReadBody(buf, length, data_flags);
  if (call->TakeDrained()) Conn(user_data)->AfterBodyRead(call);
  return n;
}

struct CallbacksDeleter {
  void operator()(nghttp2_session_callbacks* callbacks) const {
    nghttp2_session_callbacks_del(callbacks);
  }
};
struct OptionDeleter {
  void operator()(nghttp2_option* option) const { nghttp2_option_del(option); }
};

nghttp2_nv MakeNv(std::string_view name, std::string_view value) {
  // NGHTTP2_NV_FLAG_NONE: nghttp2 copies both, so they need only outlive the submit call.
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

bool IsValidAsciiValue(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

std::string Millis(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

Http2Connection::Http2Connection(asio::io_context& ioc,
                                 std::shared_ptr<const UpstreamOptions> options,
                                 size_t endpoint_index, std::chrono::nanoseconds keepalive_interval,
                                 Listener* listener)
    : options_(std::move(options)),
      endpoint_index_(endpoint_index),
      keepalive_interval_(keepalive_interval),
      listener_(listener),
      scheme_(options_->tls ? "https" : "http"),
      socket_(ioc),
      resolver_(ioc),
      connect_timer_(ioc),
      keepalive_timer_(ioc) {
  const common::Endpoint& endpoint = options_->endpoints[endpoint_index_];
  label_ = endpoint.ToString();
  authority_ = endpoint.kind == common::Endpoint::Kind::kUnix ? "localhost" : label_;
}

Http2Connection::~Http2Connection() = default;

void Http2Connection::Connect() {
  const common::Endpoint& endpoint = options_->endpoints[endpoint_index_];
  state_ = State::kConnecting;
  connect_timer_.expires_after(options_->connect_timeout);
  connect_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec == asio::error::operation_aborted || self->closed_) return;
    if (self->state_ == State::kConnecting) {
      self->Close("connect to " + self->label_ + " failed: timed out after " +
                  Millis(self->options_->connect_timeout) +
                  (self->tls_handshaking_ ? " (in the TLS handshake)" : ""));
    }
  });
  if (options_->tls) WarnIfUnverified(options_->name, *options_->tls);
  if (endpoint.kind == common::Endpoint::Kind::kUnix) {
    StartConnect({GenericEndpoint(asio::local::stream_protocol::endpoint(endpoint.path))});
    return;
  }
  error_code ec;
  asio::ip::address address = asio::ip::make_address(endpoint.host, ec);
  if (!ec) {
    StartConnect({GenericEndpoint(asio::ip::tcp::endpoint(address, endpoint.port))});
    return;
  }
  if (common::IsLocalhostName(endpoint.host)) {
    // IPv4 first: a server bound to 127.0.0.1 (the usual sidecar) answers at once; ::1 is
    // tried next, as async_connect walks the list.
    StartConnect(
        {GenericEndpoint(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), endpoint.port)),
         GenericEndpoint(
             asio::ip::tcp::endpoint(asio::ip::address_v6::loopback(), endpoint.port))});
    return;
  }
  resolver_.async_resolve(
      endpoint.host, std::to_string(endpoint.port),
      [self = shared_from_this()](const error_code& resolve_ec,
                                  const asio::ip::tcp::resolver::results_type& results) {
        if (resolve_ec == asio::error::operation_aborted || self->closed_) return;
        if (resolve_ec) {
          self->Close("connect to " + self->label_ + " failed: resolve: " + resolve_ec.message());
          return;
        }
        std::vector<GenericEndpoint> endpoints;
        for (const auto& entry : results) endpoints.emplace_back(entry.endpoint());
        self->StartConnect(std::move(endpoints));
      });
}

void Http2Connection::StartConnect(std::vector<GenericEndpoint> endpoints) {
  auto shared_endpoints = std::make_shared<std::vector<GenericEndpoint>>(std::move(endpoints));
  asio::async_connect(socket_, *shared_endpoints,
                      [self = shared_from_this(), shared_endpoints](
                          const error_code& ec, const GenericEndpoint&) { self->OnConnected(ec); });
}

void Http2Connection::OnConnected(const error_code& ec) {
  if (ec == asio::error::operation_aborted || closed_) return;
  if (ec) {
    Close("connect to " + label_ + " failed: " + ec.message());
    return;
  }
  if (options_->endpoints[endpoint_index_].kind == common::Endpoint::Kind::kTcp) {
    error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  }
  if (options_->tls) {
    StartTlsHandshake();
  } else {
    StartHttp2();
  }
}

void Http2Connection::StartTlsHandshake() {
  absl::StatusOr<std::unique_ptr<TlsClientStream>> tls =
      TlsClientStream::Create(socket_, *options_->tls, options_->endpoints[endpoint_index_]);
  if (!tls.ok()) {
    Close("connect to " + label_ + " failed: " + std::string(tls.status().message()));
    return;
  }
  tls_ = *std::move(tls);
  tls_handshaking_ = true;
  tls_->stream().async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const error_code& ec) { self->OnTlsHandshake(ec); });
}

void Http2Connection::OnTlsHandshake(const error_code& ec) {
  tls_handshaking_ = false;
  if (ec == asio::error::operation_aborted || closed_) return;
  if (ec) {
    Close("connect to " + label_ + " failed: TLS handshake: " + tls_->DescribeHandshakeFailure(ec));
    return;
  }
  if (std::string problem = tls_->AlpnProblem(); !problem.empty()) {
    Close("connect to " + label_ + " failed: TLS: " + problem);
    return;
  }
  StartHttp2();
}

void Http2Connection::StartHttp2() {
  std::string error;
  if (!InitSession(error)) {
    Close("connect to " + label_ + " failed: " + error);
    return;
  }
  last_received_ = std::chrono::steady_clock::now();
  AfterIo();  // The connection preface and our SETTINGS.
  if (!closed_) StartRead();
}

bool Http2Connection::InitSession(std::string& error) {
  nghttp2_session_callbacks* raw_callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&raw_callbacks) != 0) {
    error = "nghttp2_session_callbacks_new failed";
    return false;
  }
  std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> callbacks(raw_callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(raw_callbacks, OnBeginHeadersCallback);
  nghttp2_session_callbacks_set_on_header_callback(raw_callbacks, OnHeaderCallback);
  nghttp2_session_callbacks_set_on_frame_recv_callback(raw_callbacks, OnFrameRecvCallback);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(raw_callbacks, OnDataChunkRecvCallback);
  nghttp2_session_callbacks_set_on_stream_close_callback(raw_callbacks, OnStreamCloseCallback);
  nghttp2_session_callbacks_set_on_frame_send_callback(raw_callbacks, OnFrameSendCallback);

  nghttp2_option* raw_option = nullptr;
  if (nghttp2_option_new(&raw_option) != 0) {
    error = "nghttp2_option_new failed";
    return false;
  }
  std::unique_ptr<nghttp2_option, OptionDeleter> option(raw_option);
  // Closed streams are kept only for the priority tree, which gRPC does not use.
  nghttp2_option_set_no_closed_streams(raw_option, 1);
  // Windows are reopened as the application takes the data (OnDataChunkRecv), so a call whose
  // client reads slowly can hold its server back (UpstreamClient::PauseReceive).
  nghttp2_option_set_no_auto_window_update(raw_option, 1);

  nghttp2_session* session = nullptr;
  int rv = nghttp2_session_client_new2(&session, raw_callbacks, this, raw_option);
  if (rv != 0) {
    error = std::string("nghttp2_session_client_new2: ") + nghttp2_strerror(rv);
    return false;
  }
  session_.reset(session);

  const auto window = static_cast<int32_t>(
      std::min<uint32_t>(options_->initial_window_size, NGHTTP2_MAX_WINDOW_SIZE));
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(window)},
  };
  rv = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  if (rv == 0) rv = nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, window);
  if (rv != 0) {
    error = std::string("nghttp2 settings: ") + nghttp2_strerror(rv);
    return false;
  }
  return true;
}

void Http2Connection::StartRead() {
  auto on_read = [self = shared_from_this()](const error_code& ec, size_t bytes) {
    self->OnRead(ec, bytes);
  };
  if (tls_) {
    tls_->stream().async_read_some(asio::buffer(read_buffer_), std::move(on_read));
  } else {
    socket_.async_read_some(asio::buffer(read_buffer_), std::move(on_read));
  }
}

void Http2Connection::OnRead(const error_code& ec, size_t bytes) {
  if (ec == asio::error::operation_aborted || closed_) return;
  if (ec) {
    // TLS: a peer that closes without close_notify (as gRPC servers do) reads as truncated.
    const bool eof = ec == asio::error::eof || (tls_ && ec == asio::ssl::error::stream_truncated);
    if (eof && state_ == State::kDraining && streams_.empty()) {
      Close("connection to " + label_ + " closed after GOAWAY");
    } else if (tls_ && !was_ready_) {
      // A TLS 1.3 server checks the client's certificate after the client's side of the
      // handshake is done: its refusal (an alert, or only a close) lands here.
      std::string why =
          eof ? "the server closed the connection before HTTP/2 started" : ec.message();
      if (eof && options_->tls->cert_file.empty())
        why += " (does it require a client certificate?)";
      Close("connect to " + label_ + " failed: TLS: " + why);
    } else {
      Close("connection to " + label_ + " lost: " + ec.message());
    }
    return;
  }
  last_received_ = std::chrono::steady_clock::now();
  ssize_t rv = 0;
  {
    common::ScopedFlag inside(in_nghttp2_);
    rv = nghttp2_session_mem_recv(session_.get(), read_buffer_.data(), bytes);
  }
  if (!OpenAfterNghttp2(rv)) return;
  AfterIo();
  if (!closed_) StartRead();
}

bool Http2Connection::OpenAfterNghttp2(ssize_t rv) {
  if (rv < 0) {
    Close("HTTP/2 error on connection to " + label_ + ": " +
          nghttp2_strerror(static_cast<int>(rv)));
    return false;
  }
  if (close_after_nghttp2_) {  // A callback asked to close; it could not while inside nghttp2.
    std::string reason = std::move(*close_after_nghttp2_);
    close_after_nghttp2_.reset();
    Close(reason);
    return false;
  }
  return true;
}

void Http2Connection::AfterIo() {
  if (closed_ || in_nghttp2_ || !session_) return;
  nghttp2_session* session = session_.get();
  if (state_ == State::kDraining && streams_.empty() && client_goaway_ && !goaway_submitted_) {
    goaway_submitted_ = true;
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR,
                          nullptr, 0);
  }
  Flush();
  if (closed_ || writing_ || nghttp2_session_want_write(session) != 0) return;
  if (state_ == State::kDraining && streams_.empty()) {
    Close("connection to " + label_ + " drained");
  } else if (nghttp2_session_want_read(session) == 0) {
    Close("HTTP/2 session with " + label_ + " ended");
  }
}

void Http2Connection::Flush() {
  if (writing_ || closed_ || in_nghttp2_ || !session_) return;
  write_buffer_.clear();
  ssize_t error = 0;
  {
    common::ScopedFlag inside(in_nghttp2_);
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
      if (n < 0) {
        error = n;
        break;
      }
      if (n == 0) break;
      write_buffer_.insert(write_buffer_.end(), data, data + n);
      if (write_buffer_.size() >= kMaxWriteBatch) break;
    }
  }
  if (!OpenAfterNghttp2(error)) return;
  if (write_buffer_.empty()) return;
  writing_ = true;
  auto on_write = [self = shared_from_this()](const error_code& ec, size_t) { self->OnWrite(ec); };
  if (tls_) {
    asio::async_write(tls_->stream(), asio::buffer(write_buffer_), std::move(on_write));
  } else {
    asio::async_write(socket_, asio::buffer(write_buffer_), std::move(on_write));
  }
}

void Http2Connection::OnWrite(const error_code& ec) {
  writing_ = false;
  if (ec == asio::error::operation_aborted || closed_) return;
  if (ec) {
    Close("connection to " + label_ + " lost: write: " + ec.message());
    return;
  }
  AfterIo();
}

bool Http2Connection::HasCapacity() const {
  if (state_ != State::kReady || closed_ || !session_) return false;
  uint32_t server_limit =
      nghttp2_session_get_remote_settings(session_.get(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < std::min(server_limit, options_->max_concurrent_streams);
}

bool Http2Connection::Submit(const std::shared_ptr<UpstreamCall>& call) {
  if (!HasCapacity()) return false;
  const GrpcRequest& request = call->request();

  const auto now = std::chrono::steady_clock::now();
  std::string timeout;
  if (const auto deadline = call->AttemptDeadline()) timeout = EncodeGrpcTimeout(*deadline - now);
  // Custom metadata, normalized; storage reserved up front so the views stay put.
  std::vector<std::string> storage;
  storage.reserve(request.metadata.size() * 2);
  std::vector<nghttp2_nv> nva;
  nva.reserve(8 + request.metadata.size());
  nva.push_back(MakeNv(":method", "POST"));
  nva.push_back(MakeNv(":scheme", scheme_));
  nva.push_back(MakeNv(":path", request.path));
  nva.push_back(MakeNv(":authority", request.authority.empty() ? authority_ : request.authority));
  nva.push_back(MakeNv("content-type", "application/grpc"));
  nva.push_back(MakeNv("te", "trailers"));
  nva.push_back(MakeNv("user-agent", kUserAgent));
  if (!timeout.empty()) {
    nva.push_back(MakeNv("grpc-timeout", timeout));
    // It changes with every call: indexing it would only churn both HPACK tables.
    nva.back().flags |= NGHTTP2_NV_FLAG_NO_INDEX;
  }
  for (const auto& [raw_key, raw_value] : request.metadata) {
    // Keys and values are used in place when they are already what goes on the wire (the
    // proxy's are): only upper-case keys and -bin values need a copy.
    std::string_view key = raw_key;
    if (!IsAllowedCustomMetadataKey(key)) {
      std::string lower = raw_key;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!IsAllowedCustomMetadataKey(lower)) continue;
      storage.push_back(std::move(lower));
      key = storage.back();
    }
    std::string_view value = raw_value;
    if (IsBinaryHeader(key)) {
      storage.push_back(Base64Encode(raw_value, /*pad=*/false));
      value = storage.back();
    } else if (!IsValidAsciiValue(raw_value)) {
      continue;  // The server would reset the stream; drop the header instead.
    }
    nva.push_back(MakeNv(key, value));
    // A request id is unique per call: indexing it would only churn both HPACK tables.
    if (key == "x-request-id") nva.back().flags |= NGHTTP2_NV_FLAG_NO_INDEX;
  }

  nghttp2_data_provider provider;
  provider.source.ptr = call.get();
  provider.read_callback = ReadBodyCallback;
  int32_t stream_id =
      nghttp2_submit_request(session_.get(), nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (stream_id < 0) {
    if (stream_id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
      client_goaway_ = true;
      StartDraining(/*by_server=*/false);
    }
    return false;
  }
  streams_[stream_id] = Stream{call, true, false, now};
  call->Bind(weak_from_this(), stream_id);
  const auto ping_after = options_->hung_detection.ping_after;
  if (ping_after.count() > 0 && !call->expects_silence) {
    ArmPingTimer(
        ping_outstanding_
            ? PingDeadline()
            : now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(ping_after));
  }
  AfterIo();
  return true;
}

void Http2Connection::ResetStream(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || !it->second.attached) return;
  it->second.attached = false;
  if (closed_ || !session_) return;
  nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, stream_id, error_code);
  AfterIo();
}

void Http2Connection::ResumeSend(int32_t stream_id) {
  if (closed_ || !session_ || FindAttached(stream_id) == nullptr) return;
  // Not deferred (nghttp2 is still sending what it has): it asks again by itself.
  nghttp2_session_resume_data(session_.get(), stream_id);
  AfterIo();
}

void Http2Connection::UpdateReceiveWindow(int32_t stream_id) {
  if (closed_ || !session_) return;
  Stream* stream = FindAttached(stream_id);
  if (stream == nullptr) return;
  UpstreamCall& call = *stream->call;
  if (call.receive_paused || call.unconsumed_bytes == 0) return;
  nghttp2_session_consume_stream(session_.get(), stream_id, call.unconsumed_bytes);
  call.unconsumed_bytes = 0;
  AfterIo();
}

void Http2Connection::AfterBodyRead(UpstreamCall* call) {
  Stream* stream = FindAttached(call->stream_id());
  if (stream == nullptr || !stream->call->handlers().on_send_drained) return;
  // Posted: nghttp2 is sending right now, and the handler may queue more at once.
  asio::post(socket_.get_executor(), [weak = std::weak_ptr<UpstreamCall>(stream->call)] {
    std::shared_ptr<UpstreamCall> locked = weak.lock();
    if (!locked || locked->phase() == UpstreamCall::Phase::kDone) return;
    if (locked->handlers().on_send_drained) locked->handlers().on_send_drained();
  });
}

void Http2Connection::Drain() {
  if (closed_) return;
  if (state_ == State::kConnecting) {
    Close("connection to " + label_ + " closed: shutting down");
    return;
  }
  client_goaway_ = true;
  StartDraining(/*by_server=*/false);
  AfterIo();
}

void Http2Connection::StartDraining(bool by_server) {
  if (state_ == State::kDraining || state_ == State::kClosed) return;
  state_ = State::kDraining;
  TIPPERARY_LOG(kDebug, "upstream connection draining",
                {{"endpoint", label_}, {"by", by_server ? "server" : "client"}});
  if (listener_ != nullptr) listener_->OnConnectionDraining(this, by_server, goaway_error_code_);
}

void Http2Connection::Close(const std::string& reason) {
  if (closed_) return;
  if (in_nghttp2_) {
    if (!close_after_nghttp2_) close_after_nghttp2_ = reason;
    return;
  }
  auto self = shared_from_this();
  TIPPERARY_LOG(kDebug, "upstream connection closed", {{"endpoint", label_}, {"reason", reason}});
  ShutDownIo();
  std::map<int32_t, Stream> streams = std::move(streams_);
  streams_.clear();
  Listener* listener = listener_;
  if (listener == nullptr) return;
  for (auto& [stream_id, stream] : streams) {
    if (!stream.attached) continue;
    if (!stream.headers_sent && stream.call->CanRetry()) {
      listener->OnCallRefused(stream.call);
    } else {
      GrpcResult result;
      result.outcome = CallOutcome::kUnavailable;
      result.code = absl::StatusCode::kUnavailable;
      result.grpc_message = reason;
      result.http_status = 0;  // No HTTP answer.
      listener->OnCallDone(stream.call, std::move(result));
    }
  }
  listener->OnConnectionClosed(this, was_ready_, reason);
}

void Http2Connection::ShutDownIo() {
  closed_ = true;
  state_ = State::kClosed;
  error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  connect_timer_.cancel();
  keepalive_timer_.cancel();
}

void Http2Connection::Abort() {
  listener_ = nullptr;
  if (closed_) return;
  ShutDownIo();
  streams_.clear();
}

void Http2Connection::BecomeReady() {
  state_ = State::kReady;
  was_ready_ = true;
  connect_timer_.cancel();
  bool hung = false;
  ArmPingTimer(NextPingDue(&hung));
  if (listener_ != nullptr) listener_->OnConnectionReady(this);
}

void Http2Connection::ArmPingTimer(std::chrono::steady_clock::time_point when) {
  if (closed_ || when == std::chrono::steady_clock::time_point::max() || when >= ping_timer_due_) {
    return;
  }
  ping_timer_due_ = when;
  keepalive_timer_.expires_at(when);  // Cancels the wait for a later time, if any.
  keepalive_timer_.async_wait(
      [self = shared_from_this()](const error_code& ec) { self->OnPingTimer(ec); });
}

std::chrono::steady_clock::time_point Http2Connection::OldestWaiting() const {
  auto oldest = std::chrono::steady_clock::time_point::max();
  for (const auto& [id, stream] : streams_) {
    if (stream.attached && !stream.call->expects_silence) {
      oldest = std::min(oldest, stream.submitted_at);
    }
  }
  return oldest;
}

std::chrono::steady_clock::time_point Http2Connection::NextPingDue(bool* hung) const {
  using Duration = std::chrono::steady_clock::duration;
  auto due = std::chrono::steady_clock::time_point::max();
  *hung = false;
  if (keepalive_interval_.count() > 0) {
    due = last_received_ + std::chrono::duration_cast<Duration>(keepalive_interval_);
  }
  const auto ping_after = options_->hung_detection.ping_after;
  if (ping_after.count() > 0 && silence_pings_ < kMaxSilencePings) {
    const auto oldest = OldestWaiting();
    if (oldest != std::chrono::steady_clock::time_point::max()) {
      // The second PING of a silence waits twice as long: a slow answer is not a hung server.
      const auto wait = std::chrono::duration_cast<Duration>(ping_after * (1 << silence_pings_));
      const auto hung_due = std::max(last_received_, oldest) + wait;
      if (hung_due < due) {
        due = hung_due;
        *hung = true;
      }
    }
  }
  return due;
}

std::chrono::steady_clock::time_point Http2Connection::PingDeadline() const {
  using Duration = std::chrono::steady_clock::duration;
  auto deadline = ping_sent_at_ + std::chrono::duration_cast<Duration>(options_->keepalive_timeout);
  const auto oldest = OldestWaiting();
  if (options_->hung_detection.ping_after.count() > 0 &&
      oldest != std::chrono::steady_clock::time_point::max()) {
    // A request sent while an older PING (keepalive) was already unanswered still gets the
    // whole ping_timeout of its own before the connection is called hung.
    deadline = std::min(
        deadline, std::max(ping_sent_at_, oldest) +
                      std::chrono::duration_cast<Duration>(options_->hung_detection.ping_timeout));
  }
  return deadline;
}

void Http2Connection::OnPingTimer(const error_code& ec) {
  if (ec == asio::error::operation_aborted || closed_ || !session_) return;
  ping_timer_due_ = std::chrono::steady_clock::time_point::max();
  const auto now = std::chrono::steady_clock::now();
  if (ping_outstanding_) {
    const auto deadline = PingDeadline();
    if (now < deadline) {
      ArmPingTimer(deadline);
      return;
    }
    size_t waiting = 0;
    for (const auto& [id, stream] : streams_) {
      waiting += stream.attached && !stream.call->expects_silence ? 1 : 0;
    }
    const bool hung = waiting > 0 && options_->hung_detection.ping_after.count() > 0;
    if (listener_ != nullptr) listener_->OnPingTimeout(this, hung);
    Close(hung ? "connection to " + label_ + " is hung: no PING ack within " +
                     Millis(std::chrono::duration_cast<std::chrono::nanoseconds>(now -
                                                                                 ping_sent_at_)) +
                     " while " + std::to_string(waiting) + " request(s) waited"
               : "connection to " + label_ + " lost: no PING ack within " +
                     Millis(options_->keepalive_timeout));
    return;
  }
  bool hung = false;
  const auto due = NextPingDue(&hung);
  if (now < due) {
    ArmPingTimer(due);
    return;
  }
  if (nghttp2_submit_ping(session_.get(), NGHTTP2_FLAG_NONE, nullptr) == 0) {
    ping_outstanding_ = true;
    ping_sent_at_ = now;
    if (hung) ++silence_pings_;
    if (listener_ != nullptr) listener_->OnPingSent(this);
    AfterIo();
  }
  if (closed_) return;
  ArmPingTimer(ping_outstanding_
                   ? PingDeadline()
                   : now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               options_->keepalive_timeout));
}

Http2Connection::Stream* Http2Connection::FindAttached(int32_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || !it->second.attached) return nullptr;
  return &it->second;
}

int Http2Connection::OnBeginHeaders(const nghttp2_frame* frame) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (Stream* stream = FindAttached(frame->hd.stream_id)) stream->call->BeginHeaders();
  return 0;
}

int Http2Connection::OnHeader(const nghttp2_frame* frame, std::string_view name,
                              std::string_view value) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (Stream* stream = FindAttached(frame->hd.stream_id)) stream->call->OnHeader(name, value);
  return 0;
}

int Http2Connection::OnFrameRecv(const nghttp2_frame* frame) {
  const int32_t stream_id = frame->hd.stream_id;
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && state_ == State::kConnecting) BecomeReady();
      break;
    case NGHTTP2_HEADERS: {
      silence_pings_ = 0;  // The server spoke: PINGs no longer count as abuse.
      Stream* stream = FindAttached(stream_id);
      if (stream == nullptr) break;
      std::shared_ptr<UpstreamCall> call = stream->call;  // on_headers may cancel it.
      call->EndHeaders(end_stream);
      if (end_stream) FinishStream(stream_id);
      break;
    }
    case NGHTTP2_DATA:
      silence_pings_ = 0;
      if (end_stream) FinishStream(stream_id);
      break;
    case NGHTTP2_GOAWAY:
      goaway_error_code_ = frame->goaway.error_code;
      StartDraining(/*by_server=*/true);
      break;
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 && ping_outstanding_) {
        ping_outstanding_ = false;
        bool hung = false;
        ArmPingTimer(NextPingDue(&hung));
      }
      break;
    default:
      break;
  }
  return 0;
}

void Http2Connection::FinishStream(int32_t stream_id) {
  Stream* stream = FindAttached(stream_id);
  if (stream == nullptr) return;
  std::shared_ptr<UpstreamCall> call = stream->call;
  stream->attached = false;
  // The server answered before we finished sending: stop sending the rest.
  if (nghttp2_session_get_stream_local_close(session_.get(), stream_id) == 0) {
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
  }
  if (listener_ != nullptr) listener_->OnCallDone(call, call->Finish());
}

int Http2Connection::OnDataChunkRecv(int32_t stream_id, const uint8_t* data, size_t size) {
  // The connection's window never waits for one call: only the stream's may.
  nghttp2_session_consume_connection(session_.get(), size);
  Stream* stream = FindAttached(stream_id);
  if (stream == nullptr) {
    nghttp2_session_consume_stream(session_.get(), stream_id, size);
    return 0;
  }
  std::shared_ptr<UpstreamCall> call = stream->call;  // on_message may cancel it.
  std::optional<GrpcResult> error = call->OnData(data, size);
  // After on_message, which may have paused the call for a slow client.
  if (call->receive_paused && FindAttached(stream_id) != nullptr) {
    call->unconsumed_bytes += size;
  } else {
    nghttp2_session_consume_stream(session_.get(), stream_id, size);
  }
  if (error && FindAttached(stream_id) != nullptr) {
    FindAttached(stream_id)->attached = false;
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    if (listener_ != nullptr) listener_->OnCallDone(call, std::move(*error));
  }
  return 0;
}

int Http2Connection::OnStreamClose(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  Stream stream = std::move(it->second);
  streams_.erase(it);
  if (listener_ == nullptr) return 0;
  if (stream.attached) {
    if ((error_code == NGHTTP2_REFUSED_STREAM || !stream.headers_sent) && stream.call->CanRetry()) {
      listener_->OnCallRefused(stream.call);
    } else {
      GrpcResult result;
      result.outcome = error_code == NGHTTP2_REFUSED_STREAM ? CallOutcome::kUnavailable
                                                            : CallOutcome::kProtocolError;
      result.code = Http2ErrorToGrpcCode(error_code);
      result.grpc_message =
          "upstream " + label_ + " reset the stream: " + nghttp2_http2_strerror(error_code);
      listener_->OnCallDone(stream.call, std::move(result));
    }
  }
  listener_->OnStreamClosed(this);
  return 0;
}

int Http2Connection::OnFrameSend(const nghttp2_frame* frame) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto it = streams_.find(frame->hd.stream_id);
  if (it != streams_.end()) it->second.headers_sent = true;
  return 0;
}

}  // namespace tipperary::upstream
