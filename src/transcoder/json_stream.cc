#include <string_view>

#include "absl/strings/str_cat.h"
#include "tipperary/transcoder/json_stream_splitter.h"

namespace tipperary::transcoder {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Where a scalar ends (the byte is not part of it).
bool EndsScalar(char c) {
  return IsJsonSpace(c) || c == ',' || c == ']' || c == '[' || c == '{' || c == '}';
}

}  // namespace

JsonStreamSplitter::JsonStreamSplitter(bool array_allowed, size_t max_value_bytes)
    : array_allowed_(array_allowed), max_value_bytes_(max_value_bytes) {}

absl::Status JsonStreamSplitter::Fail(absl::Status status) {
  error_ = std::move(status);
  buf_.clear();
  return error_;
}

absl::Status JsonStreamSplitter::Emit(size_t end, const ValueHandler& on_value) {
  in_value_ = false;
  ++count_;
  if (state_ == State::kArrayValue) state_ = State::kArrayAfterValue;
  absl::Status status = on_value(std::string_view(buf_).substr(value_start_, end - value_start_));
  if (!status.ok()) return Fail(std::move(status));
  return absl::OkStatus();
}

absl::Status JsonStreamSplitter::Feed(std::string_view bytes, const ValueHandler& on_value) {
  if (!error_.ok()) return error_;
  buf_.append(bytes);
  absl::Status status = Scan(on_value);
  if (!status.ok()) return status;
  // Keep only the value in progress: whitespace and finished values cost nothing later.
  const size_t keep_from = in_value_ ? value_start_ : pos_;
  buf_.erase(0, keep_from);
  pos_ -= keep_from;
  value_start_ = in_value_ ? 0 : pos_;
  if (in_value_ && buf_.size() > max_value_bytes_) {
    return Fail(absl::ResourceExhaustedError(
        absl::StrCat("message ", count_ + 1, " of the stream is larger than ", max_value_bytes_,
                     " bytes (limits.max_request_body_bytes)")));
  }
  return absl::OkStatus();
}

absl::Status JsonStreamSplitter::Finish(const ValueHandler& on_value) {
  if (!error_.ok()) return error_;
  if (in_value_) {
    if (!scalar_) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("message ", count_ + 1, " of the stream is not a JSON value")));
    }
    if (absl::Status s = Emit(buf_.size(), on_value); !s.ok()) return s;
  }
  switch (state_) {
    case State::kArrayFirst:
    case State::kArrayValue:
    case State::kArrayAfterValue:
      return Fail(absl::InvalidArgumentError("the JSON array never ends"));
    default:
      return absl::OkStatus();
  }
}

absl::Status JsonStreamSplitter::Scan(const ValueHandler& on_value) {
  while (pos_ < buf_.size()) {
    const char c = buf_[pos_];
    if (in_value_) {
      if (scalar_) {
        if (EndsScalar(c)) {
          if (absl::Status s = Emit(pos_, on_value); !s.ok()) return s;
        } else {
          ++pos_;
        }
        continue;
      }
      ++pos_;
      if (in_string_) {
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          in_string_ = false;
          if (depth_ == 0) {
            if (absl::Status s = Emit(pos_, on_value); !s.ok()) return s;
          }
        }
      } else if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        ++depth_;
      } else if (c == '}' || c == ']') {
        if (--depth_ == 0) {
          if (absl::Status s = Emit(pos_, on_value); !s.ok()) return s;
        }
      }
      continue;
    }
    if (IsJsonSpace(c)) {
      ++pos_;
      continue;
    }
    switch (state_) {
      case State::kStart:
        if (array_allowed_ && c == '[') {
          state_ = State::kArrayFirst;
          ++pos_;
          continue;
        }
        state_ = State::kSequence;
        break;
      case State::kArrayFirst:
        if (c == ']') {
          state_ = State::kArrayEnd;
          ++pos_;
          continue;
        }
        state_ = State::kArrayValue;
        break;
      case State::kArrayAfterValue:
        if (c == ',') {
          state_ = State::kArrayValue;
          ++pos_;
          continue;
        }
        if (c == ']') {
          state_ = State::kArrayEnd;
          ++pos_;
          continue;
        }
        return Fail(absl::InvalidArgumentError(
            absl::StrCat("expected ',' or ']' after message ", count_, " of the stream")));
      case State::kArrayEnd:
        return Fail(
            absl::InvalidArgumentError("unexpected bytes after the JSON array of messages"));
      case State::kSequence:
      case State::kArrayValue:
        break;
    }
    // A value starts here.
    if (c == ',' || c == ']' || c == '}') {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("message ", count_ + 1, " of the stream is not a JSON value")));
    }
    in_value_ = true;
    value_start_ = pos_;
    scalar_ = c != '"' && c != '{' && c != '[';
    in_string_ = c == '"';
    escape_ = false;
    depth_ = (c == '{' || c == '[') ? 1 : 0;
    if (!scalar_) ++pos_;
  }
  return absl::OkStatus();
}

}  // namespace tipperary::transcoder
