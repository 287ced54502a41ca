#include "tipperary/upstream/grpc_wire.h"

#include <array>
#include <cstdint>

namespace tipperary::upstream {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> MakeBase64Table() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i)
    table[static_cast<uint8_t>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kBase64Table = MakeBase64Table();

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string Base64Encode(std::string_view data, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
    out.push_back(kBase64Alphabet[(n >> 6) & 63]);
    out.push_back(kBase64Alphabet[n & 63]);
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t n = static_cast<uint8_t>(data[i]) << 16;
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    uint32_t n = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8);
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
    out.push_back(kBase64Alphabet[(n >> 6) & 63]);
    if (pad) out.push_back('=');
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  // Padding is optional, but if present it must complete the last quantum.
  if (text.size() % 4 == 0 && !text.empty()) {
    if (text.back() == '=') text.remove_suffix(1);
    if (!text.empty() && text.back() == '=') text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int8_t v = kBase64Table[static_cast<uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<uint8_t>(c);
    if (u < 0x20 || u > 0x7E || c == '%') {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void AppendGrpcFrame(uint8_t flags, std::string_view payload, std::string* out) {
  const auto size = static_cast<uint32_t>(payload.size());
  out->push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(size >> shift));
  out->append(payload);
}

std::string EncodeGrpcTimeout(std::chrono::nanoseconds timeout) {
  constexpr int64_t kMaxValue = 99'999'999;
  struct Unit {
    int64_t nanos;
    char suffix;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1'000, 'u'},
                                    {1'000'000, 'm'},
                                    {1'000'000'000, 'S'},
                                    {60'000'000'000, 'M'},
                                    {3'600'000'000'000, 'H'}};
  int64_t ns = timeout.count();
  if (ns <= 0) return "1n";
  // The coarsest unit that represents the timeout exactly reads best ("1500m", "2S").
  for (int i = 5; i >= 0; --i) {
    if (ns % kUnits[i].nanos == 0 && ns / kUnits[i].nanos <= kMaxValue) {
      return std::to_string(ns / kUnits[i].nanos) + kUnits[i].suffix;
    }
  }
  // Otherwise the finest unit that fits, rounded up so the server never cuts the call short.
  for (const Unit& unit : kUnits) {
    // Not (ns + nanos - 1) / nanos: that overflows near the largest durations.
    int64_t value = ns / unit.nanos + (ns % unit.nanos != 0 ? 1 : 0);
    if (value <= kMaxValue) return std::to_string(value) + unit.suffix;
  }
  return std::to_string(kMaxValue) + "H";
}

absl::StatusCode HttpStatusToGrpcCode(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::StatusCode Http2ErrorToGrpcCode(uint32_t http2_error_code) {
  switch (http2_error_code) {
    case 0x7:  // REFUSED_STREAM
      return absl::StatusCode::kUnavailable;
    case 0x8:  // CANCEL
      return absl::StatusCode::kCancelled;
    case 0xb:  // ENHANCE_YOUR_CALM
      return absl::StatusCode::kResourceExhausted;
    case 0xc:  // INADEQUATE_SECURITY
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::StatusCode GrpcCodeFromWire(int value) {
  return value >= 0 && value <= 16 ? static_cast<absl::StatusCode>(value)
                                   : absl::StatusCode::kUnknown;
}

bool IsAllowedCustomMetadataKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  static constexpr std::string_view kReserved[] = {
      "content-type",           "te",         "connection",     "keep-alive",   "proxy-connection",
      "transfer-encoding",      "upgrade",    "host",           "grpc-timeout", "grpc-encoding",
      "grpc-accept-encoding",   "user-agent", "content-length", "grpc-status",  "grpc-message",
      "grpc-status-details-bin"};
  for (std::string_view reserved : kReserved) {
    if (key == reserved) return false;
  }
  return true;
}

bool IsReservedResponseHeader(std::string_view key) {
  if (key.empty() || key[0] == ':') return true;
  static constexpr std::string_view kReserved[] = {
      "content-type",  "grpc-status",          "grpc-message",   "grpc-status-details-bin",
      "grpc-encoding", "grpc-accept-encoding", "content-length", "te",
      "connection",    "transfer-encoding",    "keep-alive",     "upgrade"};
  for (std::string_view reserved : kReserved) {
    if (key == reserved) return true;
  }
  return false;
}

}  // namespace tipperary::upstream
