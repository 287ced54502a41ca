// Lowering the calling thread to idle OS priority, for work that must yield its core to anything
// else that wants it: the worker's encoder threads that compute bulk batches.
//
// SCHED_IDLE (Linux): a thread of any other policy that wakes preempts an idle-policy thread at
// once (CFS and EEVDF both), where between two normal threads the woken one may wait for the
// running one's slice. It is not a strict priority: an idle thread still gets a small share
// (weight 3 against a normal thread's 1024), so work on it is slowed, never starved. Nor does it
// keep a core from an idle thread that already runs: under EEVDF (Linux 6.6+) a normal thread
// that was preempted (by another normal one) and has run ahead of its share is not eligible when
// the next task is picked, the idle thread is, and it then keeps the core until the next tick
// (4 ms at HZ=250): measured as 3.7 ms stalls of the proxy's event loop beside the worker's bulk
// encoder (docs/benchmarks.md, "Priority lanes"). Long computations on such threads therefore
// call IdleYieldPoint() every few hundred microseconds, which hands the core back.
// Only pure computation belongs there: a thread at SCHED_IDLE that takes a lock other threads
// need (a malloc arena, gRPC's, protobuf's) and is preempted while holding it stalls them all
// while normal work fills the cores (docs/benchmarks.md: tried for the bulk requests' I/O, and
// removed). An unprivileged thread may lower itself to SCHED_IDLE but not come back, which is why
// only threads created for such work enter it.
//
//   std::thread t([] {
//     if (!EnterIdlePriority()) TIPPERARY_LOG(kWarn, "bulk thread at normal priority", {});
//     ...
//   });
#pragma once

#include <chrono>

namespace tipperary::common {

// Moves the calling thread to SCHED_IDLE; false where that is not possible (not Linux, or the
// kernel refused), the thread then stays at its priority.
bool EnterIdlePriority();

// Whether the calling thread runs at SCHED_IDLE (for tests and logs).
bool InIdlePriority();

// In a thread that EnterIdlePriority() moved to SCHED_IDLE: yields its core (sched_yield) when it
// has run kIdleYieldInterval since it last did, so that a normal thread the scheduler passed over
// waits at most about that long instead of a tick. Elsewhere: a thread-local flag test, nothing
// more. Cheap enough for every work item of a batch (a clock read when idle).
inline constexpr std::chrono::microseconds kIdleYieldInterval{200};
void IdleYieldPoint();

}  // namespace tipperary::common
