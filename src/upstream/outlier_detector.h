// Outlier ejection on consecutive failures, per endpoint of one cluster (Envoy's
// consecutive_5xx, with an exponential ejection time). Internal to tipperary::upstream.
//
// An attempt that ended with UNAVAILABLE, a reset or broken stream, or a per-try timeout is a
// failure; any other answer from the server is a success and resets the count. After
// `consecutive_failures` in a row the endpoint is ejected (gets no new requests) for
// base_ejection_time * 2^(n-1), capped at max_ejection_time, where n counts its ejections and
// drops by one for each base_ejection_time it then spends without being ejected. At most
// max_ejection_percent of the endpoints are ejected at once, but always one may be.
//
//   OutlierDetector detector(options, endpoint_count);
//   if (detector.RecordFailure(i, now)) { /* i was ejected just now */ }
//   if (!detector.IsEjected(i, now)) { /* route to i */ }
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tipperary/upstream/upstream_cluster.h"

namespace tipperary::upstream {

class OutlierDetector {
 public:
  using Clock = std::chrono::steady_clock;

  OutlierDetector(const OutlierDetectionOptions& options, size_t endpoints);

  bool enabled() const { return options_.consecutive_failures > 0; }

  void RecordSuccess(size_t endpoint);
  // True when this failure ejected the endpoint.
  bool RecordFailure(size_t endpoint, Clock::time_point now);

  bool IsEjected(size_t endpoint, Clock::time_point now) const;
  // How long the current ejection lasts in total (for the log line); zero when not ejected.
  std::chrono::nanoseconds EjectionTime(size_t endpoint) const;
  uint32_t times_ejected(size_t endpoint) const { return endpoints_[endpoint].times_ejected; }
  uint32_t EjectedCount(Clock::time_point now) const;

 private:
  struct State {
    uint32_t consecutive_failures = 0;
    uint32_t times_ejected = 0;
    Clock::time_point ejected_until{};  // In the past when not ejected.
    std::chrono::nanoseconds ejection_time{0};
  };

  OutlierDetectionOptions options_;
  std::vector<State> endpoints_;
};

}  // namespace tipperary::upstream
