#include "tipperary/common/thread_priority.h"

#include <gtest/gtest.h>

#include <thread>

namespace tipperary::common {
namespace {

#ifdef __linux__
TEST(ThreadPriorityTest, AThreadLowersItselfAndOnlyItself) {
  ASSERT_FALSE(InIdlePriority());
  bool entered = false;
  bool idle_inside = false;
  std::thread t([&] {
    entered = EnterIdlePriority();
    idle_inside = InIdlePriority();
  });
  t.join();
  EXPECT_TRUE(entered);  // unprivileged threads may always lower themselves
  EXPECT_TRUE(idle_inside);
  EXPECT_FALSE(InIdlePriority());  // the test's own thread is untouched
}
#endif

}  // namespace
}  // namespace tipperary::common
