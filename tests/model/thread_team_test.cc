// The CPU encoder's thread team: who runs each member, at which OS priority, and a team that
// runs fewer members than it has.
#include "../../src/model/thread_team.h"  // internal; tested directly

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

namespace tipperary::model::internal {
namespace {

int Policy() {
#ifdef __linux__
  return sched_getscheduler(0);
#else
  return 0;
#endif
}

struct Seen {
  std::array<std::thread::id, 4> thread{};
  std::array<int, 4> policy{};
  std::atomic<int> calls{0};
};

TEST(ThreadTeamTest, CallerIsMemberZeroByDefault) {
  ThreadTeam team(3);
  EXPECT_FALSE(team.idle_priority());
  Seen seen;
  auto fn = [&](int member) {
    seen.thread[member] = std::this_thread::get_id();
    seen.calls.fetch_add(1);
    team.Sync();
  };
  team.Run(fn);
  EXPECT_EQ(seen.calls.load(), 3);
  EXPECT_EQ(seen.thread[0], std::this_thread::get_id());
  EXPECT_NE(seen.thread[1], std::this_thread::get_id());
  EXPECT_NE(seen.thread[2], seen.thread[1]);
}

#ifdef __linux__
TEST(ThreadTeamTest, IdlePriorityTeamComputesOnItsOwnThreadsAtSchedIdle) {
  const int caller_policy = Policy();
  ThreadTeam team(2, /*idle_priority=*/true);
  ASSERT_TRUE(team.idle_priority());
  Seen seen;
  auto fn = [&](int member) {
    seen.thread[member] = std::this_thread::get_id();
    seen.policy[member] = Policy();
    seen.calls.fetch_add(1);
    team.Sync();
  };
  team.Run(fn);
  EXPECT_EQ(seen.calls.load(), 2);
  for (int m = 0; m < 2; ++m) {
    EXPECT_NE(seen.thread[m], std::this_thread::get_id()) << m;
    EXPECT_EQ(seen.policy[m], SCHED_IDLE) << m;
  }
  EXPECT_EQ(Policy(), caller_policy);  // the caller only waited
}
#endif

TEST(ThreadTeamTest, RunsOnlyTheMembersAskedFor) {
  for (bool idle : {false, true}) {
    ThreadTeam team(3, idle);
    Seen seen;
    auto one = [&](int member) {
      seen.thread[member] = std::this_thread::get_id();
      seen.calls.fetch_add(1);
    };
    team.Run(one, 1);
    EXPECT_EQ(seen.calls.load(), 1) << idle;
    EXPECT_EQ(seen.thread[0] == std::this_thread::get_id(), !idle);
    // The whole team again afterwards: members that sat the last job out meet at the barrier.
    std::atomic<int> calls{0};
    auto all = [&](int) {
      calls.fetch_add(1);
      team.Sync();
      calls.fetch_add(1);
    };
    for (int round = 0; round < 50; ++round) team.Run(all);
    EXPECT_EQ(calls.load(), 300) << idle;
  }
}

}  // namespace
}  // namespace tipperary::model::internal
