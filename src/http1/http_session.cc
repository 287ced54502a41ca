// One HTTP/1.1 connection (plain or TLS) and the exchanges read from it.
//
// A session reads requests ahead (up to max_pipelined_requests), keeps one ExchangeImpl per
// request in a queue, and writes the queue's head whenever it has output, so responses go out in
// request order however the application completes them. Responses are serialized here rather
// than by Beast's serializer so that whole, streamed (chunked or close-delimited) and HEAD
// responses share one write path, and so consecutive ready responses go out in one write.
//
// Timeouts use our own timers instead of beast::tcp_stream's: a tcp_stream timeout closes the
// socket, and a request-read timeout must still answer 408 while an earlier response may be
// being written.
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cstdio>
#include <deque>
#include <exception>
#include <optional>
#include <type_traits>

#include "listener_core.h"
#include "tipperary/common/log.h"
#include "tipperary/common/status_json.h"
#include "tipperary/http1/compression.h"
#include "tipperary/http1/request_decoder.h"

namespace tipperary::http1::internal {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// How long a closing connection keeps reading (and discarding) so that the client sees the last
// response rather than a reset caused by unread input.
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr size_t kReadChunk = 16 * 1024;
// Ready responses are coalesced into one write up to about this size.
constexpr size_t kMaxCoalescedBytes = 256 * 1024;

struct ConnectionInfo {
  std::string peer_address;
  bool is_tls = false;
  std::string peer_subject;
};

bool IsBodilessStatus(unsigned status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

void AppendHex(std::string& out, size_t n) {
  char buf[2 * sizeof(size_t) + 1];
  int len = std::snprintf(buf, sizeof(buf), "%zx", n);
  out.append(buf, static_cast<size_t>(len));
}

}  // namespace

// The application's view of one request; the session owns the response state in it.
class ExchangeImpl final : public HttpExchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  enum class State { kPending, kWhole, kStreaming };

  ExchangeImpl(std::shared_ptr<SessionBase> session, HttpRequest request, HttpFields trailers,
               std::shared_ptr<const ConnectionInfo> info)
      : request_(std::move(request)),
        trailers_(std::move(trailers)),
        info_(std::move(info)),
        session_(std::move(session)) {}

  const HttpRequest& request() const override { return request_; }
  const HttpFields& trailers() const override { return trailers_; }
  const std::string& peer_address() const override { return info_->peer_address; }
  bool is_tls() const override { return info_->is_tls; }
  const std::string& peer_certificate_subject() const override { return info_->peer_subject; }
  bool body_streamed() const override { return streams_body_; }

  void ReadBody(std::function<void(BodyPiece piece)> on_piece) override {
    DcheckLoopThread();
    if (cancelled_ || body_reader_ || body_taken_) return;
    body_reader_ = std::move(on_piece);
    if (!streams_body_) {
      body_pending_ = request_.body();
      body_ended_ = true;
    }
    MaybeDeliverBody();
  }

  void Respond(HttpResponse response) override {
    DcheckLoopThread();
    if (cancelled_ || released_ || state_ != State::kPending) return;
    state_ = State::kWhole;
    CloseIfBodyUnread();
    if (compression_) {
      const bool coded = response.find(http::field::content_encoding) != response.end();
      const size_t plain_size = response.body().size();
      CompressResponse(*compression_, request_, response);
      if (!coded && response.find(http::field::content_encoding) != response.end()) {
        CountCompressed(plain_size, response.body().size(), /*response=*/true);
      }
    }
    response_ = std::move(response);
    finished_ = true;
    Notify();
  }

  void BeginStream(HttpResponse header) override {
    DcheckLoopThread();
    if (cancelled_ || released_ || state_ != State::kPending) return;
    state_ = State::kStreaming;
    header.body().clear();
    if (compression_) {
      compressor_ = BeginCompressedStream(*compression_, request_, header);
      if (head_) compressor_.reset();  // The headers a GET would get, and no body.
      if (compressor_) CountCompressed(0, 0, /*response=*/true);
    }
    response_ = std::move(header);
    Notify();
  }

  void SendChunk(std::string data) override {
    DcheckLoopThread();
    if (cancelled_ || released_ || state_ != State::kStreaming || finished_) return;
    // An empty chunk would end a chunked body.
    if (data.empty() || head_) return;
    if (compressor_) {
      // Flushed per chunk: each message reaches the client (and its decoder) when it is sent.
      std::string compressed;
      compressor_->Write(data, Compressor::Flush::kSync, &compressed);
      CountCompressed(data.size(), compressed.size(), /*response=*/false);
      data = std::move(compressed);
    }
    AppendBody(data);
    Notify();
  }

  void EndStream(HttpFields trailers) override {
    DcheckLoopThread();
    if (cancelled_ || released_ || state_ != State::kStreaming || finished_) return;
    finished_ = true;
    CloseIfBodyUnread();
    if (compressor_) {
      std::string tail;
      compressor_->Write({}, Compressor::Flush::kFinish, &tail);
      compressor_.reset();
      CountCompressed(0, tail.size(), /*response=*/false);
      AppendBody(tail);
    }
    if (version_ >= 11 && !head_) {
      pending_ += "0\r\n";
      for (const auto& field : trailers) {
        pending_.append(field.name_string());
        pending_ += ": ";
        pending_.append(field.value());
        pending_ += "\r\n";
      }
      pending_ += "\r\n";
    }
    Notify();
  }

  void SetCancelHandler(std::function<void()> on_cancel) override {
    if (cancelled_) {
      if (on_cancel) on_cancel();
      return;
    }
    if (released_) return;  // Fully answered: never cancelled.
    on_cancel_ = std::move(on_cancel);
  }

  bool cancelled() const override { return cancelled_; }

  // Session side.
  void Cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    std::function<void()> on_cancel = std::move(on_cancel_);
    on_cancel_ = nullptr;
    if (on_cancel) on_cancel();
  }
  bool Done() const { return header_emitted_ && finished_ && pending_.empty(); }
  size_t buffered_bytes() const override { return pending_.size(); }

  void NotifyWhenDrained(std::function<void()> on_drained) override {
    DcheckLoopThread();
    if (cancelled_ || released_) return;
    on_drained_ = std::move(on_drained);
    if (pending_.empty()) FireDrained();
  }

  // The session took the pending bytes for writing.
  void OnOutputTaken() {
    if (on_drained_ && pending_.empty()) FireDrained();
  }

  // Session side of a streamed body.
  void PushBody(std::string data) {
    if (data.empty()) return;
    if (body_pending_.empty()) {
      body_pending_ = std::move(data);
    } else {
      body_pending_ += data;
    }
    MaybeDeliverBody();
  }
  void EndBody(HttpFields trailers) {
    trailers_ = std::move(trailers);
    body_ended_ = true;
    MaybeDeliverBody();
  }
  void FailBody(RequestError error) {
    body_error_ = std::move(error);
    MaybeDeliverBody();
  }
  size_t body_pending_bytes() const { return body_pending_.size(); }

  // Appends stream body bytes: a chunk on HTTP/1.1, as they are on 1.0 (close-delimited).
  void AppendBody(std::string_view data) {
    if (data.empty()) return;  // An empty chunk would end a chunked body.
    if (version_ >= 11) {
      AppendHex(pending_, data.size());
      pending_ += "\r\n";
      pending_ += data;
      pending_ += "\r\n";
    } else {
      pending_ += data;
    }
  }

  HttpRequest request_;
  HttpFields trailers_;
  std::shared_ptr<const ConnectionInfo> info_;
  // Strong until released: a pending exchange keeps its connection alive even when no I/O is
  // in flight (pipeline full, or waiting for the application after the last request).
  std::shared_ptr<SessionBase> session_;
  std::function<void()> on_cancel_;
  // Null for the listener's own error responses: those are never compressed.
  std::shared_ptr<const CompressionOptions> compression_;
  std::shared_ptr<ListenerCore> core_;      // For the compression counters (null: not counted).
  std::unique_ptr<Compressor> compressor_;  // A compressed stream's, until EndStream.
  State state_ = State::kPending;
  std::optional<HttpResponse> response_;  // Whole response, or a stream's header.
  std::string pending_;                   // Encoded stream bytes not yet taken for writing.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool counted_ = false;        // Counts in active_requests.
  uint64_t request_bytes_ = 0;  // Held while queued: counts against the connection's buffer.
  bool force_close_ = false;    // The listener's own error responses.
  bool close_after_ = false;    // Decided when the header is serialized.
  bool header_emitted_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  bool released_ = false;
  bool streams_body_ = false;

 private:
  void CountCompressed(size_t in, size_t out, bool response) {
    if (!core_) return;
    if (response) core_->compressed_responses.fetch_add(1, std::memory_order_relaxed);
    core_->compression_input_bytes.fetch_add(in, std::memory_order_relaxed);
    core_->compression_output_bytes.fetch_add(out, std::memory_order_relaxed);
  }

  // A response complete before its streamed body: the rest of the body is never read, so the
  // connection cannot carry another request (and closes after this response).
  void CloseIfBodyUnread() {
    if (!streams_body_ || body_ended_ || body_error_) return;
    keep_alive_ = false;
    close_after_ = true;
  }

  void MaybeDeliverBody() {
    if (!body_reader_ || delivery_posted_ || cancelled_) return;
    if (body_pending_.empty() && !body_ended_ && !body_error_) return;
    std::shared_ptr<SessionBase> session = session_;
    if (!session) return;
    delivery_posted_ = true;
    session->Post([self = shared_from_this()] { self->DeliverBody(); });
  }

  void DeliverBody() {
    delivery_posted_ = false;
    if (cancelled_ || !body_reader_) return;
    BodyPiece piece;
    piece.data.swap(body_pending_);
    piece.error = body_error_;
    piece.last = body_ended_ && !body_error_;
    body_taken_ = piece.last || piece.error.has_value();
    std::function<void(BodyPiece)> reader = std::move(body_reader_);
    body_reader_ = nullptr;
    std::shared_ptr<SessionBase> session = session_;  // The reader may finish the exchange.
    reader(std::move(piece));
    if (session) session->OnBodyRead();
  }

  void FireDrained() {
    std::function<void()> on_drained = std::move(on_drained_);
    on_drained_ = nullptr;
    std::shared_ptr<SessionBase> session = session_;
    if (!on_drained || !session) return;
    session->Post([self = shared_from_this(), on_drained = std::move(on_drained)] {
      if (!self->cancelled_) on_drained();
    });
  }

  std::function<void(BodyPiece)> body_reader_;
  std::string body_pending_;  // Streamed body bytes the application has not taken.
  bool body_ended_ = false;
  bool body_taken_ = false;  // The last piece (or the error) was delivered.
  bool delivery_posted_ = false;
  std::optional<RequestError> body_error_;
  std::function<void()> on_drained_;

  // The exchange is the listener's: the application answers from the loop thread only.
  void DcheckLoopThread() const {
    if (std::shared_ptr<SessionBase> session = session_) {
      TIPPERARY_DCHECK(session->OnLoopThread());
    }
  }

  void Notify() {
    // Hold the session: the callee may close it.
    if (std::shared_ptr<SessionBase> session = session_) session->OnExchangeOutput();
  }
};

namespace {

template <class Stream>
class Session final : public SessionBase {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  template <class... StreamArgs>
  explicit Session(std::shared_ptr<ListenerCore> core, StreamArgs&&... stream_args)
      : core_(std::move(core)),
        stream_(std::forward<StreamArgs>(stream_args)...),
        options_(core_->options_snapshot()),
        decoder_(options_->limits),
        read_timer_(core_->ioc),
        write_timer_(core_->ioc) {
    if (options_->stream_request_body) {
      // A coded body is decoded whole (within its limits) before anyone sees it.
      decoder_.set_stream_selector([core = core_.get()](const HttpRequest& head) {
        return head.find(http::field::content_encoding) == head.end() &&
               core->options().stream_request_body(head);
      });
    }
  }

  ~Session() override {
    // Every path ends in Abort(); this only guards the registry against a missed one.
    if (!closed_) core_->Unregister(this);
  }

  void Run() {
    auto info = std::make_shared<ConnectionInfo>();
    error_code ec;
    tcp::endpoint remote = Socket().remote_endpoint(ec);
    if (!ec) info->peer_address = remote.address().to_string();
    info->is_tls = kTls;
    info_ = info;
    if constexpr (kTls) {
      ArmReadTimer(Options().request_read_timeout, TimerKind::kHandshake);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = Self()](error_code hec) { self->OnHandshake(hec); });
    } else {
      DoRead();
    }
  }

  void OnDraining() override {
    if (closed_ || closing_) return;
    if (first_request_) {
      Abort();  // Nothing asked yet (maybe mid-handshake): nothing to finish.
    } else if (queue_.empty() && !in_request_) {
      GracefulClose();
    }
  }

  void Abort() override {
    if (closed_) return;
    closed_ = true;
    ++read_gen_;
    ++write_gen_;
    read_timer_.cancel();
    write_timer_.cancel();
    beast::get_lowest_layer(stream_).close();
    body_exchange_.reset();
    CancelQueued();
    core_->Unregister(this);
  }

  void OnExchangeOutput() override { Pump(); }
  bool OnLoopThread() const override { return core_->loop_thread.OnValidThread(); }

  void Post(std::function<void()> fn) override {
    net::post(core_->ioc, [self = Self(), fn = std::move(fn)] { fn(); });
  }

  void OnBodyRead() override {
    if (closed_ || closing_ || !body_paused_ || !body_exchange_) return;
    if (body_exchange_->body_pending_bytes() >= Options().stream_body_window_bytes) return;
    body_paused_ = false;
    Parse();
  }

 private:
  enum class TimerKind { kHandshake, kIdle, kRequest, kLinger };

  std::shared_ptr<Session> Self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  tcp::socket& Socket() { return beast::get_lowest_layer(stream_).socket(); }
  const ListenerOptions& Options() const { return *options_; }

  // ---- Timers ----

  void ArmReadTimer(std::chrono::nanoseconds duration, TimerKind kind) {
    uint64_t gen = ++read_gen_;
    read_kind_ = kind;
    if (duration.count() <= 0) {
      read_timer_.cancel();
      return;
    }
    read_timer_.expires_after(std::chrono::duration_cast<net::steady_timer::duration>(duration));
    read_timer_.async_wait([self = Self(), gen](error_code ec) {
      if (ec == net::error::operation_aborted) return;
      self->OnReadTimer(gen);
    });
  }

  void DisarmReadTimer() {
    ++read_gen_;
    read_timer_.cancel();
  }

  void OnReadTimer(uint64_t gen) {
    if (closed_ || gen != read_gen_) return;
    switch (read_kind_) {
      case TimerKind::kHandshake:
        core_->timeouts.fetch_add(1, std::memory_order_relaxed);
        core_->tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
        TIPPERARY_LOG(kDebug, "tls handshake timeout",
                      {{"name", Options().name}, {"peer", info_->peer_address}});
        Abort();
        return;
      case TimerKind::kIdle:
      case TimerKind::kLinger:
        Abort();
        return;
      case TimerKind::kRequest:
        core_->timeouts.fetch_add(1, std::memory_order_relaxed);
        // The read in flight is abandoned (read_stopped_ makes its handler a no-op).
        FailRequest(MakeRequestError(http::status::request_timeout,
                                     absl::StatusCode::kDeadlineExceeded,
                                     "request not received in time"));
        return;
    }
  }

  void ArmWriteTimer() {
    uint64_t gen = ++write_gen_;
    auto duration = Options().response_write_timeout;
    if (duration.count() <= 0) return;
    write_timer_.expires_after(std::chrono::duration_cast<net::steady_timer::duration>(duration));
    write_timer_.async_wait([self = Self(), gen](error_code ec) {
      if (ec == net::error::operation_aborted) return;
      if (self->closed_ || gen != self->write_gen_) return;
      self->core_->timeouts.fetch_add(1, std::memory_order_relaxed);
      TIPPERARY_LOG(kDebug, "response write timeout",
                    {{"name", self->Options().name}, {"peer", self->info_->peer_address}});
      self->Abort();
    });
  }

  void DisarmWriteTimer() {
    ++write_gen_;
    write_timer_.cancel();
  }

  // ---- TLS ----

  void OnHandshake(error_code ec) {
    if (closed_) return;
    DisarmReadTimer();
    if (ec) {
      core_->tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
      TIPPERARY_LOG(
          kDebug, "tls handshake failed",
          {{"name", Options().name}, {"peer", info_->peer_address}, {"error", ec.message()}});
      Abort();
      return;
    }
    if constexpr (kTls) {
      SSL* ssl = stream_.native_handle();
      X509* cert = SSL_get1_peer_certificate(ssl);
      if (cert != nullptr) {
        if (SSL_get_verify_result(ssl) == X509_V_OK) {
          auto info = std::make_shared<ConnectionInfo>(*info_);
          info->peer_subject = SubjectOf(cert);
          info_ = info;
        }
        X509_free(cert);
      }
    }
    DoRead();
  }

  static std::string SubjectOf(X509* cert) {
    std::string subject;
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr) return subject;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
      char* data = nullptr;
      long len = BIO_get_mem_data(bio, &data);
      if (len > 0 && data != nullptr) subject.assign(data, static_cast<size_t>(len));
    }
    BIO_free(bio);
    return subject;
  }

  // ---- Reading ----

  // Reads the next request, unless the pipeline is full (Pump() resumes) or reading stopped.
  void DoRead() {
    if (closed_ || closing_) return;
    if (core_->draining && !first_request_ && queue_.empty() && !in_request_) {
      GracefulClose();  // Draining and nothing left to answer.
      return;
    }
    if (read_stopped_) return;
    // A streamed body waits for the application to take what was read (OnBodyRead resumes).
    if (in_request_ && body_paused_) return;
    if (read_pending_) {
      // Waiting for the next request with nothing left to answer: the idle clock runs.
      if (!in_request_ && queue_.empty()) ArmReadTimer(Options().idle_timeout, TimerKind::kIdle);
      return;
    }
    if (!in_request_) {
      if (queue_.size() >= Options().max_pipelined_requests) return;  // Resumed by Pump().
      // Requests read ahead hold their bodies: stop reading ahead once they fill the
      // connection's budget (back-pressure, not an error).
      if (!queue_.empty() && queued_request_bytes_ >= Options().max_connection_buffer_bytes) return;
      DropEmptyLines();
      if (buffer_.size() > 0 && BufferView() != "\r") {
        StartRequest();
        Parse();
        return;
      }
      if (queue_.empty()) {
        // A new connection gets the shorter of the two for its first byte.
        auto timeout = Options().idle_timeout;
        auto read_timeout = Options().request_read_timeout;
        if (first_request_ && read_timeout.count() > 0 &&
            (timeout.count() <= 0 || read_timeout < timeout)) {
          timeout = read_timeout;
        }
        ArmReadTimer(timeout, TimerKind::kIdle);
      } else {
        DisarmReadTimer();
      }
    }
    ReadSome();
  }

  std::string_view BufferView() const {
    return std::string_view(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  }

  // RFC 9112 §2.2: empty lines between requests are ignored.
  void DropEmptyLines() {
    while (buffer_.size() >= 2 && BufferView().substr(0, 2) == "\r\n") buffer_.consume(2);
  }

  void ReadSome() {
    // Never more than the connection's budget of unparsed input: the decoder fails a request
    // whose head, chunk line or trailers outgrow their own limits before this is reached.
    const size_t cap = static_cast<size_t>(Options().max_connection_buffer_bytes);
    const size_t room = buffer_.size() < cap ? cap - buffer_.size() : 0;
    if (room == 0) {
      FailRequest(MakeRequestError(
          http::status::bad_request, absl::StatusCode::kResourceExhausted,
          "request framing exceeds the connection buffer (limits.max_connection_buffer_bytes)"));
      return;
    }
    read_pending_ = true;
    stream_.async_read_some(buffer_.prepare(std::min(kReadChunk, room)),
                            [self = Self()](error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  // Common prologue of read completions; false when the caller must stop.
  bool ReadCompleted(error_code ec) {
    read_pending_ = false;
    if (closed_) return false;
    if (closing_) {
      OnLingerRead(ec);
      return false;
    }
    if (ec == net::error::operation_aborted) return false;
    return !read_stopped_;
  }

  void OnRead(error_code ec, size_t n) {
    if (!ReadCompleted(ec)) return;
    if (ec) {
      // EOF or reset: the client is gone (a partial request cannot be answered); whatever it
      // still waits for is cancelled.
      Abort();
      return;
    }
    buffer_.commit(n);
    if (in_request_) {
      Parse();
    } else {
      DoRead();
    }
  }

  void StartRequest() {
    in_request_ = true;
    first_request_ = false;
    // A reload may have changed the listener's options: the next request gets them, the one
    // being answered keeps its own.
    if (std::shared_ptr<const ListenerOptions> now = core_->options_snapshot(); now != options_) {
      options_ = std::move(now);
      decoder_.Reset(options_->limits);
    } else {
      decoder_.Reset();
    }
    ArmReadTimer(Options().request_read_timeout, TimerKind::kRequest);
  }

  // Feeds what is buffered to the decoder until it needs more bytes or a request is done.
  void Parse() {
    for (;;) {
      size_t used = 0;
      RequestDecoder::Event event = decoder_.Decode(BufferView(), &used);
      buffer_.consume(used);
      switch (event) {
        case RequestDecoder::Event::kHeader:
          MaybeSendContinue();
          if (decoder_.streaming()) {
            StartStreamedRequest();
            if (closed_ || closing_) return;
          }
          continue;
        case RequestDecoder::Event::kComplete:
          OnRequestComplete();
          return;
        case RequestDecoder::Event::kError:
          FailRequest(decoder_.error());
          return;
        case RequestDecoder::Event::kNeedMore:
          if (body_exchange_) {
            body_exchange_->PushBody(decoder_.TakeBody());
            if (body_exchange_->body_pending_bytes() >= Options().stream_body_window_bytes) {
              // The application is behind: stop reading until it takes some (the client's
              // TCP window closes meanwhile). Its own deadline covers a stalled upstream.
              body_paused_ = true;
              DisarmReadTimer();
              return;
            }
            // A streamed body may take any time, but no read may stall for request_read.
            ArmReadTimer(Options().request_read_timeout, TimerKind::kRequest);
          }
          ReadSome();
          return;
      }
    }
  }

  // A body over the limit already failed in the decoder, so 100 Continue is only sent for a
  // body we will accept. When earlier responses are still due the interim response would have
  // to wait for them; the client then sends the body after its own timeout, which RFC 9110
  // allows.
  void MaybeSendContinue() {
    if (!decoder_.framing().expect_continue || !queue_.empty() || write_pending_) return;
    write_buf_ = "HTTP/1.1 100 Continue\r\n\r\n";
    StartWrite();
  }

  // An exchange for the request the decoder has just framed.
  std::shared_ptr<ExchangeImpl> NewExchange(HttpRequest request, HttpFields trailers) {
    auto exchange = std::make_shared<ExchangeImpl>(shared_from_this(), std::move(request),
                                                   std::move(trailers), info_);
    exchange->version_ = exchange->request_.version();
    exchange->keep_alive_ = decoder_.framing().keep_alive;
    exchange->head_ = exchange->request_.method() == http::verb::head;
    exchange->counted_ = true;
    exchange->compression_ =
        std::shared_ptr<const CompressionOptions>(options_, &options_->compression);
    exchange->core_ = core_;
    return exchange;
  }

  // A request whose body streams goes to the application as soon as its head is read.
  void StartStreamedRequest() {
    std::shared_ptr<ExchangeImpl> exchange = NewExchange(HttpRequest(decoder_.head()), {});
    const HttpRequest& req = exchange->request_;
    exchange->streams_body_ = true;
    exchange->request_bytes_ = req.target().size();
    queued_request_bytes_ += exchange->request_bytes_;
    queue_.push_back(exchange);
    body_exchange_ = exchange;
    core_->active_requests.fetch_add(1, std::memory_order_relaxed);
    core_->requests.fetch_add(1, std::memory_order_relaxed);
    auto self = Self();  // The handler may close the connection.
    InvokeHandler(exchange);
  }

  // The streamed body broke off: the application answers (it has the exchange already), and the
  // connection closes after that.
  void FailStreamedBody(const RequestError& error) {
    DisarmReadTimer();
    read_stopped_ = true;
    in_request_ = false;
    body_paused_ = false;
    core_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
    TIPPERARY_LOG(kDebug, "streamed request body failed",
                  {{"name", Options().name},
                   {"peer", info_->peer_address},
                   {"status", std::to_string(static_cast<unsigned>(error.status))},
                   {"reason", error.message}});
    std::shared_ptr<ExchangeImpl> exchange = std::move(body_exchange_);
    body_exchange_.reset();
    exchange->keep_alive_ = false;
    exchange->close_after_ = true;
    exchange->FailBody(error);
  }

  void InvokeHandler(const std::shared_ptr<ExchangeImpl>& exchange) {
    try {
      core_->handler(exchange);
    } catch (const std::exception& e) {
      TIPPERARY_LOG(kError, "request handler threw",
                    {{"name", Options().name}, {"error", e.what()}});
      RespondInternalError(*exchange);
    } catch (...) {
      TIPPERARY_LOG(kError, "request handler threw", {{"name", Options().name}});
      RespondInternalError(*exchange);
    }
  }

  void OnRequestComplete() {
    DisarmReadTimer();
    in_request_ = false;
    if (body_exchange_) {
      std::shared_ptr<ExchangeImpl> exchange = std::move(body_exchange_);
      body_exchange_.reset();
      body_paused_ = false;
      exchange->PushBody(decoder_.TakeBody());
      exchange->EndBody(decoder_.TakeTrailers());
      if (!exchange->keep_alive_) read_stopped_ = true;
      DoRead();
      return;
    }
    std::shared_ptr<ExchangeImpl> exchange =
        NewExchange(decoder_.TakeRequest(), decoder_.TakeTrailers());
    const HttpRequest& req = exchange->request_;
    // A compressed body is decoded here, so every application sees plain content. An error
    // is answered like the application's own, and the connection stays open: the request
    // was framed correctly and read whole.
    const bool coded =
        exchange->request_.find(http::field::content_encoding) != exchange->request_.end();
    std::optional<RequestError> coding_error =
        DecodeRequestContent(Options().compression, Options().limits, &exchange->request_);
    if (coded && !coding_error &&
        exchange->request_.find(http::field::content_encoding) == exchange->request_.end()) {
      core_->decoded_request_bodies.fetch_add(1, std::memory_order_relaxed);
    }
    exchange->request_bytes_ = req.body().size() + req.target().size();
    queued_request_bytes_ += exchange->request_bytes_;
    if (!exchange->keep_alive_) read_stopped_ = true;
    queue_.push_back(exchange);
    core_->active_requests.fetch_add(1, std::memory_order_relaxed);
    if (coding_error) {
      RespondCodingError(*exchange, *coding_error);
      DoRead();
      return;
    }
    core_->requests.fetch_add(1, std::memory_order_relaxed);

    auto self = Self();  // The handler may close the connection.
    InvokeHandler(exchange);
    DoRead();
  }

  void RespondCodingError(ExchangeImpl& exchange, const RequestError& error) {
    core_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
    TIPPERARY_LOG(kDebug, "rejected request body",
                  {{"name", Options().name},
                   {"peer", info_->peer_address},
                   {"status", std::to_string(static_cast<unsigned>(error.status))},
                   {"reason", error.message}});
    HttpResponse res{error.status, exchange.version_};
    res.set(http::field::content_type, "application/json");
    res.body() = ErrorBody(&exchange.request_, error);
    if (error.status == http::status::unsupported_media_type) {
      // RFC 9110 §12.5.3: say which codings a request body may use.
      res.set(http::field::accept_encoding, AcceptedRequestCodings(Options().compression));
    }
    exchange.Respond(std::move(res));
  }

  // The listener's own error bodies: the application's shape for the route, when it has one.
  std::string ErrorBody(const HttpRequest* head, const RequestError& error) const {
    if (head != nullptr && Options().render_error) {
      std::string body = Options().render_error(*head, error);
      if (!body.empty()) return body;
    }
    return common::StatusJson(error.code, error.message);
  }

  static void RespondInternalError(ExchangeImpl& exchange) {
    if (exchange.state_ != ExchangeImpl::State::kPending) return;
    HttpResponse res{http::status::internal_server_error, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = common::StatusJson(absl::StatusCode::kInternal, "internal error");
    exchange.Respond(std::move(res));
  }

  // Answers a request the listener rejects itself, after the responses already due, then
  // closes the connection.
  void FailRequest(const RequestError& error) {
    if (body_exchange_) {
      FailStreamedBody(error);
      return;
    }
    const http::status status = error.status;
    // The head of the request being read, if it got that far (for the route's error shape).
    const HttpRequest* head = in_request_ && decoder_.head_complete() ? &decoder_.head() : nullptr;
    DisarmReadTimer();
    read_stopped_ = true;
    in_request_ = false;
    core_->protocol_errors.fetch_add(1, std::memory_order_relaxed);
    TIPPERARY_LOG(kDebug, "rejected request",
                  {{"name", Options().name},
                   {"peer", info_->peer_address},
                   {"status", std::to_string(static_cast<unsigned>(status))},
                   {"reason", error.message}});
    auto exchange =
        std::make_shared<ExchangeImpl>(shared_from_this(), HttpRequest{}, HttpFields{}, info_);
    HttpResponse res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = ErrorBody(head, error);
    exchange->force_close_ = true;
    exchange->state_ = ExchangeImpl::State::kWhole;
    exchange->response_ = std::move(res);
    exchange->finished_ = true;
    queue_.push_back(std::move(exchange));
    Pump();
  }

  // ---- Writing ----

  // Retires what is fully written, then writes whatever the head of the queue has ready.
  void Pump() {
    if (closed_ || closing_ || write_pending_) return;
    bool retired = false;
    for (;;) {
      while (!queue_.empty() && queue_.front()->Done()) {
        std::shared_ptr<ExchangeImpl> exchange = std::move(queue_.front());
        queue_.pop_front();
        Release(*exchange);
        retired = true;
        if (exchange->close_after_) {
          GracefulClose();
          return;
        }
      }
      write_buf_.clear();
      for (auto& exchange : queue_) {
        bool complete = TakeOutput(*exchange, write_buf_);
        if (!complete || exchange->close_after_ || write_buf_.size() >= kMaxCoalescedBytes) break;
      }
      if (!write_buf_.empty()) {
        StartWrite();
        break;
      }
      // A stream can end without bytes to write (HEAD, HTTP/1.0): retire it and look again.
      if (queue_.empty() || !queue_.front()->Done()) break;
    }
    if (retired) DoRead();
  }

  void StartWrite() {
    write_pending_ = true;
    write_offset_ = 0;
    WriteSome();
  }

  // The write timeout is a progress timeout (as nginx's send_timeout): a slow reader that keeps
  // reading gets a response of any size; one that stops for response_write is dropped.
  void WriteSome() {
    ArmWriteTimer();
    stream_.async_write_some(
        net::buffer(write_buf_.data() + write_offset_, write_buf_.size() - write_offset_),
        [self = Self()](error_code ec, size_t n) { self->OnWriteSome(ec, n); });
  }

  void OnWriteSome(error_code ec, size_t n) {
    if (!closed_ && !ec) {
      write_offset_ += n;
      if (write_offset_ < write_buf_.size()) {
        WriteSome();
        return;
      }
    }
    OnWrite(ec);
  }

  void OnWrite(error_code ec) {
    write_pending_ = false;
    if (closed_) return;
    DisarmWriteTimer();
    if (ec) {
      TIPPERARY_LOG(
          kDebug, "write failed",
          {{"name", Options().name}, {"peer", info_->peer_address}, {"error", ec.message()}});
      Abort();
      return;
    }
    Pump();
  }

  // Appends the exchange's ready bytes; true when all of its response has now been taken.
  bool TakeOutput(ExchangeImpl& exchange, std::string& out) {
    if (exchange.state_ == ExchangeImpl::State::kPending) return false;
    if (!exchange.header_emitted_) {
      SerializeHead(exchange, out);
      exchange.header_emitted_ = true;
    }
    if (!exchange.pending_.empty()) {
      out += exchange.pending_;
      exchange.pending_.clear();
      exchange.OnOutputTaken();
    }
    return exchange.finished_;
  }

  // Status line and fields (and a whole response's body), with the framing and connection
  // headers the listener owns.
  void SerializeHead(ExchangeImpl& exchange, std::string& out) {
    HttpResponse& res = *exchange.response_;
    const bool http10 = exchange.version_ == 10;
    bool close = exchange.force_close_ || !exchange.keep_alive_ || core_->draining;
    const bool bodiless = IsBodilessStatus(res.result_int());
    res.version(http10 ? 10 : 11);
    if (!Options().server_header.empty() && res.find(http::field::server) == res.end()) {
      res.set(http::field::server, Options().server_header);
    }
    if (exchange.state_ == ExchangeImpl::State::kWhole) {
      res.erase(http::field::transfer_encoding);
      if (bodiless) {
        res.erase(http::field::content_length);
        res.body().clear();
      } else {
        res.content_length(res.body().size());
      }
    } else {
      res.erase(http::field::content_length);
      if (http10) {
        res.erase(http::field::transfer_encoding);
        close = true;  // The body ends when the connection does.
      } else if (!bodiless) {
        res.set(http::field::transfer_encoding, "chunked");
      }
    }
    if (close) {
      res.set(http::field::connection, "close");
    } else if (http10) {
      res.set(http::field::connection, "keep-alive");
    } else {
      res.erase(http::field::connection);
    }
    exchange.close_after_ = close;

    out += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(res.result_int());
    out += ' ';
    out.append(res.reason());
    out += "\r\n";
    for (const auto& field : res) {
      out.append(field.name_string());
      out += ": ";
      out.append(field.value());
      out += "\r\n";
    }
    out += "\r\n";
    if (exchange.state_ == ExchangeImpl::State::kWhole) {
      if (!exchange.head_) out += res.body();
      exchange.response_.reset();
    }
  }

  void Release(ExchangeImpl& exchange) {
    if (exchange.released_) return;
    exchange.released_ = true;
    exchange.on_cancel_ = nullptr;
    exchange.session_.reset();
    exchange.response_.reset();
    if (exchange.counted_) core_->active_requests.fetch_sub(1, std::memory_order_relaxed);
    queued_request_bytes_ -= std::min(queued_request_bytes_, exchange.request_bytes_);
    exchange.request_bytes_ = 0;
  }

  void CancelQueued() {
    std::deque<std::shared_ptr<ExchangeImpl>> queue = std::move(queue_);
    queue_.clear();
    for (auto& exchange : queue) {
      if (!exchange->Done()) exchange->Cancel();
      Release(*exchange);
    }
  }

  // ---- Closing ----

  // After the last response: send FIN (TLS: close_notify), then drain input for a moment so
  // the client reads the response instead of a reset.
  void GracefulClose() {
    if (closed_ || closing_) return;
    closing_ = true;
    body_exchange_.reset();
    CancelQueued();
    DisarmWriteTimer();
    auto linger = std::chrono::duration_cast<std::chrono::nanoseconds>(kLingerTimeout);
    if (Options().idle_timeout.count() > 0 && Options().idle_timeout < linger) {
      linger = Options().idle_timeout;
    }
    ArmReadTimer(linger, TimerKind::kLinger);
    error_code ec;
    if constexpr (kTls) {
      // The SSL engine cannot shut down under a pending read; cancel it (no write is pending
      // here) and shut down from its completion.
      if (read_pending_) {
        Socket().cancel(ec);
      } else {
        StartTlsShutdown();
      }
    } else {
      Socket().shutdown(tcp::socket::shutdown_send, ec);
      if (!read_pending_) StartDiscardRead();
    }
  }

  void OnLingerRead(error_code ec) {
    if constexpr (kTls) {
      if (!shutdown_started_) StartTlsShutdown();
    } else {
      if (ec) {
        Abort();
        return;
      }
      buffer_.consume(buffer_.size());
      StartDiscardRead();
    }
  }

  void StartDiscardRead() {
    read_pending_ = true;
    stream_.async_read_some(buffer_.prepare(kReadChunk), [self = Self()](error_code ec, size_t) {
      self->read_pending_ = false;
      if (self->closed_) return;
      self->OnLingerRead(ec);
    });
  }

  void StartTlsShutdown() {
    if constexpr (kTls) {
      shutdown_started_ = true;
      stream_.async_shutdown([self = Self()](error_code) { self->Abort(); });
    }
  }

  std::shared_ptr<ListenerCore> core_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<const ListenerOptions> options_;  // This connection's, until its next request.
  RequestDecoder decoder_;
  // The request whose body is being streamed to the application, and whether reading waits
  // for it to take what was read.
  std::shared_ptr<ExchangeImpl> body_exchange_;
  bool body_paused_ = false;
  uint64_t queued_request_bytes_ = 0;  // Of the exchanges in queue_.
  std::deque<std::shared_ptr<ExchangeImpl>> queue_;
  std::string write_buf_;
  size_t write_offset_ = 0;  // Bytes of write_buf_ already written.
  std::shared_ptr<const ConnectionInfo> info_;
  net::steady_timer read_timer_;
  net::steady_timer write_timer_;
  uint64_t read_gen_ = 0;
  uint64_t write_gen_ = 0;
  TimerKind read_kind_ = TimerKind::kIdle;
  bool read_pending_ = false;
  bool write_pending_ = false;
  bool in_request_ = false;    // Between a request's first byte and its last.
  bool first_request_ = true;  // No request started on this connection yet.
  bool read_stopped_ = false;  // No further requests will be read.
  bool closing_ = false;       // GracefulClose() started.
  bool shutdown_started_ = false;
  bool closed_ = false;
};

// The two stream types, instantiated once here (no other translation unit sees Session).
template class Session<PlainStream>;
template class Session<TlsStream>;

}  // namespace

void StartSession(const std::shared_ptr<ListenerCore>& core, tcp::socket socket) {
  std::shared_ptr<SessionBase> session;
  if (core->tls_context) {
    auto tls = std::make_shared<Session<TlsStream>>(core, std::move(socket), *core->tls_context);
    session = tls;
    core->Register(session);
    tls->Run();
  } else {
    auto plain = std::make_shared<Session<PlainStream>>(core, std::move(socket));
    session = plain;
    core->Register(session);
    plain->Run();
  }
}

}  // namespace tipperary::http1::internal
