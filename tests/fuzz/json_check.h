// A strict RFC 8259 JSON syntax check for the fuzz targets' oracles: whatever an upstream puts
// in a message, the proxy's JSON output must be valid JSON in valid UTF-8. Iterative (no
// recursion, so nesting depth costs no stack). Header-only, test code.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace tipperary::fuzz {

namespace json_check_internal {

inline bool ValidUtf8At(std::string_view s, size_t* i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(*i);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return false;
  }
  if (*i + len > s.size()) return false;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b(*i + k) < min || b(*i + k) > max) return false;
  }
  *i += len;
  return true;
}

inline bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace json_check_internal

// True when `text` is exactly one JSON value, optionally surrounded by whitespace.
inline bool IsValidJson(std::string_view s) {
  using namespace json_check_internal;  // NOLINT
  size_t i = 0;
  const size_t n = s.size();
  auto ws = [&] {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  };
  auto string = [&]() -> bool {  // at '"'
    ++i;
    while (i < n) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') {
        ++i;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i >= n) return false;
        const char e = s[i];
        if (e == 'u') {
          if (i + 4 >= n) return false;
          for (size_t k = 1; k <= 4; ++k) {
            if (!IsHex(s[i + k])) return false;
          }
          i += 5;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
          ++i;
        } else {
          return false;
        }
      } else if (c >= 0x80) {
        if (!ValidUtf8At(s, &i)) return false;
      } else {
        ++i;
      }
    }
    return false;
  };
  auto digits = [&] {
    const size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  auto number = [&]() -> bool {
    if (s[i] == '-') ++i;
    if (i < n && s[i] == '0') {
      ++i;
    } else if (!digits()) {
      return false;
    }
    if (i < n && s[i] == '.') {
      ++i;
      if (!digits()) return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return true;
  };
  auto literal = [&](std::string_view word) {
    if (s.substr(i, word.size()) != word) return false;
    i += word.size();
    return true;
  };
  // Stack of open containers: '{' or '['.
  std::vector<char> stack;
  ws();
  while (true) {
    // A value.
    if (i >= n) return false;
    const char c = s[i];
    bool scalar = true;
    if (c == '{' || c == '[') {
      stack.push_back(c);
      ++i;
      ws();
      if (i < n && s[i] == (c == '{' ? '}' : ']')) {
        stack.pop_back();
        ++i;
      } else {
        if (c == '{') {
          if (i >= n || s[i] != '"' || !string()) return false;
          ws();
          if (i >= n || s[i] != ':') return false;
          ++i;
          ws();
        }
        continue;  // The first member's value.
      }
      scalar = false;
    }
    if (scalar) {
      bool ok = c == '"'   ? string()
                : c == 't' ? literal("true")
                : c == 'f' ? literal("false")
                : c == 'n' ? literal("null")
                           : number();
      if (!ok) return false;
    }
    // After a value: close containers or go on to the next member.
    while (true) {
      ws();
      if (stack.empty()) return i == n;
      if (i >= n) return false;
      const char open = stack.back();
      if (s[i] == (open == '{' ? '}' : ']')) {
        stack.pop_back();
        ++i;
        continue;
      }
      if (s[i] != ',') return false;
      ++i;
      ws();
      if (open == '{') {
        if (i >= n || s[i] != '"' || !string()) return false;
        ws();
        if (i >= n || s[i] != ':') return false;
        ++i;
        ws();
      }
      break;
    }
  }
}

}  // namespace tipperary::fuzz
