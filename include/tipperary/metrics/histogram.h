// A distribution of observations in fixed buckets (Prometheus histogram). Observe() is lock-free:
// bucket counts and the sum live in per-thread shards that readers add up.
//
//   auto& family = BuildHistogram()
//                      .Name("tipperary_request_duration_seconds")
//                      .Help("...")
//                      .Buckets(DefaultLatencyBuckets())
//                      .Register(reg);
//   Histogram& h = family.Add({{"route", "GetItem"}});
//   h.Observe(0.0123);
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tipperary/metrics/detail/shard.h"

namespace tipperary::metrics {

class Histogram {
 public:
  // Upper bounds (inclusive) of the finite buckets, strictly increasing. The +Inf bucket is
  // implicit; a trailing +Inf is accepted and dropped. Anything else aborts with a message.
  using BucketBoundaries = std::vector<double>;

  explicit Histogram(BucketBoundaries boundaries);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v) {
    // First bucket with le >= v; written so that NaN, never >= anything, lands in +Inf.
    const auto bucket =
        static_cast<std::size_t>(std::partition_point(boundaries_.begin(), boundaries_.end(),
                                                      [v](double le) { return !(le >= v); }) -
                                 boundaries_.begin());
    const std::size_t shard = detail::ThisThreadShard();
    Slot(shard, bucket).fetch_add(1, std::memory_order_relaxed);
    sums_[shard].value.fetch_add(v, std::memory_order_relaxed);
  }

  const BucketBoundaries& boundaries() const { return boundaries_; }

  // Per-bucket (not cumulative) counts; size boundaries().size() + 1, the last being +Inf.
  std::vector<std::uint64_t> BucketCounts() const;
  std::uint64_t Count() const;
  double Sum() const;

 private:
  static constexpr std::size_t kSlotsPerLine = kCacheLineSize / sizeof(std::atomic<std::uint64_t>);
  struct alignas(kCacheLineSize) CountLine {
    std::atomic<std::uint64_t> slot[kSlotsPerLine];
  };
  struct alignas(kCacheLineSize) SumShard {
    std::atomic<double> value{0.0};
  };

  std::atomic<std::uint64_t>& Slot(std::size_t shard, std::size_t bucket) const {
    const std::size_t line = shard * lines_per_shard_ + bucket / kSlotsPerLine;
    return lines_[line].slot[bucket % kSlotsPerLine];
  }

  BucketBoundaries boundaries_;
  std::size_t lines_per_shard_;
  std::unique_ptr<CountLine[]> lines_;  // kShardCount * lines_per_shard_, zeroed
  std::array<SumShard, kShardCount> sums_;
};

// Request latencies in seconds: 0.5 ms ... 30 s.
Histogram::BucketBoundaries DefaultLatencyBuckets();
// start, start*factor, ..., count bounds. start > 0, factor > 1, count >= 1.
Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, std::size_t count);
// start, start+width, ..., count bounds. width > 0, count >= 1.
Histogram::BucketBoundaries LinearBuckets(double start, double width, std::size_t count);

}  // namespace tipperary::metrics
