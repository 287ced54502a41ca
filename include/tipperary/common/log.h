// Structured logging: one JSON object per line on stderr, cheap when the level is off.
//
//   TIPPERARY_LOG(kInfo, "listening", {{"name", "http"}, {"address", "127.0.0.1:8080"}});
//
// Tests and scripts read the "listening" lines to learn ports chosen with port 0.
#pragma once

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tipperary::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using LogField = std::pair<std::string_view, std::string_view>;

// Returns false for an unknown level name.
bool SetLogLevel(std::string_view name);
LogLevel GetLogLevel();
bool LogEnabled(LogLevel level);

// Writes {"ts":..., "level":..., "msg":..., fields...} with one write(2), so lines from
// several threads never interleave.
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// Appends s to out as JSON string content (no quotes), escaping as RFC 8259 requires. The
// result is valid UTF-8 whatever the bytes: each byte that is not part of a well-formed UTF-8
// sequence becomes U+FFFD (client-supplied text reaches logs and error bodies).
void AppendJsonEscaped(std::string& out, std::string_view s);

}  // namespace tipperary::common

#define TIPPERARY_LOG(level, ...)                                                  \
  do {                                                                             \
    if (::tipperary::common::LogEnabled(::tipperary::common::LogLevel::level)) {   \
      ::tipperary::common::Log(::tipperary::common::LogLevel::level, __VA_ARGS__); \
    }                                                                              \
  } while (false)
