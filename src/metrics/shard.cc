#include <atomic>
#include <cstddef>

#include "tipperary/metrics/detail/shard.h"

namespace tipperary::metrics::detail {

std::size_t AssignShard() {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) % kShardCount;
}

}  // namespace tipperary::metrics::detail
