#include "tipperary/common/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tipperary/common/thread_priority.h"

namespace tipperary::common {
namespace {

TEST(TaskPoolTest, OneThreadRunsInTheOrderPosted) {
  std::vector<int> ran;  // only the pool's one thread writes it, until Stop
  TaskPool pool;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.Post([&ran, i] { ran.push_back(i); }));
  pool.Stop();
  ASSERT_EQ(ran.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ran[i], i);
}

TEST(TaskPoolTest, StopRunsWhatWasPostedAndRefusesMore) {
  std::atomic<int> ran{0};
  TaskPool pool({.threads = 3});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.Post([&ran] { ran.fetch_add(1); }));
  pool.Stop();
  EXPECT_EQ(ran.load(), 50);
  EXPECT_FALSE(pool.Post([&ran] { ran.fetch_add(1); }));
  pool.Stop();  // idempotent
  EXPECT_EQ(ran.load(), 50);
}

TEST(TaskPoolTest, EveryThreadTakesWork) {
  absl::Mutex mu;
  std::set<std::thread::id> threads;
  int arrived = 0;
  TaskPool pool({.threads = 3});
  // Each closure waits until three are running at once: only three threads can get there.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.Post([&] {
      absl::MutexLock lock(&mu);
      threads.insert(std::this_thread::get_id());
      ++arrived;
      mu.Await(absl::Condition(
          +[](int* n) { return *n == 3; }, &arrived));
    }));
  }
  pool.Stop();
  EXPECT_EQ(threads.size(), 3u);
}

#ifdef __linux__
TEST(TaskPoolTest, IdlePriorityThreadsRunAtSchedIdle) {
  std::atomic<int> idle{0};
  TaskPool pool({.threads = 2, .idle_priority = true});
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(pool.Post([&idle] {
      if (InIdlePriority()) idle.fetch_add(1);
    }));
  }
  pool.Stop();
  EXPECT_EQ(idle.load(), 20);
  EXPECT_FALSE(InIdlePriority());  // never the poster's thread
}

TEST(TaskPoolTest, NormalThreadsStayNormal) {
  std::atomic<int> idle{0};
  TaskPool pool;
  ASSERT_TRUE(pool.Post([&idle] {
    if (InIdlePriority()) idle.fetch_add(1);
  }));
  pool.Stop();
  EXPECT_EQ(idle.load(), 0);
}
#endif

}  // namespace
}  // namespace tipperary::common
