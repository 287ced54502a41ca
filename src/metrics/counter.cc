#include "tipperary/metrics/counter.h"

namespace tipperary::metrics {

double Counter::Value() const {
  double total = 0.0;
  for (const Shard& shard : shards_) total += shard.value.load(std::memory_order_relaxed);
  return total;
}

}  // namespace tipperary::metrics
