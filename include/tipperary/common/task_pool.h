// Threads of their own that run posted closures: with one thread, in the order posted. Uses:
// the worker's embedding queue finishes a task whose texts were all cache hits on one (its
// `done` must not run inside Submit, whose callers may hold the lock `done` takes); and, at idle
// OS priority (thread_priority.h), the bulk lane's CPU work around the model in the worker
// (tokenizing a bulk request, writing its answer) and the rendering of bulk responses in the
// proxy, so that that work yields the cores to interactive requests.
//
//   TaskPool pool;                                   // or TaskPool({.threads = 2,
//                                                    //              .idle_priority = true})
//   pool.Post([task] { ... });  // false once stopped: the closure will not run
//   pool.Stop();                // runs what was posted, then joins the threads
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tipperary::common {

class TaskPool {
 public:
  struct Options {
    int threads = 1;  // At least 1.
    // Each thread moves itself to SCHED_IDLE before running anything (a warning if refused).
    bool idle_priority = false;
    const char* name = "task-pool";  // The threads' name (thread_name.h).
  };

  TaskPool() : TaskPool(Options{}) {}
  explicit TaskPool(Options options);
  ~TaskPool();  // Stop()
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Queues `closure`; false (and it never runs) once Stop() has begun.
  bool Post(std::function<void()> closure) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs everything posted before it, then joins the threads. Idempotent; not from a closure.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop(bool idle_priority, const char* name);

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace tipperary::common
