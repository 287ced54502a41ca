// Bytes in, HTTP/1.x requests out: the sans-I/O request reader every listener connection uses
// (and the HTTP fuzzer drives), so that no parser quirk decides how a request is framed.
//
// The head is checked byte by byte first (request line, field lines, no obs-fold, no bare CR or
// LF), then parsed by Beast, then framed by CheckFraming (request_framing.h) before a single
// body byte is read. Trailer fields are kept apart from the header fields. Everything the peer
// can make the decoder hold is bounded by RequestLimits: a caller that keeps at most the bytes
// the decoder has not consumed holds at most max(limits) + one read.
//
//   RequestDecoder decoder(limits);
//   std::string pending;                         // unconsumed input
//   for (;;) {
//     pending += Read();
//     size_t used = 0;
//     RequestDecoder::Event e = decoder.Decode(pending, &used);
//     pending.erase(0, used);
//     if (e == RequestDecoder::Event::kComplete) Handle(decoder.TakeRequest());
//     if (e == RequestDecoder::Event::kError) Fail(decoder.error());  // then close
//   }
#pragma once

#include <boost/beast/http/fields.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "tipperary/http1/request_framing.h"

namespace tipperary::http1 {

class RequestDecoder {
 public:
  enum class Event {
    kNeedMore,  // Everything given was consumed or must be given again with more bytes.
    kHeader,    // The head is complete and framed; call again for the body.
    kComplete,  // A whole request: TakeRequest(), TakeTrailers(), then Reset() for the next.
    kError,     // error() says what to answer; the connection must close.
  };

  // Whether a request's body is streamed: handed out as it arrives (TakeBody) instead of held
  // whole for TakeRequest(), and bounded by max_streamed_body_bytes instead of max_body_bytes.
  // Asked once per request with a body, when its head is framed (the head is normalised).
  using StreamSelector = std::function<bool(const RequestHead& head)>;

  explicit RequestDecoder(const RequestLimits& limits);
  ~RequestDecoder();
  RequestDecoder(const RequestDecoder&) = delete;
  RequestDecoder& operator=(const RequestDecoder&) = delete;

  // `input` is every byte received and not yet consumed; *consumed is how many of them are
  // done with (the caller drops them and passes the rest, with more, next time).
  Event Decode(std::string_view input, size_t* consumed);

  // Starts the next request on the same connection.
  void Reset();
  // Reset() with new limits (a reload changed them): they apply from the next request on.
  void Reset(const RequestLimits& limits);
  // Before the first Decode(); none by default (every body is held whole).
  void set_stream_selector(StreamSelector selector);

  // Whether any byte of the current request has been consumed (beyond empty lines).
  bool started() const;
  // Whether the current request's head was read and framed (head() is meaningful), even if its
  // body then failed.
  bool head_complete() const;
  // After kHeader.
  const RequestHead& head() const;
  const RequestFraming& framing() const;
  // After kHeader: the selector chose to stream this request's body.
  bool streaming() const;
  // A streamed body's bytes decoded since the last call (de-chunked), possibly none.
  std::string TakeBody();
  // After kComplete (a streamed request's head has an empty body).
  RequestHead TakeRequest();
  boost::beast::http::fields TakeTrailers();
  // After kError.
  const RequestError& error() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tipperary::http1
