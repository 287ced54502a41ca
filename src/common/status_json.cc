#include "tipperary/common/status_json.h"

#include "absl/strings/str_cat.h"
#include "tipperary/common/log.h"

namespace tipperary::common {
namespace {

// Each line of `json` after the first indented by `indent` (details nest one level deeper).
std::string Reindent(std::string_view json, std::string_view indent) {
  std::string out;
  out.reserve(json.size() + json.size() / 8);
  for (char c : json) {
    out.push_back(c);
    if (c == '\n') out.append(indent);
  }
  return out;
}

}  // namespace

std::string StatusJson(absl::StatusCode code, std::string_view message,
                       const std::vector<std::string>& details_json, bool pretty) {
  std::string out;
  const int number = static_cast<int>(code);
  if (!pretty) {
    absl::StrAppend(&out, "{\"code\":", number, ",\"message\":\"");
    AppendJsonEscaped(out, message);
    out.append("\",\"details\":[");
    for (size_t i = 0; i < details_json.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append(details_json[i]);
    }
    out.append("]}");
    return out;
  }
  absl::StrAppend(&out, "{\n \"code\": ", number, ",\n \"message\": \"");
  AppendJsonEscaped(out, message);
  out.append("\",\n \"details\": [");
  for (size_t i = 0; i < details_json.size(); ++i) {
    out.append(i > 0 ? ",\n  " : "\n  ");
    out.append(Reindent(details_json[i], "  "));
  }
  out.append(details_json.empty() ? "]\n}\n" : "\n ]\n}\n");
  return out;
}

namespace {

void AppendStringOrNull(std::string& out, std::string_view value) {
  if (value.empty()) {
    out.append("null");
    return;
  }
  out.push_back('"');
  AppendJsonEscaped(out, value);
  out.push_back('"');
}

}  // namespace

std::string OpenAiErrorJson(std::string_view message, std::string_view type, std::string_view param,
                            std::string_view code, bool pretty) {
  // Each key after the first: its separator, its name, then its value.
  auto key = [pretty](std::string& out, std::string_view name) {
    out.append(pretty ? ",\n  \"" : ",\"");
    out.append(name);
    out.append(pretty ? "\": " : "\":");
  };
  std::string out(pretty ? "{\n \"error\": {\n  \"message\": \"" : "{\"error\":{\"message\":\"");
  AppendJsonEscaped(out, message);
  out.push_back('"');
  key(out, "type");
  out.push_back('"');
  AppendJsonEscaped(out, type);
  out.push_back('"');
  key(out, "param");
  AppendStringOrNull(out, param);
  key(out, "code");
  AppendStringOrNull(out, code);
  out.append(pretty ? "\n }\n}\n" : "}}");
  return out;
}

std::string TeiErrorJson(std::string_view message, std::string_view error_type, bool pretty) {
  std::string out(pretty ? "{\n \"error\": \"" : "{\"error\":\"");
  AppendJsonEscaped(out, message);
  out.append(pretty ? "\",\n \"error_type\": \"" : "\",\"error_type\":\"");
  AppendJsonEscaped(out, error_type);
  out.append(pretty ? "\"\n}\n" : "\"}");
  return out;
}

}  // namespace tipperary::common
