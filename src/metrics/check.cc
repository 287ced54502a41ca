#include "check.h"

#include <cstdio>
#include <cstdlib>

#include "tipperary/common/log.h"

namespace tipperary::metrics::detail {

void Fatal(const std::string& message) {
  TIPPERARY_LOG(kError, "metrics registration error", {{"error", message}});
  // Also plain text, so death tests and humans see it whatever the log level.
  std::fprintf(stderr, "tipperary::metrics: %s\n", message.c_str());
  std::abort();
}

}  // namespace tipperary::metrics::detail
