#include "tipperary/metrics/text_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace tipperary::metrics {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

void AppendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest round-trip digits. Like Go's strconv 'g' (what Prometheus itself writes), small
    // and large exponents use scientific notation ("1e-05"), but integers stay plain up to 1e21
    // rather than Go's 1e6 ("800000", not "8e+05").
    char buf[64];
    auto result = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
    const char* e = std::find(buf, result.ptr, 'e');
    int exponent = 0;
    std::from_chars(e + 1 + (e[1] == '+' ? 1 : 0), result.ptr, exponent);
    if (exponent >= -4 && exponent < 21) {
      result = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
    }
    out.append(buf, result.ptr);
  }
}

std::string FormatValue(double v) {
  std::string out;
  AppendValue(out, v);
  return out;
}

namespace {

// The exposition format escapes backslash and newline everywhere, and '"' only inside label
// values (HELP text is not quoted).
void AppendEscaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  AppendEscaped(out, value, /*quote=*/true);
}

void AppendEscapedHelp(std::string& out, std::string_view help) {
  AppendEscaped(out, help, /*quote=*/false);
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

}  // namespace tipperary::metrics
