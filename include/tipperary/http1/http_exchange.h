// One HTTP/1.1 request and its response, as the listener hands it to the application.
//
// The listener reads and validates the request (limits, timeouts, Expect: 100-continue,
// chunked bodies) and calls the RequestHandler on the connection's event-loop thread. The
// handler answers later, from that same thread, through the exchange; pipelined responses are
// written in request order whatever order they complete in.
//
//   http1::RequestHandler handler = [](std::shared_ptr<HttpExchange> ex) {
//     HttpResponse res{boost::beast::http::status::ok, ex->request().version()};
//     res.body() = "hello";
//     ex->Respond(std::move(res));
//   };
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <string>

namespace tipperary::http1 {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
using HttpFields = boost::beast::http::fields;

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // A body sent with Content-Encoding (gzip, deflate) is already decoded here, the field
  // removed and Content-Length fixed (ListenerOptions::compression, compression.h).
  virtual const HttpRequest& request() const = 0;
  // Trailer fields of a chunked request body, kept apart from request().  They never count as
  // header fields (RFC 9110 §6.5.1); the application decides which, if any, it uses.
  virtual const HttpFields& trailers() const = 0;
  // The peer's IP address as text (for X-Forwarded-For), without the port.
  virtual const std::string& peer_address() const = 0;
  virtual bool is_tls() const = 0;
  // The verified client certificate's subject, when mTLS verified one; else empty.
  virtual const std::string& peer_certificate_subject() const = 0;

  // A whole response. The listener sets Content-Length, Connection and keep-alive itself, and
  // compresses the body when the client accepts it (Content-Encoding, Vary: compression.h).
  virtual void Respond(HttpResponse response) = 0;

  // A streamed response: headers now (chunked for HTTP/1.1; close-delimited for 1.0), then
  // chunks, then EndStream with optional trailers (HTTP/1.1 only; dropped for 1.0). A stream
  // of a compressible type is compressed chunk by chunk, each flushed as it is sent.
  virtual void BeginStream(HttpResponse header) = 0;
  virtual void SendChunk(std::string data) = 0;
  virtual void EndStream(HttpFields trailers) = 0;

  // Called once, on the loop thread, if the client goes away or the connection times out
  // before the response is complete. The application then cancels its upstream work; calls to
  // Respond/SendChunk after that are ignored.
  virtual void SetCancelHandler(std::function<void()> on_cancel) = 0;
  virtual bool cancelled() const = 0;
};

using RequestHandler = std::function<void(std::shared_ptr<HttpExchange> exchange)>;

}  // namespace tipperary::http1
