#include "grpc_web_codec.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::proxy {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint8_t kTrailerFlag = 0x80;
constexpr uint8_t kCompressedFlag = 0x01;
constexpr size_t kFrameHeader = 5;

std::string Frame(uint8_t flag, std::string_view payload, GrpcWebMode mode) {
  std::string frame;
  frame.reserve(kFrameHeader + payload.size());
  upstream::AppendGrpcFrame(flag, payload, &frame);
  // Each frame its own padded base64 segment, so every chunk can be decoded as it arrives.
  return mode.text ? absl::Base64Escape(frame) : frame;
}

// Base64 that may be several padded segments in a row ("AAA=BBBB"): each 4-character quantum
// that ends in '=' closes a segment.
bool DecodeBase64Segments(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); i += 4) {
    if (text[i + 3] != '=' && i + 4 != text.size()) continue;
    std::string part;
    if (!absl::Base64Unescape(Sv(text.substr(start, i + 4 - start)), &part)) return false;
    out->append(part);
    start = i + 4;
  }
  return true;
}

}  // namespace

std::optional<GrpcWebMode> GrpcWebModeFor(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  const absl::string_view m = Sv(media);
  if (absl::EqualsIgnoreCase(m, "application/grpc-web") ||
      absl::EqualsIgnoreCase(m, "application/grpc-web+proto")) {
    return GrpcWebMode{false};
  }
  if (absl::EqualsIgnoreCase(m, "application/grpc-web-text") ||
      absl::EqualsIgnoreCase(m, "application/grpc-web-text+proto")) {
    return GrpcWebMode{true};
  }
  return std::nullopt;
}

std::string_view GrpcWebContentType(GrpcWebMode mode) {
  return mode.text ? "application/grpc-web-text+proto" : "application/grpc-web+proto";
}

absl::StatusOr<std::string> DecodeGrpcWebRequest(std::string_view body, GrpcWebMode mode) {
  std::string decoded;
  if (mode.text) {
    if (!DecodeBase64Segments(body, &decoded)) {
      return absl::InvalidArgumentError("the grpc-web-text request body is not valid base64");
    }
    body = decoded;
  }
  if (body.size() < kFrameHeader) {
    return absl::InvalidArgumentError(absl::StrCat("the gRPC-Web request body holds ", body.size(),
                                                   " bytes: a message frame needs at least 5"));
  }
  const auto flag = static_cast<uint8_t>(body[0]);
  if (flag & kTrailerFlag) {
    return absl::InvalidArgumentError("the gRPC-Web request starts with a trailer frame");
  }
  if (flag & kCompressedFlag) {
    return absl::UnimplementedError("compressed gRPC-Web request messages are not supported");
  }
  if (flag != 0) {
    // Bits 1-6 are reserved; grpc's own frame parser refuses them too ("Bad GRPC frame type").
    return absl::InvalidArgumentError(
        absl::StrCat("the gRPC-Web request frame has reserved flag bits set (0x",
                     absl::Hex(flag, absl::kZeroPad2), ")"));
  }
  uint32_t size = 0;
  for (size_t i = 1; i < kFrameHeader; ++i) size = (size << 8) | static_cast<uint8_t>(body[i]);
  if (size != body.size() - kFrameHeader) {
    return absl::InvalidArgumentError(
        size > body.size() - kFrameHeader
            ? absl::StrCat("the gRPC-Web request frame announces ", size, " bytes; the body holds ",
                           body.size() - kFrameHeader)
            : std::string("the gRPC-Web request holds more than one message: unary and "
                          "server-streaming calls take exactly one"));
  }
  return std::string(body.substr(kFrameHeader));
}

std::string EncodeGrpcWebMessage(std::string_view message, GrpcWebMode mode) {
  return Frame(0, message, mode);
}

std::string EncodeGrpcWebTrailers(absl::StatusCode code, std::string_view message,
                                  std::string_view status_details_bin,
                                  const upstream::Metadata& trailing_metadata, GrpcWebMode mode) {
  std::string block = absl::StrCat("grpc-status:", static_cast<int>(code), "\r\n");
  if (!message.empty()) {
    absl::StrAppend(&block, "grpc-message:", upstream::PercentEncode(message), "\r\n");
  }
  if (!status_details_bin.empty()) {
    absl::StrAppend(&block, "grpc-status-details-bin:", absl::Base64Escape(Sv(status_details_bin)),
                    "\r\n");
  }
  for (const auto& [key, value] : trailing_metadata) {
    if (key.empty() || absl::StartsWith(key, "grpc-status") || key == "grpc-message") continue;
    const bool binary = upstream::IsBinaryHeader(key);
    // HTTP/2 already forbids CR and LF in values (RFC 9113 §8.2.1); a line break here would
    // forge a trailer, so this guard never trusts that.
    if (!binary && value.find_first_of("\r\n") != std::string::npos) continue;
    absl::StrAppend(&block, absl::AsciiStrToLower(key), ":",
                    binary ? absl::Base64Escape(value) : value, "\r\n");
  }
  return Frame(kTrailerFlag, block, mode);
}

}  // namespace tipperary::proxy
