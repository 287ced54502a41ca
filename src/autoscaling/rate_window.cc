#include "tipperary/autoscaling/rate_window.h"

namespace tipperary::autoscaling {

void RateWindow::Add(Clock::time_point now, double cumulative) {
  if (!samples_.empty() && cumulative < last_raw_) offset_ += last_raw_;
  last_raw_ = cumulative;
  samples_.push_back({now, cumulative + offset_});
  // Keep one sample at or beyond the longest window so that its rate spans the whole window.
  while (samples_.size() > 2 && now - samples_[1].time >= max_window_) samples_.pop_front();
}

double RateWindow::Rate(Clock::duration window) const {
  if (samples_.size() < 2) return 0;
  const Sample& newest = samples_.back();
  // The oldest sample no older than the window. Up to half a sampling step of timer jitter is
  // tolerated so that a 10 s window over 1 s samples spans 10 s, not 9, when a tick comes late.
  const auto tolerance = (newest.time - samples_[samples_.size() - 2].time) / 2;
  const Sample* oldest = &newest;
  for (auto it = samples_.rbegin(); it != samples_.rend(); ++it) {
    if (newest.time - it->time > window + tolerance) break;
    oldest = &*it;
  }
  auto elapsed = std::chrono::duration<double>(newest.time - oldest->time).count();
  if (elapsed <= 0) return 0;
  return (newest.value - oldest->value) / elapsed;
}

}  // namespace tipperary::autoscaling
