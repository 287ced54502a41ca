// Internal: a fixed team of threads that runs one function on every member at once, with a
// barrier the members use between phases. By default the calling thread is member 0, so a team
// of one runs everything inline. A team at idle priority owns all its members instead (the
// caller only waits), every one at SCHED_IDLE, so that the caller's own priority never computes.
#pragma once

#include <barrier>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tipperary::model::internal {

class ThreadTeam {
 public:
  explicit ThreadTeam(int size, bool idle_priority = false);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return size_; }
  // Whether the members run at SCHED_IDLE (asked for and granted).
  bool idle_priority() const { return idle_priority_; }
  // Runs fn(member) on members [0, members) (all when members <= 0); returns when every one
  // has returned. Takes any callable by reference (no std::function, so no allocation per call).
  template <typename Fn>
  void Run(Fn& fn, int members = 0) {
    RunImpl([](void* f, int member) { (*static_cast<Fn*>(f))(member); }, &fn, members);
  }
  // Called by every member inside fn when all members run: waits until all reach it.
  void Sync() { barrier_.arrive_and_wait(); }

 private:
  using Trampoline = void (*)(void*, int);
  void RunImpl(Trampoline call, void* fn, int members);
  void Loop(int member);

  const int size_;
  // The members' threads are the team's own, member 0 included (idle priority only).
  const bool owns_all_;
  bool idle_priority_ = false;
  std::barrier<> barrier_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  Trampoline job_call_ = nullptr;
  void* job_fn_ = nullptr;
  int job_members_ = 0;
  uint64_t generation_ = 0;
  int running_ = 0;
  int started_ = 0;       // members that have set their priority (owns_all_ only)
  int idle_members_ = 0;  // of those, how many got SCHED_IDLE
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tipperary::model::internal
