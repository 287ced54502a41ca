#include "upstream_call.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "tipperary/upstream/grpc_wire.h"

namespace tipperary::upstream {
namespace {

bool IsGrpcContentType(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (content_type.substr(0, kGrpc.size()) != kGrpc) return false;
  if (content_type.size() == kGrpc.size()) return true;
  char next = content_type[kGrpc.size()];
  return next == '+' || next == ';';
}

GrpcResult ErrorResult(CallOutcome outcome, absl::StatusCode code, std::string message) {
  GrpcResult result;
  result.outcome = outcome;
  result.code = code;
  result.grpc_message = std::move(message);
  return result;
}

// Custom metadata as the application should see it: no reserved keys, "-bin" values decoded.
void AppendCustomMetadata(const Metadata& block, Metadata& out) {
  for (const auto& [key, value] : block) {
    if (IsReservedResponseHeader(key)) continue;
    if (IsBinaryHeader(key)) {
      std::optional<std::string> decoded = Base64Decode(value);
      // Undecodable binary metadata is dropped rather than passed on as garbage.
      if (decoded) out.emplace_back(key, std::move(*decoded));
    } else {
      out.emplace_back(key, value);
    }
  }
}

}  // namespace

UpstreamCall::UpstreamCall(uint64_t id, GrpcRequest request, CallHandlers handlers,
                           uint64_t max_response_bytes)
    : id_(id),
      request_(std::move(request)),
      handlers_(std::move(handlers)),
      max_response_bytes_(max_response_bytes) {
  auto size = static_cast<uint32_t>(request_.message.size());
  prefix_ = {0, static_cast<uint8_t>(size >> 24), static_cast<uint8_t>(size >> 16),
             static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size)};
}

void UpstreamCall::Bind(std::weak_ptr<Http2Connection> connection, int32_t stream_id) {
  connection_ = std::move(connection);
  stream_id_ = stream_id;
  phase_ = Phase::kActive;
}

std::optional<std::chrono::steady_clock::time_point> UpstreamCall::AttemptDeadline() const {
  if (!try_deadline) return deadline;
  if (!deadline) return try_deadline;
  return std::min(*deadline, *try_deadline);
}

void UpstreamCall::PrepareRetry() {
  held_headers_.reset();
  try_deadline.reset();
  connection_.reset();
  stream_id_ = -1;
  body_offset_ = 0;
  received_anything_ = false;
  have_response_headers_ = false;
  grpc_response_ = false;
  http_status_ = 0;
  content_type_.clear();
  block_.clear();
  trailers_.clear();
  have_trailers_ = false;
  inbox_.clear();
  inbox_pos_ = 0;
  unconsumed_bytes = 0;
}

void UpstreamCall::Append(std::string framed) {
  if (framed.empty()) return;
  if (send_pos_ == send_queue_.size()) {
    send_queue_ = std::move(framed);
    send_pos_ = 0;
    return;
  }
  if (send_pos_ > (64u << 10) && send_pos_ * 2 > send_queue_.size()) {
    send_queue_.erase(0, send_pos_);
    send_pos_ = 0;
  }
  send_queue_ += framed;
}

ssize_t UpstreamCall::ReadBody(uint8_t* buf, size_t length, uint32_t* data_flags) {
  if (request_.streaming) {
    const size_t available = send_queue_.size() - send_pos_;
    if (available == 0) {
      if (send_closed_) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      return NGHTTP2_ERR_DEFERRED;  // Resumed by the connection when Send() queues more.
    }
    const size_t n = std::min(available, length);
    std::memcpy(buf, send_queue_.data() + send_pos_, n);
    send_pos_ += n;
    body_taken_ = true;
    if (send_pos_ == send_queue_.size()) {
      send_queue_.clear();
      send_pos_ = 0;
      drained_ = true;
      if (send_closed_) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }
  const size_t prefix_size = request_.framed ? 0 : prefix_.size();
  const size_t total = prefix_size + request_.message.size();
  size_t n = 0;
  while (n < length && body_offset_ < total) {
    size_t k;
    if (body_offset_ < prefix_size) {
      k = std::min(prefix_size - body_offset_, length - n);
      std::memcpy(buf + n, prefix_.data() + body_offset_, k);
    } else {
      k = std::min(total - body_offset_, length - n);
      std::memcpy(buf + n, request_.message.data() + (body_offset_ - prefix_size), k);
    }
    n += k;
    body_offset_ += k;
  }
  if (body_offset_ == total) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

void UpstreamCall::BeginHeaders() {
  received_anything_ = true;
  block_.clear();
}

void UpstreamCall::OnHeader(std::string_view name, std::string_view value) {
  block_.emplace_back(std::string(name), std::string(value));
}

void UpstreamCall::EndHeaders(bool end_stream) {
  if (have_response_headers_) {
    trailers_ = std::move(block_);
    block_.clear();
    have_trailers_ = true;
    return;
  }
  int status = 0;
  std::string content_type;
  for (const auto& [key, value] : block_) {
    if (key == ":status") {
      std::from_chars(value.data(), value.data() + value.size(), status);
    } else if (key == "content-type") {
      content_type = value;
    }
  }
  if (status >= 100 && status < 200 && !end_stream) {
    block_.clear();  // Informational; the real response follows.
    return;
  }
  have_response_headers_ = true;
  http_status_ = status;
  content_type_ = std::move(content_type);
  grpc_response_ = status == 200 && IsGrpcContentType(content_type_);
  if (end_stream) {
    trailers_ = std::move(block_);
    block_.clear();
    have_trailers_ = true;
    return;
  }
  if (grpc_response_) {
    Metadata headers;
    AppendCustomMetadata(block_, headers);
    held_headers_ = std::move(headers);
  }
  block_.clear();
}

std::optional<GrpcResult> UpstreamCall::OnData(const uint8_t* data, size_t size) {
  received_anything_ = true;
  // The body of a non-gRPC answer (an HTML error page, ...) is not ours to parse.
  if (!grpc_response_ || phase_ == Phase::kDone) return std::nullopt;
  if (inbox_pos_ == inbox_.size()) {
    inbox_.clear();
    inbox_pos_ = 0;
  }
  inbox_.append(reinterpret_cast<const char*>(data), size);
  while (phase_ != Phase::kDone) {
    size_t available = inbox_.size() - inbox_pos_;
    if (available < 5) break;
    const auto* p = reinterpret_cast<const uint8_t*>(inbox_.data() + inbox_pos_);
    uint64_t length =
        (uint64_t{p[1]} << 24) | (uint64_t{p[2]} << 16) | (uint64_t{p[3]} << 8) | p[4];
    if (p[0] != 0) {
      return ErrorResult(CallOutcome::kProtocolError, absl::StatusCode::kInternal,
                         p[0] == 1 ? "upstream sent a compressed message without grpc-encoding"
                                   : "upstream sent a message with an invalid flags byte");
    }
    if (length > max_response_bytes_) {
      return ErrorResult(CallOutcome::kProtocolError, absl::StatusCode::kResourceExhausted,
                         "upstream response message of " + std::to_string(length) +
                             " bytes exceeds the limit of " + std::to_string(max_response_bytes_) +
                             " bytes");
    }
    if (available - 5 < length) {
      inbox_.reserve(inbox_pos_ + 5 + length);
      break;
    }
    std::string message;
    if (inbox_pos_ == 0 && inbox_.size() == 5 + length) {
      message = std::move(inbox_);
      message.erase(0, 5);
      inbox_.clear();
    } else {
      message = inbox_.substr(inbox_pos_ + 5, length);
      inbox_pos_ += 5 + length;
    }
    message_delivered_ = true;
    if (held_headers_) {
      Metadata headers = std::move(*held_headers_);
      held_headers_.reset();
      if (handlers_.on_headers) handlers_.on_headers(headers);
      if (phase_ == Phase::kDone) break;  // Cancelled from inside on_headers.
    }
    if (handlers_.on_message) handlers_.on_message(std::move(message));
  }
  if (inbox_pos_ == inbox_.size()) {
    inbox_.clear();
    inbox_pos_ = 0;
  } else if (inbox_pos_ > (64u << 10) && inbox_pos_ * 2 > inbox_.size()) {
    inbox_.erase(0, inbox_pos_);
    inbox_pos_ = 0;
  }
  return std::nullopt;
}

GrpcResult UpstreamCall::Finish() {
  GrpcResult result;
  result.http_status = http_status_;
  const std::string* status_text = nullptr;
  Metadata custom;
  for (const auto& [key, value] : trailers_) {
    if (key == "grpc-status") {
      status_text = &value;
    } else if (key == "grpc-message") {
      result.grpc_message = PercentDecode(value);
    } else if (key == "grpc-status-details-bin") {
      result.status_details = Base64Decode(value).value_or(std::string());
    }
  }
  AppendCustomMetadata(trailers_, custom);
  result.trailers = std::move(custom);
  if (status_text != nullptr) {
    int code = -1;
    auto [ptr, ec] =
        std::from_chars(status_text->data(), status_text->data() + status_text->size(), code);
    if (ec != std::errc() || ptr != status_text->data() + status_text->size() || code < 0) {
      code = 2;  // UNKNOWN, as gRPC clients treat an unparsable status.
      result.grpc_message = "upstream sent an invalid grpc-status: " + *status_text;
    }
    result.outcome = CallOutcome::kGrpc;
    result.code = GrpcCodeFromWire(code);
    if (code == 0 && grpc_response_ && inbox_pos_ != inbox_.size()) {
      return ErrorResult(CallOutcome::kProtocolError, absl::StatusCode::kInternal,
                         "upstream ended the stream in the middle of a message");
    }
    return result;
  }
  if (!grpc_response_) {
    result.outcome = CallOutcome::kGrpc;
    result.code = HttpStatusToGrpcCode(http_status_);
    result.grpc_message = "upstream answered HTTP " + std::to_string(http_status_) +
                          (content_type_.empty() ? "" : " (" + content_type_ + ")") +
                          " without grpc-status";
    return result;
  }
  GrpcResult error = ErrorResult(CallOutcome::kProtocolError, absl::StatusCode::kInternal,
                                 "upstream ended the stream without grpc-status");
  error.http_status = http_status_;
  return error;
}

}  // namespace tipperary::upstream
