// The tokens per second a model has been sustaining, and the backlog it implies: how many seconds
// of work wait in its queue. Autoscalers see requests per second, but a model's real load is the
// tokens waiting for it; backlog_seconds = queued tokens / sustained tokens per second is the
// signal that says how far behind it is whatever the texts' lengths (docs/autoscaling.md).
//
// Sustained tokens per second, precisely: REAL (unpadded) tokens of the batches completed,
// divided by the busy time they took (the encoder's compute time, summed over batches), times
// the model's instances (that many batches run at once, each at that rate). Over a sliding
// window: the most recent batches whose busy time adds up to at least `window` (all of them
// while they add up to less). Real tokens because the queue counts real tokens (padding does not
// exist until a batch forms), so numerator and denominator share a unit; the padding a batch
// wastes shows up as a lower rate, as it should. Busy time rather than wall time because an idle
// model is not a slow one: after a quiet hour the estimate is still the speed it works at.
//
// Before any batch ran, the warm-up batches the worker runs at load (Seed) define it, so the
// signal exists from the first request; the first real batch replaces them. With warmup: all
// they are every batch shape bucket, so the seeded rate is the model's across shapes; with
// warmup: minimal one tiny, overhead-bound batch, so the seeded rate is low and the first backlog
// estimates err high (toward scaling out), for as long as the first batch takes; with warmup:
// none there is no rate (and no backlog_seconds) until the first batch.
//
// Time comes in as arguments (the caller measures each batch), so the class has no clock and a
// test drives it with plain numbers. Thread-safe: the model's executor threads Record while the
// admin port and the metrics scrape read.
//
//   ThroughputEstimator throughput(std::chrono::seconds(10), /*instances=*/1);
//   throughput.Seed(4, warmup_time);                      // at load
//   throughput.Record(batch.real_tokens, compute_time);   // after every batch
//   std::optional<double> backlog = throughput.BacklogSeconds(queued_tokens);
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tipperary::worker {

class ThroughputEstimator {
 public:
  // `window` (busy time, at least 1ns) and `instances` (at least 1) as described above.
  ThroughputEstimator(std::chrono::nanoseconds window, int instances);

  // A config reload's batching.throughput_window; the next Record trims to it.
  void SetWindow(std::chrono::nanoseconds window) ABSL_LOCKS_EXCLUDED(mu_);
  // A warm-up batch of `tokens` real tokens that took `busy`: used only until the first Record.
  void Seed(uint64_t tokens, std::chrono::nanoseconds busy) ABSL_LOCKS_EXCLUDED(mu_);
  // A batch of `tokens` real tokens that an encoder computed in `busy`.
  void Record(uint64_t tokens, std::chrono::nanoseconds busy) ABSL_LOCKS_EXCLUDED(mu_);

  // The sustained rate; nullopt before any Seed or Record (or when their busy time is 0).
  std::optional<double> TokensPerSecond() const ABSL_LOCKS_EXCLUDED(mu_);
  // queued_tokens / TokensPerSecond(): 0 when nothing is queued (whatever the rate), nullopt
  // when tokens are queued and there is no rate yet.
  std::optional<double> BacklogSeconds(uint64_t queued_tokens) const ABSL_LOCKS_EXCLUDED(mu_);

  // How many batches the window holds now (for tests).
  size_t window_batches() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Sample {
    uint64_t tokens = 0;
    std::chrono::nanoseconds busy{0};
  };
  void AddLocked(Sample sample) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int instances_;
  mutable absl::Mutex mu_;
  std::chrono::nanoseconds window_ ABSL_GUARDED_BY(mu_);
  std::deque<Sample> samples_ ABSL_GUARDED_BY(mu_);
  uint64_t tokens_ ABSL_GUARDED_BY(mu_) = 0;               // Sum over samples_.
  std::chrono::nanoseconds busy_ ABSL_GUARDED_BY(mu_){0};  // Sum over samples_.
  bool seeded_only_ ABSL_GUARDED_BY(mu_) = false;          // samples_ are warm-up batches.
};

}  // namespace tipperary::worker
