#include "throughput_estimator.h"

#include <algorithm>

namespace tipperary::worker {

ThroughputEstimator::ThroughputEstimator(std::chrono::nanoseconds window, int instances)
    : instances_(std::max(1, instances)), window_(std::max(window, std::chrono::nanoseconds(1))) {}

void ThroughputEstimator::SetWindow(std::chrono::nanoseconds window) {
  absl::MutexLock lock(&mu_);
  window_ = std::max(window, std::chrono::nanoseconds(1));
}

void ThroughputEstimator::Seed(uint64_t tokens, std::chrono::nanoseconds busy) {
  absl::MutexLock lock(&mu_);
  if (!samples_.empty() && !seeded_only_) return;  // Real batches already define it.
  seeded_only_ = true;
  AddLocked({tokens, busy});
}

void ThroughputEstimator::Record(uint64_t tokens, std::chrono::nanoseconds busy) {
  absl::MutexLock lock(&mu_);
  if (seeded_only_) {
    samples_.clear();
    tokens_ = 0;
    busy_ = std::chrono::nanoseconds(0);
    seeded_only_ = false;
  }
  AddLocked({tokens, busy});
}

void ThroughputEstimator::AddLocked(Sample sample) {
  sample.busy = std::max(sample.busy, std::chrono::nanoseconds(0));
  samples_.push_back(sample);
  tokens_ += sample.tokens;
  busy_ += sample.busy;
  // Keep the fewest most recent batches whose busy time still covers the window.
  while (samples_.size() > 1 && busy_ - samples_.front().busy >= window_) {
    tokens_ -= samples_.front().tokens;
    busy_ -= samples_.front().busy;
    samples_.pop_front();
  }
}

std::optional<double> ThroughputEstimator::TokensPerSecond() const {
  absl::MutexLock lock(&mu_);
  if (busy_.count() <= 0) return std::nullopt;
  return static_cast<double>(instances_) * static_cast<double>(tokens_) /
         std::chrono::duration<double>(busy_).count();
}

std::optional<double> ThroughputEstimator::BacklogSeconds(uint64_t queued_tokens) const {
  if (queued_tokens == 0) return 0.0;
  std::optional<double> rate = TokensPerSecond();
  if (!rate || *rate <= 0) return std::nullopt;
  return static_cast<double>(queued_tokens) / *rate;
}

size_t ThroughputEstimator::window_batches() const {
  absl::MutexLock lock(&mu_);
  return samples_.size();
}

}  // namespace tipperary::worker
