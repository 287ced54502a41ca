// Per-thread sharding shared by Counter and Histogram: each writing thread is assigned one of
// kShardCount cache-line-aligned slots round-robin on first use, so that threads on the request
// path add to different cache lines with relaxed atomics and never take a lock. Readers (scrapes)
// sum the shards.
#pragma once

#include <cstddef>

namespace tipperary::metrics {

// Shards per Counter/Histogram. More shards cost memory (one cache line each per counter) and
// scrape time; fewer make threads share cache lines. 16 covers the proxy's thread counts.
inline constexpr std::size_t kShardCount = 16;
inline constexpr std::size_t kCacheLineSize = 64;

namespace detail {

// Returns the next shard index, round-robin across threads.
std::size_t AssignShard();

inline std::size_t ThisThreadShard() {
  thread_local const std::size_t shard = AssignShard();
  return shard;
}

}  // namespace detail
}  // namespace tipperary::metrics
