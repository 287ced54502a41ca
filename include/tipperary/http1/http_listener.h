// An HTTP/1.1 server socket (optionally TLS / mTLS) on one io_context: accepts connections and
// hands each request to a RequestHandler as an HttpExchange (see http_exchange.h).
//
// The proxy runs one io_context per thread and creates one HttpListener per thread and address,
// all bound to the same port with SO_REUSEPORT so the kernel spreads connections. The listener
// enforces the limits and timeouts of ListenerOptions, supports keep-alive, pipelining (responses
// in request order), chunked request bodies and Expect: 100-continue, and answers protocol errors
// itself with a google.rpc.Status-shaped JSON body.
//
//   boost::asio::io_context ioc;
//   ListenerOptions options;
//   options.endpoint = *common::ParseEndpoint("127.0.0.1:0", /*allow_port_zero=*/true);
//   auto listener = HttpListener::Create(ioc, options, handler, /*tls_context=*/nullptr);
//   if (!listener.ok()) return listener.status();
//   (*listener)->Start();
//   ioc.run();
//
// Threading: every method may be called from any thread; the work runs on the listener's
// io_context thread (inline when called from it). The accessors are atomic. Destroy a listener
// before its io_context; destruction stops accepting and closes the connections.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/common/endpoint.h"
#include "tipperary/http1/compression.h"
#include "tipperary/http1/http_exchange.h"
#include "tipperary/http1/request_framing.h"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}  // namespace ssl
}  // namespace boost::asio

namespace tipperary::http1 {

struct TlsOptions {
  std::string cert_file;       // PEM certificate chain.
  std::string key_file;        // PEM private key.
  std::string client_ca_file;  // PEM CA bundle; when set, client certificates are verified (mTLS).
  bool require_client_cert = true;  // With client_ca_file: reject clients without a certificate.
  std::string min_version = "1.2";  // "1.2" or "1.3".
};

struct ListenerOptions {
  std::string name = "http";      // For logs.
  common::Endpoint endpoint;      // TCP only; port 0 picks a free port (see HttpListener::port()).
  std::optional<TlsOptions> tls;  // Informational; TLS is on when Create() gets a context.
  // Head, body, chunk extensions and trailers of one request (RFC 9112 framing rules and
  // their limits: request_framing.h).
  RequestLimits limits;
  // Response compression (Accept-Encoding) and request body decoding (Content-Encoding).
  CompressionOptions compression;
  // Unparsed input a connection holds, and the bodies of requests read ahead of their
  // responses (past it, reading ahead pauses). At least every limit above.
  uint64_t max_connection_buffer_bytes = 64 * 1024;
  uint32_t max_pipelined_requests = 16;  // Requests read ahead of their responses per connection.
  uint32_t max_connections = 10000;      // Per listener object; at the cap, accepting pauses.
  // A zero or negative duration disables that timeout.
  std::chrono::nanoseconds idle_timeout{std::chrono::seconds(60)};  // Keep-alive, no request.
  std::chrono::nanoseconds request_read_timeout{std::chrono::seconds(30)};  // Headers+body: 408.
  // A response write that makes no progress this long closes the connection.
  std::chrono::nanoseconds response_write_timeout{std::chrono::seconds(30)};
  std::string server_header = "tipperary-proxy";  // Empty: no Server header.
  bool log_listening = true;  // Log "listening" on Start(); the proxy sets it on one listener.
  // Which requests' bodies stream (HttpExchange::body_streamed): asked once per request with a
  // body and no Content-Encoding, when its head has been read. Null: every body is read whole.
  std::function<bool(const HttpRequest& head)> stream_request_body;
  // How much of a streamed body is read ahead of the application (see HttpExchange::ReadBody).
  uint64_t stream_body_window_bytes = 256 * 1024;
  // The body of an error the listener answers itself after reading a request's head (a body
  // over its limit, a stalled body, an undecodable Content-Encoding), so that a route imitating
  // another API keeps that API's error shape. Null, or an empty answer: google.rpc.Status JSON.
  std::function<std::string(const HttpRequest& head, const RequestError& error)> render_error;
};

// Totals since creation, for metrics.
struct ListenerCounters {
  uint64_t connections_accepted = 0;
  uint64_t requests = 0;         // Requests handed to the handler.
  uint64_t protocol_errors = 0;  // Requests answered by the listener (400/408/413/415/431/505).
  uint64_t timeouts = 0;         // Request-read (408), write and handshake timeouts.
  uint64_t tls_handshake_failures = 0;  // Includes handshake timeouts.
  // Content codings: responses sent compressed (whole or streamed), their body bytes before and
  // after compression, and request bodies decoded from a Content-Encoding.
  uint64_t compressed_responses = 0;
  uint64_t compression_input_bytes = 0;
  uint64_t compression_output_bytes = 0;
  uint64_t decoded_request_bodies = 0;
};

// A TLS server context (TLS 1.2+ or 1.3+, modern ciphers, ALPN http/1.1, optional mTLS), built
// once and shared by every thread's listener. Errors name the file or option at fault.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const TlsOptions& options);

namespace internal {
class ListenerCore;
}  // namespace internal

class HttpListener {
 public:
  // Binds (SO_REUSEADDR + SO_REUSEPORT) and listens; the error names the address. A null
  // tls_context serves plain HTTP.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Create(
      boost::asio::io_context& ioc, ListenerOptions options, RequestHandler handler,
      std::shared_ptr<boost::asio::ssl::context> tls_context);

  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;
  ~HttpListener();

  // The bound port (useful with port 0).
  uint16_t port() const;
  // ListenerOptions::name ("http", "admin").
  const std::string& name() const;
  // "host:port" with the bound port ("[v6]:port" for IPv6 literals).
  std::string address() const;

  // Begins accepting (logs "listening" when options.log_listening).
  void Start();
  // Closes the listening socket; open connections continue.
  void StopAccepting();
  // From now on responses carry Connection: close and idle keep-alive connections are closed.
  void SetDraining();
  // Hard close of every connection; pending exchanges get their cancel handler called.
  void CloseAll();
  // Loop thread. A reload: limits, timeouts, compression and handlers of `options` apply to
  // every request read from now on, on new and open connections alike (a request being read or
  // answered keeps the options it started with). The address, name and TLS stay as bound.
  void UpdateOptions(ListenerOptions options);

  size_t active_connections() const;
  // Requests read whose response is not yet fully written.
  size_t active_requests() const;
  ListenerCounters counters() const;

 private:
  explicit HttpListener(std::shared_ptr<internal::ListenerCore> core);
  std::shared_ptr<internal::ListenerCore> core_;
};

}  // namespace tipperary::http1
