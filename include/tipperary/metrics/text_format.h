// Pieces of the Prometheus text exposition format 0.0.4, shared by the registry and by anything
// else that writes or checks metric text.
//
//   std::string out = "x{path=\"";
//   AppendEscapedLabelValue(out, path);   // \ " and newline escaped
//   out += "\"} ";
//   AppendValue(out, 0.005);               // "0.005"; "+Inf", "-Inf", "NaN"
#pragma once

#include <string>
#include <string_view>

namespace tipperary::metrics {

// Shortest representation that round-trips; +Inf, -Inf, NaN as Prometheus writes them.
void AppendValue(std::string& out, double v);
std::string FormatValue(double v);

// Label values escape backslash, double quote and newline.
void AppendEscapedLabelValue(std::string& out, std::string_view value);
// HELP text escapes backslash and newline.
void AppendEscapedHelp(std::string& out, std::string_view help);

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved for Prometheus).
bool IsValidLabelName(std::string_view name);

}  // namespace tipperary::metrics
