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
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tipperary/http1/request_framing.h"

namespace tipperary::http1 {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
using HttpFields = boost::beast::http::fields;

// A piece of a streamed request body (HttpExchange::ReadBody).
struct BodyPiece {
  std::string data;   // The bytes that arrived since the last piece; may be empty.
  bool last = false;  // The body ended with these bytes; trailers() is now complete.
  // The body broke off: malformed framing, a limit, or the client too slow to send it. The
  // connection closes after the response; answer `error->status` if nothing was sent yet.
  std::optional<RequestError> error;
};

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // A body sent with Content-Encoding (gzip, deflate) is already decoded here, the field
  // removed and Content-Length fixed (ListenerOptions::compression, compression.h). A streamed
  // body is not here (body_streamed()).
  virtual const HttpRequest& request() const = 0;
  // The body streams (ListenerOptions::stream_request_body chose it): the handler ran when the
  // head was read, request().body() stays empty, and the body comes through ReadBody().
  virtual bool body_streamed() const = 0;
  // The next piece of a streamed body, from the event loop and never from inside ReadBody():
  // once bytes have arrived, the body ended or it failed. One read at a time. The listener
  // reads the socket only while less than a window of the body waits to be read here, so a
  // client sends no faster than the application asks (TCP flow control). For a body that is
  // not streamed: the whole body, once, as the last piece.
  virtual void ReadBody(std::function<void(BodyPiece piece)> on_piece) = 0;
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
  // Response bytes accepted but not yet handed to the socket: how far a slow reader is behind.
  virtual size_t buffered_bytes() const = 0;
  // Runs `on_drained` once, from the event loop, when buffered_bytes() next drops to zero (soon
  // if it is zero now); never after a cancel. Lets a producer pause for a slow reader.
  virtual void NotifyWhenDrained(std::function<void()> on_drained) = 0;

  // Called once, on the loop thread, if the client goes away or the connection times out
  // before the response is complete. The application then cancels its upstream work; calls to
  // Respond/SendChunk after that are ignored.
  virtual void SetCancelHandler(std::function<void()> on_cancel) = 0;
  virtual bool cancelled() const = 0;
};

using RequestHandler = std::function<void(std::shared_ptr<HttpExchange> exchange)>;

}  // namespace tipperary::http1
