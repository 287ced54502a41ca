#include "tipperary/metrics/detail/shard.h"

#include <atomic>
#include <cstddef>

namespace tipperary::metrics::detail {

std::size_t AssignShard() {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % kShardCount;
}

}  // namespace tipperary::metrics::detail
