// Per-second rate of a cumulative counter over sliding windows, from periodic samples.
//
// The proxy samples its request counters once per sample_interval; a window's rate is the
// counter's growth between the newest sample and the oldest one still inside the window,
// divided by the time between them (like PromQL's rate() without extrapolation). While fewer
// samples than a window exist, the rate covers the time seen so far.
//
//   RateWindow requests(/*max_window=*/std::chrono::seconds(60));
//   requests.Add(now, total);                  // every second
//   double rps = requests.Rate(std::chrono::seconds(10));
#pragma once

#include <chrono>
#include <deque>

namespace tipperary::autoscaling {

class RateWindow {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateWindow(Clock::duration max_window) : max_window_(max_window) {}

  // `cumulative` is the counter's value at `now`; times must not go backwards. A value below
  // the previous one is a counter reset (the process restarted): growth restarts from 0.
  void Add(Clock::time_point now, double cumulative);

  // Growth per second over the last `window` (<= max_window); 0 with fewer than two samples.
  double Rate(Clock::duration window) const;

  bool empty() const { return samples_.empty(); }

 private:
  struct Sample {
    Clock::time_point time;
    double value;  // Monotonic: resets already folded in.
  };
  Clock::duration max_window_;
  std::deque<Sample> samples_;
  double last_raw_ = 0;
  double offset_ = 0;  // Sum of the values lost to resets.
};

}  // namespace tipperary::autoscaling
