// ThreadSanitizer annotations that cost nothing elsewhere.
//
// HappensBefore(p) / HappensAfter(p) tell TSan about an ordering that an uninstrumented library
// keeps where TSan cannot see it: everything a thread did before HappensBefore(p) happens before
// everything another thread does after a later HappensAfter(p) on the same address. Use them
// only for an ordering the library documents; anything a thread does after its HappensBefore is
// still checked.
//
// The gRPC reactors (src/worker/embedding_service.cc) use them for what gRPC promises about
// OnDone, the reaction that deletes them: it comes after Finish() and after OnCancel returns.
// gRPC keeps that promise with a reference count on the call that libgrpc++ also drops, with
// atomics compiled into the library, where TSan cannot see them.
#pragma once

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

#if defined(TIPPERARY_TSAN)
inline void HappensBefore(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void HappensAfter(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
inline void HappensBefore(const void*) {}
inline void HappensAfter(const void*) {}
#endif

}  // namespace tipperary::common
