#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tipperary/transcoder/transcoder.h"

namespace tipperary::transcoder {
namespace {

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void SkipSpace(std::string_view body, size_t* pos) {
  while (*pos < body.size() && IsJsonSpace(body[*pos])) ++*pos;
}

// The end (one past) of the JSON value starting at `pos`, found by its brackets and strings
// alone (the JSON parser checks the value itself later); npos if it never ends. Iterative:
// nesting depth costs nothing but a counter.
size_t ValueEnd(std::string_view body, size_t pos) {
  const char first = body[pos];
  if (first == '"' || first == '{' || first == '[') {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = pos; i < body.size(); ++i) {
      const char c = body[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
          if (depth == 0) return i + 1;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0) return std::string_view::npos;
        if (--depth == 0) return i + 1;
      }
    }
    return std::string_view::npos;
  }
  // A scalar: up to the next separator.
  size_t i = pos;
  while (i < body.size() && !IsJsonSpace(body[i]) && body[i] != ',' && body[i] != ']' &&
         body[i] != '[' && body[i] != '{' && body[i] != '}') {
    ++i;
  }
  return i;
}

// Appends the value at `*pos` to `values` and moves past it and the whitespace after it.
absl::Status TakeValue(std::string_view body, size_t* pos, std::vector<std::string_view>* values) {
  const size_t end = ValueEnd(body, *pos);
  if (end == std::string_view::npos || end == *pos) {
    return absl::InvalidArgumentError(
        absl::StrCat("message ", values->size() + 1, " of the stream is not a JSON value"));
  }
  values->push_back(body.substr(*pos, end - *pos));
  *pos = end;
  SkipSpace(body, pos);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string_view>> SplitJsonStream(std::string_view body,
                                                              bool array_allowed) {
  std::vector<std::string_view> values;
  size_t pos = 0;
  SkipSpace(body, &pos);
  if (array_allowed && pos < body.size() && body[pos] == '[') {
    // Envoy's form: one JSON array of messages.
    ++pos;
    SkipSpace(body, &pos);
    if (pos < body.size() && body[pos] == ']') {
      ++pos;
    } else {
      while (true) {
        if (pos >= body.size()) return absl::InvalidArgumentError("the JSON array never ends");
        if (absl::Status s = TakeValue(body, &pos, &values); !s.ok()) return s;
        if (pos < body.size() && body[pos] == ',') {
          ++pos;
          SkipSpace(body, &pos);
          continue;
        }
        if (pos < body.size() && body[pos] == ']') {
          ++pos;
          break;
        }
        return absl::InvalidArgumentError(
            absl::StrCat("expected ',' or ']' after message ", values.size(), " of the stream"));
      }
    }
    SkipSpace(body, &pos);
    if (pos != body.size()) {
      return absl::InvalidArgumentError("unexpected bytes after the JSON array of messages");
    }
    return values;
  }
  // grpc-gateway's form: JSON values one after another, usually one per line (NDJSON).
  while (pos < body.size()) {
    if (absl::Status s = TakeValue(body, &pos, &values); !s.ok()) return s;
  }
  return values;
}

}  // namespace tipperary::transcoder
