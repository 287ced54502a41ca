// libFuzzer target: what the proxy makes of header fields and gRPC metadata on their way through
// (src/proxy/metadata_mapping.cc, grpc_web_codec.cc, src/upstream/grpc_wire.cc). The first byte
// picks one of four paths, the rest is lines ("name: value" where fields or metadata are meant):
//   0  request header fields -> upstream metadata (BuildUpstreamMetadata, RequestIdFor);
//   1  a gRPC-Web request: Content-Type line, then the body (DecodeGrpcWebRequest);
//   2  upstream metadata -> response header fields and a gRPC-Web trailer frame;
//   3  the wire helpers: Grpc-Timeout, base64, percent-encoding.
// Checks, besides "no crash, no leak, no UB":
// - a client cannot forge what the proxy writes: one x-request-id (the proxy's), at most one
//   x-forwarded-for ending in the peer; every key is one the upstream client sends; "-bin"
//   values are base64-decoded, other values copied as they came;
// - nothing an upstream sends can add a line to a response: field names are tokens, values hold
//   no CR, LF or NUL, and the trailer frame holds exactly the lines it should;
// - round trips: gRPC-Web frames, "-bin" values, grpc-message, Grpc-Timeout (never shorter).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "fuzz_check.h"
#include "grpc_web_codec.h"
#include "metadata_mapping.h"
#include "tipperary/http1/request_framing.h"
#include "tipperary/upstream/grpc_wire.h"

namespace {

namespace proxy = tipperary::proxy;
namespace upstream = tipperary::upstream;

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::pair<std::string_view, std::string_view>> SplitField(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::make_pair(line.substr(0, colon), TrimOws(line.substr(colon + 1)));
}

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(Sv(s)); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Sv(a), Sv(b));
}

// 0: header fields as the listener's decoder hands them over (token names; values without CR,
// LF or NUL, OWS trimmed) into upstream metadata.
void RequestFields(uint8_t flags, std::string_view text) {
  boost::beast::http::fields fields;
  std::vector<std::pair<std::string, std::string>> sent;
  for (std::string_view line : Lines(text)) {
    auto field = SplitField(line);
    if (!field || !tipperary::http1::IsToken(field->first) || HasLineBreakOrNul(field->second))
      continue;
    fields.insert(field->first, field->second);
    sent.emplace_back(field->first, field->second);
  }
  const bool headers_are_metadata = flags & 0x10;
  const std::string_view peer = (flags & 0x20) ? "10.1.2.3" : "";
  const std::string request_id = proxy::RequestIdFor(fields);
  FUZZ_CHECK(!request_id.empty() && request_id.size() <= 200);
  const upstream::Metadata metadata =
      proxy::BuildUpstreamMetadata(fields, peer, request_id, headers_are_metadata);

  int request_ids = 0;
  int forwarded_fors = 0;
  for (const auto& [key, value] : metadata) {
    FUZZ_CHECK(upstream::IsAllowedCustomMetadataKey(key));
    if (key == "x-request-id") {
      ++request_ids;
      FUZZ_CHECK(value == request_id);
    } else if (key == "x-forwarded-for") {
      ++forwarded_fors;
      FUZZ_CHECK(peer.empty() || std::string_view(value).ends_with(peer));
    } else if (upstream::IsBinaryHeader(key)) {
      // The bytes of some field's base64 value: a field named for this key (with or without the
      // Grpc-Metadata- prefix) whose value decodes to them.
      bool found = false;
      for (const auto& [name, text_value] : sent) {
        std::string decoded;
        const bool named =
            EqualsIgnoreCase(name, key) || EqualsIgnoreCase(name, "grpc-metadata-" + key);
        if (named &&
            (absl::Base64Unescape(text_value, &decoded) ||
             absl::WebSafeBase64Unescape(text_value, &decoded)) &&
            decoded == value) {
          found = true;
        }
      }
      FUZZ_CHECK(found);
    } else {
      FUZZ_CHECK(!HasLineBreakOrNul(value));
      bool found = false;
      for (const auto& [name, text_value] : sent) {
        if ((EqualsIgnoreCase(name, key) || EqualsIgnoreCase(name, "grpc-metadata-" + key)) &&
            text_value == value) {
          found = true;
        }
      }
      FUZZ_CHECK(found);
    }
  }
  FUZZ_CHECK(request_ids == 1);
  FUZZ_CHECK(forwarded_fors <= 1);
  FUZZ_CHECK(peer.empty() || forwarded_fors == 1);
}

// 1: a gRPC-Web request body; and any message through the encoder and back.
void GrpcWebRequest(uint8_t flags, std::string_view text) {
  const size_t end = text.find('\n');
  const std::string_view content_type = text.substr(0, end);
  const std::string_view body = end == std::string_view::npos ? "" : text.substr(end + 1);
  std::optional<proxy::GrpcWebMode> mode = proxy::GrpcWebModeFor(content_type);
  if (mode) FUZZ_CHECK(proxy::GrpcWebModeFor(proxy::GrpcWebContentType(*mode))->text == mode->text);
  const proxy::GrpcWebMode use = mode.value_or(proxy::GrpcWebMode{(flags & 0x10) != 0});
  absl::StatusOr<std::string> message = proxy::DecodeGrpcWebRequest(body, use);
  if (message.ok()) {
    // One uncompressed frame, nothing after it: re-encoded, the body itself.
    if (!use.text) FUZZ_CHECK(proxy::EncodeGrpcWebMessage(*message, use) == body);
  } else {
    FUZZ_CHECK(message.status().code() == absl::StatusCode::kInvalidArgument ||
               message.status().code() == absl::StatusCode::kUnimplemented);
  }
  for (bool text_mode : {false, true}) {
    const proxy::GrpcWebMode m{text_mode};
    absl::StatusOr<std::string> back =
        proxy::DecodeGrpcWebRequest(proxy::EncodeGrpcWebMessage(body, m), m);
    FUZZ_CHECK(back.ok() && *back == body);
  }
}

// The lines of a trailer frame's block ("name:value\r\n" each), or nullopt if it is not that.
std::optional<std::vector<std::pair<std::string, std::string>>> TrailerLines(std::string frame,
                                                                             bool text) {
  if (text) {
    std::string raw;
    if (!absl::Base64Unescape(frame, &raw)) return std::nullopt;
    frame = raw;
  }
  if (frame.size() < 5 || static_cast<uint8_t>(frame[0]) != 0x80) return std::nullopt;
  uint32_t size = 0;
  for (int i = 1; i < 5; ++i) size = (size << 8) | static_cast<uint8_t>(frame[i]);
  if (size != frame.size() - 5) return std::nullopt;
  std::string_view block = std::string_view(frame).substr(5);
  std::vector<std::pair<std::string, std::string>> lines;
  while (!block.empty()) {
    const size_t end = block.find("\r\n");
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = block.substr(0, end);
    block.remove_prefix(end + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || HasLineBreakOrNul(line.substr(colon + 1))) {
      return std::nullopt;
    }
    lines.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  return lines;
}

// 2: metadata as an upstream's HTTP/2 client hands it over (names as nghttp2 accepts them:
// lower-case tokens; values without CR, LF or NUL, but "-bin" values any bytes), then a status
// message (first line) and details (second line).
void ResponseMetadata(uint8_t flags, std::string_view text) {
  std::vector<std::string_view> lines = Lines(text);
  const std::string message = lines.empty() ? "" : std::string(lines[0]);
  const std::string details = lines.size() < 2 ? "" : std::string(lines[1]);
  upstream::Metadata metadata;
  for (size_t i = 2; i < lines.size(); ++i) {
    auto field = SplitField(lines[i]);
    if (!field || !tipperary::http1::IsToken(field->first)) continue;
    std::string key(field->first);
    if (std::any_of(key.begin(), key.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) continue;
    // The fuzzer's own CR stands in for what an upstream must not send; nghttp2 refuses it.
    if (!upstream::IsBinaryHeader(key) && HasLineBreakOrNul(field->second)) continue;
    metadata.emplace_back(std::move(key), std::string(field->second));
  }

  boost::beast::http::fields out;
  const std::vector<std::string> unprefixed = {"x-queue-time", "x-total-time"};
  const std::string_view prefix = (flags & 0x10) ? "Grpc-Trailer-" : "Grpc-Metadata-";
  proxy::AppendMetadataFields(metadata, prefix, out, unprefixed);
  size_t count = 0;
  for (const auto& field : out) {
    ++count;
    const std::string_view name(field.name_string().data(), field.name_string().size());
    const std::string_view value(field.value().data(), field.value().size());
    FUZZ_CHECK(tipperary::http1::IsToken(name));
    FUZZ_CHECK(!HasLineBreakOrNul(value));
  }
  FUZZ_CHECK(count == metadata.size());
  // Each entry shows as one field (Beast keeps fields of one name together, so the order may
  // differ): the name, lower-case, is the key or the prefix and the key; the value is the value,
  // base64 for "-bin" keys.
  std::vector<std::pair<std::string, std::string>> expected_fields;
  for (const auto& [key, value] : metadata) {
    const bool own_name = std::find(unprefixed.begin(), unprefixed.end(), key) != unprefixed.end();
    expected_fields.emplace_back(own_name ? key : Lower(prefix) + key, value);
  }
  std::vector<std::pair<std::string, std::string>> shown_fields;
  for (const auto& field : out) {
    std::string name =
        Lower(std::string_view(field.name_string().data(), field.name_string().size()));
    std::string value(field.value());
    // The key is the name less the prefix ("grpc-metadata-bin" is the key "bin", not binary).
    const std::string lower_prefix = Lower(prefix);
    const std::string_view key = name.starts_with(lower_prefix)
                                     ? std::string_view(name).substr(lower_prefix.size())
                                     : std::string_view(name);
    if (upstream::IsBinaryHeader(key)) {
      std::optional<std::string> decoded = upstream::Base64Decode(value);
      FUZZ_CHECK(decoded.has_value());
      value = *decoded;
    }
    shown_fields.emplace_back(std::move(name), std::move(value));
  }
  std::sort(expected_fields.begin(), expected_fields.end());
  std::sort(shown_fields.begin(), shown_fields.end());
  FUZZ_CHECK(shown_fields == expected_fields);

  const auto code = static_cast<absl::StatusCode>(flags % 17);
  const proxy::GrpcWebMode mode{(flags & 0x20) != 0};
  const std::string frame = proxy::EncodeGrpcWebTrailers(code, message, details, metadata, mode);
  auto trailer = TrailerLines(frame, mode.text);
  FUZZ_CHECK(trailer.has_value());
  size_t expected = 1 + !message.empty() + !details.empty();
  for (const auto& [key, value] : metadata) {
    if (!key.starts_with("grpc-status") && key != "grpc-message") ++expected;
  }
  FUZZ_CHECK(trailer->size() == expected);
  FUZZ_CHECK((*trailer)[0].first == "grpc-status" &&
             (*trailer)[0].second == std::to_string(static_cast<int>(code)));
  for (const auto& [name, value] : *trailer) {
    FUZZ_CHECK(tipperary::http1::IsToken(name));
    if (name == "grpc-message") {
      FUZZ_CHECK(
          std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }));
      FUZZ_CHECK(upstream::PercentDecode(value) == message);
    }
    if (name == "grpc-status-details-bin") {
      std::optional<std::string> decoded = upstream::Base64Decode(value);
      FUZZ_CHECK(decoded && *decoded == details);
    }
  }
}

// The reference for ParseGrpcTimeout: 1 to 8 digits and a unit, the value capped at 10^6 hours.
std::optional<int64_t> ReferenceTimeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  int64_t amount = 0;  // At most 8 digits.
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    amount = amount * 10 + (c - '0');
  }
  constexpr int64_t kCap = int64_t{3'600'000'000'000} * 1'000'000;
  static constexpr std::array<std::pair<char, int64_t>, 6> kUnits = {{{'H', 3'600'000'000'000},
                                                                      {'M', 60'000'000'000},
                                                                      {'S', 1'000'000'000},
                                                                      {'m', 1'000'000},
                                                                      {'u', 1'000},
                                                                      {'n', 1}}};
  for (const auto& [suffix, nanos] : kUnits) {
    if (v.back() == suffix) return amount > kCap / nanos ? kCap : amount * nanos;
  }
  return std::nullopt;
}

// 3: the wire helpers on each line.
void WireHelpers(std::string_view text) {
  for (std::string_view line : Lines(text)) {
    std::chrono::nanoseconds parsed{};
    const bool ok = proxy::ParseGrpcTimeout(line, &parsed);
    const std::optional<int64_t> reference = ReferenceTimeout(line);
    FUZZ_CHECK(ok == reference.has_value());
    if (ok) FUZZ_CHECK(parsed.count() == *reference);

    // Any duration, as 8 bytes of the line: encoded, parsed back, never shorter (unless over the
    // 10^6-hour cap) and at most a unit of the encoding longer.
    int64_t ns = 0;
    std::memcpy(&ns, line.data(), std::min<size_t>(line.size(), sizeof ns));
    const std::string encoded = upstream::EncodeGrpcTimeout(std::chrono::nanoseconds(ns));
    std::chrono::nanoseconds back{};
    FUZZ_CHECK(proxy::ParseGrpcTimeout(encoded, &back));
    constexpr int64_t kCap = int64_t{3'600'000'000'000} * 1'000'000;
    if (ns <= 0) {
      FUZZ_CHECK(back.count() == 1);
    } else if (ns <= kCap) {
      FUZZ_CHECK(back.count() >= ns);
      FUZZ_CHECK(back.count() - ns <= ns / 99'999 + 1);
    }

    for (bool pad : {false, true}) {
      std::optional<std::string> decoded =
          upstream::Base64Decode(upstream::Base64Encode(line, pad));
      FUZZ_CHECK(decoded && *decoded == line);
    }
    if (std::optional<std::string> decoded = upstream::Base64Decode(line)) {
      std::optional<std::string> again =
          upstream::Base64Decode(upstream::Base64Encode(*decoded, true));
      FUZZ_CHECK(again && *again == *decoded);
    }
    const std::string percent = upstream::PercentEncode(line);
    FUZZ_CHECK(
        std::all_of(percent.begin(), percent.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }));
    FUZZ_CHECK(upstream::PercentDecode(percent) == line);
    (void)upstream::PercentDecode(line);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (flags & 3) {
    case 0:
      RequestFields(flags, text);
      break;
    case 1:
      GrpcWebRequest(flags, text);
      break;
    case 2:
      ResponseMetadata(flags, text);
      break;
    default:
      WireHelpers(text);
      break;
  }
  return 0;
}
