#include "outlier_detector.h"

#include <algorithm>

namespace tipperary::upstream {

OutlierDetector::OutlierDetector(const OutlierDetectionOptions& options, size_t endpoints)
    : options_(options), endpoints_(endpoints) {}

void OutlierDetector::RecordSuccess(size_t endpoint) {
  endpoints_[endpoint].consecutive_failures = 0;
}

bool OutlierDetector::RecordFailure(size_t endpoint, Clock::time_point now) {
  if (!enabled()) return false;
  State& state = endpoints_[endpoint];
  if (IsEjected(endpoint, now)) return false;  // In flight when it was ejected: no news.
  if (++state.consecutive_failures < options_.consecutive_failures) return false;
  const size_t n = endpoints_.size();
  const size_t allowed = std::max<size_t>(1, n * options_.max_ejection_percent / 100);
  if (EjectedCount(now) + 1 > allowed) return false;  // Keeps counting; ejected when room.

  // The multiplier decays by one per base_ejection_time spent since the last ejection ended.
  const auto base = options_.base_ejection_time;
  if (state.times_ejected > 0 && base.count() > 0 && now > state.ejected_until) {
    const auto quiet = static_cast<uint64_t>((now - state.ejected_until) / base);
    state.times_ejected -= static_cast<uint32_t>(std::min<uint64_t>(quiet, state.times_ejected));
  }
  ++state.times_ejected;
  std::chrono::nanoseconds time = base;
  for (uint32_t i = 1; i < state.times_ejected && time < options_.max_ejection_time; ++i) {
    time *= 2;
  }
  time = std::min(time, options_.max_ejection_time);
  state.ejection_time = time;
  state.ejected_until = now + std::chrono::duration_cast<Clock::duration>(time);
  state.consecutive_failures = 0;
  return true;
}

bool OutlierDetector::IsEjected(size_t endpoint, Clock::time_point now) const {
  return now < endpoints_[endpoint].ejected_until;
}

std::chrono::nanoseconds OutlierDetector::EjectionTime(size_t endpoint) const {
  return endpoints_[endpoint].ejection_time;
}

uint32_t OutlierDetector::EjectedCount(Clock::time_point now) const {
  uint32_t count = 0;
  for (size_t i = 0; i < endpoints_.size(); ++i) count += IsEjected(i, now) ? 1 : 0;
  return count;
}

}  // namespace tipperary::upstream
