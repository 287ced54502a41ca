// Fatal checks for programming errors at registration time (invalid names, conflicting
// re-registration). Active in every build type: registration runs at startup with constant names,
// so failing loudly there costs nothing on the request path.
#pragma once

#include <string>

namespace tipperary::metrics::detail {

[[noreturn]] void Fatal(const std::string& message);

inline void Check(bool condition, const std::string& message) {
  if (!condition) Fatal(message);
}

}  // namespace tipperary::metrics::detail
