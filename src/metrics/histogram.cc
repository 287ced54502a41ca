#include "tipperary/metrics/histogram.h"

#include <cmath>
#include <limits>

#include "check.h"
#include "tipperary/metrics/text_format.h"

namespace tipperary::metrics {
namespace {

Histogram::BucketBoundaries Validated(Histogram::BucketBoundaries bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    detail::Check(std::isfinite(bounds[i]),
                  "histogram bucket bound " + FormatValue(bounds[i]) + " is not finite");
    detail::Check(i == 0 || bounds[i - 1] < bounds[i],
                  "histogram bucket bounds must be strictly increasing, got " +
                      FormatValue(i == 0 ? 0.0 : bounds[i - 1]) + " then " +
                      FormatValue(bounds[i]));
  }
  return bounds;
}

}  // namespace

Histogram::Histogram(BucketBoundaries boundaries)
    : boundaries_(Validated(std::move(boundaries))),
      lines_per_shard_((boundaries_.size() + 1 + kSlotsPerLine - 1) / kSlotsPerLine),
      lines_(std::make_unique<CountLine[]>(kShardCount * lines_per_shard_)) {}

std::vector<std::uint64_t> Histogram::BucketCounts() const {
  std::vector<std::uint64_t> counts(boundaries_.size() + 1, 0);
  for (std::size_t shard = 0; shard < kShardCount; ++shard) {
    for (std::size_t bucket = 0; bucket < counts.size(); ++bucket) {
      counts[bucket] += Slot(shard, bucket).load(std::memory_order_relaxed);
    }
  }
  return counts;
}

std::uint64_t Histogram::Count() const {
  std::uint64_t total = 0;
  for (std::uint64_t c : BucketCounts()) total += c;
  return total;
}

double Histogram::Sum() const {
  double total = 0.0;
  for (const SumShard& shard : sums_) total += shard.value.load(std::memory_order_relaxed);
  return total;
}

Histogram::BucketBoundaries DefaultLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0};
}

Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, std::size_t count) {
  detail::Check(start > 0 && factor > 1 && count >= 1,
                "ExponentialBuckets needs start > 0, factor > 1, count >= 1");
  Histogram::BucketBoundaries bounds(count);
  double v = start;
  for (double& b : bounds) {
    b = v;
    v *= factor;
  }
  return bounds;
}

Histogram::BucketBoundaries LinearBuckets(double start, double width, std::size_t count) {
  detail::Check(width > 0 && count >= 1, "LinearBuckets needs width > 0, count >= 1");
  Histogram::BucketBoundaries bounds(count);
  for (std::size_t i = 0; i < count; ++i) bounds[i] = start + static_cast<double>(i) * width;
  return bounds;
}

}  // namespace tipperary::metrics
