// Internal: a fixed team of threads that runs one function on every member at once, with a
// barrier the members use between phases. The calling thread is member 0, so a team of one
// runs everything inline.
#pragma once

#include <barrier>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tipperary::model::internal {

class ThreadTeam {
 public:
  explicit ThreadTeam(int size);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return size_; }
  // Runs fn(member) on all members; returns when every member has returned. Takes any callable
  // by reference (no std::function, so no allocation per call).
  template <typename Fn>
  void Run(Fn& fn) {
    RunImpl([](void* f, int member) { (*static_cast<Fn*>(f))(member); }, &fn);
  }
  // Called by every member inside fn: waits until all reach it.
  void Sync() { barrier_.arrive_and_wait(); }

 private:
  using Trampoline = void (*)(void*, int);
  void RunImpl(Trampoline call, void* fn);
  void Loop(int member);

  const int size_;
  std::barrier<> barrier_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  Trampoline job_call_ = nullptr;
  void* job_fn_ = nullptr;
  uint64_t generation_ = 0;
  int running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tipperary::model::internal
