#include "tipperary/http1/compression.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tipperary/common/qvalue.h"

namespace tipperary::http1 {
namespace {

namespace http = boost::beast::http;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Sv(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

// A chain longer than this is not a real client's: refused before any work.
constexpr size_t kMaxRequestCodings = 4;
// zlib parameters of a stream's compressor: a 4 KiB window and small hash tables keep an open
// stream at about 24 KiB; messages of a stream rarely repeat each other further back.
constexpr int kStreamWindowBits = 12;
constexpr int kStreamMemLevel = 5;

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each non-empty, OWS-trimmed element of the comma-separated lists in
// every `name` field (RFC 9110 §5.6.1; several lines of one name are one list).
template <class Fields, class F>
void ForEachListElement(const Fields& fields, http::field name, F f) {
  auto [begin, end] = fields.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    std::string_view value = Sv(it->value());
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string_view::npos) comma = value.size();
      std::string_view element = TrimOws(value.substr(start, comma - start));
      if (!element.empty()) f(element);
      start = comma + 1;
    }
  }
}

std::string_view MediaType(std::string_view content_type) {
  return TrimOws(content_type.substr(0, content_type.find(';')));
}

bool MatchesPattern(std::string_view pattern, std::string_view type) {
  size_t slash = pattern.find('/');
  std::string_view sub = pattern.substr(slash + 1);
  if (sub == "*") return absl::StartsWithIgnoreCase(Sv(type), Sv(pattern.substr(0, slash + 1)));
  if (absl::StartsWith(Sv(sub), "*+")) {
    return type.size() > slash + 1 + sub.size() - 1 &&
           absl::StartsWithIgnoreCase(Sv(type), Sv(pattern.substr(0, slash + 1))) &&
           absl::EndsWithIgnoreCase(Sv(type), Sv(sub.substr(1)));
  }
  return absl::EqualsIgnoreCase(Sv(type), Sv(pattern));
}

bool IsBodiless(unsigned status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

// The checks shared by whole and streamed responses. Adds Vary when the type is compressible;
// returns the coding to use, kIdentity for none.
ContentCoding Decide(const CompressionOptions& options, const HttpRequest& request,
                     HttpResponse& response) {
  if (!options.enabled) return ContentCoding::kIdentity;
  const unsigned status = response.result_int();
  // 206: a range of the identity representation cannot be re-encoded.
  if (IsBodiless(status) || status == 206) return ContentCoding::kIdentity;
  // Already encoded by the application: never twice, and its own Vary is its business.
  if (response.find(http::field::content_encoding) != response.end()) {
    return ContentCoding::kIdentity;
  }
  if (!IsCompressibleType(options.types, Sv(response[http::field::content_type]))) {
    return ContentCoding::kIdentity;
  }
  // Caches must key on Accept-Encoding whenever the answer could have been otherwise.
  bool listed = false;
  ForEachListElement(response, http::field::vary, [&](std::string_view element) {
    listed = listed || element == "*" || absl::EqualsIgnoreCase(Sv(element), "accept-encoding");
  });
  // Another line of the application's Vary list, if it has one (RFC 9110 §5.3).
  if (!listed) response.insert(http::field::vary, "Accept-Encoding");
  // As nginx's gzip_http_version 1.1: HTTP/1.0 caches may ignore Vary.
  if (request.version() < 11) return ContentCoding::kIdentity;
  return NegotiateContentCoding(request);
}

// A compressed representation is a different one: a strong validator becomes weak
// (RFC 9110 §8.8.1), as nginx does.
void WeakenEtag(HttpResponse& response) {
  auto etag = response.find(http::field::etag);
  if (etag == response.end()) return;
  std::string_view value = Sv(etag->value());
  if (absl::StartsWith(Sv(value), "W/")) return;
  response.set(http::field::etag, absl::StrCat("W/", Sv(value)));
}

}  // namespace

ContentCoding NegotiateContentCoding(const HttpFields& request_fields) {
  if (request_fields.find(http::field::accept_encoding) == request_fields.end()) {
    return ContentCoding::kIdentity;
  }
  // -1: not listed.
  int gzip = -1, deflate = -1, identity = -1, star = -1;
  ForEachListElement(request_fields, http::field::accept_encoding, [&](std::string_view element) {
    size_t semi = element.find(';');
    std::string_view coding = TrimOws(element.substr(0, semi));
    int q = 1000;
    while (semi != std::string_view::npos) {
      size_t next = element.find(';', semi + 1);
      std::string_view param = TrimOws(element.substr(semi + 1, next - semi - 1));
      semi = next;
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        q = common::ParseQValue(param.substr(2));
      }
    }
    if (q < 0) return;  // A malformed weight: the element is ignored.
    int* slot = nullptr;
    if (absl::EqualsIgnoreCase(Sv(coding), "gzip") ||
        absl::EqualsIgnoreCase(Sv(coding), "x-gzip")) {
      slot = &gzip;
    } else if (absl::EqualsIgnoreCase(Sv(coding), "deflate")) {
      slot = &deflate;
    } else if (absl::EqualsIgnoreCase(Sv(coding), "identity")) {
      slot = &identity;
    } else if (coding == "*") {
      slot = &star;
    }
    if (slot != nullptr) *slot = std::max(*slot, q);
  });
  // "*" stands for every coding not listed by name.
  if (gzip < 0) gzip = std::max(star, 0);
  if (deflate < 0) deflate = std::max(star, 0);
  const int best = std::max(gzip, deflate);
  if (best == 0) return ContentCoding::kIdentity;
  // identity wins only when the client weighs it above every compression it accepts.
  if (identity > best) return ContentCoding::kIdentity;
  return gzip >= deflate ? ContentCoding::kGzip : ContentCoding::kDeflate;
}

bool IsCompressibleType(const std::vector<std::string>& types, std::string_view content_type) {
  std::string_view type = MediaType(content_type);
  if (type.empty()) return false;
  for (const std::string& pattern : types) {
    if (MatchesPattern(pattern, type)) return true;
  }
  return false;
}

void CompressResponse(const CompressionOptions& options, const HttpRequest& request,
                      HttpResponse& response) {
  std::string& body = response.body();
  // The size check first: most small responses need no negotiation at all.
  const bool big_enough = body.size() >= options.min_length_bytes && !body.empty();
  const ContentCoding coding = Decide(options, request, response);
  if (coding == ContentCoding::kIdentity || !big_enough) return;
  // The smallest window that covers the body (as nginx sizes its own): less memory to set up.
  int window_bits = 9;
  while (window_bits < 15 && (size_t{1} << window_bits) < body.size()) ++window_bits;
  Compressor compressor(coding, options.level, window_bits, std::max(1, window_bits - 7));
  if (!compressor.ok()) return;
  std::string compressed;
  compressor.Write(body, Compressor::Flush::kFinish, &compressed);
  if (compressed.size() >= body.size()) return;  // Incompressible: identity is smaller.
  body = std::move(compressed);
  response.set(http::field::content_encoding, ContentCodingName(coding));
  WeakenEtag(response);
}

std::unique_ptr<Compressor> BeginCompressedStream(const CompressionOptions& options,
                                                  const HttpRequest& request,
                                                  HttpResponse& header) {
  const ContentCoding coding = Decide(options, request, header);
  if (coding == ContentCoding::kIdentity) return nullptr;
  auto compressor =
      std::make_unique<Compressor>(coding, options.level, kStreamWindowBits, kStreamMemLevel);
  if (!compressor->ok()) return nullptr;
  header.set(http::field::content_encoding, ContentCodingName(coding));
  WeakenEtag(header);
  return compressor;
}

std::string_view AcceptedRequestCodings(const CompressionOptions& options) {
  return options.decode_requests ? "gzip, deflate" : "identity";
}

std::optional<RequestError> DecodeRequestContent(const CompressionOptions& options,
                                                 const RequestLimits& limits,
                                                 RequestHead* request) {
  if (request->find(http::field::content_encoding) == request->end()) return std::nullopt;
  absl::InlinedVector<ContentCoding, kMaxRequestCodings> codings;
  std::optional<RequestError> error;
  ForEachListElement(*request, http::field::content_encoding, [&](std::string_view element) {
    if (error) return;
    ContentCoding coding;
    if (absl::EqualsIgnoreCase(Sv(element), "identity")) {
      return;  // Reserved, means nothing (RFC 9110 §8.4.1): tolerated.
    } else if (absl::EqualsIgnoreCase(Sv(element), "gzip") ||
               absl::EqualsIgnoreCase(Sv(element), "x-gzip")) {
      coding = ContentCoding::kGzip;
    } else if (absl::EqualsIgnoreCase(Sv(element), "deflate")) {
      coding = ContentCoding::kDeflate;
    } else {
      error = MakeRequestError(
          http::status::unsupported_media_type, absl::StatusCode::kInvalidArgument,
          absl::StrCat("Content-Encoding \"", Sv(element.substr(0, 64)), "\" is not supported"));
      return;
    }
    if (codings.size() == kMaxRequestCodings) {
      error = MakeRequestError(
          http::status::unsupported_media_type, absl::StatusCode::kInvalidArgument,
          absl::StrCat("more than ", kMaxRequestCodings, " content codings on a request body"));
      return;
    }
    codings.push_back(coding);
  });
  if (request->body().empty()) {
    // Nothing was encoded: the field says nothing about content there is not.
    request->erase(http::field::content_encoding);
    return std::nullopt;
  }
  if (error) return error;
  if (codings.empty()) return std::nullopt;
  if (!options.decode_requests) {
    return MakeRequestError(
        http::status::unsupported_media_type, absl::StatusCode::kInvalidArgument,
        absl::StrCat("Content-Encoding \"", Sv(ContentCodingName(codings.front())),
                     "\" is not accepted here (compression.decode_requests is off)"));
  }
  const uint64_t max_decoded =
      options.max_decoded_body_bytes > 0 ? options.max_decoded_body_bytes : limits.max_body_bytes;
  const uint64_t encoded_size = request->body().size();
  std::string input = std::move(request->body());
  std::string output;
  for (size_t i = codings.size(); i-- > 0;) {
    output.clear();
    std::optional<RequestError> over;
    Decompressor decompressor(codings[i]);
    Decompressor::Result result = decompressor.Decode(input, [&](std::string_view block, uint64_t) {
      if (block.size() > max_decoded - output.size()) {
        over =
            MakeRequestError(http::status::payload_too_large, absl::StatusCode::kResourceExhausted,
                             absl::StrCat("decoded request body exceeds the limit of ", max_decoded,
                                          " bytes (compression.max_decoded_request_body_bytes)"));
        return false;
      }
      output.append(block);
      if (options.max_decoding_ratio > 0 && output.size() > kRatioCheckFloorBytes &&
          output.size() / options.max_decoding_ratio > encoded_size) {
        over = MakeRequestError(
            http::status::payload_too_large, absl::StatusCode::kResourceExhausted,
            absl::StrCat("request body decodes to more than ", options.max_decoding_ratio,
                         " times its encoded size (compression.max_request_decoding_ratio)"));
        return false;
      }
      return true;
    });
    switch (result) {
      case Decompressor::Result::kOk:
        break;
      case Decompressor::Result::kStopped:
        return over;
      case Decompressor::Result::kTruncated:
      case Decompressor::Result::kCorrupt:
        return MakeRequestError(
            http::status::bad_request, absl::StatusCode::kInvalidArgument,
            absl::StrCat("request body is not valid ", Sv(ContentCodingName(codings[i])),
                         " content",
                         result == Decompressor::Result::kTruncated ? " (truncated)" : ""));
      case Decompressor::Result::kNoMemory:
        return MakeRequestError(http::status::service_unavailable,
                                absl::StatusCode::kResourceExhausted,
                                "out of memory decoding the request body");
    }
    std::swap(input, output);
    // The memory of the previous stage goes now, not at the end.
    std::string().swap(output);
  }
  request->body() = std::move(input);
  request->erase(http::field::content_encoding);
  if (request->find(http::field::content_length) != request->end()) {
    request->content_length(request->body().size());
  }
  return std::nullopt;
}

}  // namespace tipperary::http1
