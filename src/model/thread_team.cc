#include "thread_team.h"

#include <algorithm>

#include "tipperary/common/thread_name.h"
#include "tipperary/common/thread_priority.h"

namespace tipperary::model::internal {

ThreadTeam::ThreadTeam(int size, bool idle_priority)
    : size_(size < 1 ? 1 : size), owns_all_(idle_priority), barrier_(size < 1 ? 1 : size) {
  const int first = owns_all_ ? 0 : 1;
  for (int m = first; m < size_; ++m) threads_.emplace_back([this, m] { Loop(m); });
  if (owns_all_) {
    // Every member reports whether it got SCHED_IDLE before the team is used.
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return started_ == size_; });
    idle_priority_ = idle_members_ == size_;
  }
}

ThreadTeam::~ThreadTeam() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadTeam::RunImpl(Trampoline call, void* fn, int members) {
  members = members <= 0 ? size_ : std::min(members, size_);
  if (!owns_all_ && members == 1) {
    call(fn, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_call_ = call;
    job_fn_ = fn;
    job_members_ = members;
    running_ = owns_all_ ? members : members - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  if (!owns_all_) call(fn, 0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return running_ == 0; });
  job_call_ = nullptr;
  job_fn_ = nullptr;
}

void ThreadTeam::Loop(int member) {
  common::SetThreadName(owns_all_ ? "encoder-idle" : "encoder");
  if (owns_all_) {
    const bool idle = common::EnterIdlePriority();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle) ++idle_members_;
    ++started_;
    if (started_ == size_) done_cv_.notify_all();
  }
  uint64_t seen = 0;
  while (true) {
    Trampoline call;
    void* fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (member >= job_members_) continue;  // not in this job
      call = job_call_;
      fn = job_fn_;
    }
    call(fn, member);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--running_ == 0) done_cv_.notify_all();
    }
  }
}

}  // namespace tipperary::model::internal
