// Splits a client stream's JSON body into its messages as the bytes arrive, so that each
// message can go upstream before the body has ended. Two forms: JSON values one after another
// (NDJSON, or any whitespace between them: what grpc-gateway's decoder reads), or, with
// array_allowed, one JSON array of messages (what Envoy's transcoder expects). Values are only
// delimited here, by their brackets and strings; the transcoder parses each one. Memory stays
// at one value (bounded by max_value_bytes) plus one piece of input.
//
//   JsonStreamSplitter splitter(/*array_allowed=*/true, /*max_value_bytes=*/4 << 20);
//   auto send = [&](std::string_view value) { return Transcode(value); };
//   absl::Status s = splitter.Feed(piece, send);  // each complete value, in order
//   ...
//   if (s.ok()) s = splitter.Finish(send);        // the body ended
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tipperary::transcoder {

class JsonStreamSplitter {
 public:
  // Called with each complete value; an error stops the splitter and is returned by Feed.
  using ValueHandler = std::function<absl::Status(std::string_view value)>;

  JsonStreamSplitter(bool array_allowed, size_t max_value_bytes);

  // InvalidArgument for junk between values or a malformed array, ResourceExhausted for a value
  // over max_value_bytes; after an error every call returns it again.
  absl::Status Feed(std::string_view bytes, const ValueHandler& on_value);
  // The end of the body: a value or an array that never ends is InvalidArgument. An empty
  // body is zero messages.
  absl::Status Finish(const ValueHandler& on_value);

  // Values handed out so far.
  uint64_t count() const { return count_; }

 private:
  enum class State { kStart, kSequence, kArrayFirst, kArrayValue, kArrayAfterValue, kArrayEnd };

  absl::Status Scan(const ValueHandler& on_value);
  absl::Status Emit(size_t end, const ValueHandler& on_value);
  absl::Status Fail(absl::Status status);

  const bool array_allowed_;
  const size_t max_value_bytes_;
  State state_ = State::kStart;
  absl::Status error_;
  std::string buf_;  // Unconsumed input: the value in progress, if any, starts at value_start_.
  size_t pos_ = 0;   // Next byte to scan.
  size_t value_start_ = 0;
  bool in_value_ = false;
  bool scalar_ = false;  // The value in progress is a number, true, false or null.
  bool in_string_ = false;
  bool escape_ = false;
  uint64_t depth_ = 0;
  uint64_t count_ = 0;
};

}  // namespace tipperary::transcoder
