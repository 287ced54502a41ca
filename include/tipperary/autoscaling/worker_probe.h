// Reads the worker's queue depth, cumulative batch counters and backlog from its admin endpoint
// (GET /autoscaling on tipperary-worker's admin port), so that the proxy's scalers can also
// scale on how busy the model is. Blocking, bounded by a timeout: called from the sampling
// thread, never from an event loop.
//
//   WorkerProbe probe("127.0.0.1:9902", std::chrono::milliseconds(500));
//   absl::StatusOr<WorkerCounters> counters = probe.Poll();
#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "tipperary/autoscaling/signal_sampler.h"

namespace tipperary::autoscaling {

class WorkerProbe {
 public:
  WorkerProbe(std::string address, std::chrono::nanoseconds timeout)
      : address_(std::move(address)), timeout_(timeout) {}

  // UNAVAILABLE when the worker cannot be reached in time, INTERNAL for a malformed answer.
  absl::StatusOr<WorkerCounters> Poll() const;

 private:
  std::string address_;
  std::chrono::nanoseconds timeout_;
};

// The worker's JSON body -> counters. Exposed for tests.
absl::StatusOr<WorkerCounters> ParseWorkerCounters(const std::string& json);

}  // namespace tipperary::autoscaling
