#include "tipperary/http1/request_framing.h"

#include <array>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tipperary::http1 {
namespace {

namespace http = boost::beast::http;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

RequestError BadRequest(std::string message) {
  return MakeRequestError(http::status::bad_request, absl::StatusCode::kInvalidArgument,
                          std::move(message));
}

bool IsTchar(unsigned char c) {
  // RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
  // "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return absl::ascii_isalnum(c) || kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

bool IsSubDelim(unsigned char c) {
  static constexpr std::string_view kSubDelims = "!$&'()*+,;=";
  return kSubDelims.find(static_cast<char>(c)) != std::string_view::npos;
}

// The framing fields of a head, gathered in one pass over its fields (a lookup per name would
// search the field tree once per name and line).
struct FramingFields {
  using Values = absl::InlinedVector<std::string_view, 2>;
  Values host, transfer_encoding, content_length, expect, connection;
};

FramingFields GatherFramingFields(const RequestHead& head) {
  FramingFields out;
  for (const auto& field : head) {
    std::string_view value(field.value().data(), field.value().size());
    switch (field.name()) {
      case http::field::host:
        out.host.push_back(value);
        break;
      case http::field::transfer_encoding:
        out.transfer_encoding.push_back(value);
        break;
      case http::field::content_length:
        out.content_length.push_back(value);
        break;
      case http::field::expect:
        out.expect.push_back(value);
        break;
      case http::field::connection:
        out.connection.push_back(value);
        break;
      default:
        break;
    }
  }
  return out;
}

// OWS-trimmed elements of a comma-separated list (RFC 9110 §5.6.1), empty elements dropped.
// Several field lines of one name are one list, in order.
absl::InlinedVector<std::string_view, 4> ListElements(const FramingFields::Values& values) {
  absl::InlinedVector<std::string_view, 4> out;
  for (std::string_view value : values) {
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string_view::npos) comma = value.size();
      std::string_view element = value.substr(start, comma - start);
      while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
        element.remove_prefix(1);
      }
      while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
        element.remove_suffix(1);
      }
      if (!element.empty()) out.push_back(element);
      start = comma + 1;
    }
  }
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Sv(a), Sv(b));
}

// RFC 9112 §6.1 and §7: only "chunked", once and last, frames a request body here.
std::optional<RequestError> CheckTransferEncoding(const FramingFields& fields) {
  absl::InlinedVector<std::string_view, 4> codings = ListElements(fields.transfer_encoding);
  if (codings.empty()) return BadRequest("empty Transfer-Encoding");
  for (std::string_view coding : codings) {
    // transfer-coding = token *( OWS ";" OWS transfer-parameter ); "chunked" takes none.
    std::string_view name = coding.substr(0, coding.find(';'));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!IsToken(name)) {
      return BadRequest(
          absl::StrCat("malformed Transfer-Encoding \"", Sv(coding.substr(0, 64)), "\""));
    }
  }
  if (!EqualsIgnoreCase(codings.back(), "chunked")) {
    // §6.3: the length cannot be determined: 400 and close, whatever the coding.
    return BadRequest("Transfer-Encoding must end with chunked");
  }
  for (size_t i = 0; i + 1 < codings.size(); ++i) {
    std::string_view name = codings[i].substr(0, codings[i].find(';'));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (EqualsIgnoreCase(name, "chunked")) {
      return BadRequest("chunked applied more than once in Transfer-Encoding");
    }
    static constexpr std::array<std::string_view, 5> kKnown = {"gzip", "x-gzip", "deflate",
                                                               "compress", "x-compress"};
    bool known = false;
    for (std::string_view k : kKnown) known = known || EqualsIgnoreCase(name, k);
    if (!known) {
      // An unregistered coding is indistinguishable from an obfuscated "chunked".
      return BadRequest(absl::StrCat("unknown transfer coding \"", Sv(name.substr(0, 64)), "\""));
    }
    return MakeRequestError(http::status::not_implemented, absl::StatusCode::kUnimplemented,
                            absl::StrCat("transfer coding \"", Sv(name), "\" is not supported"));
  }
  return std::nullopt;
}

// RFC 9110 §8.6 / RFC 9112 §6.3: one decimal value; a list of identical values is that value.
std::optional<RequestError> ParseContentLength(const FramingFields& fields, uint64_t* length) {
  std::optional<uint64_t> value;
  for (std::string_view text : fields.content_length) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string_view::npos) comma = text.size();
      std::string_view element = text.substr(start, comma - start);
      while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
        element.remove_prefix(1);
      }
      while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
        element.remove_suffix(1);
      }
      uint64_t v = 0;
      bool ok = !element.empty() && element.size() <= 19;
      for (char c : element) {
        if (c < '0' || c > '9') {
          ok = false;
          break;
        }
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (!ok) {
        return BadRequest(absl::StrCat("invalid Content-Length \"", Sv(text.substr(0, 64)), "\""));
      }
      if (value && *value != v) return BadRequest("conflicting Content-Length values");
      value = v;
      start = comma + 1;
    }
  }
  *length = value.value_or(0);
  return std::nullopt;
}

// RFC 9112 §3.2: origin-form, absolute-form (rewritten), asterisk-form for OPTIONS only;
// authority-form is CONNECT's, which this server does not implement.
std::optional<RequestError> NormaliseTarget(RequestHead& head, std::string* authority) {
  std::string_view target = head.target();
  if (!target.empty() && target.front() == '/') {
    if (!IsValidOriginTarget(target)) return BadRequest("invalid characters in the request target");
    return std::nullopt;
  }
  if (target == "*") {
    if (head.method() != http::verb::options) {
      return BadRequest("the asterisk-form target is only allowed with OPTIONS");
    }
    return std::nullopt;
  }
  size_t colon = target.find("://");
  if (colon == std::string_view::npos) return BadRequest("invalid request target");
  std::string_view scheme = target.substr(0, colon);
  if (!EqualsIgnoreCase(scheme, "http") && !EqualsIgnoreCase(scheme, "https")) {
    return BadRequest("absolute-form target with a scheme other than http or https");
  }
  std::string_view rest = target.substr(colon + 3);
  size_t path_start = rest.find_first_of("/?#");
  std::string_view auth = rest.substr(0, path_start);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
  if (auth.find('@') != std::string_view::npos) {
    return BadRequest("userinfo in the request target");  // RFC 9110 §4.2.4.
  }
  if (auth.empty() || auth.front() == ':' || !IsValidHost(auth)) {
    return BadRequest("invalid authority in the request target");  // RFC 9110 §4.2.1.
  }
  std::string origin;
  if (path.empty() || path.front() != '/') origin = "/";
  origin.append(path);
  if (!IsValidOriginTarget(origin)) return BadRequest("invalid characters in the request target");
  *authority = std::string(auth);
  head.target(origin);
  return std::nullopt;
}

}  // namespace

RequestError MakeRequestError(http::status status, absl::StatusCode code, std::string message) {
  RequestError error;
  error.status = status;
  error.code = code;
  error.message = std::move(message);
  return error;
}

RequestError BodyTooLarge(uint64_t length, uint64_t limit, std::string_view key) {
  return MakeRequestError(
      http::status::payload_too_large, absl::StatusCode::kResourceExhausted,
      absl::StrCat("request body of ", length, " bytes exceeds the limit of ", limit, " (",
                   absl::string_view(key.data(), key.size()), ")"));
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsValidHost(std::string_view host) {
  if (host.empty()) return true;
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view literal = host.substr(1, close - 1);
    if (literal.empty()) return false;
    for (char c : literal) {
      unsigned char u = static_cast<unsigned char>(c);
      // IPv6address (hex, ':', '.') or IPvFuture ("v" HEXDIG "." unreserved/sub-delims/":").
      if (!(IsUnreserved(u) || IsSubDelim(u) || c == ':')) return false;
    }
    std::string_view after = host.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port = after.substr(1);
    }
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
    }
    for (size_t i = 0; i < name.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(name[i]);
      if (c == '%') {
        if (i + 2 >= name.size() ||
            !absl::ascii_isxdigit(static_cast<unsigned char>(name[i + 1])) ||
            !absl::ascii_isxdigit(static_cast<unsigned char>(name[i + 2]))) {
          return false;
        }
        i += 2;
        continue;
      }
      if (!IsUnreserved(c) && !IsSubDelim(c)) return false;
    }
  }
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return port.size() <= 5;
}

bool IsValidOriginTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return false;
  for (char c : target) {
    unsigned char u = static_cast<unsigned char>(c);
    // Visible ASCII only; '#' starts a fragment, which a request target never has. Characters
    // RFC 3986 calls unwise ('{', '|', '"', ...) are accepted as nginx does: clients send them.
    if (u <= 0x20 || u >= 0x7f || c == '#') return false;
  }
  return true;
}

std::optional<RequestError> CheckFraming(const RequestLimits& limits, RequestHead& head,
                                         RequestFraming* framing) {
  RequestFraming out;
  const unsigned version = head.version();
  if (head.method() == http::verb::connect) {
    return MakeRequestError(http::status::not_implemented, absl::StatusCode::kUnimplemented,
                            "CONNECT is not supported");
  }

  const FramingFields fields = GatherFramingFields(head);
  // Host (RFC 9112 §3.2): exactly one on HTTP/1.1, at most one on HTTP/1.0, always valid.
  size_t hosts = fields.host.size();
  if (hosts > 1) return BadRequest("more than one Host header field");
  if (hosts == 0 && version >= 11) return BadRequest("missing Host header field");
  if (hosts == 1) {
    std::string_view host = fields.host.front();
    // An http(s) URI always has a non-empty host (RFC 9110 §4.2.1), so an empty Host is
    // rejected here, as nginx does.
    if (host.empty()) return BadRequest("empty Host header field");
    if (!IsValidHost(host)) return BadRequest("invalid Host header field");
  }

  std::string authority;
  if (std::optional<RequestError> error = NormaliseTarget(head, &authority)) return error;

  const bool has_te = !fields.transfer_encoding.empty();
  const bool has_cl = !fields.content_length.empty();
  if (has_te) {
    if (version < 11) return BadRequest("Transfer-Encoding in an HTTP/1.0 request");
    if (has_cl) return BadRequest("both Transfer-Encoding and Content-Length");
    if (std::optional<RequestError> error = CheckTransferEncoding(fields)) return error;
    out.body = RequestFraming::Body::kChunked;
  } else if (has_cl) {
    if (std::optional<RequestError> error = ParseContentLength(fields, &out.content_length)) {
      return error;
    }
    if (out.content_length > limits.max_body_bytes) {
      return BodyTooLarge(out.content_length, limits.max_body_bytes,
                          "limits.max_request_body_bytes");
    }
    if (out.content_length > 0) out.body = RequestFraming::Body::kContentLength;
  }

  // Expect (RFC 9110 §10.1.1): 100-continue is the only expectation; HTTP/1.0 ignores it.
  for (size_t i = 0; i < fields.expect.size() && version >= 11; ++i) {
    if (!EqualsIgnoreCase(fields.expect[i], "100-continue")) {
      return MakeRequestError(http::status::expectation_failed,
                              absl::StatusCode::kFailedPrecondition,
                              "only the 100-continue expectation is supported");
    }
    out.expect_continue = true;
  }
  if (out.body == RequestFraming::Body::kNone) out.expect_continue = false;

  // Persistence (RFC 9112 §9.3), from the header section only: trailers never change it.
  bool close = false;
  bool keep_alive_token = false;
  for (std::string_view token : ListElements(fields.connection)) {
    if (EqualsIgnoreCase(token, "close")) close = true;
    if (EqualsIgnoreCase(token, "keep-alive")) keep_alive_token = true;
  }
  out.keep_alive = version >= 11 ? !close : (keep_alive_token && !close);

  if (!authority.empty()) head.set(http::field::host, authority);
  *framing = out;
  return std::nullopt;
}

}  // namespace tipperary::http1
