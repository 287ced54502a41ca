#include "tipperary/common/thread_name.h"

#include <string>

#ifdef __linux__
#include <pthread.h>
#endif

namespace tipperary::common {

void SetThreadName(std::string_view name) {
#ifdef __linux__
  std::string cut(name.substr(0, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
#else
  (void)name;
#endif
}

}  // namespace tipperary::common
