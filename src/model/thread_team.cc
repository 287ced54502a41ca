#include "thread_team.h"

namespace tipperary::model::internal {

ThreadTeam::ThreadTeam(int size) : size_(size < 1 ? 1 : size), barrier_(size < 1 ? 1 : size) {
  for (int m = 1; m < size_; ++m) threads_.emplace_back([this, m] { Loop(m); });
}

ThreadTeam::~ThreadTeam() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadTeam::RunImpl(Trampoline call, void* fn) {
  if (size_ == 1) {
    call(fn, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_call_ = call;
    job_fn_ = fn;
    running_ = size_ - 1;
    ++generation_;
  }
  start_cv_.notify_all();
  call(fn, 0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return running_ == 0; });
  job_call_ = nullptr;
  job_fn_ = nullptr;
}

void ThreadTeam::Loop(int member) {
  uint64_t seen = 0;
  while (true) {
    Trampoline call;
    void* fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      call = job_call_;
      fn = job_fn_;
    }
    call(fn, member);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--running_ == 0) done_cv_.notify_one();
    }
  }
}

}  // namespace tipperary::model::internal
