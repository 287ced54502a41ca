// Built only in TSan builds (cmake/Tsan.cmake), as libtipperary_tsan_absl.so, which every
// target links first. Not part of any ordinary build.
//
// Debian's abseil is not built with -fsanitize=thread, and absl::Mutex is implemented on raw
// futex syscalls, so TSan sees none of its locking: every field guarded by an absl::Mutex,
// ours or gRPC's (gpr_mu, grpc_core::Mutex and grpcpp's grpc::internal::Mutex are all
// absl::Mutex), looks unsynchronised, and TSan reports hundreds of races that are not there.
//
// TSan intercepts pthread_mutex_lock & co. for the same reason; this file does the same for
// absl::Mutex. It defines absl::Mutex's and absl::CondVar's out-of-line entry points; being
// loaded before libabsl_synchronization, these definitions are the ones the dynamic linker binds
// for every caller (our code, gRPC's libraries, abseil itself). Each one tells TSan about the
// lock, unlock or wait with the mutex annotations of <sanitizer/tsan_interface.h> (those abseil
// itself makes when it is built with TSan) and calls the real function, found with
// dlsym(RTLD_NEXT). A real race on a guarded field, made without the lock, is still reported
// (tests/common/tsan_canary.cc checks that). absl::Notification is covered too (below).
//
// Tied to Debian 12's abseil 20220623 (inline namespace debian3): if a symbol is missing the
// process stops at once with a message naming it, rather than running unannotated.
//
// Limits, compared with an abseil built with TSan: a Condition that absl evaluates on another
// thread (inside that thread's Unlock) runs while TSan ignores memory accesses (the annotations'
// pre/post brackets), so its reads are checked only when the waiting thread evaluates it itself.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

template <typename F>
F Real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tipperary_tsan_absl: %s not found in libabsl_synchronization\n", symbol);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

// Some entry points call others through the PLT (CondVar::WaitWithTimeout calls
// WaitWithDeadline): only the outermost one is annotated.
thread_local int depth = 0;
struct Outermost {
  Outermost() { ++depth; }
  ~Outermost() { --depth; }
};

// The mode a held mutex is in: absl's kMuWriter bit (0x0008) is set while it is held
// exclusively, as absl's own annotated code checks it.
unsigned HeldMode(const absl::Mutex* mu) {
  const intptr_t word =
      reinterpret_cast<const std::atomic<intptr_t>*>(mu)->load(std::memory_order_relaxed);
  return (word & 0x0008) != 0 ? 0 : __tsan_mutex_read_lock;
}

// Lock, ReaderLock, LockWhen...: the real call returns with the mutex held.
template <typename R, typename F, typename... A>
R Acquire(absl::Mutex* mu, unsigned mode, F real, A&&... args) {
  if (depth > 0) return real(mu, static_cast<A&&>(args)...);
  Outermost outermost;
  __tsan_mutex_pre_lock(mu, mode);
  if constexpr (std::is_void_v<R>) {
    real(mu, static_cast<A&&>(args)...);
    __tsan_mutex_post_lock(mu, mode, 0);
  } else {
    R result = real(mu, static_cast<A&&>(args)...);
    __tsan_mutex_post_lock(mu, mode, 0);
    return result;
  }
}

template <typename F>
void Release(absl::Mutex* mu, unsigned mode, F real) {
  if (depth > 0) return real(mu);
  Outermost outermost;
  __tsan_mutex_pre_unlock(mu, mode);
  real(mu);
  __tsan_mutex_post_unlock(mu, mode);
}

// Await and CondVar waits: called with `mu` held; absl may release it, block, and re-acquire
// it before returning. TSan sees a release and an acquire around the call.
template <typename R, typename F, typename Self, typename... A>
R Wait(absl::Mutex* mu, F real, Self* self, A&&... args) {
  if (depth > 0) return real(self, static_cast<A&&>(args)...);
  Outermost outermost;
  const unsigned mode = HeldMode(mu);
  __tsan_mutex_pre_unlock(mu, mode);
  auto relock = [&] {
    __tsan_mutex_post_unlock(mu, mode);
    __tsan_mutex_pre_lock(mu, mode);
    __tsan_mutex_post_lock(mu, mode, 0);
  };
  if constexpr (std::is_void_v<R>) {
    real(self, static_cast<A&&>(args)...);
    relock();
  } else {
    R result = real(self, static_cast<A&&>(args)...);
    relock();
    return result;
  }
}

// The definitions below only take effect if the dynamic linker binds absl's symbols to this
// library, i.e. if it comes before libabsl_synchronization in the binary's list of libraries
// (cmake/Tsan.cmake sees to it). Checked at load time rather than trusted.
__attribute__((constructor)) void CheckInterposition() {
  void* bound = dlsym(RTLD_DEFAULT, "_ZN4absl7debian35Mutex4LockEv");
  Dl_info info{};
  if (bound == nullptr || dladdr(bound, &info) == 0 || info.dli_fname == nullptr ||
      std::strstr(info.dli_fname, "libtipperary_tsan_absl") == nullptr) {
    std::fprintf(stderr,
                 "tipperary_tsan_absl: absl::Mutex::Lock is bound to %s, not to this library: "
                 "link libtipperary_tsan_absl.so before libabsl_synchronization\n",
                 bound != nullptr && info.dli_fname != nullptr ? info.dli_fname : "nothing");
    std::abort();
  }
}

}  // namespace

#define TIPPERARY_REAL(type, symbol) static const auto real = Real<type>(symbol)

namespace absl {
inline namespace debian3 {

Mutex::~Mutex() {
  TIPPERARY_REAL(void (*)(Mutex*), "_ZN4absl7debian35MutexD1Ev");
  if (depth == 0) __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  real(this);
}

void Mutex::Lock() {
  TIPPERARY_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  Acquire<void>(this, 0, real);
}
void Mutex::ReaderLock() {
  TIPPERARY_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  Acquire<void>(this, __tsan_mutex_read_lock, real);
}
void Mutex::LockWhen(const Condition& cond) {
  TIPPERARY_REAL(void (*)(Mutex*, const Condition&),
                 "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Acquire<void>(this, 0, real, cond);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  TIPPERARY_REAL(void (*)(Mutex*, const Condition&),
                 "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Acquire<void>(this, __tsan_mutex_read_lock, real, cond);
}
// The ...WithTimeout/...WithDeadline forms return whether `cond` held, but always with the
// mutex held.
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIPPERARY_REAL(bool (*)(Mutex*, const Condition&, Duration),
                 "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Acquire<bool>(this, 0, real, cond, timeout);
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIPPERARY_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Acquire<bool>(this, 0, real, cond, deadline);
}
bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  TIPPERARY_REAL(
      bool (*)(Mutex*, const Condition&, Duration),
      "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Acquire<bool>(this, __tsan_mutex_read_lock, real, cond, timeout);
}
bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  TIPPERARY_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Acquire<bool>(this, __tsan_mutex_read_lock, real, cond, deadline);
}

bool Mutex::TryLock() {
  TIPPERARY_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  if (depth > 0) return real(this);
  Outermost outermost;
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, locked ? __tsan_mutex_try_lock : __tsan_mutex_try_lock | __tsan_mutex_try_lock_failed,
      0);
  return locked;
}
bool Mutex::ReaderTryLock() {
  TIPPERARY_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  if (depth > 0) return real(this);
  Outermost outermost;
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  return locked;
}

void Mutex::Unlock() {
  TIPPERARY_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  Release(this, 0, real);
}
void Mutex::ReaderUnlock() {
  TIPPERARY_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Release(this, __tsan_mutex_read_lock, real);
}

// When `cond` already holds, absl returns at once without releasing the mutex; checking it here
// first (as absl does) keeps that case free of a spurious release/acquire.
void Mutex::Await(const Condition& cond) {
  TIPPERARY_REAL(void (*)(Mutex*, const Condition&),
                 "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  if (depth == 0 && cond.Eval()) return;
  Wait<void>(this, real, this, cond);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  TIPPERARY_REAL(bool (*)(Mutex*, const Condition&, Duration),
                 "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  if (depth == 0 && cond.Eval()) return true;
  return Wait<bool>(this, real, this, cond, timeout);
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  TIPPERARY_REAL(bool (*)(Mutex*, const Condition&, Time),
                 "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  if (depth == 0 && cond.Eval()) return true;
  return Wait<bool>(this, real, this, cond, deadline);
}

void CondVar::Wait(Mutex* mu) {
  TIPPERARY_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  ::Wait<void>(mu, real, this, mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  TIPPERARY_REAL(bool (*)(CondVar*, Mutex*, Duration),
                 "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return ::Wait<bool>(mu, real, this, mu, timeout);
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  TIPPERARY_REAL(bool (*)(CondVar*, Mutex*, Time),
                 "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return ::Wait<bool>(mu, real, this, mu, deadline);
}

// absl::Notification waits on its own Mutex, but WaitForNotification first checks the flag
// without it (inside the library, so TSan cannot see that atomic): a waiter that finds the flag
// already set would look unordered with Notify. Notify releases and a successful wait acquires
// on the Notification itself, which is what it promises.
void Notification::Notify() {
  TIPPERARY_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}
void Notification::WaitForNotification() const {
  TIPPERARY_REAL(void (*)(const Notification*),
                 "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  TIPPERARY_REAL(bool (*)(const Notification*, Duration),
                 "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}
bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  TIPPERARY_REAL(bool (*)(const Notification*, Time),
                 "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

}  // namespace debian3
}  // namespace absl
