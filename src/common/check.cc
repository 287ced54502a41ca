#include "tipperary/common/check.h"

#include <cstdio>
#include <cstdlib>

namespace tipperary::common {

void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace tipperary::common
