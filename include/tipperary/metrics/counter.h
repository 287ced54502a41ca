// A monotonically increasing value (Prometheus counter), safe to increment from any thread
// without locks: increments go to a per-thread shard and Value() sums the shards.
//
//   auto& family = BuildCounter().Name("tipperary_http_requests_total").Help("...").Register(reg);
//   Counter& ok = family.Add({{"code", "200"}});  // cache the reference
//   ok.Increment();
#pragma once

#include <array>
#include <atomic>

#include "tipperary/metrics/detail/shard.h"

namespace tipperary::metrics {

class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Negative and NaN increments are ignored: a counter never goes down.
  void Increment(double v = 1.0) {
    if (!(v >= 0.0)) return;
    shards_[detail::ThisThreadShard()].value.fetch_add(v, std::memory_order_relaxed);
  }

  double Value() const;

 private:
  struct alignas(kCacheLineSize) Shard {
    std::atomic<double> value{0.0};
  };
  std::array<Shard, kShardCount> shards_;
};

}  // namespace tipperary::metrics
