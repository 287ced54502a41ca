// Invariants, checked where the code states them: preconditions and thread affinity. Debug
// builds (NDEBUG unset: the debug, asan-ubsan and tsan presets) abort with file:line and the
// condition; release builds compile the checks out. Never for network input: hostile bytes get
// a status, not an assertion.
//
//   TIPPERARY_DCHECK(!queue_.empty());
//   ThreadChecker loop_thread_;                    // bound by Bind() on the loop's thread
//   TIPPERARY_DCHECK_ON_THREAD(loop_thread_);      // every later call must come from it
//   ScopedFlag inside(in_nghttp2_);                // set for this scope, never re-entered
#pragma once

#include <atomic>
#include <thread>

namespace tipperary::common {

// Prints "file:line: invariant failed: condition" and aborts.
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);

#ifdef NDEBUG
inline constexpr bool kDebugChecks = false;
#else
inline constexpr bool kDebugChecks = true;
#endif

#define TIPPERARY_DCHECK(condition)                                     \
  do {                                                                  \
    if (::tipperary::common::kDebugChecks && !(condition)) {            \
      ::tipperary::common::CheckFailed(__FILE__, __LINE__, #condition); \
    }                                                                   \
  } while (false)

// The thread an object belongs to (an event loop's, a scheduler's), in the spirit of Envoy's
// isThreadSafe(): unbound, any thread may call (setup before the thread starts); Bind() on
// the owning thread makes every later DCHECK_ON_THREAD demand it.
class ThreadChecker {
 public:
  void Bind() { owner_.store(std::this_thread::get_id(), std::memory_order_relaxed); }
  void Unbind() { owner_.store(std::thread::id(), std::memory_order_relaxed); }
  bool OnValidThread() const {
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    return owner == std::thread::id() || owner == std::this_thread::get_id();
  }

 private:
  std::atomic<std::thread::id> owner_{};
};

#define TIPPERARY_DCHECK_ON_THREAD(checker) TIPPERARY_DCHECK((checker).OnValidThread())

// Sets a flag for its scope, e.g. "inside a library callback": what must not be re-entered
// there (sending, closing, destroying) checks the flag; the guard checks it was clear.
class ScopedFlag {
 public:
  explicit ScopedFlag(bool& flag) : flag_(flag) {
    TIPPERARY_DCHECK(!flag_);
    flag_ = true;
  }
  ~ScopedFlag() { flag_ = false; }
  ScopedFlag(const ScopedFlag&) = delete;
  ScopedFlag& operator=(const ScopedFlag&) = delete;

 private:
  bool& flag_;
};

}  // namespace tipperary::common
