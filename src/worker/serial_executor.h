// One thread that runs posted closures in order. The embedding queue uses it to finish a task
// whose texts were all cache hits: its `done` must not run inside Submit, whose callers may hold
// the lock that `done` takes.
//
//   SerialExecutor executor;
//   executor.Post([task] { ... });  // false once stopped: the closure will not run
//   executor.Stop();                // runs what was posted, then joins the thread
#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tipperary::worker {

class SerialExecutor {
 public:
  SerialExecutor();
  ~SerialExecutor();  // Stop()
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  // Queues `closure`; false (and it never runs) once Stop() has begun.
  bool Post(std::function<void()> closure) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs everything posted before it, then joins the thread. Idempotent; not from a closure.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace tipperary::worker
