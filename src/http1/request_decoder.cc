#include "tipperary/http1/request_decoder.h"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cctype>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace tipperary::http1 {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;

// A body grows as it arrives: a Content-Length alone never reserves more than this.
constexpr uint64_t kMaxBodyReserve = 64 * 1024;
// The chunk-size digits a chunk line may carry besides its extensions (uint64 in hex, with a
// few leading zeros).
constexpr uint64_t kMaxChunkSizeDigits = 32;

// RFC 9110 §5.6.2 tchar, as a table: the head is checked byte by byte on every request.
constexpr std::array<bool, 256> MakeTcharTable() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}
constexpr std::array<bool, 256> kTchar = MakeTcharTable();

bool IsTchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

RequestError BadRequest(std::string message) {
  return MakeRequestError(http::status::bad_request, absl::StatusCode::kInvalidArgument,
                          std::move(message));
}

// The request line: method SP request-target SP HTTP-version (RFC 9112 §3). *minor receives
// the minor version; HTTP/1.x above 1.1 is read as 1.1 (RFC 9110 §2.5).
std::optional<RequestError> CheckRequestLine(std::string_view line, int* minor) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return BadRequest("malformed request line");
  for (char c : line.substr(0, sp1)) {
    if (!IsTchar(c)) return BadRequest("malformed request method");
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return BadRequest("malformed request line");
  std::string_view version = line.substr(sp2 + 1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
      version[6] != '.' || !digit(version[7])) {
    return BadRequest("malformed HTTP version in the request line");
  }
  if (version[5] != '1') {
    return MakeRequestError(http::status::http_version_not_supported,
                            absl::StatusCode::kUnimplemented, "HTTP version not supported");
  }
  *minor = version[7] - '0';
  return std::nullopt;
}

// Every line of the head is CRLF-terminated with no other control character but HTAB; field
// lines are `token ":" value` (no whitespace before the colon, RFC 9112 §5.1) and never folded
// (§5.2); a line starting with whitespace is rejected, as §2.2 allows.
std::optional<RequestError> CheckHeadBytes(std::string_view head, int* minor) {
  bool first = true;
  size_t pos = 0;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    // The caller found the blank line that ends the head, so eol exists.
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    for (char c : line) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return BadRequest(c == '\r' || c == '\n' ? "bare CR or LF in the request head"
                                                 : "control character in the request head");
      }
    }
    if (first) {
      first = false;
      if (std::optional<RequestError> error = CheckRequestLine(line, minor)) return error;
      continue;
    }
    if (line.empty()) break;  // The end of the head.
    if (line.front() == ' ' || line.front() == '\t') {
      return BadRequest("obsolete line folding or whitespace before a header field");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return BadRequest("malformed header field");
    for (char c : line.substr(0, colon)) {
      if (!IsTchar(c)) {
        return BadRequest(c == ' ' || c == '\t' ? "whitespace before the colon of a header field"
                                                : "malformed header field name");
      }
    }
  }
  return std::nullopt;
}

// Beast's incremental parser with the message built here: header fields and trailer fields in
// two containers, limits on chunk extensions and the body, framing checked before the body.
class Parser final : public http::basic_parser<true> {
 public:
  Parser(const RequestLimits& limits, const RequestDecoder::StreamSelector* selector)
      : limits_(limits), selector_(selector) {
    header_limit(
        static_cast<std::uint32_t>(std::min<uint64_t>(limits.max_header_bytes + 8, UINT32_MAX)));
    body_limit(boost::none);  // Enforced here, after the framing checks.
  }

  RequestHead head;
  http::fields trailers;
  RequestFraming framing;
  std::optional<RequestError> error;
  bool in_trailers = false;
  uint64_t chunks = 0;           // Chunks with data seen so far.
  uint64_t chunk_remaining = 0;  // Bytes of the current chunk's data still to come.
  uint64_t body_bytes = 0;       // The body so far, whether held in head.body() or taken.
  bool streaming = false;        // The selector took this body: it is taken as it arrives.
  bool framed = false;           // The head passed CheckFraming (a body limit may still fail).

 private:
  void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target,
                       int version, error_code&) override {
    if (method == http::verb::unknown) {
      head.method_string(method_str);
    } else {
      head.method(method);
    }
    head.target(target);
    head.version(static_cast<unsigned>(version));
  }

  void on_response_impl(int, beast::string_view, int, error_code& ec) override {
    ec = http::error::bad_method;  // Never called for a request parser.
  }

  void on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                     error_code&) override {
    // RFC 9110 §6.5.1: trailer fields are never merged into the header fields.
    if (in_trailers) {
      trailers.insert(name, name_string, value);
    } else {
      head.insert(name, name_string, value);
    }
  }

  void on_header_impl(error_code& ec) override {
    // A body that may be streamed is checked against its own limit once the selector spoke.
    RequestLimits framing_limits = limits_;
    if (*selector_) framing_limits.max_body_bytes = UINT64_MAX;
    if (std::optional<RequestError> e = CheckFraming(framing_limits, head, &framing)) {
      error = std::move(*e);
      ec = http::error::bad_value;
      return;
    }
    framed = true;
    streaming = framing.body != RequestFraming::Body::kNone && *selector_ && (*selector_)(head);
    if (framing.body == RequestFraming::Body::kContentLength &&
        framing.content_length > BodyLimit()) {
      error = TooLarge(framing.content_length);
      ec = http::error::body_limit;
      return;
    }
    // Beast reads the body by its own reading of the fields: it must agree with ours, or the
    // two would disagree on where this request ends (smuggling).
    const bool chunked_here = framing.body == RequestFraming::Body::kChunked;
    boost::optional<std::uint64_t> length = content_length();
    bool agree = chunked() == chunked_here;
    if (framing.body == RequestFraming::Body::kContentLength) {
      agree = agree && length && *length == framing.content_length;
    } else if (framing.body == RequestFraming::Body::kNone) {
      agree = agree && (!length || *length == 0);
    }
    if (!agree) {
      error = BadRequest("ambiguous message framing");
      ec = http::error::bad_value;
    }
  }

  void on_body_init_impl(boost::optional<std::uint64_t> const& content_length,
                         error_code&) override {
    if (content_length && !streaming) {
      head.body().reserve(static_cast<size_t>(std::min(*content_length, kMaxBodyReserve)));
    }
  }

  std::size_t on_body_impl(beast::string_view body, error_code&) override {
    head.body().append(body.data(), body.size());
    body_bytes += body.size();
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t size, beast::string_view extensions,
                            error_code& ec) override {
    if (extensions.size() > limits_.max_chunk_extension_bytes) {
      error = BadRequest(absl::StrCat("chunk extensions longer than ",
                                      limits_.max_chunk_extension_bytes,
                                      " bytes (limits.max_chunk_extension_bytes)"));
      ec = http::error::bad_chunk_extension;
      return;
    }
    if (size == 0) {
      in_trailers = true;  // The trailer fields follow in this same call.
      return;
    }
    if (size > BodyLimit() - body_bytes) {
      error = TooLarge(body_bytes + size);
      ec = http::error::body_limit;
      return;
    }
    chunk_remaining = size;
    ++chunks;
  }

  std::size_t on_chunk_body_impl(std::uint64_t remain, beast::string_view body,
                                 error_code&) override {
    head.body().append(body.data(), body.size());
    body_bytes += body.size();
    chunk_remaining = remain - body.size();
    return body.size();
  }

  void on_finish_impl(error_code&) override {}

  uint64_t BodyLimit() const {
    if (!streaming) return limits_.max_body_bytes;
    return limits_.max_streamed_body_bytes > 0 ? limits_.max_streamed_body_bytes : UINT64_MAX;
  }

  RequestError TooLarge(uint64_t length) const {
    return BodyTooLarge(
        length, BodyLimit(),
        streaming ? "limits.max_streamed_request_body_bytes" : "limits.max_request_body_bytes");
  }

  const RequestLimits& limits_;
  const RequestDecoder::StreamSelector* selector_;
};

}  // namespace

class RequestDecoder::Impl {
 public:
  explicit Impl(const RequestLimits& limits) : limits_(limits) { Reset(); }

  void Reset(const RequestLimits& limits) {
    limits_ = limits;
    Reset();
  }

  void Reset() {
    parser_.emplace(limits_, &selector_);
    state_ = State::kStart;
    scan_from_ = 0;
    started_ = false;
  }

  Event Decode(std::string_view input, size_t* consumed) {
    *consumed = 0;
    switch (state_) {
      case State::kStart:
        return DecodeHead(input, consumed);
      case State::kBody:
        return DecodeBody(input, consumed);
      case State::kComplete:
        return Event::kComplete;
      case State::kError:
        return Event::kError;
    }
    return Event::kError;
  }

  bool started() const { return started_; }
  bool head_complete() const { return parser_->framed; }
  const RequestHead& head() const { return parser_->head; }
  const RequestFraming& framing() const { return parser_->framing; }
  RequestHead TakeRequest() { return std::move(parser_->head); }
  void set_stream_selector(StreamSelector selector) { selector_ = std::move(selector); }
  bool streaming() const { return parser_->streaming; }
  std::string TakeBody() {
    std::string body;
    body.swap(parser_->head.body());
    return body;
  }
  http::fields TakeTrailers() { return std::move(parser_->trailers); }
  const RequestError& error() const { return error_; }

 private:
  enum class State { kStart, kBody, kComplete, kError };

  Event Fail(RequestError error) {
    error_ = std::move(error);
    state_ = State::kError;
    return Event::kError;
  }

  Event DecodeHead(std::string_view input, size_t* consumed) {
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    size_t skip = 0;
    while (!started_ && input.size() - skip >= 2 && input.substr(skip, 2) == "\r\n") skip += 2;
    if (skip > 0) {
      *consumed = skip;
      input.remove_prefix(skip);
      scan_from_ = 0;
    }
    if (input.empty() || (!started_ && input == "\r")) return Event::kNeedMore;
    started_ = true;
    // The head, blank line included, must end within its limit; once that many bytes are here
    // without its end, it never will. (The same verdict whatever the reads were.)
    const size_t limit = limits_.max_header_bytes + 4;
    size_t end = input.find("\r\n\r\n", scan_from_);
    const bool complete = end != std::string_view::npos && end + 4 <= limit;
    // A bare LF never ends a head here (RFC 9112 §2.2 allows rejecting it): say so now rather
    // than wait for a CRLF CRLF that is not coming.
    const size_t check_to = complete ? end : std::min(input.size(), limit);
    for (size_t i = scan_from_; i < check_to;) {
      const void* lf = std::memchr(input.data() + i, '\n', check_to - i);
      if (lf == nullptr) break;
      i = static_cast<size_t>(static_cast<const char*>(lf) - input.data());
      if (i == 0 || input[i - 1] != '\r') return Fail(BadRequest("bare LF in the request head"));
      ++i;
    }
    if (!complete) {
      if (input.size() >= limit) return Fail(HeadTooLarge(input));
      scan_from_ = input.size() >= 3 ? input.size() - 3 : 0;
      return Event::kNeedMore;
    }
    std::string_view head = input.substr(0, end + 4);
    int minor = 1;
    if (std::optional<RequestError> error = CheckHeadBytes(head, &minor)) return Fail(*error);
    std::string patched;
    std::string_view to_parse = head;
    if (minor > 1) {
      // HTTP/1.2 and later minor versions are processed as HTTP/1.1 (RFC 9110 §2.5).
      patched.assign(head);
      patched[head.find("\r\n") - 1] = '1';
      to_parse = patched;
    }
    error_code ec;
    size_t used = parser_->put(boost::asio::buffer(to_parse.data(), to_parse.size()), ec);
    if (parser_->error) return Fail(*parser_->error);
    if (ec) return Fail(BadRequest(absl::StrCat("malformed request head: ", ec.message())));
    if (used != head.size() || !parser_->is_header_done()) {
      return Fail(BadRequest("malformed request head"));
    }
    *consumed += head.size();
    state_ = parser_->is_done() ? State::kComplete : State::kBody;
    return state_ == State::kComplete ? Event::kComplete : Event::kHeader;
  }

  // One parser step at a time (Beast is not eager here), so that each chunk-size line and the
  // trailer section are checked against their limits before Beast reads them, whether they
  // arrived whole or a byte at a time.
  Event DecodeBody(std::string_view input, size_t* consumed) {
    const bool chunked = parser_->framing.body == RequestFraming::Body::kChunked;
    for (;;) {
      if (chunked && parser_->chunk_remaining == 0) {
        bool wait = false;
        if (std::optional<RequestError> error = CheckChunkLine(input, &wait)) return Fail(*error);
        if (wait) return Event::kNeedMore;
      }
      if (input.empty()) return Event::kNeedMore;
      error_code ec;
      size_t used = parser_->put(boost::asio::buffer(input.data(), input.size()), ec);
      *consumed += used;
      input.remove_prefix(used);
      if (parser_->error) return Fail(*parser_->error);
      if (ec == http::error::need_more) {
        if (chunked && parser_->chunk_remaining == 0) {
          bool wait = false;
          if (std::optional<RequestError> error = CheckChunkLine(input, &wait)) {
            return Fail(*error);
          }
        }
        return Event::kNeedMore;
      }
      if (ec) return Fail(BadRequest(absl::StrCat("malformed request body: ", ec.message())));
      if (parser_->is_done()) {
        state_ = State::kComplete;
        return Event::kComplete;
      }
      if (used == 0) return Event::kNeedMore;
    }
  }

  // `pending` starts at a chunk-size line (after the previous chunk's CRLF, if any): the line
  // may not outgrow its limit, and after the last chunk's line the trailer section may not.
  // *wait is set when the last chunk's trailer section has not ended yet: Beast then gets the
  // section only whole (its parser asserts on a partial one after the last chunk line).
  std::optional<RequestError> CheckChunkLine(std::string_view pending, bool* wait) const {
    if (parser_->chunks > 0) {
      // The previous chunk's data ends with CRLF, which Beast reads with this line.
      if (pending.size() < 2) return std::nullopt;
      if (pending.substr(0, 2) != "\r\n") return std::nullopt;  // Beast refuses it.
      pending.remove_prefix(2);
    }
    size_t eol = pending.find("\r\n");
    size_t line = eol;
    if (eol == std::string_view::npos) {
      // Unterminated so far; a last CR may be the first half of its CRLF.
      line = pending.size() - (!pending.empty() && pending.back() == '\r' ? 1 : 0);
    }
    // A CR not followed by LF, or a LF alone, is refused wherever the line was cut by reads.
    for (size_t i = 0; i < line; ++i) {
      if ((pending[i] == '\r' && i + 1 < pending.size()) || pending[i] == '\n') {
        return BadRequest("bare CR or LF in a chunk-size line");
      }
    }
    const uint64_t max_line = kMaxChunkSizeDigits + limits_.max_chunk_extension_bytes;
    if (line > max_line) {
      return BadRequest(absl::StrCat("chunk-size line longer than ", max_line,
                                     " bytes (limits.max_chunk_extension_bytes)"));
    }
    if (eol == std::string_view::npos) return std::nullopt;
    // Only the last chunk (size 0) is followed by a trailer section. A line that is not a size
    // at all is left to Beast, which refuses it.
    std::string_view digits = pending.substr(0, eol);
    if (digits.empty() || digits[0] != '0') return std::nullopt;
    size_t first = digits.find_first_not_of('0');
    if (first != std::string_view::npos &&
        std::isxdigit(static_cast<unsigned char>(digits[first]))) {
      return std::nullopt;
    }
    std::string_view trailers = pending.substr(eol + 2);
    bool ended = true;
    size_t trailer_bytes = 2;  // No trailer field: just the blank line.
    if (trailers.substr(0, 2) != "\r\n") {
      size_t end = trailers.find("\r\n\r\n");
      ended = end != std::string_view::npos;
      trailer_bytes = ended ? end + 4 : trailers.size();
    }
    if (trailer_bytes > limits_.max_trailer_bytes) {
      return MakeRequestError(
          http::status::request_header_fields_too_large, absl::StatusCode::kResourceExhausted,
          absl::StrCat("trailer section larger than ", limits_.max_trailer_bytes,
                       " bytes (limits.max_trailer_bytes)"));
    }
    *wait = !ended;
    return std::nullopt;
  }

  RequestError HeadTooLarge(std::string_view input) const {
    size_t eol = input.find("\r\n");
    if (eol == std::string_view::npos || eol > limits_.max_header_bytes) {
      // Nothing but the request line: its target is what is long (as nginx answers).
      return MakeRequestError(http::status::uri_too_long, absl::StatusCode::kInvalidArgument,
                              absl::StrCat("request line longer than ", limits_.max_header_bytes,
                                           " bytes (limits.max_header_bytes)"));
    }
    return MakeRequestError(http::status::request_header_fields_too_large,
                            absl::StatusCode::kResourceExhausted,
                            absl::StrCat("request head larger than ", limits_.max_header_bytes,
                                         " bytes (limits.max_header_bytes)"));
  }

  RequestLimits limits_;
  StreamSelector selector_;
  std::optional<Parser> parser_;
  State state_ = State::kStart;
  size_t scan_from_ = 0;  // Where to look for the end of the head next time.
  bool started_ = false;
  RequestError error_;
};

RequestDecoder::RequestDecoder(const RequestLimits& limits)
    : impl_(std::make_unique<Impl>(limits)) {}
RequestDecoder::~RequestDecoder() = default;

RequestDecoder::Event RequestDecoder::Decode(std::string_view input, size_t* consumed) {
  return impl_->Decode(input, consumed);
}
void RequestDecoder::Reset() { impl_->Reset(); }
void RequestDecoder::Reset(const RequestLimits& limits) { impl_->Reset(limits); }
bool RequestDecoder::started() const { return impl_->started(); }
bool RequestDecoder::head_complete() const { return impl_->head_complete(); }
const RequestHead& RequestDecoder::head() const { return impl_->head(); }
const RequestFraming& RequestDecoder::framing() const { return impl_->framing(); }
RequestHead RequestDecoder::TakeRequest() { return impl_->TakeRequest(); }
void RequestDecoder::set_stream_selector(StreamSelector selector) {
  impl_->set_stream_selector(std::move(selector));
}
bool RequestDecoder::streaming() const { return impl_->streaming(); }
std::string RequestDecoder::TakeBody() { return impl_->TakeBody(); }
boost::beast::http::fields RequestDecoder::TakeTrailers() { return impl_->TakeTrailers(); }
const RequestError& RequestDecoder::error() const { return impl_->error(); }

}  // namespace tipperary::http1
