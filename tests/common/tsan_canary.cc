// Built only in the tsan preset (tests/common/CMakeLists.txt). Checks the two promises of
// cmake/tsan/absl_mutex_annotations.cc and tests/tsan.supp under ThreadSanitizer:
//
//   tsan_canary guarded  threads update fields guarded by an absl::Mutex and hand values over
//                        with an absl::CondVar, Mutex::Await and an absl::Notification: TSan
//                        must report nothing (without the annotations, Debian's uninstrumented
//                        absl::Mutex makes it report a race on each).
//   tsan_canary race     one of the threads skips the lock: TSan must still report the race,
//                        in this file (neither the annotations nor the suppressions may hide it).
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

using absl::CondVar;
using absl::Mutex;
using absl::MutexLock;

struct Shared {
  Mutex mu;
  CondVar cv;
  long counter ABSL_GUARDED_BY(mu) = 0;
  int handed_over ABSL_GUARDED_BY(mu) = 0;
  bool ready ABSL_GUARDED_BY(mu) = false;
};

void GuardedIncrement(Shared& s) {
  for (int i = 0; i < 1000; ++i) {
    MutexLock lock(&s.mu);
    ++s.counter;
  }
}

// The deliberate race: the same field, without the lock.
void RacyIncrement(Shared& s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (int i = 0; i < 1000; ++i) ++s.counter;
}

int Guarded() {
  Shared s;
  std::thread a([&] { GuardedIncrement(s); });
  std::thread b([&] { GuardedIncrement(s); });
  // A value handed over through a CondVar wait...
  std::thread producer([&] {
    MutexLock lock(&s.mu);
    s.handed_over = 42;
    s.ready = true;
    s.cv.Signal();
  });
  {
    MutexLock lock(&s.mu);
    while (!s.ready) s.cv.Wait(&s.mu);
    s.handed_over += 1;
    s.ready = false;
  }
  // ...and back through Mutex::Await.
  std::thread consumer([&] {
    MutexLock lock(&s.mu);
    s.mu.Await(absl::Condition(&s.ready));
    s.handed_over += 1;
  });
  {
    MutexLock lock(&s.mu);
    s.handed_over += 1;
    s.ready = true;
  }
  a.join();
  b.join();
  producer.join();
  consumer.join();
  // ...and a plain field published with an absl::Notification (a Mutex inside abseil).
  int published = 0;
  absl::Notification done;
  std::thread publisher([&] {
    published = 7;
    done.Notify();
  });
  done.WaitForNotification();
  const int seen = published;
  publisher.join();
  MutexLock lock(&s.mu);
  return s.counter == 2000 && s.handed_over == 45 && seen == 7 ? 0 : 1;
}

int Race() {
  Shared s;
  std::thread a([&] { GuardedIncrement(s); });
  std::thread b([&] { RacyIncrement(s); });
  a.join();
  b.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "guarded") == 0) return Guarded();
  if (argc == 2 && std::strcmp(argv[1], "race") == 0) return Race();
  std::fprintf(stderr, "usage: %s guarded|race\n", argv[0]);
  return 2;
}
