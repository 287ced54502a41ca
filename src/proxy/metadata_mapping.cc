#include "metadata_mapping.h"

#include <algorithm>
#include <array>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::proxy {
namespace {

constexpr std::string_view kMetadataPrefix = "grpc-metadata-";

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A "-bin" value as it travels in a header field (base64, padded or not; grpc-gateway's clients
// send the URL-safe alphabet too) into the bytes the upstream client sends, which base64-encodes
// them again itself. False if it is not base64: dropping beats sending garbage bytes.
bool DecodeBinaryValue(std::string_view value, std::string* out) {
  return absl::Base64Unescape(ToAbsl(value), out) ||
         absl::WebSafeBase64Unescape(ToAbsl(value), out);
}

// Keys a client may set (through Grpc-Metadata-*, or gRPC-Web's plain fields): what the upstream
// client sends at all (lower-case [0-9a-z_.-], none of HTTP/2's or gRPC's own), nothing in
// gRPC's grpc- namespace, and not the keys the proxy writes itself, once each: a client's
// Grpc-Metadata-X-Forwarded-For would reach the upstream as a second x-forwarded-for value,
// first in line, with no peer appended (a spoofed client address for whoever reads the first
// value), and Grpc-Metadata-X-Request-Id a second request id. Their own header fields
// (X-Forwarded-For, X-Request-Id) are the way in.
bool IsClientMetadataKey(std::string_view key) {
  return upstream::IsAllowedCustomMetadataKey(key) && !absl::StartsWith(ToAbsl(key), "grpc-") &&
         key != "x-forwarded-for" && key != "x-request-id";
}

// A client's entry as the upstream client wants it: "-bin" values decoded (dropped if they are
// not base64), others as they came.
void AppendClientMetadata(std::string key, std::string_view value, upstream::Metadata& out) {
  if (!upstream::IsBinaryHeader(key)) {
    out.emplace_back(std::move(key), std::string(value));
    return;
  }
  std::string decoded;
  if (DecodeBinaryValue(value, &decoded)) out.emplace_back(std::move(key), std::move(decoded));
}

}  // namespace

std::string GenerateRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // Version 4.
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // Variant 10.
  // 8-4-4-4-12 lower-case hex digits of hi then lo (snprintf costs more than the rest).
  constexpr char kHex[] = "0123456789abcdef";
  std::string id(36, '-');
  int pos = 0;
  for (int nibble = 0; nibble < 32; ++nibble) {
    if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
    uint64_t word = nibble < 16 ? hi : lo;
    id[pos++] = kHex[(word >> (60 - 4 * (nibble % 16))) & 0xf];
  }
  return id;
}

std::string RequestIdFor(const boost::beast::http::fields& headers) {
  auto it = headers.find("x-request-id");
  if (it != headers.end() && !it->value().empty() && it->value().size() <= 200) {
    return std::string(it->value());
  }
  return GenerateRequestId();
}

upstream::Metadata BuildUpstreamMetadata(const boost::beast::http::fields& headers,
                                         std::string_view peer_address, std::string_view request_id,
                                         bool headers_are_metadata) {
  namespace http = boost::beast::http;
  upstream::Metadata metadata;
  metadata.reserve(4);
  std::string forwarded_for;
  for (const auto& field : headers) {
    std::string_view name(field.name_string().data(), field.name_string().size());
    std::string_view value(field.value().data(), field.value().size());
    switch (field.name()) {
      case http::field::authorization:
        metadata.emplace_back("authorization", std::string(value));
        continue;
      case http::field::priority:
        // RFC 9218's urgency: the worker batches `u=4`..`u=7` in its bulk lane.
        metadata.emplace_back("priority", std::string(value));
        continue;
      case http::field::unknown:
        break;
      default:
        continue;  // Every other field Beast knows by name (Host, Accept, ...) stays here.
    }
    if (absl::EqualsIgnoreCase(ToAbsl(name), "x-forwarded-for")) {
      if (!forwarded_for.empty()) forwarded_for += ", ";
      forwarded_for += value;
      continue;
    }
    if (name.size() > kMetadataPrefix.size() &&
        absl::StartsWithIgnoreCase(ToAbsl(name), ToAbsl(kMetadataPrefix))) {
      std::string key = absl::AsciiStrToLower(ToAbsl(name.substr(kMetadataPrefix.size())));
      if (!IsClientMetadataKey(key)) continue;
      AppendClientMetadata(std::move(key), value, metadata);
    } else if (absl::EqualsIgnoreCase(ToAbsl(name), "traceparent") ||
               absl::EqualsIgnoreCase(ToAbsl(name), "tracestate") ||
               absl::EqualsIgnoreCase(ToAbsl(name), "baggage")) {
      metadata.emplace_back(absl::AsciiStrToLower(ToAbsl(name)), std::string(value));
    } else if (absl::EqualsIgnoreCase(ToAbsl(name), "grpc-trace-bin")) {
      // OpenCensus's binary trace context: base64 in the header field like any "-bin" value.
      AppendClientMetadata("grpc-trace-bin", value, metadata);
    } else if (headers_are_metadata) {
      std::string key = absl::AsciiStrToLower(ToAbsl(name));
      if (!IsClientMetadataKey(key) || absl::StartsWith(key, "sec-") ||
          absl::StartsWith(key, "access-control-") || absl::StartsWith(key, "proxy-")) {
        continue;
      }
      AppendClientMetadata(std::move(key), value, metadata);
    }
  }
  metadata.emplace_back("x-request-id", std::string(request_id));
  if (!peer_address.empty()) {
    if (!forwarded_for.empty()) forwarded_for += ", ";
    forwarded_for += peer_address;
  }
  if (!forwarded_for.empty()) metadata.emplace_back("x-forwarded-for", std::move(forwarded_for));
  return metadata;
}

void AppendMetadataFields(const upstream::Metadata& metadata, std::string_view prefix,
                          boost::beast::http::fields& out,
                          const std::vector<std::string>& unprefixed) {
  std::string name;
  for (const auto& [key, value] : metadata) {
    // A handful of names at most: a linear scan beats hashing.
    if (std::find(unprefixed.begin(), unprefixed.end(), key) != unprefixed.end()) {
      out.insert(key, value);
      continue;
    }
    name.assign(prefix);
    // grpc-gateway's names, which Go's net/http canonicalizes ("Grpc-Trailer-X-Cost"): field
    // names are case-insensitive, but clients that compare them exactly see the same ones.
    bool word_start = true;
    for (char c : key) {
      name.push_back(word_start ? absl::ascii_toupper(static_cast<unsigned char>(c)) : c);
      word_start = c == '-';
    }
    if (upstream::IsBinaryHeader(key)) {
      out.insert(name, absl::Base64Escape(value));
    } else {
      out.insert(name, value);
    }
  }
}

bool ParseGrpcTimeout(std::string_view value, std::chrono::nanoseconds* out) {
  if (value.size() < 2 || value.size() > 9) return false;
  uint64_t amount = 0;
  if (!absl::SimpleAtoi(ToAbsl(value.substr(0, value.size() - 1)), &amount)) return false;
  for (char c : value.substr(0, value.size() - 1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  using namespace std::chrono;
  // Eight digits of hours would overflow int64 nanoseconds; nobody means more than ~100 years.
  constexpr uint64_t kMaxHours = 1000000;
  switch (value.back()) {
    case 'H':
      *out = duration_cast<nanoseconds>(hours(std::min(amount, kMaxHours)));
      return true;
    case 'M':
      *out = duration_cast<nanoseconds>(minutes(std::min(amount, kMaxHours * 60)));
      return true;
    case 'S':
      *out = duration_cast<nanoseconds>(seconds(amount));
      return true;
    case 'm':
      *out = duration_cast<nanoseconds>(milliseconds(amount));
      return true;
    case 'u':
      *out = duration_cast<nanoseconds>(microseconds(amount));
      return true;
    case 'n':
      *out = nanoseconds(amount);
      return true;
    default:
      return false;
  }
}

}  // namespace tipperary::proxy
