#include "tipperary/common/thread_priority.h"

#include <chrono>

#ifdef __linux__
#include <sched.h>
#endif

namespace tipperary::common {
namespace {

thread_local bool idle_thread = false;
thread_local std::chrono::steady_clock::time_point last_yield{};

}  // namespace

bool EnterIdlePriority() {
#ifdef __linux__
  sched_param param{};
  param.sched_priority = 0;
  idle_thread = sched_setscheduler(0, SCHED_IDLE, &param) == 0;
  last_yield = std::chrono::steady_clock::now();
  return idle_thread;
#else
  return false;
#endif
}

void IdleYieldPoint() {
#ifdef __linux__
  if (!idle_thread) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_yield < kIdleYieldInterval) return;
  sched_yield();
  last_yield = std::chrono::steady_clock::now();
#endif
}

bool InIdlePriority() {
#ifdef __linux__
  return sched_getscheduler(0) == SCHED_IDLE;
#else
  return false;
#endif
}

}  // namespace tipperary::common
