// The project's mutex and condition variable: absl::Mutex & co. under our own names.
//
//   common::Mutex mu_;
//   int n_ ABSL_GUARDED_BY(mu_);
//   { common::MutexLock lock(&mu_); ++n_; }
//   mu_.Await(absl::Condition(...));  cv_.Wait(&mu_);  // exclusive mode, as with absl
//
// In every ordinary build (release, debug, asan-ubsan) these are plain aliases of absl::Mutex,
// absl::MutexLock, absl::ReaderMutexLock and absl::CondVar: the code that runs is absl's.
//
// Under ThreadSanitizer they are thin wrappers that also describe each lock, unlock and wait to
// TSan with its mutex annotations (<sanitizer/tsan_interface.h>), the same annotations abseil
// itself makes when it is built with -fsanitize=thread. Debian's libabsl_synchronization is
// not, and its futex-based Mutex is invisible to TSan, which would then report every
// ABSL_GUARDED_BY field touched by two threads as a race. With the annotations TSan knows
// which mutex is held where, so it still reports a guarded field read or written *without*
// the lock (tests/common/tsan_canary.cc checks that).
//
// Limits of the TSan wrappers (both are checked by TSan itself, which reports a misuse):
//   * Await/AwaitWithTimeout and CondVar waits are for a mutex held in exclusive mode (all of
//     ours are); absl's versions also allow reader mode.
//   * Only the parts of absl's API the project uses are wrapped; add more as needed.
// absl evaluates a waiter's Condition on whichever thread releases the mutex; while inside
// absl's Unlock/Await, TSan ignores memory accesses (that is what the annotations' pre/post
// brackets do), so a Condition's reads are checked only when the waiting thread evaluates it
// before blocking. Conditions read guarded state under the lock, so nothing is lost in practice.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#define TIPPERARY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIPPERARY_TSAN 1
#endif
#endif

#if defined(TIPPERARY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace tipperary::common {

#if !defined(TIPPERARY_TSAN)

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using ReaderMutexLock = absl::ReaderMutexLock;
using CondVar = absl::CondVar;

#else  // TIPPERARY_TSAN

class CondVar;

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() { __tsan_mutex_create(this, __tsan_mutex_not_static); }
  ~Mutex() { __tsan_mutex_destroy(this, __tsan_mutex_not_static); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    __tsan_mutex_pre_lock(this, 0);
    mu_.Lock();
    __tsan_mutex_post_lock(this, 0, 0);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    __tsan_mutex_pre_unlock(this, 0);
    mu_.Unlock();
    __tsan_mutex_post_unlock(this, 0);
  }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() {
    __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
    mu_.ReaderLock();
    __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() {
    __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
    mu_.ReaderUnlock();
    __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }
  void AssertReaderHeld() const ABSL_ASSERT_SHARED_LOCK() { mu_.AssertReaderHeld(); }

  // Exclusive mode only. When `cond` is false, absl releases the mutex, blocks, and returns
  // with it held again (possibly after other threads held it): TSan sees a release and an
  // acquire around the wait.
  void Await(const absl::Condition& cond) {
    if (cond.Eval()) return;  // what absl::Mutex::Await does first, too
    BeginWait();
    mu_.Await(cond);
    EndWait();
  }
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout) {
    if (cond.Eval()) return true;
    BeginWait();
    const bool result = mu_.AwaitWithTimeout(cond, timeout);
    EndWait();
    return result;
  }

 private:
  friend class CondVar;

  // Around a blocking call into absl that releases and re-acquires mu_ (exclusive mode).
  void BeginWait() { __tsan_mutex_pre_unlock(this, 0); }
  void EndWait() {
    __tsan_mutex_post_unlock(this, 0);
    __tsan_mutex_pre_lock(this, 0);
    __tsan_mutex_post_lock(this, 0, 0);
  }

  absl::Mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits are for a Mutex held in exclusive mode.
class CondVar {
 public:
  void Wait(Mutex* mu) {
    mu->BeginWait();
    cv_.Wait(&mu->mu_);
    mu->EndWait();
  }
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
    mu->BeginWait();
    const bool timed_out = cv_.WaitWithTimeout(&mu->mu_, timeout);
    mu->EndWait();
    return timed_out;
  }
  void Signal() { cv_.Signal(); }
  void SignalAll() { cv_.SignalAll(); }

 private:
  absl::CondVar cv_;
};

#endif  // TIPPERARY_TSAN

}  // namespace tipperary::common
