#include "accept.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "tipperary/common/qvalue.h"

namespace tipperary::transcoder::internal {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The next element of a list separated by `sep`, skipping separators inside quoted strings
// (a parameter value may be a quoted string holding ',' or ';').
std::string_view NextElement(std::string_view& rest, char sep) {
  bool quoted = false;
  size_t i = 0;
  for (; i < rest.size(); ++i) {
    const char c = rest[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      break;
    }
  }
  std::string_view element = rest.substr(0, i);
  rest.remove_prefix(i < rest.size() ? i + 1 : rest.size());
  return element;
}

}  // namespace

int AcceptQuality(std::string_view accept, std::string_view media_type) {
  const size_t slash = media_type.find('/');
  const std::string_view type = media_type.substr(0, slash);
  int best_specificity = 0;
  int quality = -1;
  std::string_view rest = accept;
  while (!rest.empty()) {
    std::string_view element = NextElement(rest, ',');
    std::string_view range = TrimOws(NextElement(element, ';'));
    const size_t range_slash = range.find('/');
    if (range_slash == std::string_view::npos || range_slash == 0 ||
        range_slash + 1 == range.size()) {
      continue;  // Empty list elements (RFC 9110 §5.6.1) and junk.
    }
    int specificity = 0;
    if (range == "*/*") {
      specificity = 1;
    } else if (absl::EqualsIgnoreCase(Sv(range.substr(range_slash)), "/*") &&
               absl::EqualsIgnoreCase(Sv(range.substr(0, range_slash)), Sv(type))) {
      specificity = 2;
    } else if (absl::EqualsIgnoreCase(Sv(range), Sv(media_type))) {
      specificity = 3;
    } else {
      continue;
    }
    int q = 1000;
    while (!element.empty()) {
      std::string_view param = TrimOws(NextElement(element, ';'));
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        q = common::ParseQValue(param.substr(2));
        break;  // Anything after the weight was an accept-ext (RFC 7231), not a parameter.
      }
    }
    if (q < 0) continue;
    if (specificity > best_specificity) {
      best_specificity = specificity;
      quality = q;
    }
  }
  return quality;
}

}  // namespace tipperary::transcoder::internal
