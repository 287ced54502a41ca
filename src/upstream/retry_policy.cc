#include "tipperary/upstream/retry_policy.h"

#include <algorithm>
#include <array>

namespace tipperary::upstream {
namespace {

// Indexed by the numeric code, as google.rpc.Code.
constexpr std::array<std::string_view, 17> kCodeNames = {
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
};

}  // namespace

bool RetryPolicy::IsIdempotent(std::string_view path) const {
  if (idempotent_methods.empty()) return false;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  const size_t slash = path.find('/');
  for (const std::string& pattern : idempotent_methods) {
    if (pattern == "*" || pattern == path) return true;
    // "pkg.Svc/*": the service part and the slash match.
    if (pattern.size() >= 2 && pattern.compare(pattern.size() - 2, 2, "/*") == 0 &&
        slash != std::string_view::npos &&
        path.substr(0, slash + 1) == std::string_view(pattern).substr(0, pattern.size() - 1)) {
      return true;
    }
  }
  return false;
}

bool RetryPolicy::RetriesOn(absl::StatusCode code) const {
  return std::find(retry_on.begin(), retry_on.end(), code) != retry_on.end();
}

bool ParseRetryOnCode(std::string_view name, absl::StatusCode* code) {
  for (size_t i = 1; i < kCodeNames.size(); ++i) {
    if (kCodeNames[i] == name) {
      *code = static_cast<absl::StatusCode>(i);
      return true;
    }
  }
  return false;
}

std::string RetryOnCodeName(absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return index < kCodeNames.size() ? std::string(kCodeNames[index]) : "unknown";
}

}  // namespace tipperary::upstream
